"""Small synthetic photos for tests and examples (no files needed)."""
from __future__ import annotations

import numpy as np


def smooth_photo(height: int = 96, width: int = 128, seed: int = 0,
                 phase: float = 0.0) -> np.ndarray:
    """A smooth colour pattern plus a little Gaussian noise (uint8 H x W x 3); ``seed`` draws the
    noise, ``phase`` shifts the pattern (photos that differ in content, not only in noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([120 + 80 * np.sin(x / 17 + c + phase) * np.cos(y / 23 - c)
                     for c in range(3)], -1)
    return np.clip(base + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8)
