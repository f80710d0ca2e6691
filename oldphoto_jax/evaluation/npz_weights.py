"""Reading a metric network's weights from a user-made ``.npz`` of a torch state dict, with
errors that name the key."""
from __future__ import annotations

import os

import numpy as np


class NpzWeights:
    """The arrays of one ``.npz``; :meth:`get` returns one with a checked shape.

    ``layout`` describes the expected file in the missing-key error (e.g. "torchvision VGG16
    features.* and LPIPS lin*.model.1.weight arrays").
    """

    def __init__(self, path: str | os.PathLike, layout: str):
        self.path, self.layout = path, layout
        with np.load(path) as data:
            self.arrays = {k: data[k] for k in data.files}

    def get(self, key: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        """``key`` as ``dtype``; ValueError naming the key if it is missing or not ``shape``."""
        if key not in self.arrays:
            raise ValueError(f"{self.path}: missing {key} (expected {self.layout})")
        value = np.asarray(self.arrays[key], dtype)
        if value.shape != shape:
            raise ValueError(f"{self.path}: {key} has shape {value.shape}, expected {shape}")
        return value
