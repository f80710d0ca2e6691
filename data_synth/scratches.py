"""Scratches (smooth thin curves) and emulsion cracks (jagged branching lines): local damage.

Both draw grey-level coverage into bright and dark alpha layers, soften them slightly, let the
strength fade in and out along the damage with a smooth random field, and composite the layers
over the image. They return ``(image, mask)`` with ``mask`` True exactly on written pixels.
"""
from __future__ import annotations

import cv2
import numpy as np

from data_synth import curves, pixels, textures

# Relative frequencies of stroke widths 1, 2, 3, 4 px: real scratches are mostly hairlines.
_WIDTHS = np.array([1, 2, 3, 4])
_WIDTH_WEIGHTS = np.array([0.45, 0.3, 0.15, 0.1])


def add_scratches(
    image: np.ndarray,
    rng: np.random.Generator,
    count: int,
    dark_fraction: float = 0.2,
    length_range: tuple[float, float] = (0.15, 1.2),
    opacity_range: tuple[float, float] = (0.4, 1.0),
    max_blur_sigma: float = 1.0,
    min_change: float = pixels.DEFAULT_MIN_CHANGE,
) -> tuple[np.ndarray, np.ndarray]:
    """Draws ``count`` smooth Bézier scratches, mostly bright and a ``dark_fraction`` dark.

    Lengths are fractions of the image diagonal, widths 1-4 px (mostly thin), each scratch with
    its own opacity; the layers get a Gaussian blur with sigma up to ``max_blur_sigma``.
    """
    height, width = image.shape[:2]
    diagonal = float(np.hypot(height, width))
    bright = np.zeros((height, width), dtype=np.uint8)
    dark = np.zeros((height, width), dtype=np.uint8)
    for _ in range(count):
        length = diagonal * rng.uniform(*length_range)
        angle = _scratch_angle(rng)
        start = _start_point(rng, height, width, angle, length)
        points = curves.random_bezier(rng, start, angle, length, bend=rng.uniform(0.0, 0.12))
        thickness = int(rng.choice(_WIDTHS, p=_WIDTH_WEIGHTS))
        value = int(255 * rng.uniform(*opacity_range))
        layer = dark if rng.random() < dark_fraction else bright
        curves.draw_polyline(layer, points, value, thickness)
    fade = _fade_field(rng, height, width, floor=0.3)
    sigma = rng.uniform(0.0, max_blur_sigma)
    layers = ((bright, _bright_colour(rng)), (dark, np.full(3, rng.uniform(10.0, 60.0))))
    return _composite_layers(image, layers, fade, sigma, min_change)


def add_cracks(
    image: np.ndarray,
    rng: np.random.Generator,
    count: int,
    length_range: tuple[float, float] = (0.2, 0.8),
    branch_probability: float = 0.5,
    min_change: float = pixels.DEFAULT_MIN_CHANGE,
) -> tuple[np.ndarray, np.ndarray]:
    """Draws ``count`` bright jagged cracks (straight-ish zig-zag lines) in the emulsion, each with
    a few shorter branches and small flakes of lost emulsion along the way."""
    height, width = image.shape[:2]
    diagonal = float(np.hypot(height, width))
    bright = np.zeros((height, width), dtype=np.uint8)
    for _ in range(count):
        length = diagonal * rng.uniform(*length_range)
        angle = rng.uniform(0.0, 2 * np.pi)
        trunk = _crack_line(rng, rng.uniform((0.0, 0.0), (width, height)), angle, length)
        value = int(255 * rng.uniform(0.7, 1.0))
        curves.draw_polyline(bright, trunk, value, int(rng.choice([1, 1, 2])))
        for _ in range(rng.binomial(4, branch_probability)):
            origin = trunk[rng.integers(len(trunk))]
            branch_angle = angle + rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.4)
            branch = _crack_line(rng, origin, branch_angle, length * rng.uniform(0.15, 0.5))
            curves.draw_polyline(bright, branch, value, 1)
        for index in rng.integers(0, len(trunk), size=rng.integers(0, 6)):
            curves.draw_disc(bright, trunk[index], rng.uniform(0.8, 2.5), value)
    fade = _fade_field(rng, height, width, floor=0.7)
    sigma = rng.uniform(0.0, 0.6)
    return _composite_layers(image, ((bright, _bright_colour(rng)),), fade, sigma, min_change)


def _crack_line(
    rng: np.random.Generator, start: np.ndarray, angle: float, length: float
) -> np.ndarray:
    """A zig-zag line of ``length`` px from ``start`` along ``angle``: a wandering chord with
    3-7 px segments that each kink sideways by about a pixel."""
    end = np.asarray(start) + length * np.array([np.cos(angle), np.sin(angle)])
    segments = max(2, int(length / rng.uniform(3.0, 7.0)))
    return curves.jagged_path(rng, start, end, roughness=1.5, segments=segments, jitter=1.2)


def _scratch_angle(rng: np.random.Generator) -> float:
    """Half of the scratches run near-vertically (film transport), the rest in any direction."""
    if rng.random() < 0.5:
        return np.pi / 2 + rng.normal(0.0, 0.12)
    return rng.uniform(0.0, np.pi)


def _start_point(
    rng: np.random.Generator, height: int, width: int, angle: float, length: float
) -> np.ndarray:
    """A start such that the scratch's midpoint falls inside the image."""
    middle = rng.uniform((0.0, 0.0), (width, height))
    return middle - 0.5 * length * np.array([np.cos(angle), np.sin(angle)])


def _fade_field(rng: np.random.Generator, height: int, width: int, floor: float) -> np.ndarray:
    """Strength in [0, 1] varying smoothly over ~40 px, zero in places so strokes break up."""
    noise = textures.smooth_noise(rng, height, width, cell=40.0)
    return np.clip(np.float32(floor) + np.float32(0.6) * noise, 0.0, 1.0)


def _bright_colour(rng: np.random.Generator) -> np.ndarray:
    """A near-white, slightly warm colour: bare paper showing through the emulsion."""
    return rng.uniform(225.0, 255.0) - np.array([0.0, rng.uniform(0, 6), rng.uniform(0, 14)])


def _composite_layers(
    image: np.ndarray,
    layers: tuple[tuple[np.ndarray, np.ndarray], ...],
    fade: np.ndarray,
    blur_sigma: float,
    min_change: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Composites each (coverage canvas, RGB colour) layer: coverage/255, blurred by
    ``blur_sigma`` px and multiplied by ``fade``, is the blend weight of the colour."""
    mask = np.zeros(image.shape[:2], dtype=bool)
    for layer, colour in layers:
        if not layer.any():
            continue
        alpha = layer.astype(np.float32) * np.float32(1.0 / 255.0)
        if blur_sigma > 0.3:
            alpha = cv2.GaussianBlur(alpha, (0, 0), blur_sigma)
        alpha *= fade
        image, written = pixels.composite(image, alpha, colour, min_change)
        mask |= written
    return image, mask
