"""Dust, specks, hairs and stains: small local damage.

Specks are tiny antialiased discs, blobs are clusters of discs, hairs are short wavy thin curves
(all bright or dark: dust on the negative prints white, dust on the print scans dark), stains are
soft, mottled brownish spots (foxing). Returns ``(image, mask)`` with ``mask`` True exactly on
written pixels.
"""
from __future__ import annotations

import cv2
import numpy as np

from data_synth import curves, pixels, textures


def add_dust(
    image: np.ndarray,
    rng: np.random.Generator,
    specks: int,
    blobs: int,
    hairs: int,
    stains: int,
    dark_fraction: float = 0.4,
    min_change: float = pixels.DEFAULT_MIN_CHANGE,
) -> tuple[np.ndarray, np.ndarray]:
    """Adds the given numbers of specks, blobs, hairs and stains at uniform random positions."""
    height, width = image.shape[:2]
    bright = np.zeros((height, width), dtype=np.uint8)
    dark = np.zeros((height, width), dtype=np.uint8)
    upper = (width, height)

    def layer() -> np.ndarray:
        return dark if rng.random() < dark_fraction else bright

    for _ in range(specks):
        radius = rng.uniform(0.4, 1.6)
        curves.draw_disc(layer(), rng.uniform((0, 0), upper), radius, int(rng.uniform(150, 255)))
    for _ in range(blobs):
        target = layer()
        centre = rng.uniform((0, 0), upper)
        size = rng.uniform(1.5, 5.0)
        value = int(rng.uniform(180, 255))
        for _ in range(rng.integers(2, 7)):
            offset = rng.normal(0.0, size * 0.6, size=2)
            curves.draw_disc(target, centre + offset, size * rng.uniform(0.3, 0.8), value)
    for _ in range(hairs):
        start = rng.uniform((0, 0), upper)
        steps = int(rng.integers(6, 20))
        hair = curves.random_walk(rng, start, rng.uniform(0, 2 * np.pi), steps, 2.5, turn_std=0.3)
        curves.draw_polyline(layer(), hair, int(rng.uniform(120, 230)), 1)

    mask = np.zeros((height, width), dtype=bool)
    colours = (np.full(3, rng.uniform(225.0, 255.0)), np.full(3, rng.uniform(5.0, 50.0)))
    for canvas, colour in zip((bright, dark), colours):
        if canvas.any():
            alpha = canvas.astype(np.float32) * np.float32(1.0 / 255.0)
            image, written = pixels.composite(image, alpha, colour, min_change)
            mask |= written
    if stains:
        image, written = _add_stains(image, rng, stains, min_change)
        mask |= written
    return image, mask


def _add_stains(
    image: np.ndarray, rng: np.random.Generator, count: int, min_change: float
) -> tuple[np.ndarray, np.ndarray]:
    """Soft, irregular brown spots of radius 4-20 px (foxing): clusters of overlapping discs with
    a mottled interior, blurred edges and low opacity."""
    height, width = image.shape[:2]
    canvas = np.zeros((height, width), dtype=np.uint8)
    for _ in range(count):
        centre = rng.uniform((0, 0), (width, height))
        radius = rng.uniform(4.0, 20.0)
        value = int(rng.uniform(60, 140))
        for _ in range(rng.integers(3, 7)):
            offset = rng.normal(0.0, 0.45 * radius, size=2)
            curves.draw_disc(canvas, centre + offset, radius * rng.uniform(0.35, 0.75), value)
    alpha = canvas.astype(np.float32) * np.float32(1.0 / 255.0)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 2.5)
    alpha *= np.clip(0.75 + 0.35 * textures.smooth_noise(rng, height, width, 6.0), 0.0, 1.0)
    brown = np.array([rng.uniform(110, 160), rng.uniform(70, 100), rng.uniform(30, 60)])
    return pixels.composite(image, alpha, brown, min_change)
