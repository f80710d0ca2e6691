"""A ``gs://`` work directory is a bucket path, never a local folder named ``gs:``: what the
trainer writes itself (configs, TensorBoard events, the export) goes through ``etils.epath``,
tested against a local stand-in for the bucket (``oldphoto_jax.testing.bucket``)."""
from __future__ import annotations

import json

import jax
import numpy as np

from oldphoto_jax import model_files, paths
from oldphoto_jax.testing.bucket import local_bucket
from oldphoto_jax.training import loop, reporting


def test_resolve_keeps_buckets_and_makes_local_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bucket = paths.resolve("gs://bucket/runs/a")
    assert str(bucket) == "gs://bucket/runs/a" and paths.is_uri(bucket)
    assert str(bucket / "checkpoints") == "gs://bucket/runs/a/checkpoints"
    assert str(paths.resolve("runs/a")) == str(tmp_path / "runs" / "a")
    assert paths.is_local("runs/a") and not paths.is_local("gs://b/x")


def test_trainer_writes_a_gs_workdir_to_the_bucket(tmp_path, monkeypatch, test_task,
                                                   make_config):
    monkeypatch.chdir(tmp_path)
    batch = {"image": np.zeros((2, 32, 32, 3), np.float32)}
    state = test_task.init_state(jax.random.key(0), batch)
    with local_bucket(tmp_path / "bucket_root") as root:
        workdir = paths.resolve("gs://bucket/run")
        workdir.mkdir(parents=True, exist_ok=True)
        config = make_config()
        config.input.num_workers = 1
        loop._write_config(config, workdir, 0)
        assert loop._saved_num_workers(workdir, 4) == 1  # read back from the bucket
        writer = reporting.MetricWriter(str(workdir / "tb"))
        writer.scalars(1, {"loss/l1": 0.5})
        writer.close()
        loop.export_networks(test_task, state, workdir / "export", 3)
    stored = root / "bucket" / "run"
    assert json.loads((stored / "config_from_step_0.json").read_text())["seed"] == config.seed
    assert list((stored / "tb").glob("events.out.tfevents.*"))
    model = model_files.load_model(stored / "export")  # checksums verified
    assert model.roles == ["vae_b_quality"] and "step 3" in model.source
    _, variables = model.network("vae_b_quality")
    np.testing.assert_array_equal(
        jax.tree.leaves(variables["params"])[0], np.asarray(jax.tree.leaves(state["params"])[0]))
    assert not (tmp_path / "gs:").exists()


def test_upload_tree_copies_the_named_files_last(tmp_path):
    local = tmp_path / "local"
    (local / "net").mkdir(parents=True)
    for name in ("manifest.json", "net/a", "net/b", "z"):
        (local / name).write_text(name)
    order = []
    with local_bucket(tmp_path / "root") as root:
        from etils import epath

        original = epath.Path.write_bytes

        def recording(self, data):
            order.append(str(self))
            return original(self, data)

        epath.Path.write_bytes = recording
        try:
            paths.upload_tree(local, "gs://b/model", last=("manifest.json",))
        finally:
            epath.Path.write_bytes = original
    assert order[-1] == "gs://b/model/manifest.json" and len(order) == 4
    assert (root / "b" / "model" / "net" / "b").read_text() == "net/b"


def test_photos_in_a_bucket_folder(tmp_path):
    from PIL import Image

    from oldphoto_jax.training.inputs import ConfigError, photo_source

    with local_bucket(tmp_path / "root") as root:
        folder = root / "b" / "photos"
        folder.mkdir(parents=True)
        for k in range(3):
            Image.fromarray(np.full((20, 30, 3), 40 * k, np.uint8)).save(folder / f"p{k}.png")
        (folder / "notes.txt").write_text("not a photo")
        source = photo_source("gs://b/photos", exclude=("p1.png",))
        assert len(source) == 2 and [source.name(i) for i in range(2)] == ["p0.png", "p2.png"]
        assert source[1].shape == (20, 30, 3) and int(source[1][0, 0, 0]) == 80
        try:
            photo_source("gs://b/nothing", field="data.clean")
        except ConfigError as error:
            assert "data.clean" in str(error) and "gs://b/nothing" in str(error)
        else:
            raise AssertionError("a missing bucket folder must be a ConfigError")
    assert not (tmp_path / "gs:").exists()
