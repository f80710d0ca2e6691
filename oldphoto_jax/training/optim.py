"""Optimisers and learning-rate schedules as pure functions of a task's ``config.optim``.

Reference 10.1 (Adam, eps 1e-8, no weight decay; lr0 2e-4, betas (0.5, 0.999)), the linear
decay rule ``lr(e) = lr0 * min(1, (niter + niter_decay + 1 - e) / niter_decay)`` for the 1-based
epoch e, and the two-time-scale update rule (TTUR) of 10.4 / 10.5 #2 / 10.6: generator side
``lr/2``, discriminator side ``2*lr``, betas (0, 0.9) unless given.

``config.optim`` fields:

* ``lr`` (2e-4): the base learning rate ``lr0``;
* ``ttur`` (False): two-time-scale rule (quality mapping and faces: True);
* ``b1``, ``b2``: Adam betas (the release: (0, 0.9) with TTUR, (0.5, 0.999) without);
* ``eps`` (1e-8);
* ``niter``, ``niter_decay`` (epochs at lr0, epochs of linear decay; official VAEs 100 + 100,
  mapping 150 + 100, faces 50 + 0);
* ``steps_per_epoch``: steps of one epoch (``oldphoto_jax.data.steps_per_epoch(N, B)``, the
  official ``floor(N/B)``); the trainer sets it from the data. The epoch of step s (0-based) is
  ``s // steps_per_epoch + 1``, so the lr changes exactly at the official epoch boundaries.
* ``frozen`` (""): parameters held at their starting values, as comma-separated
  ``NETWORK/PATH`` prefixes of the trained networks' parameter trees (``mapping/stats``: a
  mapping's colour-statistics correction; ``mapping/head,mapping/trunk``); every prefix must
  name parameters. Not in the release (which trains everything); for fine-tuning part of a
  network from ``init_from``.
"""
from __future__ import annotations

from typing import Callable, Sequence

from flax import traverse_util
import jax.numpy as jnp
import optax

Schedule = Callable[[int], float]

# Which side of the two-time-scale rule each network is on.
GENERATOR, DISCRIMINATOR = "g", "d"


def linear_decay_schedule(lr: float, niter: int, niter_decay: int,
                          steps_per_epoch: int) -> Schedule:
    """The official per-epoch linear decay, as a function of the 0-based step count.

    Epochs 1 .. niter+1 run at ``lr``, epoch ``niter + niter_decay`` at ``lr / niter_decay``;
    later steps (past the planned run) stay at 0. ``niter_decay = 0`` is a constant ``lr``.
    """
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    if niter < 0 or niter_decay < 0:
        raise ValueError("niter and niter_decay must be >= 0")

    def schedule(count):
        if niter_decay == 0:
            return jnp.full((), lr, jnp.float32)
        epoch = jnp.asarray(count, jnp.int32) // steps_per_epoch + 1
        factor = (niter + niter_decay + 1 - epoch).astype(jnp.float32) / niter_decay
        return lr * jnp.clip(factor, 0.0, 1.0)

    return schedule


def base_learning_rate(optim_config, side: str) -> float:
    """lr0 of a network on ``side`` ("g" or "d") under the (optional) TTUR rule."""
    lr = optim_config.lr
    if not optim_config.ttur:
        return lr
    if side == GENERATOR:
        return lr / 2.0
    if side == DISCRIMINATOR:
        return lr * 2.0
    raise ValueError(f"side must be 'g' or 'd', got {side!r}")


def schedule_for(optim_config, side: str) -> Schedule:
    """The learning-rate schedule of a network on ``side``."""
    return linear_decay_schedule(base_learning_rate(optim_config, side), optim_config.niter,
                                 optim_config.niter_decay, optim_config.steps_per_epoch)


def adam(schedule: Schedule, b1: float, b2: float,
         eps: float = 1e-8) -> optax.GradientTransformation:
    """PyTorch's Adam (``eps`` added to the bias-corrected sqrt(v)), no weight decay."""
    return optax.adam(learning_rate=schedule, b1=b1, b2=b2, eps=eps)


def optimizer_for(optim_config, side: str) -> optax.GradientTransformation:
    """Adam with the schedule and betas of ``side`` for a task's ``config.optim``."""
    return adam(schedule_for(optim_config, side), optim_config.b1, optim_config.b2,
                optim_config.eps)


def frozen_prefixes(optim_config) -> dict[str, tuple[str, ...]]:
    """``optim.frozen`` as ``{network: (path prefix inside its parameters, ...)}``."""
    spec = optim_config.get("frozen", "") or ""  # configs older than the field have none
    prefixes: dict[str, tuple[str, ...]] = {}
    for item in (part.strip().strip("/") for part in spec.split(",")):
        if not item:
            continue
        network, sep, path = item.partition("/")
        if not sep or not path:
            raise ValueError(f"optim.frozen expects NETWORK/PATH prefixes (e.g. mapping/stats), "
                             f"got {item!r}")
        prefixes[network] = prefixes.get(network, ()) + (path,)
    return prefixes


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + "/")


def freeze(optimizer: optax.GradientTransformation, prefixes: Sequence[str],
           network: str = "") -> optax.GradientTransformation:
    """``optimizer`` with the parameters under ``prefixes`` (``head``, ``stats/correction``)
    held fixed: zero updates and no optimiser moments for them. A prefix that names no
    parameter is an error (at ``init``), so a typo cannot silently train everything."""
    prefixes = tuple(prefixes)
    if not prefixes:
        return optimizer

    def labels(params):
        # Parameter names as the warm start names them (tasks_common.warm_start).
        names = traverse_util.flatten_dict(dict(params), sep="/")
        unmatched = [p for p in prefixes if not any(_under(n, p) for n in names)]
        if unmatched:
            raise ValueError(f"optim.frozen: {network or 'the network'} has no parameters under "
                             f"{', '.join(unmatched)}")
        return traverse_util.unflatten_dict(
            {n: "frozen" if any(_under(n, p) for p in prefixes) else "trained" for n in names},
            sep="/")

    return optax.multi_transform({"trained": optimizer, "frozen": optax.set_to_zero()}, labels)
