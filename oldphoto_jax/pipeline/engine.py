"""Batched, sharded execution of one network function, compiled once per input shape.

A :class:`CompiledNetwork` holds a pure function ``fn(params, *inputs)``, its parameters placed on
every device of a mesh, and one compiled executable per input signature (shapes and dtypes). A
batch is padded to a multiple of the device count, split over the mesh's data axis, run, and cut
back. Compile time and run time are accounted separately.
"""
from __future__ import annotations

import time
from typing import Callable

import jax
import numpy as np
from jax.sharding import Mesh

from oldphoto_jax import cpu_tuning, sharding


class CompiledNetwork:
    def __init__(self, name: str, fn: Callable, params, mesh: Mesh):
        self.name = name
        self.mesh = mesh
        self._jitted = jax.jit(fn)
        self._params = sharding.replicate(mesh, params)
        cpu_tuning.release_free_memory()  # what reading the weights freed (see there)
        self._executables: dict[tuple, Callable] = {}
        self.compile_seconds = 0.0
        self.run_seconds = 0.0
        self.calls = 0

    @staticmethod
    def _signature(arrays) -> tuple:
        return tuple(None if a is None else (tuple(a.shape), str(a.dtype)) for a in arrays)

    def __call__(self, *inputs: np.ndarray | None) -> np.ndarray:
        """Run on a batch (leading axis); returns the outputs of the real batch elements."""
        placed, n = sharding.shard_batch(self.mesh, *inputs)
        key = self._signature(placed)
        executable = self._executables.get(key)
        if executable is None:
            start = time.perf_counter()
            executable = self._jitted.lower(self._params, *placed).compile()
            self.compile_seconds += time.perf_counter() - start
            self._executables[key] = executable
            cpu_tuning.release_free_memory()  # the compiler's freed working memory
        start = time.perf_counter()
        out = sharding.gather(executable(self._params, *placed))[:n]
        self.run_seconds += time.perf_counter() - start
        self.calls += 1
        return out

    @property
    def compiled_shapes(self) -> int:
        return len(self._executables)
