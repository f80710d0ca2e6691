"""Folds and creases: long, nearly straight lines across the photo with a light/dark shading pair
(the paper bends towards and away from the light) and often a broken white core where the
emulsion cracked. Returns ``(image, mask)`` with ``mask`` True exactly on written pixels.
"""
from __future__ import annotations

import numpy as np

from data_synth import pixels, textures


def add_folds(
    image: np.ndarray,
    rng: np.random.Generator,
    count: int,
    width_range: tuple[float, float] = (1.0, 3.5),
    shading_range: tuple[float, float] = (0.15, 0.45),
    core_probability: float = 0.7,
    min_change: float = pixels.DEFAULT_MIN_CHANGE,
) -> tuple[np.ndarray, np.ndarray]:
    """Adds ``count`` folds. Each runs through a random point, mostly along the image axes, with
    a slight waviness; its shading has half-width ``width_range`` px and peak strength
    ``shading_range``."""
    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    mask = np.zeros((height, width), dtype=bool)
    for _ in range(count):
        distance = _signed_distance(rng, xs, ys, width, height)
        half_width = rng.uniform(*width_range)
        u = distance / np.float32(half_width)
        profile = u * np.exp(0.5 - 0.5 * u * u)  # derivative of a Gaussian, peaks at +-1
        strength = np.float32(rng.uniform(*shading_range))
        light = np.maximum(profile, 0.0) * strength
        shade = np.maximum(-profile, 0.0) * strength
        image, written_light = pixels.composite(image, light, (255.0, 250.0, 240.0), min_change)
        image, written_shade = pixels.composite(image, shade, (20.0, 18.0, 15.0), min_change)
        mask |= written_light | written_shade
        if rng.random() < core_probability:
            core_width = np.float32(rng.uniform(0.5, 1.2))
            breaks = np.clip(0.4 + 0.8 * textures.smooth_noise(rng, height, width, 25.0), 0, 1)
            opacity = np.float32(rng.uniform(0.6, 1.0))
            core = np.exp(-0.5 * (distance / core_width) ** 2) * breaks * opacity
            image, written_core = pixels.composite(image, core, (245.0, 242.0, 232.0), min_change)
            mask |= written_core
    return image, mask


def _signed_distance(
    rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray, width: int, height: int
) -> np.ndarray:
    """Signed distance in px to a random wavy line through the image, as an (H, W) float32 field."""
    if rng.random() < 0.7:
        angle = rng.integers(0, 2) * (np.pi / 2) + rng.normal(0.0, 0.1)
    else:
        angle = rng.uniform(0.0, np.pi)
    px, py = rng.uniform((0.15 * width, 0.15 * height), (0.85 * width, 0.85 * height))
    tx, ty = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    along = (xs - np.float32(px)) * tx + (ys - np.float32(py)) * ty
    across = (ys - np.float32(py)) * tx - (xs - np.float32(px)) * ty
    amplitude = np.float32(rng.uniform(0.0, 2.5))
    period = np.float32(rng.uniform(60.0, 250.0))
    phase = np.float32(rng.uniform(0.0, 2 * np.pi))
    return across + amplitude * np.sin(along * np.float32(2 * np.pi) / period + phase)
