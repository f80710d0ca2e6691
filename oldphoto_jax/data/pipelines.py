"""grain pipelines yielding the training batches of each kind of records.

    photos = TrainingPhotos(clean=FolderPhotos(".../clean"), old=(FolderPhotos(".../old"),))
    config = InputConfig("domain_a", batch_size=16, seed=0, num_workers=2)
    iterator = batch_iterator(config, photos, Shard.from_jax())
    batch = next(iterator)          # {"image": (8, 256, 256, 3) float32, "real_old": (8,), ...}
    state = iterator.get_state()    # save with the training checkpoint (a small dict)
    ...
    iterator = batch_iterator(config, photos, shard)
    iterator.set_state(state)       # continues with exactly the batches that followed

(``grain.checkpoint.CheckpointSave(iterator)`` / ``CheckpointRestore(iterator)`` put the same
state into an orbax checkpoint.) Restore with the same config, photos, shard and ``num_workers``.
Since batch k is a pure function of k, ``batch_iterator(..., start_batch=k)`` resumes after k
batches as well, with any number of workers (grain 0.2.18 cannot move a saved state between
worker counts).

The dataset is ``MapDataset.range(...)`` of host record indices, mapped to global record indices
and then to records (``records.TrainingRecords``), batched in the ``MapDataset`` (batch k = host
records [k B, (k + 1) B)) and converted to model inputs (``transforms.model_inputs``). With
workers, the uint8 batches cross to the training process and are converted there: a quarter of
the bytes go through shared memory, which costs more here than the conversion. Records are pure
functions of (seed, global index), and grain hands whole batches to workers round-robin, so the
batches are identical for any number of workers and threads. The stream is endless; epochs exist
only as the photo order of the indexed records.

Multi-host: with ``Shard(process_index, process_count)`` (``Shard.from_jax()``), host h builds
records ``s G + h B + j`` (``j < B``) at step s, where G is the global batch and
``B = G / process_count``: the hosts' batches of one step, concatenated in process order, are
exactly the single-host batch of the global size.

Workers are spawned processes (grain 0.2.18): scripts must guard their entry point with
``if __name__ == "__main__":``; ``batch_iter_dataset`` marks absl flags as parsed when they are not
(a grain 0.2.18 bug otherwise stops the workers).
"""
from __future__ import annotations

import dataclasses

import grain
import numpy as np
from absl import flags

from oldphoto_jax.data import config as config_lib
from oldphoto_jax.data import transforms
from oldphoto_jax.data.records import TrainingPhotos, TrainingRecords

# Host records per dataset: endless in practice (2**62 records).
NUM_RECORDS = 2**62


@dataclasses.dataclass(frozen=True)
class Shard:
    """This host's place among ``count`` hosts."""

    index: int = 0
    count: int = 1

    def __post_init__(self):
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard index {self.index} outside [0, {self.count})")

    @classmethod
    def from_jax(cls) -> "Shard":
        """``Shard(jax.process_index(), jax.process_count())``."""
        import jax  # deferred: workers and tools that only read data need no JAX

        return cls(jax.process_index(), jax.process_count())


@dataclasses.dataclass(frozen=True)
class HostToGlobalIndex:
    """Maps this host's record index to the global record index (see the module docstring)."""

    host_batch: int
    shard: Shard

    def __call__(self, index: int) -> int:
        step, position = divmod(int(index), self.host_batch)
        return (step * self.shard.count + self.shard.index) * self.host_batch + position


@dataclasses.dataclass(frozen=True)
class ModelInputs:
    """Batch transform: uint8 images and masks to the configured output dtype."""

    dtype: str = "float32"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return transforms.model_inputs(batch, self.dtype)


def record_dataset(
    config: config_lib.InputConfig, photos: TrainingPhotos, shard: Shard = Shard()
) -> grain.MapDataset:
    """This host's raw records (uint8 images and masks), one per index."""
    host_batch = config_lib.host_batch_size(config, shard.count)
    return (
        grain.MapDataset.range(NUM_RECORDS)
        .map(HostToGlobalIndex(host_batch, shard))
        .map(TrainingRecords(config, photos))
    )


def raw_batch_dataset(
    config: config_lib.InputConfig, photos: TrainingPhotos, shard: Shard = Shard()
) -> grain.MapDataset:
    """This host's batches of raw records (leading axis ``batch_size / count``)."""
    host_batch = config_lib.host_batch_size(config, shard.count)
    return record_dataset(config, photos, shard).batch(host_batch, drop_remainder=True)


def batch_dataset(
    config: config_lib.InputConfig, photos: TrainingPhotos, shard: Shard = Shard()
) -> grain.MapDataset:
    """This host's batches as model inputs (random access, e.g. ``batch_dataset(...)[step]``)."""
    return raw_batch_dataset(config, photos, shard).map(ModelInputs(config.output_dtype))


def prepare_worker_start() -> None:
    """Marks absl flags as parsed when nobody parsed them (grain 0.2.18 workers read them)."""
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def batch_iter_dataset(
    config: config_lib.InputConfig, photos: TrainingPhotos, shard: Shard = Shard(),
    start_batch: int = 0,
) -> grain.IterDataset:
    """The batches from ``start_batch`` on as a grain ``IterDataset``: ``read_threads`` threads
    and ``prefetch_batches`` batches per process, and ``num_workers`` worker processes when it is
    above 0."""
    if start_batch < 0:
        raise ValueError("start_batch must be >= 0")
    read_options = grain.ReadOptions(num_threads=config.read_threads,
                                     prefetch_buffer_size=config.prefetch_batches)
    if config.num_workers == 0:
        batches = batch_dataset(config, photos, shard)
        return batches[start_batch:].to_iter_dataset(read_options)
    prepare_worker_start()
    workers = grain.MultiprocessingOptions(num_workers=config.num_workers,
                                           per_worker_buffer_size=config.prefetch_batches)
    return (
        raw_batch_dataset(config, photos, shard)[start_batch:]
        .to_iter_dataset(read_options)
        .mp_prefetch(workers)
        .map(ModelInputs(config.output_dtype))  # in the training process, out of shared memory
    )


def batch_iterator(
    config: config_lib.InputConfig, photos: TrainingPhotos, shard: Shard = Shard(),
    start_batch: int = 0,
) -> grain.DatasetIterator:
    """A fresh iterator over the batches from ``start_batch`` on; ``get_state()`` and
    ``set_state()`` save and resume it.

    Close it (``iterator.close()``) when it has workers and is no longer needed.
    """
    return iter(batch_iter_dataset(config, photos, shard, start_batch))
