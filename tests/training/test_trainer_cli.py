"""train.py's multi-host detection and the config files: every variant loads, documents its
command, and ``--config.x=y`` overrides reach the trainer."""
from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys

import ml_collections
import pytest

from oldphoto_jax.models.registry import MODELS
from oldphoto_jax.testing.config_files import CONFIG_ARGS, config_module

REPO = pathlib.Path(__file__).resolve().parents[2]


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


@pytest.mark.parametrize("name", sorted(CONFIG_ARGS))
def test_every_config_variant_loads(name):
    module = config_module(name)
    assert f"train.py --config configs/{name}.py" in module.__doc__
    for arg in (None,) + CONFIG_ARGS[name]:
        config = module.get_config(arg)
        assert config.task == name
        tiny = arg is not None and arg.startswith("tiny")
        assert (config.input.crop_size <= 64 and config.input.batch_size <= 4) == tiny
        small = arg is not None and arg.startswith("small")
        assert config.num_steps == (300 if tiny else 8000 if small and name in (
            "mapping", "scratch") else 10000 if small else 0)  # 0 = the official epochs
        assert (config.optim.steps_per_epoch > 0) == small and config.mesh_axes == ("data",)
        photos = config.data.faces if name == "face" else config.data.clean
        folders = photos.split(",") if photos else []  # small: clean and clean_more
        expected = [("photos", "clean")] + ([("photos", "clean_more")] if small else [])
        assert [pathlib.Path(f).parts[-2:] for f in folders] in ([], expected)
        # Every number is typed (none is left for the trainer to decide); the fields that are
        # None by default are typed placeholders, so --config.input.empty_mask_p=0.5 works.
        assert isinstance(config.optim.b1, float) and isinstance(config.optim.lr, float)
        assert "disc" not in config or isinstance(config.disc.spectral_norm, bool)
        assert config.input.get_ref("empty_mask_p").get_type() is float
        assert config.model.name in MODELS
    with pytest.raises(ValueError):
        module.get_config("no_such_variant")
    if name == "mapping":
        assert module.get_config("scratch").variant == "scratch"
        assert module.get_config("tiny").variant == "quality"
        assert module.get_config("tiny_hr").input.records == "mapping_mask"



def test_configs_written_with_the_old_field_names_still_run():
    """Before issue 13 a task was ``config.stage`` and its records ``config.input.stage``."""
    from oldphoto_jax.training import inputs

    config = config_module("scratch").get_config("tiny")
    assert inputs.with_current_names(config) is config
    old = config.to_dict()
    old["stage"] = old.pop("task")
    old["input"]["stage"] = old["input"].pop("records")
    renamed = inputs.with_current_names(ml_collections.ConfigDict(old))
    assert renamed.task == "scratch" and renamed.input.records == "detection"
    assert "stage" not in renamed and "stage" not in renamed.input
    assert renamed.to_dict() == config.to_dict()
    assert inputs.input_config(renamed, "detection").records == "detection"

def test_print_config_prints_the_resolved_config_and_exits(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "--config",
         f"{REPO / 'configs' / 'mapping.py'}:small_scratch",
         "--print_config", "--config.loss.latent_l1=30"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "name: mapping_mask" in done.stdout and "latent_l1: 30.0" in done.stdout
    assert "steps_per_epoch: 32" in done.stdout and list(tmp_path.iterdir()) == []


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
