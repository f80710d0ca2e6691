"""Training input pipeline: photo sources, the records of each kind and grain batch iterators.

``InputConfig`` (records, batch, crop, seed, degradation recipe, probabilities, workers),
``TrainingPhotos`` (clean photos, old-photo sets, aligned faces) and ``batch_iterator`` produce the
batches of every training task; ``tfds_folder`` prepares large photo folders once as a
tensorflow-datasets ArrayRecord dataset that the same pipeline reads.
"""
from oldphoto_jax.data.config import RECORDS, InputConfig, host_batch_size, steps_per_epoch
from oldphoto_jax.data.photos import (ArrayPhotos, FolderPhotos, JoinedPhotos, PhotoSource,
                                      decode_training_photo, read_training_photo)
from oldphoto_jax.data.pipelines import (
    Shard,
    batch_dataset,
    batch_iter_dataset,
    batch_iterator,
    raw_batch_dataset,
    record_dataset,
)
from oldphoto_jax.data.records import TrainingPhotos, TrainingRecords

__all__ = [
    "RECORDS",
    "ArrayPhotos",
    "FolderPhotos",
    "JoinedPhotos",
    "InputConfig",
    "PhotoSource",
    "Shard",
    "TrainingPhotos",
    "TrainingRecords",
    "batch_dataset",
    "batch_iter_dataset",
    "batch_iterator",
    "decode_training_photo",
    "host_batch_size",
    "raw_batch_dataset",
    "read_training_photo",
    "record_dataset",
    "steps_per_epoch",
]
