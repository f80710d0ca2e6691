"""The contract between a training task (what is trained, how one step goes) and the trainer.

A :class:`Task` is built from a task config (``configs/<task>.py``) by
``oldphoto_jax.training.tasks.build_task(config)``. The trainer (``train.py``,
``oldphoto_jax.training.loop``) only uses this interface: it never knows which networks or
losses a task has.

* ``state`` is a pytree of arrays only (params, optimizer states, mutable collections such as
  batch statistics or spectral-norm vectors, the step counter); checkpoints save and restore it
  as a whole, and its sharding comes from ``state_sharding``.
* ``train_step(state, batch, rng) -> (state, metrics)`` is pure and jittable: ``batch`` is the dict
  of arrays the task's input pipeline yields (``oldphoto_jax.data``), already sharded over the
  mesh's data axis; ``rng`` is a PRNG key for this step (the trainer folds the step into a base
  key); ``metrics`` is a flat dict of scalar arrays (names like ``"loss/l1"``, ``"gan/g"``).
* ``samples(state, batch) -> dict[str, array]`` returns B x H x W x 3 images in [-1, 1] to
  show in image grids (e.g. input, output, target).
* ``export(state) -> {role: (module, variables)}`` gives the inference networks in the
  checkpoint format of ``oldphoto_jax.model_files.save_model`` (spectral norm folded, training-only
  networks such as discriminators left out), so ``infer.py`` loads what ``train.py`` writes.
* ``reconstruction_metric`` names the metric that must fall during training (not a GAN term).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax

PyTree = Any


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    init_state: Callable[[jax.Array, dict], PyTree]          # (rng, example batch) -> state
    train_step: Callable[[PyTree, dict, jax.Array], tuple[PyTree, dict]]
    samples: Callable[[PyTree, dict], dict]
    export: Callable[[PyTree], dict]
    reconstruction_metric: str
    records: str                                          # oldphoto_jax.data.RECORDS: what it reads
