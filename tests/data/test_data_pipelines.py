"""grain batch pipelines: shapes, determinism, resumable iterator state, multi-host shards and
worker processes."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from oldphoto_jax.data import (
    Shard,
    batch_dataset,
    batch_iterator,
    host_batch_size,
    record_dataset,
    steps_per_epoch,
)


def take(iterator, count):
    return [next(iterator) for _ in range(count)]


def assert_same_batches(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.parametrize("records, keys", [
    ("domain_a", {"image": 3, "real_old": None, "grayscale": None}),
    ("mapping_mask", {"degraded": 3, "clean": 3, "mask": 1, "grayscale": None}),
])
def test_batches_are_nhwc_float32_with_flags(photos, config_for, records, keys):
    batch = next(batch_iterator(config_for(records), photos))
    assert set(batch) == set(keys)
    for key, channels in keys.items():
        assert batch[key].dtype == np.float32
        expected = (4,) if channels is None else (4, 32, 32, channels)
        assert batch[key].shape == expected
        assert batch[key].min() >= -1.0 and batch[key].max() <= 1.0


def test_batches_are_the_records_in_order_as_model_inputs(photos, config_for):
    config = config_for("mapping")
    records = record_dataset(config, photos)
    batch = batch_dataset(config, photos)[2]
    for j in range(4):
        record = records[8 + j]
        assert record["degraded"].dtype == np.uint8
        expected = record["degraded"].astype(np.float32) / 127.5 - 1
        np.testing.assert_allclose(batch["degraded"][j], expected, rtol=0, atol=1e-6)
    raw = batch_dataset(config_for("mapping", output_dtype="uint8"), photos)[2]
    np.testing.assert_array_equal(raw["clean"][1], records[9]["clean"])


def test_same_seed_same_batches_other_seed_other_batches(photos, config_for):
    first = take(batch_iterator(config_for("mapping_mask", read_threads=2), photos), 3)
    again = take(batch_iterator(config_for("mapping_mask"), photos), 3)
    assert_same_batches(first, again)
    other = next(batch_iterator(config_for("mapping_mask", seed=8), photos))
    assert not np.array_equal(first[0]["degraded"], other["degraded"])


@pytest.mark.parametrize("records", ["domain_b", "detection"])
def test_iterator_state_resumes_exactly(photos, config_for, records):
    config = config_for(records)
    iterator = batch_iterator(config, photos)
    take(iterator, 2)
    state = iterator.get_state()
    following = take(iterator, 3)
    resumed = batch_iterator(config, photos)
    resumed.set_state(state)
    assert_same_batches(take(resumed, 3), following)


def test_hosts_split_each_global_batch_in_process_order(photos, config_for):
    config = config_for("domain_a", batch_size=4)
    single = take(batch_iterator(config, photos), 2)
    hosts = [take(batch_iterator(config, photos, Shard(h, 2)), 2) for h in range(2)]
    for step in range(2):
        for key in single[step]:
            joined = np.concatenate([hosts[0][step][key], hosts[1][step][key]])
            np.testing.assert_array_equal(joined, single[step][key])
    assert host_batch_size(config, 2) == 2
    with pytest.raises(ValueError):
        host_batch_size(config, 3)
    with pytest.raises(ValueError):
        Shard(2, 2)


def test_steps_per_epoch_is_the_official_floor():
    assert steps_per_epoch(100, 36) == 2 and steps_per_epoch(10, 36) == 1


def test_start_batch_skips_exactly_that_many_batches(photos, config_for):
    config = config_for("domain_a")
    reference = take(batch_iterator(config, photos), 4)
    assert_same_batches(take(batch_iterator(config, photos, start_batch=3), 1), reference[3:])
    with pytest.raises(ValueError):
        batch_iterator(config, photos, start_batch=-1)


def test_worker_processes_give_the_same_batches_and_resume(photos, config_for):
    """Spawned workers: same batches as the training process, exact resumption from the saved
    state, and resumption by batch count with another number of workers."""
    reference = take(batch_iterator(config_for("mapping_mask"), photos), 5)
    config = config_for("mapping_mask", num_workers=2, read_threads=1)
    iterator = batch_iterator(config, photos)
    try:
        head = take(iterator, 2)
        state = iterator.get_state()
        tail = take(iterator, 3)
    finally:
        iterator.close()
    assert_same_batches(head + tail, reference)
    assert all(type(batch["degraded"]) is np.ndarray for batch in tail)
    resumed = batch_iterator(config, photos)
    try:
        resumed.set_state(state)
        assert_same_batches(take(resumed, 3), reference[2:])
    finally:
        resumed.close()
    one_worker = batch_iterator(dataclasses.replace(config, num_workers=1), photos, start_batch=2)
    try:
        assert_same_batches(take(one_worker, 3), reference[2:])
    finally:
        one_worker.close()
