"""Training checkpoints: the whole training state and the data iterator, with orbax.

``<workdir>/checkpoints/<step>/`` holds two items:

* ``state``: the task's state pytree (params, optimizer states, mutable collections, step
  counters) saved with ``StandardSave``;
* ``data``: the grain iterator's state (``grain.checkpoint.CheckpointSave``), one small JSON file
  per host, so the batches after a resume are the ones an uninterrupted run would have seen.

Saves are asynchronous: ``save`` returns after the arrays are copied to host memory (the state
may then be donated to the next step) and the files are written in the background. Each step
is first written to ``<step>.orbax-checkpoint-tmp-<time>`` and renamed to ``<step>`` once every
item is complete (orbax's commit on local and POSIX file systems; object stores use a
``commit_success.txt`` marker instead). ``latest_step`` never returns a temporary directory, so a
run killed while saving resumes from the previous complete checkpoint; the stale temporary
directory is removed when the next run opens the manager.

A checkpoint damaged after it was committed (a truncated file, garbage in the iterator's JSON, a
missing item folder) fails to restore. ``restore_newest_intact`` then tries the previous ones:
once an older checkpoint restores, each newer one that failed is renamed to
``<step>.damaged-<n>`` (kept for inspection, out of orbax's view, never deleted) and the run
resumes from the older one. When every checkpoint fails, the cause is not damage but something
common to all (a changed network shape, say): nothing is moved and the newest one's error is
raised.

Several processes (``oldphoto_jax.distributed``): every process calls ``save``, ``restore``,
``restore_newest_intact``, ``wait`` and ``close`` at the same steps (orbax synchronises them;
each process saves its own data-iterator position), and they agree on which checkpoint
restored: a checkpoint that fails on any process counts as failed on all, and process 0 alone
moves it aside while the others wait. The directory may be a bucket (``gs://...``; paths go
through :mod:`oldphoto_jax.paths`).

Restoring needs the structure, shapes, dtypes and shardings of the state
(:func:`abstract_state`); restoring without it would turn optax's tuples into lists.

These are training model_files. The networks that ``infer.py`` runs are exported separately with
``oldphoto_jax.model_files.save_model`` (see ``oldphoto_jax.training.loop``).
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, TypeVar

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp

from oldphoto_jax import distributed, model_files, paths

STATE = "state"
DATA = "data"
# A damaged checkpoint <step> is renamed to <step><DAMAGED_SUFFIX><n> (n = 1, 2, ...).
DAMAGED_SUFFIX = ".damaged-"

Restored = TypeVar("Restored")


def abstract_state(state: Any) -> Any:
    """``jax.ShapeDtypeStruct`` leaves (with shardings) describing ``state``, to restore into."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)


class TrainCheckpoints:
    """An orbax ``CheckpointManager`` for (state, data iterator) pairs.

    The caller decides when to save (every step it passes to ``save`` is saved); ``keep``: how
    many recent checkpoints stay on disk.
    """

    def __init__(self, directory: str | os.PathLike, keep: int = 3, async_save: bool = True):
        if keep < 1:
            raise ValueError("the number of checkpoints kept must be >= 1")
        self.path = paths.resolve(directory)
        self.directory = str(self.path)
        self.options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            enable_async_checkpointing=async_save,
            cleanup_tmp_directories=True,
        )
        self.manager = self._open_manager()

    def _open_manager(self) -> ocp.CheckpointManager:
        return ocp.CheckpointManager(self.path, options=self.options,
                                     item_names=(STATE, DATA))

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step (None when there is none)."""
        self.manager.reload()
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        self.manager.reload()
        return list(self.manager.all_steps())

    def save(self, step: int, state: Any, iterator: grain.DatasetIterator) -> bool:
        """Start saving ``state`` and the iterator's position after ``step`` steps.

        Returns whether a save was started (False when ``step`` is already saved).
        """
        if step in self.manager.all_steps():
            return False
        args = ocp.args.Composite(**{
            STATE: ocp.args.StandardSave(state),
            DATA: grain.checkpoint.CheckpointSave(iterator),
        })
        return self.manager.save(step, args=args, force=True)

    def restore(self, step: int, abstract: Any,
                iterator: grain.DatasetIterator) -> tuple[Any, grain.DatasetIterator]:
        """(state, iterator) of checkpoint ``step``: the state placed as ``abstract`` says, the
        iterator (a fresh one of the same pipeline) moved to the saved position."""
        args = ocp.args.Composite(**{
            STATE: ocp.args.StandardRestore(abstract),
            DATA: grain.checkpoint.CheckpointRestore(iterator),
        })
        restored = self.manager.restore(step, args=args)
        return restored[STATE], restored[DATA]

    def restore_state(self, step: int, abstract: Any) -> Any:
        """Only the state of checkpoint ``step`` (e.g. to evaluate or export it)."""
        args = ocp.args.Composite(**{STATE: ocp.args.StandardRestore(abstract)})
        return self.manager.restore(step, args=args)[STATE]

    def restore_newest_intact(self, restore: Callable[[int], Restored],
                              log: Callable[[str], None]
                              ) -> tuple[int | None, Restored | None]:
        """``(step, restore(step))`` for the newest checkpoint that ``restore`` can read, moving
        newer ones that failed aside (see the module docstring); ``(None, None)`` without any
        checkpoint. Raises the newest checkpoint's error when none can be restored."""
        failures: list[tuple[int, Exception]] = []
        for step in sorted(self.all_steps(), reverse=True):
            try:
                restored, error = restore(step), None
            except Exception as caught:  # orbax, tensorstore, grain and JSON errors all differ
                restored, error = None, caught
            # Every process must go on from the same checkpoint.
            failed_somewhere = _any_process(error is not None)
            if failed_somewhere:
                if error is None:
                    error = RuntimeError("it failed to restore on another process")
                failures.append((step, error))
                self._reopen()  # a failed restore can leave the manager unusable
                continue
            for failed_step, error in failures:
                aside = self._move_aside(failed_step)
                log(f"the checkpoint of step {failed_step} in {self.directory} is damaged "
                    f"({model_files.error_line(error, max_chars=200)}): moved aside to {aside.name}; "
                    f"resuming from step {step}")
            distributed.barrier(f"checkpoints moved aside before resuming from {step}")
            self._reopen()
            return step, restored
        if failures:
            raise failures[0][1]
        return None, None

    def _move_aside(self, step: int):
        """Rename checkpoint ``step`` to the first free ``<step>.damaged-<n>`` (process 0 does;
        the others only name it); returns it."""
        source = self.path / str(step)
        number = 1
        while (self.path / f"{step}{DAMAGED_SUFFIX}{number}").exists():
            number += 1
        target = self.path / f"{step}{DAMAGED_SUFFIX}{number}"
        if jax.process_index() == 0:
            source.rename(target)
        return target

    def _reopen(self) -> None:
        with contextlib.suppress(Exception):
            self.manager.close()
        self.manager = self._open_manager()

    def wait(self) -> None:
        """Block until the background writes are committed."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def _any_process(flag: bool) -> bool:
    """Whether ``flag`` is true on any process (a collective with several processes)."""
    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils

    flags = multihost_utils.process_allgather(np.asarray(flag, np.int32))
    return bool(np.any(flags))


def load_state_arrays(directory: str | os.PathLike, step: int | None = None) -> dict[str, Any]:
    """The state of a training checkpoint as ``{path: numpy array}`` without knowing its
    structure (for tools and tests: comparing runs, inspecting a checkpoint).

    ``directory`` is ``<workdir>/checkpoints`` (where a complete checkpoint is a directory named
    by its step); ``step`` defaults to the newest. Any process may call it on its own.
    """
    import numpy as np

    directory = paths.resolve(directory)
    if step is None:
        steps = [int(p.name) for p in directory.iterdir() if p.name.isdigit()]
        if not steps:
            raise FileNotFoundError(f"no complete checkpoint in {directory}")
        step = max(steps)
    path = directory / str(step) / STATE
    options = distributed.single_process_options()
    checkpointer = ocp.Checkpointer(
        ocp.PyTreeCheckpointHandler(multiprocessing_options=options),
        multiprocessing_options=options)
    metadata = checkpointer.metadata(path).item_metadata.tree
    as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), metadata)
    tree = checkpointer.restore(path, args=ocp.args.PyTreeRestore(restore_args=as_numpy))
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves}
