"""The training loop: any :class:`~oldphoto_jax.training.task.Task`, data parallel on a mesh.

``train(config, workdir)`` builds the task (``tasks.build_task(config)``), its grain input
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
  (:mod:`oldphoto_jax.training.train_checkpoints`), after checking that every metric up to that step
  and every leaf of the state is finite; a NaN or infinity stops the run with a
  :class:`TrainingDiverged` naming the step and the metrics, and the checkpoints on disk stay as
  they were (the newest is the last good state). Metrics stay on the device between log lines
  and checkpoints (no per-step synchronisation), so a NaN is noticed at the next of those, and
  reported with the step where it first appeared;
* every ``log_every`` steps the mean metrics go to TensorBoard (``<workdir>/tb``) and to a
  progress line with steps/s, images/s, ETA and the shares of the loop's time spent waiting for
  the input pipeline, dispatching steps and waiting for the devices
  (:class:`~oldphoto_jax.training.reporting.LoopTimes`; ``perf/*_fraction`` in TensorBoard); every ``sample_every`` steps an image grid of
  ``task.samples`` on a fixed batch (the run's first); at the end (and every ``export_every``
  steps if > 0) the inference networks are written with ``oldphoto_jax.model_files.save_model``
  to ``<workdir>/export``, the directory ``infer.py --checkpoint_dir`` reads.

Config fields (``configs/common.py`` sets them for every task; the task's own fields, ``model``,
``disc``, ``loss``, ``optim``, are described in :mod:`oldphoto_jax.training.tasks`). The
trainer reads them as they are, with no defaults of its own:

* ``seed``: parameters, random keys and data records all derive from it;
* ``num_steps``: 0 = the official length, ``(optim.niter + optim.niter_decay)`` epochs;
  ``optim.steps_per_epoch`` 0 = ``floor(N / batch_size)`` (at least 1) with N the photos the
  task's epochs run over (``data.faces`` for faces, else ``data.clean``);
* ``input.*``: ``oldphoto_jax.data.InputConfig`` fields (``preset``, ``degrade_full_image``,
  ``num_workers``, ``output_dtype``...); its seed is ``seed``;
* ``data.clean``, ``data.old`` (tuple), ``data.faces``: photo sources, each a folder or
  ``tfds:<prepared builder dir>:<split>`` (``oldphoto_jax.data.tfds_folder``);
  ``data.clean_exclude``: file names of the clean folder left out (photos held out for
  evaluation, as the bundled model does); ``data.align_faces`` runs the face aligner over
  ``data.faces`` first (``face_bank_size`` px);
* ``mesh_shape``, ``mesh_axes`` (``(-1,)``, ``("data",)``: every device on the data axis; -1 is
  filled with the devices left over); batches are split over the ``data`` axis;
* ``param_sharding``: ``"replicated"`` (the state on every device) or ``"fsdp"``: every array
  of the state (parameters, optimiser moments, frozen networks) with at least
  ``fsdp_min_size`` elements split over the data axis along its largest dimension the axis
  divides (``oldphoto_jax.sharding.state_shardings``), for networks that do not fit one
  device; XLA gathers each where it is used. Same step up to float summation order;
* ``log_every``, ``checkpoint_every``, ``keep_checkpoints``, ``async_checkpoints``,
  ``sample_every`` (0 = never), ``num_samples`` (rows of the grid), ``export_every`` (0 = at
  the end only);
* ``prng_impl``: the PRNG key implementation of the training keys (:data:`oldphoto_jax.training.keys.DEFAULT_PRNG`);
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
import shutil
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding

from oldphoto_jax import distributed, layers, model_files, paths, sharding
from oldphoto_jax import data as data_lib
from oldphoto_jax.training import reporting, train_checkpoints
from oldphoto_jax.training.inputs import (ConfigError, input_config, poison, resolve_lengths,
                                          training_photos, with_current_names)
from oldphoto_jax.training.keys import DEFAULT_PRNG, init_key, step_key
from oldphoto_jax.training.task import Task

# Steps dispatched ahead of the device at most (before, only the metrics fetched every
# ``log_every`` steps bounded them): it keeps steps/s, the ETA and ``time_limit_s`` roughly honest
# where the host outruns the device (a CPU had dispatched 19 steps past a time limit, then
# computed them for minutes). 8, not fewer, to leave an accelerator slack for uneven batches
# from the data workers: the only GPU runs with a bound (of 2) ran at ~25 steps/s where earlier
# runs had reached 33-55, the cause not established.
STEPS_IN_FLIGHT = 8


class TrainingDiverged(RuntimeError):
    """A metric or the state became NaN or infinite; ``step``, ``name`` and ``last_good_step``
    (the newest checkpoint, None if there is none) say where."""

    def __init__(self, error: reporting.NonFiniteError, last_good_step: int | None,
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


@dataclasses.dataclass(frozen=True, eq=False)
class StatePlacement:
    """A tree of shardings of the training state, hashable (to key the jit caches)."""

    tree: Any

    def _key(self):
        leaves, treedef = jax.tree.flatten(self.tree)
        return treedef, tuple(leaves)

    def __hash__(self):
        return hash(self._key())

    def __eq__(self, other):
        return isinstance(other, StatePlacement) and self._key() == other._key()


@functools.lru_cache(maxsize=8)
def jit_train_step(task: Task, mesh: Mesh, seed: int, impl: str = DEFAULT_PRNG,
                   conv_weight_grad: str = "xla",
                   placement: StatePlacement | None = None) -> Callable:
    """``(state, batch, step) -> (state, metrics)``: jitted, state replicated (or placed as
    ``placement`` says) and donated, batch split over the data axis, the step's key derived
    inside; convolution kernel gradients computed as ``conv_weight_grad`` says
    (:data:`oldphoto_jax.layers.WEIGHT_GRADIENTS`). Cached, so training the same task object
    again in one process (a resume) reuses the compiled step."""
    if conv_weight_grad not in layers.WEIGHT_GRADIENTS:
        raise ConfigError(f"conv_weight_grad must be one of {layers.WEIGHT_GRADIENTS}, "
                          f"got {conv_weight_grad!r}")

    def step_fn(state, batch, step):
        with layers.using_conv_weight_gradient(conv_weight_grad):  # applies while tracing
            return task.train_step(state, batch, step_key(seed, step, impl))

    replicated, split = sharding.replicated(mesh), sharding.batch_sharded(mesh)
    state = replicated if placement is None else placement.tree
    return jax.jit(step_fn, in_shardings=(state, split, replicated),
                   out_shardings=(state, replicated), donate_argnums=0)


@functools.lru_cache(maxsize=8)
def jit_samples(task: Task, mesh: Mesh, placement: StatePlacement | None = None) -> Callable:
    state = sharding.replicated(mesh) if placement is None else placement.tree
    return jax.jit(task.samples, in_shardings=(state, sharding.batch_sharded(mesh)))


def _time_is_up(deadline: float) -> bool:
    """Whether ``deadline`` has passed, as process 0's clock says (every process stops at the
    same step; a broadcast per step only when there is a time limit and several processes)."""
    if math.isinf(deadline):
        return False
    up = time.monotonic() >= deadline
    if jax.process_count() > 1:
        up = bool(distributed.agree(np.asarray(up, np.int32)))
    return up


# --- the loop -----------------------------------------------------------------------------------

def abstract_state(init: Callable, key: jax.Array, batch: dict, placement):
    """Shapes, dtypes and placement of ``init(key, batch)`` without computing it
    (``placement``: one sharding for every leaf, or a tree of them)."""
    shapes = jax.eval_shape(init, key, batch)
    if isinstance(placement, NamedSharding):
        placement = jax.tree.map(lambda _: placement, shapes)
    return jax.tree.map(lambda s, where: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=where),
                        shapes, placement)


def export_networks(task: Task, state, directory: str | os.PathLike, step: int) -> None:
    """``task.export(state)`` -> an ``infer.py`` model directory.

    Every process must call it: the state is gathered to the host on each (a collective when
    parameters are sharded over processes), process 0 alone writes the directory (a bucket
    directory is written locally, then copied with ``manifest.json`` last) and the others wait
    until it is complete. The optimiser state and frozen networks, which no export reads, are
    not gathered."""
    host_state = {key: value if key in ("opt_state", "frozen") else sharding.gather_state(value)
                  for key, value in state.items()}
    if jax.process_index() == 0:
        networks = {role: (module, jax.device_get(variables))
                    for role, (module, variables) in task.export(host_state).items()}
        source = f"oldphoto-jax train.py, task {task.name}, step {step}"
        directory = paths.resolve(directory)
        if paths.is_local(directory):
            model_files.save_model(directory, networks, overwrite=True, source=source)
        else:
            staging = paths.local_staging("export")
            try:
                model_files.save_model(os.path.join(staging, "export"), networks, source=source)
                paths.upload_tree(os.path.join(staging, "export"), directory,
                                  last=("manifest.json",))
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    distributed.barrier(f"export of step {step}")


def _saved_num_workers(workdir, step: int) -> int | None:
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


def _write_config(config: ml_collections.ConfigDict, workdir, step: int) -> None:
    if jax.process_index() == 0:
        (workdir / f"config_from_step_{step}.json").write_text(
            config.to_json_best_effort(indent=1, sort_keys=True) + "\n")


def train(config: ml_collections.ConfigDict, workdir: str | os.PathLike,
          task: Task | None = None, log: Callable[[str], None] | None = None,
          mesh: Mesh | None = None) -> TrainResult:
    """Train (or resume training) ``config``'s task in ``workdir``; see the module docstring.

    ``task`` replaces ``build_task(config)`` (a task defined elsewhere; its ``records``
    then decides the data); ``log`` receives the progress lines (default: print on process 0).
    """
    config = with_current_names(config)
    if log is None:
        log = (lambda line: print(line, flush=True)) if jax.process_index() == 0 else (
            lambda line: None)
    workdir = paths.resolve(workdir)  # a gs:// workdir stays a bucket path
    workdir.mkdir(parents=True, exist_ok=True)

    records = task.records if task is not None else config.input.records
    photos = training_photos(config.data, records, config.input.cache_mb)
    config = resolve_lengths(config, photos)
    if task is None:
        from oldphoto_jax.training.tasks import build_task

        task = build_task(config)
        if task.records != records:
            raise ConfigError(f"config.input.records is {records!r} but the {task.name} "
                              f"task reads {task.records!r}")
    num_steps, seed = config.num_steps, config.seed
    log_every, checkpoint_every = config.log_every, config.checkpoint_every
    sample_every, export_every = config.sample_every, config.export_every
    nan_step, time_limit, prng = config.debug_nan_step, config.time_limit_s, config.prng_impl
    batch_size = config.input.batch_size

    if mesh is None:
        try:
            mesh = sharding.make_mesh(config.mesh_shape, config.mesh_axes)
        except sharding.MeshError as error:
            raise ConfigError(str(error)) from None
    if batch_size % mesh.shape[sharding.DATA_AXIS]:
        raise ConfigError(f"batch_size {batch_size} does not split over the "
                          f"{mesh.shape[sharding.DATA_AXIS]} devices of the mesh's data axis")

    # A fresh iterator, and a fixed batch for initialisation and sample grids (batch 0, read by
    # random access so the iterator is untouched).
    shard = data_lib.Shard.from_jax()
    in_config = input_config(config, records)
    iterator = data_lib.batch_iterator(in_config, photos, shard)
    fixed_batch = data_lib.batch_dataset(in_config, photos, shard)[0]

    try:
        placement = StatePlacement(sharding.state_shardings(
            mesh, jax.eval_shape(task.init_state, init_key(seed, prng), fixed_batch),
            config.param_sharding, config.fsdp_min_size))
    except sharding.MeshError as error:
        raise ConfigError(str(error)) from None

    ckpt = train_checkpoints.TrainCheckpoints(workdir / "checkpoints", keep=config.keep_checkpoints,
                                          async_save=config.async_checkpoints)

    def restore(step):
        abstract = abstract_state(task.init_state, init_key(seed, prng), fixed_batch,
                                  placement.tree)
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
        state = sharding.place(task.init_state(init_key(seed, prng), fixed_batch),
                               placement.tree)
    _write_config(config, workdir, start_step)

    train_step = jit_train_step(task, mesh, seed, prng, config.conv_weight_grad, placement)
    sample_fn = jit_samples(task, mesh, placement)
    writer = reporting.MetricWriter(str(workdir / "tb"), purge_step=start_step or None)
    buffer = reporting.MetricBuffer()
    progress = reporting.Progress(num_steps, batch_size)
    loop_times = reporting.LoopTimes()
    num_samples = config.num_samples

    def check_finite(step: int) -> None:
        buffer.check()
        bad = reporting.first_non_finite_leaf(state)
        if bad is not None:
            raise reporting.NonFiniteError(step, {f"state{bad}": float("nan")})

    def write_samples(step: int) -> None:
        images = sharding.gather(sample_fn(state, sharding.global_batch(mesh, fixed_batch)))
        writer.image(step, "samples", reporting.image_grid(images, max_rows=num_samples))

    step, history, time_limited = start_step, [], False
    in_flight = collections.deque()
    deadline = time.monotonic() + time_limit if time_limit > 0 else math.inf
    try:
        if start_step == 0 and sample_every:
            write_samples(0)
        for step in range(start_step + 1, num_steps + 1):
            waited = time.perf_counter()
            host_batch = next(iterator)
            began = time.perf_counter()
            loop_times.add("input", began - waited)
            if step == nan_step:
                host_batch = poison(host_batch)
            state, step_metrics = train_step(state, sharding.global_batch(mesh, host_batch),
                                             jnp.asarray(step - 1, jnp.int32))
            dispatched = time.perf_counter()
            loop_times.add("dispatch", dispatched - began)
            buffer.add(step, step_metrics)
            in_flight.append(step_metrics)
            if len(in_flight) > STEPS_IN_FLIGHT:
                jax.block_until_ready(in_flight.popleft())
                loop_times.add("device", time.perf_counter() - dispatched)
            if step == start_step + 1:
                jax.block_until_ready(step_metrics)
                log(f"step {step}: compiled and ran the first step in "
                    f"{time.perf_counter() - began:.1f} s")
                in_flight.clear()
                loop_times.pop()
                progress.start(step)
            if step % log_every == 0 or step == num_steps:
                waited = time.perf_counter()
                jax.block_until_ready(list(in_flight))  # the metrics below need them
                in_flight.clear()
                loop_times.add("device", time.perf_counter() - waited)
                means = buffer.pop_means()
                line = progress.line(
                    step, reporting.shown_metrics(means, task.reconstruction_metric),
                    loop_times.pop())
                writer.scalars(step, means)
                history.append((step, means))
                if math.isfinite(progress.steps_per_second):
                    writer.scalars(step, {"perf/steps_per_second": progress.steps_per_second})
                    writer.scalars(step, {f"perf/{part}_fraction": share
                                          for part, share in progress.fractions.items()})
                log(line)
            if step % checkpoint_every == 0 or step == num_steps:
                check_finite(step)
                ckpt.save(step, state, iterator)
                writer.flush()
            if sample_every and (step % sample_every == 0 or step == num_steps):
                write_samples(step)
            if export_every and step % export_every == 0 and step != num_steps:
                check_finite(step)
                export_networks(task, state, workdir / "export", step)
            if step != num_steps and _time_is_up(deadline):
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
        export_networks(task, state, workdir / "export", step)
        log(f"step {step}: exported the inference networks to {workdir / 'export'}")
    except reporting.NonFiniteError as error:
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
