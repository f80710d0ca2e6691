"""The training loop on a small real task: resume, export, TensorBoard, the NaN stop, meshes."""
from __future__ import annotations

import re

import jax
import numpy as np
import pytest

from oldphoto_jax import model_files, sharding
from oldphoto_jax.training import inputs, keys, loop, train_checkpoints


def test_resume_matches_an_uninterrupted_run(tmp_path, test_task, make_config,
                                             read_event_tags):
    config = make_config(num_steps=8, checkpoint_every=4, sample_every=4)
    straight_lines = []
    straight = loop.train(config, tmp_path / "straight", task=test_task,
                          log=straight_lines.append)
    assert (straight.start_step, straight.step) == (0, 8)
    progress_lines = [line for line in straight_lines if "steps/s" in line]
    assert [line.split(" | ")[0] for line in progress_lines] == ["step 4/8", "step 8/8"]
    for line in progress_lines:   # where the loop's time went, in shares of it
        assert re.search(r" \| input \d+% dispatch \d+% device \d+% \| ", line), line

    lines = []
    first = loop.train(make_config(num_steps=4, checkpoint_every=4), tmp_path / "resumed",
                       task=test_task, log=lines.append)
    assert first.step == 4
    second = loop.train(config, tmp_path / "resumed", task=test_task, log=lines.append)
    assert (second.start_step, second.step) == (4, 8)
    assert any("resumed from the checkpoint of step 4" in line for line in lines)

    # The data iterator resumed too: with a restarted iterator the parameters would differ.
    a = train_checkpoints.load_state_arrays(tmp_path / "straight" / "checkpoints")
    b = train_checkpoints.load_state_arrays(tmp_path / "resumed" / "checkpoints")
    assert a.keys() == b.keys() and len(a) > 10
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert int(a["['step']"]) == 8
    assert train_checkpoints.TrainCheckpoints(tmp_path / "straight" / "checkpoints").all_steps() \
        == [4, 8]

    # The export is an infer.py model holding the trained parameters.
    model = model_files.load_model(tmp_path / "straight" / "export")
    assert model.roles == ["vae_b_quality"]
    _, variables = model.network("vae_b_quality")
    trained = jax.device_get(straight.state["params"])
    jax.tree.map(np.testing.assert_array_equal, variables["params"], trained)

    tags = read_event_tags(tmp_path / "straight" / "tb")
    assert tags["loss/l1"] == [4, 8] and tags["samples"] == [0, 4, 8]
    assert tags["perf/device_fraction"] == tags["perf/input_fraction"] == [4, 8]


def test_resume_with_another_worker_count_reads_the_same_batches(tmp_path, test_task,
                                                                 make_config):
    """grain's saved position fits only its worker count; a run resumed with another count
    restarts the input at the next batch, and ends where an uninterrupted run does."""
    straight = loop.train(make_config(num_steps=6, checkpoint_every=3), tmp_path / "straight",
                          task=test_task, log=lambda _: None)
    first_config = make_config(num_steps=3, checkpoint_every=3)
    first_config.input.num_workers = 1
    loop.train(first_config, tmp_path / "resumed", task=test_task, log=lambda _: None)
    lines = []
    second = loop.train(make_config(num_steps=6, checkpoint_every=3), tmp_path / "resumed",
                        task=test_task, log=lines.append)
    assert (second.start_step, second.step) == (3, 6)
    assert any("saved with 1 data workers, this run has 0" in line for line in lines)
    a = train_checkpoints.load_state_arrays(tmp_path / "straight" / "checkpoints")
    b = train_checkpoints.load_state_arrays(tmp_path / "resumed" / "checkpoints")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    del straight


def test_time_limit_stops_with_a_checkpoint_and_export_then_resumes(tmp_path, test_task,
                                                                    make_config):
    lines = []
    limited = loop.train(make_config(num_steps=8, checkpoint_every=4, time_limit_s=1e-6),
                         tmp_path, task=test_task, log=lines.append)
    # The deadline has passed when the first step ends: that step is checkpointed and exported.
    assert (limited.step, limited.time_limited) == (1, True)
    assert any("time limit of 1e-06 s reached" in line for line in lines)
    assert train_checkpoints.TrainCheckpoints(tmp_path / "checkpoints").all_steps() == [1]
    assert model_files.load_model(tmp_path / "export").roles == ["vae_b_quality"]

    rest = loop.train(make_config(num_steps=8, checkpoint_every=4), tmp_path, task=test_task,
                      log=lines.append)
    assert (rest.start_step, rest.step, rest.time_limited) == (1, 8, False)
    assert train_checkpoints.TrainCheckpoints(tmp_path / "checkpoints").all_steps()[-1] == 8


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, test_task,
                                                                   make_config):
    config = make_config(num_steps=12, checkpoint_every=4, log_every=100, debug_nan_step=6)
    lines = []
    with pytest.raises(loop.TrainingDiverged) as caught:
        loop.train(config, tmp_path, task=test_task, log=lines.append)
    error = caught.value
    assert (error.step, error.last_good_step) == (6, 4)
    assert "loss/l1" in error.values
    assert "at step 6" in str(error) and "loss/l1 = nan" in str(error)
    assert "last good checkpoint is step 4" in str(error) and str(error) in lines
    ckpt = train_checkpoints.TrainCheckpoints(tmp_path / "checkpoints")
    assert ckpt.all_steps() == [4]
    state = train_checkpoints.load_state_arrays(tmp_path / "checkpoints")
    assert all(np.isfinite(v).all() for v in state.values() if v.dtype.kind == "f")
    assert not (tmp_path / "export").exists()


def test_make_mesh_fills_in_minus_one_and_rejects_bad_shapes():
    mesh = sharding.make_mesh((-1,), ("data",))
    assert mesh.shape == {"data": jax.device_count()}
    mesh = sharding.make_mesh((1, -1), ("replica", "data"))
    assert mesh.shape["data"] == jax.device_count()
    with pytest.raises(ValueError, match="does not fit"):
        sharding.make_mesh((jax.device_count() + 1,), ("data",))
    with pytest.raises(ValueError, match="include 'data'"):
        sharding.make_mesh((-1,), ("model",))


def test_step_keys_are_pure_functions_of_seed_and_step():
    a = jax.random.key_data(keys.step_key(3, 7))
    b = jax.random.key_data(keys.step_key(3, 7))
    c = jax.random.key_data(keys.step_key(3, 8))
    d = jax.random.key_data(keys.step_key(4, 7))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, d)


def test_unknown_data_field_is_an_error(make_config):
    config = make_config()
    config.input.crop = 3
    with pytest.raises(ValueError, match="unknown config.input fields"):
        inputs.input_config(config, "domain_b")


def test_resume_falls_back_from_a_damaged_newest_checkpoint(tmp_path, test_task, make_config):
    """Garbage in the newest checkpoint's iterator JSON used to stop the resume with a
    JSONDecodeError; it is moved aside and the run resumes from the previous checkpoint."""
    loop.train(make_config(num_steps=4, checkpoint_every=2), tmp_path, task=test_task,
               log=lambda _: None)
    (tmp_path / "checkpoints" / "4" / "data" / "process_0-of-1.json").write_text("{garbage")
    lines = []
    resumed = loop.train(make_config(num_steps=4, checkpoint_every=2), tmp_path,
                         task=test_task, log=lines.append)
    assert (resumed.start_step, resumed.step) == (2, 4)
    assert any("step 4" in line and "damaged" in line and "4.damaged-1" in line
               for line in lines)
    assert (tmp_path / "checkpoints" / "4.damaged-1" / "data").is_dir()
    assert train_checkpoints.TrainCheckpoints(tmp_path / "checkpoints").all_steps() == [2, 4]
