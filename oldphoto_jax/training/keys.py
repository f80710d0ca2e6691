"""The training's random keys: pure functions of (seed, stream, step).

``key(seed)`` is split into streams with ``fold_in``: :data:`INIT_STREAM` draws the parameters,
:data:`TRAIN_STREAM` folded with the step number gives each step's key. So a resumed run draws
exactly what an uninterrupted one would.
"""
from __future__ import annotations

import jax

# Streams folded into key(seed): parameters at initialisation, and the steps.
INIT_STREAM = 0
TRAIN_STREAM = 1
# The key implementation (``config.prng_impl``). "rbg" compiles much faster on XLA:CPU (a tiny
# VAE's initialisation: ~4 s instead of ~25 s) and is the faster choice on TPUs; its bits may
# depend on how a computation is sharded, so a run is reproducible only on the same mesh.
DEFAULT_PRNG = "threefry2x32"


def step_key(seed: int, step, impl: str = DEFAULT_PRNG) -> jax.Array:
    """The PRNG key of step ``step`` (pure in (seed, step))."""
    key = jax.random.key(seed, impl=impl)
    return jax.random.fold_in(jax.random.fold_in(key, TRAIN_STREAM), step)


def init_key(seed: int, impl: str = DEFAULT_PRNG) -> jax.Array:
    """The PRNG key of the parameters' initialisation."""
    return jax.random.fold_in(jax.random.key(seed, impl=impl), INIT_STREAM)
