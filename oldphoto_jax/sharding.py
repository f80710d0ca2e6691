"""Device meshes and data placement for training and inference, in one vocabulary.

Both sides are data parallel over a ``jax.sharding.Mesh`` axis named "data": parameters (or the
training state) replicated on every device, the batch split along its leading axis. Every
operation takes the mesh first:

* :func:`make_mesh` — the one mesh helper: a shape with one -1 filled in, over given devices
  (default every device of every process: training); :func:`local_mesh` is the mesh over this
  process's devices (inference, where each process restores its own photos);
* :func:`replicated`, :func:`batch_sharded` — the two shardings;
* :func:`state_shardings` — the placement of a training state: replicated, or ``"fsdp"``: each
  large array split over the data axis along one of its dimensions (parameters and optimiser
  moments that do not fit a device), the rest replicated;
* :func:`replicate` / :func:`place` — host arrays equal on every process -> arrays replicated
  (or placed as a tree of shardings says) on the mesh;
* :func:`global_batch` — each process's part of a batch -> global arrays split over the data
  axis (training: every host loads only its share);
* :func:`shard_batch` — a whole batch on this process -> padded to a multiple of the mesh's
  devices and split over them (inference on a local mesh);
* :func:`gather` — arrays of the mesh -> numpy arrays of the whole batch, on every process.

Multi-process correct on both sides: placement goes through ``make_array_from_callback`` /
``make_array_from_process_local_data`` when the mesh spans several processes, and gathering
through ``process_allgather``. A padded inference batch repeats its last element (every network
here treats batch elements independently: instance norm, batch norm in evaluation mode,
per-image attention); the padding is dropped from the results.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


class MeshError(ValueError):
    """A mesh shape that does not fit the devices, or lacks the data axis."""


def make_mesh(shape: Sequence[int] = (-1,), axes: Sequence[str] = (DATA_AXIS,),
              devices=None) -> Mesh:
    """A mesh of ``devices`` (default: every device of every process) with at most one -1
    entry of ``shape`` filled in with the devices left over; ``axes`` must include "data"."""
    devices = list(jax.devices() if devices is None else devices)
    shape, axes = tuple(shape), tuple(axes)
    if len(shape) != len(axes) or DATA_AXIS not in axes:
        raise MeshError(f"mesh_shape {shape} and mesh_axes {axes} must have the same length "
                        f"and include {DATA_AXIS!r}")
    known = math.prod(s for s in shape if s != -1)
    if shape.count(-1) > 1 or known < 1 or len(devices) % known:
        raise MeshError(f"mesh_shape {shape} does not fit {len(devices)} devices")
    shape = tuple(len(devices) // known if s == -1 else s for s in shape)
    if math.prod(shape) != len(devices):
        raise MeshError(f"mesh_shape {shape} needs {math.prod(shape)} devices, "
                        f"there are {len(devices)}")
    return jax.make_mesh(shape, axes, axis_types=(AxisType.Auto,) * len(axes), devices=devices)


def local_mesh() -> Mesh:
    """The data mesh over this process's devices."""
    return make_mesh(devices=jax.local_devices())


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over the data axis, the rest replicated."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


PARAM_SHARDINGS = ("replicated", "fsdp")


def fsdp_spec(shape: Sequence[int], parts: int, min_size: int) -> PartitionSpec:
    """The FSDP rule for one array: split over the data axis (``parts`` devices) along its
    largest dimension that ``parts`` divides, when it has at least ``min_size`` elements;
    otherwise (small, or no dimension divides) replicated."""
    if parts <= 1 or math.prod(shape) < max(min_size, 1):
        return PartitionSpec()
    candidates = [(size, -axis) for axis, size in enumerate(shape) if size % parts == 0]
    if not candidates:
        return PartitionSpec()
    _, negative_axis = max(candidates)
    axes = [None] * len(shape)
    axes[-negative_axis] = DATA_AXIS
    return PartitionSpec(*axes)


def state_shardings(mesh: Mesh, abstract_state, mode: str = "replicated",
                    min_size: int = 2**16):
    """A tree of ``NamedSharding`` for a state of the structure and shapes of
    ``abstract_state`` (``jax.eval_shape`` output): every leaf replicated, or with ``"fsdp"``
    every leaf as :func:`fsdp_spec` says (the same rule for parameters, optimiser moments and
    frozen networks; a step counter or a bias stays replicated)."""
    if mode not in PARAM_SHARDINGS:
        raise MeshError(f"param_sharding must be one of {PARAM_SHARDINGS}, got {mode!r}")
    if mode == "replicated":
        return jax.tree.map(lambda _: replicated(mesh), abstract_state)
    parts = mesh.shape[DATA_AXIS]
    return jax.tree.map(
        lambda leaf: NamedSharding(mesh, fsdp_spec(tuple(leaf.shape), parts, min_size)),
        abstract_state)


def place(tree, shardings):
    """Host (or single-device) arrays, equal on every process -> arrays placed as the tree of
    ``shardings`` says (each process supplies its devices' parts)."""
    def one(x, where):
        if not _spans_processes(where.mesh):
            return jax.device_put(x, where)
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, where, lambda index: x[index])

    return jax.tree.map(one, tree, shardings)


def _spans_processes(mesh: Mesh) -> bool:
    return any(d.process_index != jax.process_index() for d in mesh.devices.flat)


def replicate(mesh: Mesh, tree):
    """Host (or single-device) arrays, equal on every process -> arrays replicated on the
    mesh."""
    sharding = replicated(mesh)
    if not _spans_processes(mesh):
        return jax.device_put(tree, sharding)
    return jax.tree.map(lambda x: jax.make_array_from_callback(
        np.shape(x), sharding, lambda index, x=np.asarray(x): x[index]), tree)


def global_batch(mesh: Mesh, host_batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
    """This process's part of a batch -> global arrays split over the data axis."""
    sharding = batch_sharded(mesh)
    return {key: jax.make_array_from_process_local_data(sharding, np.asarray(value))
            for key, value in host_batch.items()}


def pad_batch(batch: np.ndarray, multiple: int) -> tuple[np.ndarray, int]:
    """Pad the leading axis to a multiple by repeating the last element; returns (padded, n)."""
    n = batch.shape[0]
    extra = (-n) % multiple
    if extra == 0:
        return batch, n
    return np.concatenate([batch, np.repeat(batch[-1:], extra, axis=0)], axis=0), n


def shard_batch(mesh: Mesh, *arrays: np.ndarray | None):
    """Pad each array's batch to a multiple of the mesh's devices and split it over them
    (``arrays`` are the whole batch, on this process; the mesh is this process's).

    Returns (placed arrays (None stays None), the true batch size).
    """
    if _spans_processes(mesh):
        raise MeshError("shard_batch places a whole batch held by one process: use a local "
                        "mesh (local_mesh()), or global_batch for a batch split over processes")
    size = mesh.devices.size
    placed, n = [], None
    for array in arrays:
        if array is None:
            placed.append(None)
            continue
        padded, n = pad_batch(np.asarray(array), size)
        placed.append(jax.device_put(padded, batch_sharded(mesh)))
    return placed, n


def gather_state(tree):
    """A training state (replicated or sharded over the mesh) -> host values on every process:
    a replicated leaf is read from this process's copy, a leaf sharded over several processes
    is gathered (a collective: every process must call it)."""
    def one(x):
        if not isinstance(x, jax.Array):
            return x
        if x.is_fully_addressable:
            return jax.device_get(x)
        if x.sharding.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree.map(one, tree)


def gather(tree):
    """Arrays on a mesh (split or replicated) -> numpy arrays of the whole value, on every
    process."""
    leaves = jax.tree.leaves(tree)
    if all(getattr(x, "is_fully_addressable", True) for x in leaves):
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)
