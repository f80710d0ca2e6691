"""infer.py under hostile input and damaged models: nothing lost, nothing silent.

Most tests call ``pipeline.command.restore_folder`` (what ``infer.py`` runs after parsing its
flags) in-process with tiny random-weight models; one runs ``infer.py`` itself.
"""
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from oldphoto_jax import model_files, photo_files
from oldphoto_jax.pipeline import stage_runner
from oldphoto_jax.pipeline.command import restore_folder
from oldphoto_jax.testing.random_model import random_network, write_random_model

REPO = pathlib.Path(__file__).resolve().parents[2]
QUALITY_ROLES = ["vae_a", "mapping_quality", "vae_b_quality"]
NO_FACES = stage_runner.Options(faces=False)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("model") / "tiny"
    write_random_model(directory, roles=QUALITY_ROLES)
    return directory


def _save_photo(path, seed=0, size=(40, 36)):
    rgb = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path, format="PNG")


def _restore(input_folder, output_folder, model_dir, options=NO_FACES):
    out, err = io.StringIO(), io.StringIO()
    status = restore_folder(str(input_folder), str(output_folder), str(model_dir), options,
                            out=out, err=err)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture()
def one_photo(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _save_photo(folder / "p.png")
    return folder


# -- damaged models -----------------------------------------------------------------------------

def _largest_params_file(network_dir):
    return max((p for p in (network_dir / "params").rglob("*") if p.is_file()),
               key=lambda p: p.stat().st_size)


def _edit_json(path, edit):
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _delete_network_folder(m):
    shutil.rmtree(m / "mapping_quality")
    return "mapping_quality"


def _truncate_params(m):
    path = _largest_params_file(m / "vae_a")
    path.write_bytes(path.read_bytes()[:7])
    return path.name


def _delete_params_file(m):
    path = _largest_params_file(m / "vae_b_quality")
    path.unlink()
    return path.name


def _manifest_not_json(m):
    (m / "manifest.json").write_text("networks: vae_a")
    return "manifest.json"


def _manifest_without_networks(m):
    _edit_json(m / "manifest.json", lambda d: d.pop("networks"))
    return "manifest.json"


def _unknown_class(m):
    _edit_json(m / "vae_a" / "config.json", lambda d: d.update({"model": "no_such_net"}))
    _edit_json(m / "manifest.json", lambda d: d.pop("checksums"))
    return "config.json"


@pytest.mark.parametrize("damage", [_delete_network_folder, _truncate_params,
                                    _delete_params_file, _manifest_not_json,
                                    _manifest_without_networks, _unknown_class],
                         ids=lambda f: f.__name__.lstrip("_"))
def test_damaged_model_exits_2_with_one_line_and_writes_nothing(model_dir, one_photo, tmp_path,
                                                                damage):
    damaged = tmp_path / "damaged"
    shutil.copytree(model_dir, damaged)
    named = damage(damaged)
    status, out, err = _restore(one_photo, tmp_path / "out", damaged)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], err
    assert "Traceback" not in out + err
    assert not (tmp_path / "out").exists()


def test_model_without_checksums_runs_with_a_note(model_dir, one_photo, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(model_dir, old)
    _edit_json(old / "manifest.json", lambda d: d.pop("checksums"))
    status, out, _ = _restore(one_photo, tmp_path / "out", old)
    assert status == 0
    assert "note:" in out and "no checksums" in out


def test_nan_weights_fail_each_photo_naming_the_stage(model_dir, one_photo, tmp_path):
    networks = {role: random_network(role, seed=i) for i, role in enumerate(QUALITY_ROLES)}
    module, variables = networks["vae_b_quality"]
    poisoned = {k: v for k, v in variables.items()}
    leaves, tree = __import__("jax").tree.flatten(poisoned)
    leaves = [np.full_like(leaf, np.nan) if leaf.ndim == 4 else leaf for leaf in leaves]
    networks["vae_b_quality"] = (module, __import__("jax").tree.unflatten(tree, leaves))
    model_files.save_model(tmp_path / "nan", networks)
    status, out, err = _restore(one_photo, tmp_path / "out", tmp_path / "nan")
    assert status == 1
    assert "0 restored" in out and "1 failed" in out
    assert "p.png" in err and "global restoration" in err and "non-finite" in err
    assert not (tmp_path / "out" / stage_runner.FINAL / "p.png").exists()


# -- output names -------------------------------------------------------------------------------

def test_output_names_never_collide():
    names = ["dup.jpg", "dup.png", "dup_jpg.png", "dup_png", "Dup.PNG", "x", "x.png", "x_.png",
             "a.b.png", "a.b.jpg", "a_b.png"]
    stems, renamed = stage_runner.output_stems([pathlib.Path(n) for n in names])
    assert len({s.casefold() for s in stems.values()}) == len(names)
    # an input keeps its own stem when it is free; derived names give way to it
    assert stems[pathlib.Path("dup_jpg.png")] == "dup_jpg"
    assert stems[pathlib.Path("dup.jpg")] != "dup_jpg"
    assert pathlib.Path("dup.jpg") in renamed


def test_colliding_names_all_restored(model_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for seed, name in enumerate(["dup.jpg", "dup.png", "dup_jpg.png"]):
        _save_photo(folder / name, seed)
    status, out, _ = _restore(folder, tmp_path / "out", model_dir)
    assert status == 0 and "3 restored" in out
    assert len(list((tmp_path / "out" / stage_runner.FINAL).iterdir())) == 3


# 250 bytes: too long for "<stem>_<k>.png"; 80 CJK characters (240 bytes) fit, but their
# temporary files' names did not.
@pytest.mark.parametrize("stem, renamed", [("n" * 250, 2), ("写" * 80, 0)],
                         ids=["250-ascii", "80-cjk"])
def test_too_long_names_are_shortened_and_reported(model_dir, tmp_path, stem, renamed):
    folder = tmp_path / "in"
    folder.mkdir()
    _save_photo(folder / f"{stem}.png")
    _save_photo(folder / f"{stem[:-1]}.png", seed=1)  # the same after shortening
    for attempt in range(2):  # a re-run into the same folder skips them, no crash
        status, out, err = _restore(folder, tmp_path / "out", model_dir)
        assert status == 0, err
    assert "2 already done" in out
    final = sorted((tmp_path / "out" / stage_runner.FINAL).iterdir())
    assert len(final) == 2
    assert all(len(os.fsencode(p.name)) <= 255 for p in final)
    assert out.count("renamed:") == 0  # the second run renamed nothing new: it skipped
    status, out, _ = _restore(folder, tmp_path / "again", model_dir)
    assert out.count("renamed:") == renamed and out.count("too long") == renamed


def test_stale_temporary_files_are_removed(model_dir, one_photo, tmp_path):
    out_dir = tmp_path / "out"
    stage = out_dir / stage_runner.STAGE1 / "origin"
    stage.mkdir(parents=True)
    stale = stage / f".p0.png.0123456789ab{photo_files.TEMP_SUFFIX}"   # older naming, no pid
    dead = stage / f".p1.png.{_dead_pid()}-0123456789ab{photo_files.TEMP_SUFFIX}"
    live = stage / f".p2.png.{os.getpid()}-0123456789ab{photo_files.TEMP_SUFFIX}"
    user_file = out_dir / f".mine{photo_files.TEMP_SUFFIX}"  # not in our folders: not ours to touch
    for path in (stale, dead, live, user_file):
        path.write_bytes(b"partial")
    status, out, _ = _restore(one_photo, out_dir, model_dir)
    assert status == 0
    assert not stale.exists() and not dead.exists()
    assert live.exists() and user_file.exists()
    assert "2 stale temporary file(s)" in out


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("where", ["file_as_folder", "under_a_file"])
def test_unwritable_output_exits_2_once(model_dir, one_photo, tmp_path, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    output = blocker if where == "file_as_folder" else blocker / "out"
    status, out, err = _restore(one_photo, output, model_dir)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(output) in lines[0] and "output folder" in lines[0], err
    assert "FAILED" not in out
    assert blocker.read_text() == "a file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_exits_2(model_dir, one_photo, tmp_path):
    output = tmp_path / "ro"
    output.mkdir()
    output.chmod(0o500)
    try:
        status, _, err = _restore(one_photo, output, model_dir)
    finally:
        output.chmod(0o700)
    assert status == 2 and "not writable" in err


# -- infer.py itself ----------------------------------------------------------------------------

def test_undecodable_names_with_a_strict_utf8_stdout(model_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    names = [b"caf\xe9.png", b"b.png", b"\xff\xfe.png"]
    for seed, name in enumerate(names):
        _save_photo(os.path.join(os.fsencode(folder), name), seed)
    env = dict(os.environ, PYTHONIOENCODING="utf-8:strict", PYTHONUTF8="0", LC_ALL="C.UTF-8")
    result = subprocess.run([sys.executable, str(REPO / "infer.py"), "--input_folder", folder,
                             "--output_folder", tmp_path / "out", "--checkpoint_dir", model_dir,
                             "--no_faces"], capture_output=True, env=env)
    stdout = result.stdout.decode("utf-8")
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")
    assert "3 restored" in stdout and "caf\\udce9.png" in stdout
    assert len(os.listdir(tmp_path / "out" / stage_runner.FINAL)) == 3


def test_mask_folder_flag_reaches_the_pipeline_and_needs_with_scratch(model_dir, one_photo,
                                                                      tmp_path):
    """``--mask_folder`` without ``--with_scratch``: one error line, exit 2, nothing written."""
    masks = tmp_path / "masks"
    masks.mkdir()
    result = subprocess.run([sys.executable, str(REPO / "infer.py"), "--input_folder", one_photo,
                             "--output_folder", tmp_path / "out", "--checkpoint_dir", model_dir,
                             "--no_faces", "--mask_folder", masks], capture_output=True,
                            text=True)
    assert result.returncode == 2, result.stderr
    assert "--mask_folder needs --with_scratch" in result.stderr
    assert not (tmp_path / "out" / stage_runner.FINAL).exists()
