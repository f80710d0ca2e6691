"""The persistent compilation cache the inference entry points switch on."""
import os
import pathlib
import subprocess
import sys

import pytest

from oldphoto_jax import compile_cache

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("value,expected", [
    ("", "XDG/oldphoto_jax/xla"), ("1", "XDG/oldphoto_jax/xla"), ("on", "XDG/oldphoto_jax/xla"),
    ("0", None), ("off", None), ("/some/folder", "/some/folder"),
])
def test_folder_from_the_environment(value, expected):
    chosen = compile_cache.chosen_directory({compile_cache.SWITCH: value, "XDG_CACHE_HOME": "XDG"})
    assert chosen == (None if expected is None else pathlib.Path(expected))


def _run(code: str, **environ) -> str:
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env.update(environ)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


COMPILE = ("from oldphoto_jax import compile_cache; print(compile_cache.enable()); import jax; "
           "jax.config.update('jax_persistent_cache_min_compile_time_secs', 0); "
           "jax.jit(lambda x: x * 2 + 1)(1.0).block_until_ready()")


def test_a_compiled_function_is_written_to_the_folder_and_found_again(tmp_path):
    folder = tmp_path / "cache"
    assert _run(COMPILE, OLDPHOTO_JAX_COMPILE_CACHE=str(folder)) == str(folder)
    entries = sorted(p.name for p in folder.iterdir())
    assert entries, "nothing was written"
    _run(COMPILE, OLDPHOTO_JAX_COMPILE_CACHE=str(folder))
    assert sorted(p.name for p in folder.iterdir()) == entries  # read back, not compiled again


def test_switched_off_or_the_users_own_folder_kept(tmp_path):
    assert _run(COMPILE, OLDPHOTO_JAX_COMPILE_CACHE="0") == "None"
    own = tmp_path / "own"
    assert _run(COMPILE, OLDPHOTO_JAX_COMPILE_CACHE=str(tmp_path / "ours"),
                JAX_COMPILATION_CACHE_DIR=str(own)) == str(own)
    assert not (tmp_path / "ours").exists()
