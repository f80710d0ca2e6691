"""The converter command on real .pth files laid out as the official archives.

The files are written with torch.save (the test extra installs torch) from the parity fixture
set's deterministic weights, at the official shapes. The converted model must hold exactly what
converting the same state dicts in memory gives, and must load in a fresh process with the same
outputs as right after conversion.
"""
import json
import os
import pathlib
import subprocess
import sys
import zipfile

import jax
import numpy as np
import pytest

from oldphoto_jax import model_files
from oldphoto_jax.convert.official import OFFICIAL_FILES
from oldphoto_jax.convert.converters import convert_state_dict
from oldphoto_jax.models.registry import build_network
from oldphoto_jax.parity.fixtures import cases_dir, fixture_set_missing, make_weights_module

torch = pytest.importorskip("torch")

ROLE_KEYS = {"vae_a": "vae_a", "vae_b_quality": "vae_b_quality", "vae_b_scratch": "vae_b_scratch",
             "mapping_quality": "mapping_quality", "mapping_scratch": "mapping_scratch",
             "mapping_hr": "mapping_patch_attention", "scratch_detector": "scratch_unet",
             "face_256": "face_spade_256", "face_512": "face_spade_512"}
GLOBAL_ROLES = [s.role for s in OFFICIAL_FILES if s.archive == "global"]
SPEC = {s.role: s for s in OFFICIAL_FILES}


def _state_dict(role, seed):
    missing = fixture_set_missing()
    if missing:
        pytest.skip(missing)
    root = cases_dir().parent
    make_weights = make_weights_module(str(root))
    return make_weights.make_state_dict(str(root / "keys" / f"{ROLE_KEYS[role]}.txt"), seed)


def _save(path: pathlib.Path, role: str, sd: dict, legacy: bool = False):
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}
    if SPEC[role].entry:  # the detection checkpoint is a dict around the state dict
        obj = {"epoch": 7, SPEC[role].entry: tensors, "note": "written by the test"}
    else:
        obj = tensors
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)


def _run_convert(*args):
    return subprocess.run([sys.executable, "-m", "oldphoto_jax.convert", *map(str, args)],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """global_checkpoints.zip (every global file) and a face folder with Setting_9_epoch_100."""
    root = tmp_path_factory.mktemp("official")
    state_dicts = {}
    global_dir = root / "Global"
    for seed, role in enumerate(GLOBAL_ROLES, start=100):
        sd = _state_dict(role, seed)
        if role == "vae_a":
            sd["extra.unused_buffer"] = np.zeros(3, np.float32)  # extra keys are only warnings
        state_dicts[role] = sd
        # The 2020 release predates torch's zip format: write some files in the legacy format.
        _save(global_dir / SPEC[role].path, role, sd, legacy=role.startswith("vae"))
    archive = root / "global_checkpoints.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        for path in sorted(global_dir.rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(global_dir))
    face_dir = root / "Face_Enhancement"
    state_dicts["face_256"] = _state_dict("face_256", 200)
    _save(face_dir / SPEC["face_256"].path, "face_256", state_dicts["face_256"])
    return {"zip": archive, "face": face_dir, "state_dicts": state_dicts, "root": root}


@pytest.fixture(scope="module")
def converted(official):
    out = official["root"] / "model"
    result = _run_convert("--global_checkpoints", official["zip"], "--face_checkpoints",
                          official["face"], "--skip_missing", "--output", out)
    assert result.returncode == 0, result.stderr
    return out, result


def test_every_network_converted_with_warnings(converted):
    out, result = converted
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["networks"]) == sorted(GLOBAL_ROLES + ["face_256"])
    assert "extra.unused_buffer" in result.stderr          # reported, ignored
    assert "FaceSR_512/latest_net_G.pth" in result.stderr  # skipped missing file is reported


def test_converted_params_equal_in_memory_conversion(converted, official):
    model = model_files.load_model(converted[0])
    for role, sd in official["state_dicts"].items():
        module, variables = model.network(role)
        expected, _ = convert_state_dict(build_network(SPEC[role].class_name, SPEC[role].args), sd,
                                         role)
        assert module == build_network(SPEC[role].class_name, SPEC[role].args)
        assert jax.tree.structure(variables) == jax.tree.structure(expected), role
        jax.tree.map(np.testing.assert_array_equal, variables, expected)


FRESH_PROCESS_SCRIPT = """
import sys, numpy as np
from oldphoto_jax import model_files
from oldphoto_jax.pipeline import stage1
model = model_files.load_model(sys.argv[1])
x = np.load(sys.argv[2])
gray = x[..., :1]
out = stage1.restore(model.network("vae_a"), model.network("mapping_scratch"),
                     model.network("vae_b_scratch"), x, (gray > 0.5).astype(np.float32))
prob = stage1.scratch_probability(model.network("scratch_detector"), gray)
np.savez(sys.argv[3], out=out, prob=prob)
"""


def test_reloads_in_fresh_process_with_same_outputs(converted, official, tmp_path):
    x = np.random.default_rng(3).uniform(-1, 1, (1, 32, 48, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    from oldphoto_jax.pipeline import stage1
    sds = official["state_dicts"]

    def fresh(role):  # straight from the converter, never written to disk
        spec = SPEC[role]
        module = build_network(spec.class_name, spec.args)
        return module, convert_state_dict(module, sds[role], role)[0]

    gray = x[..., :1]
    expected_out = stage1.restore(fresh("vae_a"), fresh("mapping_scratch"), fresh("vae_b_scratch"),
                                  x, (gray > 0.5).astype(np.float32))
    expected_prob = stage1.scratch_probability(fresh("scratch_detector"), gray)
    subprocess.run([sys.executable, "-c", FRESH_PROCESS_SCRIPT, str(converted[0]),
                    str(tmp_path / "x.npy"), str(tmp_path / "y.npz")], check=True)
    got = np.load(tmp_path / "y.npz")
    np.testing.assert_array_equal(got["out"], expected_out)
    np.testing.assert_array_equal(got["prob"], expected_prob)


def test_missing_file_is_an_error_and_writes_nothing(official, tmp_path):
    result = _run_convert("--face_checkpoints", official["face"], "--output", tmp_path / "m")
    assert result.returncode == 1
    assert "FaceSR_512/latest_net_G.pth" in result.stderr and "nothing was written" in result.stderr
    assert not (tmp_path / "m").exists()


def test_missing_key_names_file_and_key(tmp_path):
    sd = _state_dict("vae_a", 5)
    del sd["encoder.4.weight"]
    _save(tmp_path / "g" / SPEC["vae_a"].path, "vae_a", sd)
    result = _run_convert("--global_checkpoints", tmp_path / "g", "--skip_missing",
                          "--output", tmp_path / "m")
    assert result.returncode == 1
    assert "VAE_A_quality/latest_net_G.pth" in result.stderr
    assert "encoder.4.weight" in result.stderr
    assert not (tmp_path / "m").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["g"]  # no temporary left-overs


def test_wrong_shape_names_file_and_key(tmp_path):
    sd = _state_dict("mapping_quality", 6)
    sd["model.27.weight"] = sd["model.27.weight"][:32]
    _save(tmp_path / "g" / SPEC["mapping_quality"].path, "mapping_quality", sd)
    result = _run_convert("--global_checkpoints", tmp_path / "g", "--skip_missing",
                          "--output", tmp_path / "m")
    assert result.returncode == 1
    assert "mapping_quality/latest_net_mapping_net.pth" in result.stderr
    assert "model.27.weight" in result.stderr and "shape" in result.stderr
    assert not (tmp_path / "m").exists()


def test_not_a_checkpoint_archive(tmp_path):
    bogus = tmp_path / "global_checkpoints.zip"
    bogus.write_bytes(b"not a zip")
    result = _run_convert("--global_checkpoints", bogus, "--output", tmp_path / "m")
    assert result.returncode == 1 and "global_checkpoints.zip" in result.stderr
    corrupt = tmp_path / "c"
    (corrupt / "checkpoints/restoration/VAE_A_quality").mkdir(parents=True)
    (corrupt / "checkpoints/restoration/VAE_A_quality/latest_net_G.pth").write_bytes(b"\x80\x02}q")
    result = _run_convert("--global_checkpoints", corrupt, "--skip_missing",
                          "--output", tmp_path / "m")
    assert result.returncode == 1 and "latest_net_G.pth" in result.stderr
    assert not (tmp_path / "m").exists()
