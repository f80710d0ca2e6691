"""Random smooth fields: value noise upsampled from a coarse Gaussian grid, and its fractal sum.

Used for paper texture, for fading scratches in and out along their length, and for breaking
crease lines. All fields are float32 (H, W) with zero mean and unit variance in expectation
(normalised analytically, not by the sample statistics, which would cost more than the noise).
"""
from __future__ import annotations

import cv2
import numpy as np

# Standard deviation of i.i.d. unit normals after large bicubic upsampling with OpenCV's kernel
# (a = -0.75): the average over sub-pixel positions of the sum of squared tap weights is 6/7 per
# axis, so the 2-D variance is (6/7)^2.
_CUBIC_UPSAMPLED_STD = 6.0 / 7.0


def smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Gaussian noise on a grid with spacing ~``cell`` pixels, bicubically upsampled to (H, W)."""
    grid_h = max(2, int(np.ceil(height / cell)) + 1)
    grid_w = max(2, int(np.ceil(width / cell)) + 1)
    grid = rng.standard_normal((grid_h, grid_w), dtype=np.float32)
    grid *= np.float32(1.0 / _CUBIC_UPSAMPLED_STD)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def fractal_noise(
    rng: np.random.Generator, height: int, width: int, cell: float, octaves: int = 3
) -> np.ndarray:
    """Sum of ``octaves`` smooth noise layers, each with half the cell size and half the amplitude
    of the previous one, scaled back to unit variance."""
    field = np.zeros((height, width), dtype=np.float32)
    amplitude, total_variance = 1.0, 0.0
    for _ in range(octaves):
        field += np.float32(amplitude) * smooth_noise(rng, height, width, max(cell, 1.0))
        total_variance += amplitude**2
        cell /= 2.0
        amplitude /= 2.0
    field *= np.float32(1.0 / np.sqrt(total_variance))
    return field
