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

Restoring needs the structure, shapes, dtypes and shardings of the state
(:func:`abstract_state`); restoring without it would turn optax's tuples into lists.

These are training checkpoints. The networks that ``infer.py`` runs are exported separately with
``oldphoto_jax.model_files.save_model`` (see ``oldphoto_jax.training.loop``).
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, TypeVar

import grain
import jax
import orbax.checkpoint as ocp

from oldphoto_jax import model_files

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
        self.directory = os.path.abspath(os.fspath(directory))
        self.options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            enable_async_checkpointing=async_save,
            cleanup_tmp_directories=True,
        )
        self.manager = self._open_manager()

    def _open_manager(self) -> ocp.CheckpointManager:
        return ocp.CheckpointManager(self.directory, options=self.options,
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
                restored = restore(step)
            except Exception as error:  # orbax, tensorstore, grain and JSON errors all differ
                failures.append((step, error))
                self._reopen()  # a failed restore can leave the manager unusable
                continue
            for failed_step, error in failures:
                aside = self._move_aside(failed_step)
                log(f"the checkpoint of step {failed_step} in {self.directory} is damaged "
                    f"({model_files.error_line(error, max_chars=200)}): moved aside to {os.path.basename(aside)}; "
                    f"resuming from step {step}")
            self._reopen()
            return step, restored
        if failures:
            raise failures[0][1]
        return None, None

    def _move_aside(self, step: int) -> str:
        """Rename checkpoint ``step`` to the first free ``<step>.damaged-<n>``; returns it."""
        source = os.path.join(self.directory, str(step))
        number = 1
        while os.path.exists(f"{source}{DAMAGED_SUFFIX}{number}"):
            number += 1
        target = f"{source}{DAMAGED_SUFFIX}{number}"
        os.rename(source, target)
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


def load_state_arrays(directory: str | os.PathLike, step: int | None = None) -> dict[str, Any]:
    """The state of a training checkpoint as ``{path: numpy array}`` without knowing its
    structure (for tools and tests: comparing runs, inspecting a checkpoint).

    ``directory`` is ``<workdir>/checkpoints`` on a local file system (where a complete
    checkpoint is a directory named by its step); ``step`` defaults to the newest.
    """
    import numpy as np

    directory = os.path.abspath(os.fspath(directory))
    if step is None:
        steps = [int(name) for name in os.listdir(directory) if name.isdigit()]
        if not steps:
            raise FileNotFoundError(f"no complete checkpoint in {directory}")
        step = max(steps)
    path = os.path.join(directory, str(step), STATE)
    checkpointer = ocp.PyTreeCheckpointer()
    metadata = checkpointer.metadata(path).item_metadata.tree
    as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), metadata)
    tree = checkpointer.restore(path, args=ocp.args.PyTreeRestore(restore_args=as_numpy))
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves}
