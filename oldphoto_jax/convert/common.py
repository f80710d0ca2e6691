"""Shared pieces of the official-checkpoint conversion: key access with clear errors, layouts.

A network converter receives a :class:`StateDictReader` over the official ``{key: array}`` state
dict and pulls the keys it needs with :meth:`StateDictReader.take`. A key that is missing or has
the wrong shape raises :class:`ConversionError` naming the file and the key; keys that were never
taken are reported afterwards as warnings (the official loaders of the Global networks are lenient
about extra keys, reference section 3.2).
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np


class ConversionError(Exception):
    """A checkpoint cannot be converted: the message names the file and the key."""


class StateDictReader:
    """Read-only view of an official state dict that records which keys were consumed."""

    def __init__(self, arrays: Mapping[str, np.ndarray], source: str, prefix: str = ""):
        self._arrays = arrays
        self.source = source
        self.prefix = prefix
        self._taken: set[str] = set()

    def __contains__(self, key: str) -> bool:
        return self.prefix + key in self._arrays

    def keys(self) -> list[str]:
        """Keys under this reader's prefix, with the prefix removed."""
        n = len(self.prefix)
        return [k[n:] for k in self._arrays if k.startswith(self.prefix)]

    def has_prefix(self, prefix: str) -> bool:
        full = self.prefix + prefix
        return any(k.startswith(full) for k in self._arrays)

    def take(self, key: str, shape: Sequence[int] | None = None) -> np.ndarray:
        """The array stored under ``key`` as float32 (int arrays keep their dtype).

        Raises ConversionError if the key is missing or, when ``shape`` is given, has another shape.
        """
        full = self.prefix + key
        if full not in self._arrays:
            raise ConversionError(f"{self.source}: missing key '{full}'")
        value = np.asarray(self._arrays[full])
        if shape is not None and tuple(value.shape) != tuple(shape):
            raise ConversionError(
                f"{self.source}: key '{full}' has shape {list(value.shape)}, expected {list(shape)}")
        self._taken.add(full)
        if np.issubdtype(value.dtype, np.floating):
            value = value.astype(np.float32)
        return value

    def skip(self, key: str) -> None:
        """Mark a key as knowingly unused (e.g. ``num_batches_tracked``) if it is present."""
        full = self.prefix + key
        if full in self._arrays:
            self._taken.add(full)

    def skip_prefix(self, prefix: str) -> None:
        """Mark every key under ``prefix`` as knowingly unused."""
        full = self.prefix + prefix
        self._taken.update(k for k in self._arrays if k.startswith(full))

    def sub(self, prefix: str) -> "StateDictReader":
        """A reader over the keys under ``prefix`` that shares this reader's bookkeeping."""
        child = StateDictReader(self._arrays, self.source, self.prefix + prefix)
        child._taken = self._taken
        return child

    def unused_keys(self) -> list[str]:
        return [k for k in self._arrays if k not in self._taken]

    def unused_warnings(self) -> list[str]:
        return [f"{self.source}: ignoring unused key '{k}'" for k in self.unused_keys()]


def conv_kernel(weight_oihw: np.ndarray) -> np.ndarray:
    """``nn.Conv2d`` weight [out, in, kh, kw] -> HWIO [kh, kw, in, out]."""
    return np.ascontiguousarray(weight_oihw.transpose(2, 3, 1, 0))


def conv_transpose_kernel(weight_iokk: np.ndarray) -> np.ndarray:
    """``nn.ConvTranspose2d`` weight [in, out, kh, kw] -> HWIO kernel of the equivalent conv.

    See :class:`oldphoto_jax.layers.ConvTranspose2d`: the kernel is flipped spatially.
    """
    return np.ascontiguousarray(weight_iokk[:, :, ::-1, ::-1].transpose(2, 3, 0, 1))


def fold_spectral_norm(weight_orig: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """PyTorch's eval-mode spectral norm: ``W = W_orig / (u . (W_orig.reshape(out, -1) @ v))``.

    No power iteration happens in evaluation mode, so the stored ``u`` and ``v`` define sigma.
    Computed in float64 and returned as float32.
    """
    w = weight_orig.astype(np.float64)
    sigma = np.dot(u.astype(np.float64), w.reshape(w.shape[0], -1) @ v.astype(np.float64))
    return (w / sigma).astype(np.float32)


def assign(tree: dict, path: Iterable[str], value) -> None:
    """Set ``tree[p0][p1]...[pn] = value``, creating nested dicts as needed."""
    path = list(path)
    node = tree
    for part in path[:-1]:
        node = node.setdefault(part, {})
    if path[-1] in node:
        raise ValueError(f"duplicate parameter path {'/'.join(path)}")
    node[path[-1]] = value
