"""Small models with random weights, written in our checkpoint format, for tests and benchmarks.

These are fixtures: the networks are the real classes at tiny widths, so the whole pipeline runs
end to end in seconds, but their outputs are meaningless. Parameters are drawn with numpy from the
shapes ``jax.eval_shape(module.init, ...)`` reports (a jitted random ``init`` compiles slowly on
CPU). Kernels ~ N(0, 1/fan_in) (as the parity fixtures' weights: features keep a healthy scale,
so instance norm does not amplify float rounding as it would with the official N(0, 0.02) init
at these tiny widths), biases ~ N(0, 0.05), batch-norm running statistics mean 0 / variance 1.
"""
from __future__ import annotations

import os

import jax
import numpy as np

from oldphoto_jax import model_files
from oldphoto_jax.models.registry import build_network
from oldphoto_jax.roles import ROLES

# role -> (tiny constructor arguments, example inputs' shapes for init)
_TINY = {
    "vae_a": (dict(ngf=8, max_channels=8), [(1, 16, 16, 3)]),
    "vae_b_quality": (dict(ngf=8, max_channels=8), [(1, 16, 16, 3)]),
    "vae_b_scratch": (dict(ngf=8, max_channels=8), [(1, 16, 16, 3)]),
    "mapping_quality": (dict(nc=8, mc=16, n_blocks=1), [(1, 4, 4, 8)]),
    "mapping_scratch": (dict(nc=8, mc=16, n_blocks=1, nl_res_blocks=1),
                        [(1, 4, 4, 8), (1, 16, 16, 1)]),
    "mapping_hr": (dict(nc=8, mc=16, stage_blocks=1), [(1, 8, 8, 8), (1, 32, 32, 1)]),
    "scratch_detector": (dict(wf=2), [(1, 16, 16, 1)]),
    "face_256": (dict(ngf=2, load_size=256, nhidden=4), [(1, 256, 256, 3)]),
    "face_512": (dict(ngf=2, load_size=512, nhidden=4), [(1, 512, 512, 3)]),
}
# role -> (constructor arguments, init input shapes) at the official widths (the classes'
# defaults: latents of 64 channels), for benchmarks of time and memory.
_OFFICIAL = {
    "vae_a": ({}, [(1, 16, 16, 3)]),
    "vae_b_quality": ({}, [(1, 16, 16, 3)]),
    "vae_b_scratch": ({}, [(1, 16, 16, 3)]),
    "mapping_quality": ({}, [(1, 4, 4, 64)]),
    "mapping_scratch": ({}, [(1, 4, 4, 64), (1, 16, 16, 1)]),
    "mapping_hr": ({}, [(1, 8, 8, 64), (1, 32, 32, 1)]),
    "scratch_detector": ({}, [(1, 16, 16, 1)]),
    "face_256": (dict(load_size=256), [(1, 256, 256, 3)]),
    "face_512": (dict(load_size=512), [(1, 512, 512, 3)]),
}
# role -> (class from oldphoto_jax.roles, constructor arguments, init input shapes)
TINY_NETWORKS = {role: (ROLES[role].network, *_TINY[role]) for role in ROLES}
OFFICIAL_NETWORKS = {role: (ROLES[role].network, *_OFFICIAL[role]) for role in ROLES}
WIDTHS = {"tiny": TINY_NETWORKS, "official": OFFICIAL_NETWORKS}


def random_state(abstract_state, seed: int = 0):
    """A state with host-drawn random values and the structure of ``abstract_state``
    (``jax.eval_shape(task.init_state, rng, batch)`` of a training task), for tests.

    It skips compiling the initialisers (seconds to tens of seconds on a CPU). Params and
    frozen arrays: kernels (>= 2 dims) N(0, 1/fan_in), vectors N(0, 0.05); spectral vectors
    unit-norm random; batch statistics mean 0 / variance 1; step and optimiser states zero
    (a fresh Adam state is all zeros). Values are meaningless, not the official init.
    """
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        keys = [getattr(p, "key", getattr(p, "name", None)) for p in path]
        shape, dtype = tuple(leaf.shape), leaf.dtype
        if keys[0] in ("step", "opt_state") or not np.issubdtype(dtype, np.floating):
            return np.zeros(shape, dtype)
        if "batch_stats" in keys:
            return (np.ones if keys[-1] == "var" else np.zeros)(shape, dtype)
        if "spectral" in keys:
            v = rng.standard_normal(shape)
            return (v / np.linalg.norm(v)).astype(dtype)
        if len(shape) >= 2:
            return (rng.standard_normal(shape) / np.sqrt(np.prod(shape[:-1]))).astype(dtype)
        return (0.05 * rng.standard_normal(shape)).astype(dtype)

    return jax.tree_util.tree_map_with_path(draw, abstract_state)


def random_variables(module, input_shapes, seed: int = 0) -> dict:
    """Random variables with the structure ``module.init`` would create."""
    inputs = [jax.ShapeDtypeStruct(s, np.float32) for s in input_shapes]
    shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), *inputs)
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = jax.tree_util.keystr(path)
        if "batch_stats" in name:
            return np.ones(leaf.shape, np.float32) if name.endswith("['var']") else \
                np.zeros(leaf.shape, np.float32)
        if len(leaf.shape) >= 2:  # HWIO kernels (and 2-D weights): fan-in = all but the last axis
            scale = 1.0 / np.sqrt(np.prod(leaf.shape[:-1]))
        else:
            scale = 0.05
        return (rng.standard_normal(leaf.shape) * scale).astype(np.float32)

    return jax.tree_util.tree_map_with_path(draw, shapes)


def random_network(role: str, seed: int = 0, widths: str = "tiny"):
    """``(module, variables)`` of ``role`` at ``widths`` ("tiny" or "official"), random weights."""
    class_name, args, input_shapes = WIDTHS[widths][role]
    module = build_network(class_name, args)
    return module, random_variables(module, input_shapes, seed)


def write_random_model(directory: str | os.PathLike, roles=None, seed: int = 0,
                       overwrite: bool = False, widths: str = "tiny"):
    """Write a random-weight model with the given roles (default: all) to ``directory``, at
    ``widths`` "tiny" (tests) or "official" (benchmarks)."""
    if widths not in WIDTHS:
        raise ValueError(f"widths must be one of {sorted(WIDTHS)}, got {widths!r}")
    roles = list(WIDTHS[widths]) if roles is None else list(roles)
    networks = {role: random_network(role, seed + i, widths) for i, role in enumerate(roles)}
    return model_files.save_model(directory, networks, overwrite=overwrite,
                                  source=f"{widths} random weights for tests and benchmarks "
                                         "(meaningless outputs)")
