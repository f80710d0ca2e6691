"""Training checkpoints: state + grain iterator round trip, and half-written checkpoints."""
from __future__ import annotations

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from oldphoto_jax import data as data_lib
from oldphoto_jax.training import inputs, train_checkpoints


def _state():
    params = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones(3)}
    return {"params": params, "opt": optax.adam(1e-3).init(params), "step": jnp.int32(5)}


def _iterator(make_config):
    config = make_config()
    photos = inputs.training_photos(config.data, "domain_b")
    return data_lib.batch_iterator(inputs.input_config(config, "domain_b"), photos)


def test_state_and_iterator_round_trip(tmp_path, make_config):
    state = _state()
    iterator = _iterator(make_config)
    for _ in range(3):
        next(iterator)
    ckpt = train_checkpoints.TrainCheckpoints(tmp_path, keep=2)
    assert ckpt.save(3, state, iterator)
    assert not ckpt.save(3, state, iterator)  # already saved
    expected = next(iterator)
    ckpt.close()

    ckpt = train_checkpoints.TrainCheckpoints(tmp_path, keep=2)
    assert ckpt.latest_step() == 3
    restored, resumed = ckpt.restore(3, train_checkpoints.abstract_state(state),
                                     _iterator(make_config))
    ckpt.close()
    # optax's state comes back with its own types (tuples, named tuples), not lists.
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    jax.tree.map(np.testing.assert_array_equal, restored, state)
    got = next(resumed)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])


def test_half_written_checkpoint_is_never_used(tmp_path, make_config):
    """A run killed while saving leaves ``<step>.orbax-checkpoint-tmp-<t>``: it is not a
    checkpoint, the previous one is restored, and the leftover is cleaned up."""
    state = _state()
    ckpt = train_checkpoints.TrainCheckpoints(tmp_path, keep=3)
    ckpt.save(4, state, _iterator(make_config))
    ckpt.close()
    # What a kill in the middle of saving step 8 leaves: a temporary copy with missing and
    # truncated files and no commit marker.
    partial = tmp_path / "8.orbax-checkpoint-tmp-1795000000000000"
    shutil.copytree(tmp_path / "4", partial)
    for marker in partial.rglob("commit_success.txt"):
        marker.unlink()
    for data_file in (partial / "state").rglob("*"):
        if data_file.is_file() and data_file.stat().st_size > 16:
            data_file.write_bytes(data_file.read_bytes()[:16])
    (partial / "data" / "process_0-of-1.json").unlink()

    ckpt = train_checkpoints.TrainCheckpoints(tmp_path, keep=3)
    assert ckpt.latest_step() == 4 and ckpt.all_steps() == [4]
    restored = ckpt.restore_state(4, train_checkpoints.abstract_state(state))
    jax.tree.map(np.testing.assert_array_equal, restored, state)
    later = jax.tree.map(lambda x: x + 1, state)
    assert ckpt.save(8, later, _iterator(make_config))
    # Removed by the cleanup the manager starts in the background when it opens the directory
    # (a save waits for it; asserting before one raced with it under load).
    assert not partial.exists()
    ckpt.close()
    assert train_checkpoints.load_state_arrays(tmp_path)["['step']"] == 6


def test_keeps_only_the_newest_checkpoints(tmp_path, make_config):
    ckpt = train_checkpoints.TrainCheckpoints(tmp_path, keep=2)
    iterator = _iterator(make_config)
    for step in (2, 4, 6):
        ckpt.save(step, _state(), iterator)
    ckpt.close()
    assert train_checkpoints.TrainCheckpoints(tmp_path).all_steps() == [4, 6]


def _truncate_a_state_file(step_dir):
    largest = max((p for p in (step_dir / "state").rglob("*") if p.is_file()),
                  key=lambda p: p.stat().st_size)
    largest.write_bytes(largest.read_bytes()[: largest.stat().st_size // 3])


def _garbage_data_json(step_dir):
    (step_dir / "data" / "process_0-of-1.json").write_text("{garbage")


def _missing_state_folder(step_dir):
    shutil.rmtree(step_dir / "state")


@pytest.mark.parametrize("damage", [_truncate_a_state_file, _garbage_data_json,
                                    _missing_state_folder], ids=lambda f: f.__name__.lstrip("_"))
def test_damaged_newest_checkpoint_falls_back_to_the_previous(tmp_path, make_config, damage):
    state = _state()
    newer = jax.tree.map(lambda x: x + 1, state)
    ckpt = train_checkpoints.TrainCheckpoints(tmp_path, keep=3)
    iterator = _iterator(make_config)
    ckpt.save(4, state, iterator)
    next(iterator)
    ckpt.save(8, newer, iterator)
    ckpt.close()
    damage(tmp_path / "8")
    damaged_files = sorted(p.relative_to(tmp_path / "8") for p in (tmp_path / "8").rglob("*"))

    lines = []
    ckpt = train_checkpoints.TrainCheckpoints(tmp_path, keep=3)
    abstract = train_checkpoints.abstract_state(state)
    step, (restored, _) = ckpt.restore_newest_intact(
        lambda s: ckpt.restore(s, abstract, _iterator(make_config)), log=lines.append)
    assert step == 4
    jax.tree.map(np.testing.assert_array_equal, restored, state)
    assert ckpt.latest_step() == 4
    # kept aside, outside orbax's view, never deleted
    aside = tmp_path / "8.damaged-1"
    assert sorted(p.relative_to(aside) for p in aside.rglob("*")) == damaged_files
    assert len(lines) == 1 and "step 8" in lines[0] and "8.damaged-1" in lines[0]
    # training goes on: the next save of step 8 is a new checkpoint
    assert ckpt.save(8, newer, _iterator(make_config))
    ckpt.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["4", "8", "8.damaged-1"]


def test_when_every_checkpoint_fails_nothing_is_moved(tmp_path, make_config):
    """A failure common to all checkpoints (e.g. a changed network shape) is not damage: the
    error is raised and every checkpoint stays where it is."""
    state = _state()
    ckpt = train_checkpoints.TrainCheckpoints(tmp_path, keep=3)
    ckpt.save(4, state, _iterator(make_config))
    ckpt.save(8, state, _iterator(make_config))
    ckpt.close()
    other_shape = train_checkpoints.abstract_state({**state, "params": {
        "w": jnp.zeros((5, 3)), "b": jnp.ones(3)}})
    ckpt = train_checkpoints.TrainCheckpoints(tmp_path, keep=3)
    with pytest.raises(Exception):
        ckpt.restore_newest_intact(lambda s: ckpt.restore_state(s, other_shape), log=print)
    ckpt.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["4", "8"]


def test_no_checkpoint_restores_nothing(tmp_path):
    ckpt = train_checkpoints.TrainCheckpoints(tmp_path, keep=3)
    assert ckpt.restore_newest_intact(lambda s: 1 / 0, log=print) == (None, None)
    ckpt.close()
