"""Device meshes and shardings: data parallel over a ``jax.sharding.Mesh`` axis named "data".

Inference and training shard the batch axis over all devices and replicate the parameters.
A batch whose size is not a multiple of the number of devices is padded by repeating its last
element (every network here treats batch elements independently: instance norm, batch norm in
evaluation mode, per-image attention), and the padding is dropped from the results.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def data_mesh(devices=None) -> Mesh:
    """A 1-D mesh over ``devices`` (default: every device of every process)."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over the data axis, the rest replicated."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def pad_batch(batch: np.ndarray, multiple: int) -> tuple[np.ndarray, int]:
    """Pad the leading axis to a multiple by repeating the last element; returns (padded, n)."""
    n = batch.shape[0]
    extra = (-n) % multiple
    if extra == 0:
        return batch, n
    return np.concatenate([batch, np.repeat(batch[-1:], extra, axis=0)], axis=0), n


def shard_batch(mesh: Mesh, *arrays: np.ndarray | None):
    """Pad each array's batch to the mesh size and place it split over the devices.

    Returns (placed arrays (None stays None), the true batch size).
    """
    size = mesh.devices.size
    placed, n = [], None
    for array in arrays:
        if array is None:
            placed.append(None)
            continue
        padded, n = pad_batch(np.asarray(array), size)
        placed.append(jax.device_put(padded, batch_sharded(mesh)))
    return placed, n


def replicate(mesh: Mesh, tree):
    """Place a pytree (parameters) on every device of the mesh."""
    return jax.device_put(tree, replicated(mesh))
