"""Training input pipeline: photo sources, per-stage records and grain batch iterators.

``InputConfig`` (stage, batch, crop, seed, degradation recipe, probabilities, workers),
``StagePhotos`` (clean photos, old-photo sets, aligned faces) and ``batch_iterator`` produce the
batches of every training stage; ``tfds_folder`` prepares large photo folders once as a
tensorflow-datasets ArrayRecord dataset that the same pipeline reads.
"""
from oldphoto_jax.data.config import STAGES, InputConfig, host_batch_size, steps_per_epoch
from oldphoto_jax.data.photos import ArrayPhotos, FolderPhotos, PhotoSource, decode_rgb
from oldphoto_jax.data.pipelines import (
    Shard,
    batch_dataset,
    batch_iter_dataset,
    batch_iterator,
    raw_batch_dataset,
    record_dataset,
)
from oldphoto_jax.data.records import StagePhotos, StageRecords

__all__ = [
    "STAGES",
    "ArrayPhotos",
    "FolderPhotos",
    "InputConfig",
    "PhotoSource",
    "Shard",
    "StagePhotos",
    "StageRecords",
    "batch_dataset",
    "batch_iter_dataset",
    "batch_iterator",
    "decode_rgb",
    "host_batch_size",
    "raw_batch_dataset",
    "record_dataset",
    "steps_per_epoch",
]
