"""The training loop: any :class:`~oldphoto_jax.training.stage.Stage`, data parallel on a mesh.

``train(config, workdir)`` builds the stage (``stages.build_stage(config)``), its grain input
pipeline and a device mesh, restores the newest checkpoint in ``workdir`` if there is one, and
runs jitted train steps until ``config.num_steps``:

* the state is replicated and each batch is split over the mesh's ``data`` axis (every host
  loads only its share of the global batch; ``jax.make_array_from_process_local_data``);
* the step's PRNG key is ``fold_in(fold_in(key(seed), TRAIN), step)``: a pure function of
  (seed, step), so a resumed run draws what an uninterrupted one would; so does its data: the
  checkpoint holds grain's iterator position, and a run resumed with another
  ``input.num_workers`` (whose saved position grain cannot take) starts a new iterator at the
  next batch, since batch ``i`` is a pure function of ``i``;
* every ``checkpoint_every`` steps the state and the data iterator's position are saved
  (:mod:`oldphoto_jax.training.checkpointing`), after checking that every metric up to that step
  and every leaf of the state is finite; a NaN or infinity stops the run with a
  :class:`TrainingDiverged` naming the step and the metrics, and the checkpoints on disk stay as
  they were (the newest is the last good state). Metrics stay on the device between log lines
  and checkpoints (no per-step synchronisation), so a NaN is noticed at the next of those, and
  reported with the step where it first appeared;
* every ``log_every`` steps the mean metrics go to TensorBoard (``<workdir>/tb``) and to a
  progress line with steps/s, images/s and ETA; every ``sample_every`` steps an image grid of
  ``stage.samples`` on a fixed batch (the run's first); at the end (and every ``export_every``
  steps if > 0) the inference networks are written with ``oldphoto_jax.checkpoints.save_model``
  to ``<workdir>/export``, the directory ``infer.py --checkpoint_dir`` reads.

Config fields (:func:`add_trainer_fields` adds them with their defaults; the stage's own fields,
``model``, ``disc``, ``loss``, ``optim``, ``input.stage/batch_size/crop_size``, are described in
:mod:`oldphoto_jax.training.stages`):

* ``seed``: parameters, random keys and data records all derive from it;
* ``num_steps``: 0 = the official length, ``(optim.niter + optim.niter_decay)`` epochs;
  ``optim.steps_per_epoch`` 0 = ``floor(N / batch_size)`` (at least 1) with N the photos the
  stage's epochs run over (``data.faces`` for faces, else ``data.clean``);
* ``input.*``: ``oldphoto_jax.data.InputConfig`` fields (``preset``, ``degrade_full_image``,
  ``num_workers``, ``output_dtype``...); its seed is ``seed``;
* ``data.clean``, ``data.old`` (tuple), ``data.faces``: photo sources, each a folder or
  ``tfds:<prepared builder dir>:<split>`` (``oldphoto_jax.data.tfds_folder``);
  ``data.clean_exclude``: file names of the clean folder left out (photos held out for
  evaluation, as the bundled model does); ``data.align_faces`` runs the face aligner over
  ``data.faces`` first (``face_bank_size`` px);
* ``mesh_shape``, ``mesh_axes`` (``(-1,)``, ``("data",)``: every device on the data axis; -1 is
  filled with the devices left over); batches are split over the ``data`` axis, the state is
  replicated on every device;
* ``log_every``, ``checkpoint_every``, ``keep_checkpoints``, ``async_checkpoints``,
  ``sample_every`` (0 = never), ``num_samples`` (rows of the grid), ``export_every`` (0 = at
  the end only);
* ``prng_impl``: the PRNG key implementation of the training keys (``DEFAULT_PRNG``);
* ``time_limit_s``: if > 0, the run stops at the first step that ends this many seconds after
  the loop began (compilation included), and checkpoints, samples and exports that step as it
  would the last; a later call resumes from it (for time-boxed machines; 0 = no limit);
* ``debug_nan_step``: if > 0, that step's inputs are replaced by NaN (to test the stop);
* ``conv_weight_grad``: "xla" (default) or "im2col": how convolution kernel gradients are
  computed (:data:`oldphoto_jax.layers.WEIGHT_GRADIENTS`; same values up to float32 summation
  order, speed per ``benchmarks/bench_conv_grad.py`` and ``bench_training.py``).
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import json
import math
import os
import pathlib
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from oldphoto_jax import bundled, checkpoints, layers
from oldphoto_jax import data as data_lib
from oldphoto_jax.training import checkpointing, metrics as metrics_lib, stages
from oldphoto_jax.training.stage import Stage

DATA_AXIS = "data"
# Steps dispatched ahead of the device at most (before, only the metrics fetched every
# ``log_every`` steps bounded them): it keeps steps/s, the ETA and ``time_limit_s`` roughly honest
# where the host outruns the device (a CPU had dispatched 19 steps past a time limit, then
# computed them for minutes). 8, not fewer, to leave an accelerator slack for uneven batches
# from the data workers: the only GPU runs with a bound (of 2) ran at ~25 steps/s where earlier
# runs had reached 33-55, the cause not established.
STEPS_IN_FLIGHT = 8
# Streams folded into key(seed): parameters at initialisation, and the steps.
INIT_STREAM = 0
TRAIN_STREAM = 1
# The key implementation (``config.prng_impl``). "rbg" compiles much faster on XLA:CPU (a tiny
# VAE's initialisation: ~4 s instead of ~25 s) and is the faster choice on TPUs; its bits may
# depend on how a computation is sharded, so a run is reproducible only on the same mesh.
DEFAULT_PRNG = "threefry2x32"


class ConfigError(ValueError):
    """The configuration cannot run: a missing photo folder, unknown fields, a batch that does
    not split over the devices..."""


class TrainingDiverged(RuntimeError):
    """A metric or the state became NaN or infinite; ``step``, ``name`` and ``last_good_step``
    (the newest checkpoint, None if there is none) say where."""

    def __init__(self, error: metrics_lib.NonFiniteError, last_good_step: int | None,
                 checkpoint_dir: str):
        self.step, self.name, self.last_good_step = error.step, error.name, last_good_step
        self.values = error.values
        where = (f"the last good checkpoint is step {last_good_step} in {checkpoint_dir}"
                 if last_good_step is not None else "no checkpoint was written before it")
        listed = ", ".join(f"{name} = {value}" for name, value in error.values.items())
        super().__init__(f"training stopped at step {error.step}: non-finite {listed}; {where}")


@dataclasses.dataclass
class TrainResult:
    """The final state and step, where the run started, its last measured speed, and the mean
    metrics of every log line (``history``: [(step, {name: mean})])."""

    state: Any
    step: int
    start_step: int
    steps_per_second: float
    history: list = dataclasses.field(default_factory=list)
    time_limited: bool = False  # stopped by ``time_limit_s`` before ``num_steps``


# --- devices ------------------------------------------------------------------------------------

def make_mesh(shape=(-1,), axes=(DATA_AXIS,), devices=None) -> Mesh:
    """A mesh of ``devices`` (default all) with one -1 entry of ``shape`` filled in."""
    devices = list(jax.devices() if devices is None else devices)
    shape, axes = tuple(int(s) for s in shape), tuple(axes)
    if len(shape) != len(axes) or DATA_AXIS not in axes:
        raise ConfigError(f"mesh_shape {shape} and mesh_axes {axes} must have the same length "
                          f"and include {DATA_AXIS!r}")
    known = math.prod(s for s in shape if s != -1)
    if shape.count(-1) > 1 or known < 1 or len(devices) % known:
        raise ConfigError(f"mesh_shape {shape} does not fit {len(devices)} devices")
    shape = tuple(len(devices) // known if s == -1 else s for s in shape)
    if math.prod(shape) != len(devices):
        raise ConfigError(f"mesh_shape {shape} needs {math.prod(shape)} devices, "
                          f"there are {len(devices)}")
    return jax.make_mesh(shape, axes, axis_types=(AxisType.Auto,) * len(axes), devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def global_batch(host_batch: dict[str, np.ndarray],
                 sharding: NamedSharding) -> dict[str, jax.Array]:
    """This host's part of the batch -> global arrays split over the data axis."""
    return {key: jax.make_array_from_process_local_data(sharding, np.asarray(value))
            for key, value in host_batch.items()}


def fetch_gathered(tree):
    """Batch-split global arrays -> numpy arrays of the whole batch, on every host."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


def step_key(seed: int, step, impl: str = DEFAULT_PRNG) -> jax.Array:
    """The PRNG key of step ``step`` (pure in (seed, step))."""
    key = jax.random.key(seed, impl=impl)
    return jax.random.fold_in(jax.random.fold_in(key, TRAIN_STREAM), step)


def init_key(seed: int, impl: str = DEFAULT_PRNG) -> jax.Array:
    return jax.random.fold_in(jax.random.key(seed, impl=impl), INIT_STREAM)


@functools.lru_cache(maxsize=8)
def jit_train_step(stage: Stage, mesh: Mesh, seed: int, impl: str = DEFAULT_PRNG,
                   conv_weight_grad: str = "xla") -> Callable:
    """``(state, batch, step) -> (state, metrics)``: jitted, state replicated (and donated),
    batch split over the data axis, the step's key derived inside; convolution kernel gradients
    computed as ``conv_weight_grad`` says (:data:`oldphoto_jax.layers.WEIGHT_GRADIENTS`). Cached,
    so training the same stage object again in one process (a resume) reuses the compiled step."""
    if conv_weight_grad not in layers.WEIGHT_GRADIENTS:
        raise ConfigError(f"conv_weight_grad must be one of {layers.WEIGHT_GRADIENTS}, "
                          f"got {conv_weight_grad!r}")

    def step_fn(state, batch, step):
        with layers.using_conv_weight_gradient(conv_weight_grad):  # applies while tracing
            return stage.train_step(state, batch, step_key(seed, step, impl))

    return jax.jit(step_fn,
                   in_shardings=(replicated(mesh), batch_sharding(mesh), replicated(mesh)),
                   out_shardings=(replicated(mesh), replicated(mesh)),
                   donate_argnums=0)


@functools.lru_cache(maxsize=8)
def jit_samples(stage: Stage, mesh: Mesh) -> Callable:
    return jax.jit(stage.samples, in_shardings=(replicated(mesh), batch_sharding(mesh)))


# --- config and input -----------------------------------------------------------------------

def add_trainer_fields(config: ml_collections.ConfigDict, *, photos_root: str | os.PathLike,
                       tiny: bool, small: bool = False) -> ml_collections.ConfigDict:
    """Adds the trainer's fields (module docstring) to a stage config, with the photo folders
    under ``photos_root`` (``clean/``; ``old/`` and ``old_w_scratch/`` as the two old-photo
    sets; no faces). ``tiny``: settings for a quick CPU run (crops degraded after cropping, no
    worker processes, frequent logs and checkpoints, the "rbg" key implementation). ``small``
    (the bundled model's runs): the same input and key settings as ``tiny`` (worker processes
    are set on the command line where the machine has cores to spare), checkpoints every 1000
    steps (only the last one kept), samples every 500."""
    root = pathlib.Path(photos_root)
    cpu_run = tiny or small
    config.seed = 0
    config.num_steps = 300 if tiny else 0
    config.optim.steps_per_epoch = 0
    for field in dataclasses.fields(data_lib.InputConfig):
        if field.name in ("stage", "batch_size", "crop_size", "seed", "degradation"):
            continue
        if field.name not in config.input:
            default = field.default
            config.input[field.name] = (ml_collections.config_dict.placeholder(float)
                                        if default is None else default)
    _typed_placeholders(config)
    config.input.degrade_full_image = not cpu_run
    config.input.num_workers = 0 if cpu_run else 4
    config.input.read_threads = 0 if cpu_run else 2
    config.data = ml_collections.ConfigDict(dict(
        clean=str(root / "clean"), clean_exclude=(),
        old=(str(root / "old"), str(root / "old_w_scratch")),
        faces="", align_faces=False, face_bank_size=256))
    config.mesh_shape = (-1,)
    config.mesh_axes = (DATA_AXIS,)
    config.log_every = 25 if tiny else 50 if small else 100
    config.checkpoint_every = 100 if tiny else 1000 if small else 2000
    config.keep_checkpoints = 1 if small else 3  # small runs' checkpoints are committed
    config.async_checkpoints = True
    config.sample_every = 100 if tiny else 500 if small else 1000
    config.num_samples = 4
    config.export_every = 0
    config.prng_impl = "rbg" if cpu_run else DEFAULT_PRNG
    config.debug_nan_step = 0
    config.time_limit_s = 0.0
    config.conv_weight_grad = "xla"
    return config


def stage_config(stage: str, *, photos_root: str | os.PathLike, size: str = "",
                 variant: str | None = None, small_steps: int = 0) -> ml_collections.ConfigDict:
    """A config file's whole config: the stage's defaults at ``size`` ("" = official, "tiny" or
    "small"), the trainer's fields, and for "small" the bundled recipe run for ``small_steps``
    steps (:func:`oldphoto_jax.bundled.apply_small_recipe`)."""
    if size not in ("", "tiny", "small"):
        raise ValueError(f"size must be '', 'tiny' or 'small', got {size!r}")
    tiny, small = size == "tiny", size == "small"
    config = stages.default_config(stage, variant, tiny=tiny, small=small)
    config = add_trainer_fields(config, photos_root=photos_root, tiny=tiny, small=small)
    if small:
        bundled.apply_small_recipe(config, small_steps)
    return config


# Stage fields whose default is None ("the stage decides"), with the type a command-line override
# has: config_flags cannot override a plain None field.
NONE_FIELD_TYPES = {"optim.b1": float, "optim.b2": float, "disc.spectral_norm": bool,
                    "export_role": str}


def _typed_placeholders(config: ml_collections.ConfigDict) -> None:
    """Turns the None fields of ``NONE_FIELD_TYPES`` into typed placeholders (still None)."""
    for dotted, kind in NONE_FIELD_TYPES.items():
        *parents, name = dotted.split(".")
        node = config
        for parent in parents:
            node = node.get(parent)
            if node is None:
                break
        if node is not None and name in node and node[name] is None:
            node[name] = ml_collections.config_dict.placeholder(kind)


def photo_source(spec: str, cache_mb: int = 512, field: str = "data",
                 exclude: tuple[str, ...] = ()) -> data_lib.PhotoSource:
    """A folder path, or ``tfds:<builder dir>:<split>`` for a prepared tensorflow-datasets set.
    ``field`` names the config field in error messages; ``exclude``: file names of a folder to
    leave out."""
    if spec.startswith("tfds:"):
        from oldphoto_jax.data.tfds_folder import TfdsPhotos

        builder_dir, _, split = spec[len("tfds:"):].rpartition(":")
        if not os.path.isdir(builder_dir):
            raise ConfigError(f"config.{field}: no prepared dataset at {builder_dir}")
        if exclude:
            raise ConfigError(f"config.{field}: excluding photos works for folders, not tfds")
        return TfdsPhotos(builder_dir, split)
    if not os.path.isdir(spec):
        raise ConfigError(f"config.{field}: {spec} is not a folder (set --config.{field}=...)")
    try:
        return data_lib.FolderPhotos(spec, cache_mb=cache_mb, exclude=tuple(exclude))
    except ValueError as error:
        raise ConfigError(f"config.{field}: {error}") from None


def stage_photos(data: ml_collections.ConfigDict, input_stage: str,
                 cache_mb: int = 512) -> data_lib.StagePhotos:
    """The photo collections ``input_stage`` reads (only those are opened)."""
    if input_stage == "faces":
        if not data.get("faces"):
            raise ConfigError("the faces stage needs data.faces: a folder of aligned faces "
                              "(or of portraits with data.align_faces=True)")
        source = photo_source(data.faces, cache_mb, "data.faces")
        if data.get("align_faces", False):
            from oldphoto_jax.data.face_bank import align_faces

            source = align_faces([source], int(data.get("face_bank_size", 256)))
        return data_lib.StagePhotos(faces=source)
    if not data.get("clean"):
        raise ConfigError(f"the {input_stage} stage needs data.clean: a folder of clean photos")
    old = ()
    if input_stage == "domain_a":
        old = tuple(photo_source(spec, cache_mb, "data.old") for spec in data.get("old", ()))
    clean = photo_source(data.clean, cache_mb, "data.clean",
                         exclude=tuple(data.get("clean_exclude", ())))
    return data_lib.StagePhotos(clean=clean, old=old)


def input_config(config: ml_collections.ConfigDict, input_stage: str) -> data_lib.InputConfig:
    """``config.input`` (and ``config.seed``) as the pipeline's ``InputConfig``."""
    known = {f.name for f in dataclasses.fields(data_lib.InputConfig)} - {"seed"}
    unknown = sorted(set(config.input.keys()) - known)
    if unknown:
        raise ConfigError(f"unknown config.input fields {unknown}; known: {sorted(known)}")
    fields = config.input.to_dict()
    fields["stage"] = input_stage
    if isinstance(fields.get("degradation"), dict):
        fields["degradation"] = ml_collections.ConfigDict(fields["degradation"])
    return data_lib.InputConfig(seed=int(config.seed), **fields)


def resolve_lengths(config: ml_collections.ConfigDict,
                    photos: data_lib.StagePhotos) -> ml_collections.ConfigDict:
    """A copy of ``config`` with ``optim.steps_per_epoch`` and ``num_steps`` filled in from the
    data where they are 0 (module docstring)."""
    config = ml_collections.ConfigDict(config.to_dict())
    optim = config.get("optim")
    if optim is not None and int(optim.get("steps_per_epoch", 1)) <= 0:
        source = photos.faces if photos.faces is not None else photos.clean
        optim.steps_per_epoch = data_lib.steps_per_epoch(len(source), int(config.input.batch_size))
    if int(config.num_steps) <= 0:
        if optim is None:
            raise ConfigError("num_steps = 0 needs config.optim (niter, niter_decay)")
        epochs = int(optim.niter) + int(optim.niter_decay)
        config.num_steps = max(1, epochs) * int(optim.steps_per_epoch)
    return config


def poison(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The batch with every floating-point array set to NaN (``debug_nan_step``)."""
    floats = [k for k, v in batch.items() if np.issubdtype(np.asarray(v).dtype, np.floating)]
    if not floats:
        raise ConfigError("debug_nan_step needs floating-point inputs (input.output_dtype float32)")
    return {k: np.full_like(v, np.nan) if k in floats else v for k, v in batch.items()}


# --- the loop -----------------------------------------------------------------------------------

def replicate(tree, sharding: NamedSharding):
    """Host or single-device arrays (equal on every host) -> arrays replicated on the mesh."""
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    return jax.tree.map(lambda x: jax.make_array_from_callback(
        np.shape(x), sharding, lambda index, x=np.asarray(x): x[index]), tree)


def abstract_state(init: Callable, key: jax.Array, batch: dict, sharding: NamedSharding):
    """Shapes, dtypes and placement of ``init(key, batch)`` without computing it."""
    shapes = jax.eval_shape(init, key, batch)
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
                        shapes)


def export_networks(stage: Stage, state, directory: str | os.PathLike, step: int) -> None:
    """``stage.export(state)`` -> an ``infer.py`` model directory (process 0 writes it)."""
    if jax.process_index() != 0:
        return
    local = jax.tree.map(metrics_lib.local_copy, state)
    networks = {role: (module, jax.device_get(variables))
                for role, (module, variables) in stage.export(local).items()}
    checkpoints.save_model(directory, networks, overwrite=True,
                           source=f"oldphoto-jax train.py, stage {stage.name}, step {step}")


def _saved_num_workers(workdir: pathlib.Path, step: int) -> int | None:
    """``input.num_workers`` of the run that saved checkpoint ``step``: the newest
    ``config_from_step_<s>.json`` with s < ``step`` (None if there is none to read)."""
    starts = []
    for path in workdir.glob("config_from_step_*.json"):
        suffix = path.stem.removeprefix("config_from_step_")
        if suffix.isdigit() and int(suffix) < step:
            starts.append((int(suffix), path))
    if not starts:
        return None
    try:
        saved = json.loads(max(starts)[1].read_text())
        return int(saved["input"]["num_workers"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_config(config: ml_collections.ConfigDict, workdir: pathlib.Path, step: int) -> None:
    if jax.process_index() == 0:
        (workdir / f"config_from_step_{step}.json").write_text(
            config.to_json_best_effort(indent=1, sort_keys=True) + "\n")


def train(config: ml_collections.ConfigDict, workdir: str | os.PathLike,
          stage: Stage | None = None, log: Callable[[str], None] | None = None,
          mesh: Mesh | None = None) -> TrainResult:
    """Train (or resume training) ``config``'s stage in ``workdir``; see the module docstring.

    ``stage`` replaces ``build_stage(config)`` (a stage defined elsewhere; its ``input_stage``
    then decides the data); ``log`` receives the progress lines (default: print on process 0).
    """
    if log is None:
        log = (lambda line: print(line, flush=True)) if jax.process_index() == 0 else (
            lambda line: None)
    workdir = pathlib.Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)

    input_stage = stage.input_stage if stage is not None else config.input.stage
    photos = stage_photos(config.data, input_stage, int(config.input.get("cache_mb", 512)))
    config = resolve_lengths(config, photos)
    if stage is None:
        from oldphoto_jax.training.stages import build_stage

        stage = build_stage(config)
        if stage.input_stage != input_stage:
            raise ConfigError(f"config.input.stage is {input_stage!r} but the {stage.name} "
                              f"stage reads {stage.input_stage!r}")
    num_steps, seed = int(config.num_steps), int(config.seed)
    log_every = int(config.get("log_every", 50))
    checkpoint_every = int(config.get("checkpoint_every", 1000))
    sample_every = int(config.get("sample_every", 0))
    export_every = int(config.get("export_every", 0))
    nan_step = int(config.get("debug_nan_step", 0))
    time_limit = float(config.get("time_limit_s", 0))
    prng = str(config.get("prng_impl", DEFAULT_PRNG))
    batch_size = int(config.input.batch_size)

    if mesh is None:
        mesh = make_mesh(config.get("mesh_shape", (-1,)), config.get("mesh_axes", (DATA_AXIS,)))
    if batch_size % mesh.shape[DATA_AXIS]:
        raise ConfigError(f"batch_size {batch_size} does not split over the "
                          f"{mesh.shape[DATA_AXIS]} devices of the mesh's data axis")

    # A fresh iterator, and a fixed batch for initialisation and sample grids (batch 0, read by
    # random access so the iterator is untouched).
    shard = data_lib.Shard.from_jax()
    in_config = input_config(config, input_stage)
    iterator = data_lib.batch_iterator(in_config, photos, shard)
    fixed_batch = data_lib.batch_dataset(in_config, photos, shard)[0]

    ckpt = checkpointing.TrainCheckpoints(
        workdir / "checkpoints", keep=int(config.get("keep_checkpoints", 3)),
        async_save=bool(config.get("async_checkpoints", True)))
    def restore(step):
        abstract = abstract_state(stage.init_state, init_key(seed, prng), fixed_batch,
                                  replicated(mesh))
        saved_workers = _saved_num_workers(workdir, step)
        if saved_workers is None or saved_workers == in_config.num_workers:
            return ckpt.restore(step, abstract, iterator)
        # grain's saved position only fits the worker count it was saved with; the batches
        # are a pure function of their index, so start a new iterator at the next one.
        restored_state = ckpt.restore_state(step, abstract)
        if in_config.num_workers:
            iterator.close()
        log(f"the checkpoint's input position was saved with {saved_workers} data workers, "
            f"this run has {in_config.num_workers}: the input restarts at batch "
            f"{step} (the same batches)")
        return restored_state, data_lib.batch_iterator(in_config, photos, shard,
                                                       start_batch=step)

    start_step, restored = ckpt.restore_newest_intact(restore, log)
    start_step = start_step or 0
    if start_step:
        state, iterator = restored
        log(f"resumed from the checkpoint of step {start_step} in {ckpt.directory}")
    else:
        state = replicate(stage.init_state(init_key(seed, prng), fixed_batch), replicated(mesh))
    _write_config(config, workdir, start_step)

    train_step = jit_train_step(stage, mesh, seed, prng,
                                str(config.get("conv_weight_grad", "xla")))
    sample_fn = jit_samples(stage, mesh)
    in_sharding = batch_sharding(mesh)
    writer = metrics_lib.MetricWriter(str(workdir / "tb"), purge_step=start_step or None)
    buffer = metrics_lib.MetricBuffer()
    progress = metrics_lib.Progress(num_steps, batch_size)
    num_samples = int(config.get("num_samples", 4))

    def check_finite(step: int) -> None:
        buffer.check()
        bad = metrics_lib.first_non_finite_leaf(state)
        if bad is not None:
            raise metrics_lib.NonFiniteError(step, {f"state{bad}": float("nan")})

    def write_samples(step: int) -> None:
        images = fetch_gathered(sample_fn(state, global_batch(fixed_batch, in_sharding)))
        writer.image(step, "samples", metrics_lib.image_grid(images, max_rows=num_samples))

    step, history, time_limited = start_step, [], False
    in_flight = collections.deque()
    deadline = time.monotonic() + time_limit if time_limit > 0 else math.inf
    try:
        if start_step == 0 and sample_every:
            write_samples(0)
        for step in range(start_step + 1, num_steps + 1):
            host_batch = next(iterator)
            began = time.perf_counter()
            if step == nan_step:
                host_batch = poison(host_batch)
            state, step_metrics = train_step(state, global_batch(host_batch, in_sharding),
                                             jnp.asarray(step - 1, jnp.int32))
            buffer.add(step, step_metrics)
            in_flight.append(step_metrics)
            if len(in_flight) > STEPS_IN_FLIGHT:
                jax.block_until_ready(in_flight.popleft())
            if step == start_step + 1:
                jax.block_until_ready(step_metrics)
                log(f"step {step}: compiled and ran the first step in "
                    f"{time.perf_counter() - began:.1f} s")
                progress.start(step)
            if step % log_every == 0 or step == num_steps:
                means = buffer.pop_means()
                line = progress.line(
                    step, metrics_lib.shown_metrics(means, stage.reconstruction_metric))
                writer.scalars(step, means)
                history.append((step, means))
                if math.isfinite(progress.steps_per_second):
                    writer.scalars(step, {"perf/steps_per_second": progress.steps_per_second})
                log(line)
            if step % checkpoint_every == 0 or step == num_steps:
                check_finite(step)
                ckpt.save(step, state, iterator)
            if sample_every and (step % sample_every == 0 or step == num_steps):
                write_samples(step)
            if export_every and step % export_every == 0 and step != num_steps:
                check_finite(step)
                export_networks(stage, state, workdir / "export", step)
            if step != num_steps and time.monotonic() >= deadline:
                time_limited = True
                log(f"step {step}: time limit of {time_limit:g} s reached; stopping here "
                    f"(run again to go on to step {num_steps})")
                check_finite(step)
                if step % checkpoint_every:
                    ckpt.save(step, state, iterator)
                if sample_every and step % sample_every:
                    write_samples(step)
                break
        check_finite(step)
        ckpt.wait()
        export_networks(stage, state, workdir / "export", step)
        log(f"step {step}: exported the inference networks to {workdir / 'export'}")
    except metrics_lib.NonFiniteError as error:
        ckpt.wait()
        diverged = TrainingDiverged(error, ckpt.latest_step(), ckpt.directory)
        log(str(diverged))
        raise diverged from None
    finally:
        ckpt.close()
        writer.close()
        if in_config.num_workers:
            iterator.close()
    return TrainResult(state=state, step=step, start_step=start_step,
                       steps_per_second=progress.steps_per_second, history=history,
                       time_limited=time_limited)
