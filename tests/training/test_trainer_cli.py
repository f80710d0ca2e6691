"""train.py's multi-host detection and the config files: every variant loads, documents its
command, and ``--config.x=y`` overrides reach the trainer."""
from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
VARIANTS = {
    "vae_a": (None, "tiny"),
    "vae_b": (None, "tiny"),
    "mapping": (None, "quality", "scratch", "hr", "tiny", "tiny_quality", "tiny_scratch",
                "tiny_hr"),
    "scratch": (None, "tiny"),
    "face": (None, "256", "512", "tiny"),
}


def load(path: pathlib.Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def train_module():
    return load(REPO / "train.py", "train_script_under_test")


def test_multiprocess_detection(train_module):
    detect = train_module.is_multiprocess_job
    assert not detect({})
    assert not detect({"SLURM_NTASKS": "1", "OMPI_COMM_WORLD_SIZE": "1",
                       "TPU_WORKER_HOSTNAMES": "localhost"})
    assert detect({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"})
    assert detect({"SLURM_NTASKS": "8"})
    assert detect({"OMPI_COMM_WORLD_SIZE": "2"})
    assert detect({"TPU_WORKER_HOSTNAMES": "t1,t2,t3,t4"})


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_config_variant_loads(name):
    module = load(REPO / "configs" / f"{name}.py", f"config_{name}")
    assert f"train.py --config configs/{name}.py" in module.__doc__
    for arg in VARIANTS[name]:
        config = module.get_config(arg)
        assert config.stage == name
        tiny = arg is not None and arg.startswith("tiny")
        assert (config.input.crop_size <= 64 and config.input.batch_size <= 4) == tiny
        assert config.num_steps == (300 if tiny else 0)  # 0 = the official number of epochs
        assert config.optim.steps_per_epoch == 0 and config.mesh_axes == ("data",)
        assert pathlib.Path(config.data.clean).parts[-2:] == ("photos", "clean")
        # None defaults are typed placeholders, so --config.optim.b1=0.9 etc. can override them.
        assert config.optim.get_ref("b1").get_type() is float
        assert config.disc.get_ref("spectral_norm").get_type() is bool
        assert config.input.get_ref("empty_mask_p").get_type() is float
    with pytest.raises(ValueError):
        module.get_config("no_such_variant")
    if name == "mapping":
        assert module.get_config("scratch").variant == "scratch"
        assert module.get_config("tiny").variant == "quality"
        assert module.get_config("tiny_hr").input.stage == "mapping_mask"


def test_overrides_and_errors_reach_the_command_line(tmp_path):
    """``--config.x=y`` overrides are applied; a bad photo folder is a clear error, exit != 0."""
    done = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "--config", "configs/vae_b.py:tiny",
         "--workdir", str(tmp_path), "--config.data.clean=/nonexistent/photos",
         "--config.num_steps=3"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: config.data.clean: /nonexistent/photos is not a folder "
        "(set --config.data.clean=...)")
