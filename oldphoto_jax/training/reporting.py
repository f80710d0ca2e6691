"""What the trainer reports: step metrics, the non-finite check, image grids, TensorBoard, progress.

* :class:`MetricBuffer` keeps the per-step metric dicts that the jitted steps return (still on the
  device, so the loop never waits for them), fetches them in one transfer when asked, stops on the
  first non-finite value with a :class:`NonFiniteError` naming the step and the metric, and
  averages them for logging.
* :func:`image_grid` lays out ``task.samples`` images (one row per example, one column per
  entry such as input / output / target) as one uint8 picture.
* :class:`MetricWriter` writes scalars and images as TensorBoard event files with tensorboardX
  (no TensorFlow); on hosts other than process 0 it writes nothing.
* :class:`Progress` makes the progress line (steps/s, images/s, ETA, and where the loop's time
  went: :class:`LoopTimes`).
"""
from __future__ import annotations

import math
import time
from typing import Mapping

import jax
import numpy as np


def local_copy(x):
    """A leaf that ``jax.device_get`` can fetch on this host: a replicated array that spans
    other hosts is read from this host's copy."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return x.addressable_data(0)
    return x


class NonFiniteError(RuntimeError):
    """Training metrics (or the state) became NaN or infinite at ``step``; ``values`` maps
    each non-finite one to its value, ``name`` is the first of them."""

    def __init__(self, step: int, values: Mapping[str, float]):
        self.step, self.values = step, dict(values)
        self.name = next(iter(self.values))
        listed = ", ".join(f"{name} = {value}" for name, value in self.values.items())
        super().__init__(f"non-finite {listed} at step {step}")


class MetricBuffer:
    """Per-step metrics since the last log line.

    ``add(step, metrics)`` stores the (device) dict of step ``step`` without waiting for it;
    ``check()`` fetches what is pending and raises :class:`NonFiniteError` for the first step
    with a NaN or infinite value (naming every such metric of that step);
    ``pop_means()`` returns the mean of every metric over the stored steps and empties the buffer.
    """

    def __init__(self):
        self._pending: list[tuple[int, Mapping]] = []
        self._fetched: list[tuple[int, dict[str, float]]] = []

    def __len__(self) -> int:
        return len(self._pending) + len(self._fetched)

    def add(self, step: int, metrics: Mapping) -> None:
        self._pending.append((step, metrics))

    def check(self) -> None:
        if not self._pending:
            return
        values = jax.device_get(jax.tree.map(local_copy, [m for _, m in self._pending]))
        steps = [step for step, _ in self._pending]
        self._pending = []
        for step, metrics in zip(steps, values):
            row = {name: float(np.asarray(value)) for name, value in metrics.items()}
            bad = {name: row[name] for name in sorted(row) if not math.isfinite(row[name])}
            if bad:
                raise NonFiniteError(step, bad)
            self._fetched.append((step, row))

    def pop_means(self) -> dict[str, float]:
        self.check()
        rows = [row for _, row in self._fetched]
        self._fetched = []
        names = sorted({name for row in rows for name in row})
        return {name: float(np.mean([row[name] for row in rows if name in row]))
                for name in names}


@jax.jit
def _finite_leaves(tree):
    return [jax.numpy.isfinite(x).all() for x in jax.tree.leaves(tree)
            if jax.numpy.issubdtype(x.dtype, jax.numpy.inexact)]


def first_non_finite_leaf(tree) -> str | None:
    """The path of the first floating-point leaf of ``tree`` holding a NaN or infinity, or
    None (one jitted reduction, one transfer)."""
    finite = jax.device_get([local_copy(x) for x in _finite_leaves(tree)])
    paths = [path for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]
             if np.issubdtype(x.dtype, np.inexact)]
    for path, ok in zip(paths, finite):
        if not bool(ok):
            return jax.tree_util.keystr(path)
    return None


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Images in [-1, 1] to uint8 (rounded, clipped); grey (1 channel) becomes RGB."""
    images = np.asarray(images, dtype=np.float32)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def image_grid(columns: Mapping[str, np.ndarray], max_rows: int = 8, gap: int = 2) -> np.ndarray:
    """One uint8 ``H x W x 3`` picture: row i shows example i of every entry of ``columns``
    (``B x h x w x C`` arrays in [-1, 1], C = 1 or 3), entries left to right in dict order,
    separated by ``gap`` white pixels. Entries of different sizes are centred in their cell."""
    if not columns:
        raise ValueError("image_grid needs at least one column")
    arrays = [to_uint8(images) for images in columns.values()]
    rows = min(max_rows, min(a.shape[0] for a in arrays))
    cell_h = max(a.shape[1] for a in arrays)
    widths = [a.shape[2] for a in arrays]
    height = rows * cell_h + (rows + 1) * gap
    width = sum(widths) + (len(arrays) + 1) * gap
    grid = np.full((height, width, 3), 255, np.uint8)
    left = gap
    for array, w in zip(arrays, widths):
        for r in range(rows):
            top = gap + r * (cell_h + gap) + (cell_h - array.shape[1]) // 2
            grid[top:top + array.shape[1], left:left + w] = array[r]
        left += w + gap
    return grid


class MetricWriter:
    """TensorBoard event files in ``logdir`` (tensorboardX), written by process 0 only.

    ``purge_step``: when resuming at step s, events of an earlier run at steps >= s are hidden
    by TensorBoard, so a resumed run's curves do not overlap the killed run's tail.

    A ``logdir`` in a bucket (``gs://...``) is written to a local staging folder and copied to
    the bucket at every ``flush`` and at ``close`` (``oldphoto_jax.paths``).
    """

    def __init__(self, logdir: str, purge_step: int | None = None):
        from oldphoto_jax import paths

        self.active = jax.process_index() == 0
        self._writer = None
        self._upload_to = None
        if self.active:
            from tensorboardX import SummaryWriter

            if paths.is_uri(logdir):
                self._upload_to = logdir
                logdir = paths.local_staging("tb")
            self._logdir = logdir
            self._writer = SummaryWriter(logdir, purge_step=purge_step or None, flush_secs=30)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        if self._writer is None:
            return
        for name, value in values.items():
            self._writer.add_scalar(name, float(value), global_step=step)

    def image(self, step: int, name: str, image: np.ndarray) -> None:
        """A uint8 ``H x W x 3`` image."""
        if self._writer is None:
            return
        self._writer.add_image(name, image, global_step=step, dataformats="HWC")

    def text(self, step: int, name: str, text: str) -> None:
        if self._writer is not None:
            self._writer.add_text(name, text, global_step=step)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._upload()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._upload()

    def _upload(self) -> None:
        if self._upload_to is not None:
            from oldphoto_jax import paths

            paths.upload_tree(self._logdir, self._upload_to)


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class LoopTimes:
    """Where the training loop's wall time goes between two log lines.

    The loop adds the seconds it spends in each of :data:`PARTS` (``add(part, seconds)``);
    ``pop()`` returns them and starts again. What they tell, on any device:

    * ``input``: waiting for the next batch of the input pipeline (its workers are behind);
    * ``dispatch``: the host handing the batch to the devices and launching the step;
    * ``device``: waiting for the devices to finish steps (the bound on steps in flight, and
      the wait for the last steps' metrics before a log line).

    The rest of the wall time (checkpoints, sample grids, exports, the log line itself) is
    ``other``. A run held by its accelerator spends nearly all its time in ``device``; where
    ``input`` or ``dispatch`` dominate, the host is what limits the steps/s.
    """

    PARTS = ("input", "dispatch", "device")

    def __init__(self):
        self._seconds = dict.fromkeys(self.PARTS, 0.0)

    def add(self, part: str, seconds: float) -> None:
        self._seconds[part] += seconds

    def pop(self) -> dict[str, float]:
        seconds, self._seconds = self._seconds, dict.fromkeys(self.PARTS, 0.0)
        return seconds


class Progress:
    """Throughput between log lines and the remaining time of the run.

    ``start(step)`` marks the first measured step (after compilation); ``line(step, means,
    loop_seconds)`` gives ``step 120/400 | 3.10 steps/s | 12.4 img/s | ETA 0:01:30 | input 2%
    dispatch 1% device 95% | loss/l1 0.1234 ...``: rates measured since the previous line
    (everything the loop did in between included) and, given :meth:`LoopTimes.pop`'s seconds,
    each part's share of that time (``fractions``; also kept for TensorBoard).
    :func:`shown_metrics` picks what a line shows (TensorBoard gets everything).
    """

    def __init__(self, total_steps: int, global_batch: int, clock=time.perf_counter):
        self.total_steps = total_steps
        self.global_batch = global_batch
        self.clock = clock
        self._step = None
        self._time = None
        self.steps_per_second = float("nan")
        self.fractions: dict[str, float] = {}

    def start(self, step: int) -> None:
        self._step, self._time = step, self.clock()

    def line(self, step: int, means: Mapping[str, float],
             loop_seconds: Mapping[str, float] | None = None) -> str:
        """The progress line with ``means`` (the metrics to show) appended."""
        now = self.clock()
        self.fractions = {}
        if self._step is not None and step > self._step and now > self._time:
            self.steps_per_second = (step - self._step) / (now - self._time)
            if loop_seconds:
                self.fractions = {part: seconds / (now - self._time)
                                  for part, seconds in loop_seconds.items()}
        self._step, self._time = step, now
        rate = self.steps_per_second
        parts = [f"step {step}/{self.total_steps}"]
        if math.isfinite(rate):
            eta = (self.total_steps - step) / rate if rate > 0 else float("inf")
            parts += [f"{rate:.2f} steps/s", f"{rate * self.global_batch:.1f} img/s",
                      f"ETA {format_duration(eta) if math.isfinite(eta) else '?'}"]
        if self.fractions:
            parts.append(" ".join(f"{part} {100 * share:.0f}%"
                                  for part, share in self.fractions.items()))
        parts += [f"{name} {value:.4g}" for name, value in means.items()]
        return " | ".join(parts)


def shown_metrics(means: Mapping[str, float], also: str = "") -> dict[str, float]:
    """The metrics of a progress line: the objectives (``loss/*``) and ``also`` (the task's
    reconstruction metric)."""
    return {name: value for name, value in means.items()
            if name.startswith("loss/") or name == also}
