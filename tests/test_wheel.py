"""The built wheel installed into a fresh virtualenv (slow: builds, installs, restores a photo
with the bundled model): console scripts, the bundled model and the configs as package data,
no top-level ``configs`` package.

The virtualenv gets the wheel only (``--no-deps``); its dependencies (JAX...) are taken from the
test's own environment through a ``.pth`` line, so the test needs no network and no download.
"""
import os
import pathlib
import shutil
import site
import subprocess
import sys
import sysconfig

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

SKIP = shutil.ignore_patterns(".git", ".venv", "build", "dist", "outputs", "runs", "*.egg-info",
                              "__pycache__", ".pytest_cache", "tmp")


def _run(args, cwd, env, timeout=900, check=True):
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0 or not check, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(REPO, source, ignore=SKIP)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    _run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
          "-w", root / "dist", "-q"], cwd=source, env=env)
    wheels = list((root / "dist").glob("oldphoto_jax-*.whl"))
    assert len(wheels) == 1
    target = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", target], cwd=root, env=env)
    python = target / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps",
          "--no-index", "-q", wheels[0]], cwd=root, env=env)
    purelib = pathlib.Path(subprocess.check_output(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        text=True).strip())
    dependencies = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
                    *site.getsitepackages()}
    (purelib / "test_dependencies.pth").write_text("\n".join(sorted(dependencies)) + "\n")
    work = root / "work"  # far from the source tree
    work.mkdir()
    return target / "bin", purelib, work, env


def test_installed_package_has_its_data_and_no_top_level_configs(venv):
    bin_dir, purelib, work, env = venv
    out = _run([bin_dir / "python", "-c",
                "import importlib.util, oldphoto_jax, oldphoto_jax.bundled as b; "
                "print(oldphoto_jax.__file__); print(b.DEFAULT_DIR); print(b.CONFIGS_DIR); "
                "print(importlib.util.find_spec('configs'))"], work, env)
    package_file, model, configs, spec = out.split()[:4]
    assert package_file.startswith(str(purelib))
    assert model == str(purelib / "oldphoto_jax" / "weights" / "default")
    assert configs == str(purelib / "oldphoto_jax" / "configs")
    assert spec == "None"
    assert not (purelib / "configs").exists() and not (purelib / "weights").exists()


def test_console_scripts_behave_as_the_top_level_scripts(venv):
    bin_dir, purelib, work, env = venv
    photos = work / "photos"
    photos.mkdir()
    shutil.copy(REPO / "samples" / "old_w_scratch" / "b.png", photos)
    out = _run([bin_dir / "oldphoto-restore", "--input_folder", photos, "--output_folder",
                work / "out", "--with_scratch", "--max_side", "64"], work, env)
    assert f"weights: {purelib / 'oldphoto_jax' / 'weights' / 'default'}" in out
    assert "1 restored" in out and (work / "out" / "final_output" / "b.png").exists()
    out = _run([bin_dir / "oldphoto-train", "--config", "configs/vae_b.py:tiny",
                "--print_config"], work, env)
    assert "task: vae_b" in out
    # absl's --helpfull exits with status 1
    assert "--global_checkpoints" in _run([bin_dir / "oldphoto-convert", "--helpfull"], work, env,
                                          check=False)
    assert "--checkpoint_dir" in _run([bin_dir / "oldphoto-serve", "--help"], work, env)
