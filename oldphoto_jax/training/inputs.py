"""A training config's data: its photo sources and the input pipeline's settings.

``training_photos(config.data, records)`` opens the photo collections a training task reads
(folders, or ``tfds:<prepared builder dir>:<split>``), ``input_config`` turns ``config.input``
into the pipeline's :class:`~oldphoto_jax.data.InputConfig`, and ``resolve_lengths`` fills in
the run's length from the number of photos where the config leaves it to the data (0).
"""
from __future__ import annotations

import dataclasses
import os

import ml_collections
import numpy as np

from data_synth import imagefiles
from oldphoto_jax import data as data_lib
from oldphoto_jax import paths


class ConfigError(ValueError):
    """The configuration cannot run: a missing photo folder, unknown fields, a batch that does
    not split over the devices..."""


# Config fields under the names they had before (a training "stage" is now a task, the input
# pipeline's "stage" the kind of records it makes): config files and saved run configs written
# with the old names still run.
RENAMED_FIELDS = {("stage",): ("task",), ("input", "stage"): ("input", "records")}


def with_current_names(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """``config``, or a copy of it with the fields of :data:`RENAMED_FIELDS` under their current
    names where it uses an old one."""
    def parent(tree, path):
        for key in path[:-1]:
            tree = tree.get(key) if isinstance(tree, (dict, ml_collections.ConfigDict)) else None
        return tree if isinstance(tree, (dict, ml_collections.ConfigDict)) else None

    if not any((p := parent(config, old)) is not None and old[-1] in p
               for old in RENAMED_FIELDS):
        return config
    tree = config.to_dict()
    for old, new in RENAMED_FIELDS.items():
        holder = parent(tree, old)
        if holder is not None and old[-1] in holder:
            value = holder.pop(old[-1])
            holder.setdefault(new[-1], value)
    return ml_collections.ConfigDict(tree)


def photo_source(spec: str, cache_mb: int = 512, field: str = "data",
                 exclude: tuple[str, ...] = ()) -> data_lib.PhotoSource:
    """A folder path, or ``tfds:<builder dir>:<split>`` for a prepared tensorflow-datasets set;
    either may be in a bucket (``gs://...``, ``oldphoto_jax.data.bucket_photos``). ``field``
    names the config field in error messages; ``exclude``: file names of a folder to leave
    out."""
    if spec.startswith("tfds:"):
        from oldphoto_jax.data.tfds_folder import TfdsPhotos

        builder_dir, _, split = spec[len("tfds:"):].rpartition(":")
        if not paths.resolve(builder_dir).is_dir():
            raise ConfigError(f"config.{field}: no prepared dataset at {builder_dir}")
        if exclude:
            raise ConfigError(f"config.{field}: excluding photos works for folders, not tfds")
        return TfdsPhotos(builder_dir, split)
    if paths.is_uri(spec):
        from oldphoto_jax.data.bucket_photos import BucketPhotos

        try:
            return BucketPhotos(spec, cache_mb=cache_mb, exclude=tuple(exclude))
        except ValueError as error:
            raise ConfigError(f"config.{field}: {error}") from None
    if not os.path.isdir(spec):
        raise ConfigError(f"config.{field}: {spec} is not a folder (set --config.{field}=...)")
    try:
        return data_lib.FolderPhotos(spec, cache_mb=cache_mb, exclude=tuple(exclude))
    except ValueError as error:
        raise ConfigError(f"config.{field}: {error}") from None


def training_photos(data: ml_collections.ConfigDict, records: str,
                 cache_mb: int = 512) -> data_lib.TrainingPhotos:
    """The photo collections ``records`` reads (only those are opened)."""
    if records == "faces":
        if not data.faces:
            raise ConfigError("the faces records need data.faces: a folder of aligned faces "
                              "(or of portraits with data.align_faces=True)")
        source = photo_source(data.faces, cache_mb, "data.faces")
        if data.align_faces:
            from oldphoto_jax.data.face_bank import align_faces

            source = align_faces([source], data.face_bank_size)
        return data_lib.TrainingPhotos(faces=source)
    if not data.clean:
        raise ConfigError(f"the {records} records need data.clean: a folder of clean photos")
    old = ()
    if records == "domain_a":
        old = tuple(photo_source(spec, cache_mb, "data.old") for spec in data.old)
    return data_lib.TrainingPhotos(clean=clean_photos(data.clean, tuple(data.clean_exclude),
                                                     cache_mb), old=old)


def clean_photos(spec: str, exclude: tuple[str, ...] = (),
                 cache_mb: int = 512) -> data_lib.PhotoSource:
    """``data.clean``: one source (:func:`photo_source`) or several separated by commas, read
    as one. Each name of ``exclude`` is left out of the folder that has it; a name no folder
    has is an error."""
    specs = [part.strip() for part in spec.split(",") if part.strip()]
    if len(specs) == 1:
        return photo_source(specs[0], cache_mb, "data.clean", exclude=exclude)
    sources, found = [], set()
    for part in specs:
        here = ()
        if exclude and os.path.isdir(part):
            names = {os.path.basename(p) for p in imagefiles.list_images(part)}
            here = tuple(name for name in exclude if name in names)
        found.update(here)
        sources.append(photo_source(part, cache_mb, "data.clean", exclude=here))
    missing = sorted(set(exclude) - found)
    if missing:
        raise ConfigError(f"config.data.clean_exclude: {missing} are in none of the folders "
                          f"of data.clean ({spec})")
    return data_lib.JoinedPhotos(sources)


def input_config(config: ml_collections.ConfigDict, records: str) -> data_lib.InputConfig:
    """``config.input`` (and ``config.seed``) as the pipeline's ``InputConfig``."""
    known = {f.name for f in dataclasses.fields(data_lib.InputConfig)} - {"seed"}
    unknown = sorted(set(config.input.keys()) - known)
    if unknown:
        raise ConfigError(f"unknown config.input fields {unknown}; known: {sorted(known)}")
    fields = config.input.to_dict()
    fields["records"] = records
    if isinstance(fields.get("degradation"), dict):
        fields["degradation"] = ml_collections.ConfigDict(fields["degradation"])
    return data_lib.InputConfig(seed=int(config.seed), **fields)


def resolve_lengths(config: ml_collections.ConfigDict,
                    photos: data_lib.TrainingPhotos) -> ml_collections.ConfigDict:
    """A copy of ``config`` with ``optim.steps_per_epoch`` and ``num_steps`` filled in from the
    data where they are 0 (module docstring)."""
    config = ml_collections.ConfigDict(config.to_dict())
    optim = config.get("optim")  # a task defined outside training.tasks may have none
    if optim is not None and optim.steps_per_epoch <= 0:
        source = photos.faces if photos.faces is not None else photos.clean
        optim.steps_per_epoch = data_lib.steps_per_epoch(len(source), config.input.batch_size)
    if config.num_steps <= 0:
        if optim is None:
            raise ConfigError("num_steps = 0 needs config.optim (niter, niter_decay)")
        epochs = optim.niter + optim.niter_decay
        config.num_steps = max(1, epochs) * optim.steps_per_epoch
    return config


def poison(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The batch with every floating-point array set to NaN (``debug_nan_step``)."""
    floats = [k for k, v in batch.items() if np.issubdtype(np.asarray(v).dtype, np.floating)]
    if not floats:
        raise ConfigError("debug_nan_step needs floating-point inputs (input.output_dtype float32)")
    return {k: np.full_like(v, np.nan) if k in floats else v for k, v in batch.items()}
