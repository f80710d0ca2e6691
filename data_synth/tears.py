"""Tears and missing corners: irregular pieces missing at the border of the print.

A missing corner is cut off along a jagged path between the two adjacent edges; a tear bites
into one edge. The missing area shows either the paper base (cream) or a dark scanner background,
and the torn edge is rimmed with a thin band of white paper fibres. Returns ``(image, mask)`` with
``mask`` True exactly on written pixels.
"""
from __future__ import annotations

import numpy as np

from data_synth import curves, pixels


def add_tears(
    image: np.ndarray,
    rng: np.random.Generator,
    count: int,
    size_range: tuple[float, float] = (0.1, 0.35),
    corner_probability: float = 0.6,
    dark_background_probability: float = 0.3,
    min_change: float = pixels.DEFAULT_MIN_CHANGE,
) -> tuple[np.ndarray, np.ndarray]:
    """Adds ``count`` missing corners or edge tears whose extent is ``size_range`` of the image's
    shorter side."""
    height, width = image.shape[:2]
    short_side = min(height, width)
    mask = np.zeros((height, width), dtype=bool)
    for _ in range(count):
        extent = short_side * rng.uniform(*size_range)
        if rng.random() < corner_probability:
            outline, edge = _missing_corner(rng, width, height, extent)
        else:
            outline, edge = _edge_tear(rng, width, height, extent)
        rim = np.zeros((height, width), dtype=np.uint8)
        curves.draw_polyline(rim, edge, 255, int(rng.integers(2, 5)))
        hole = np.zeros((height, width), dtype=np.uint8)
        curves.fill_polygon(hole, outline, 255)
        rim_colour = np.full(3, rng.uniform(225.0, 250.0))
        rim_alpha = rim.astype(np.float32) * np.float32(rng.uniform(0.6, 1.0) / 255.0)
        image, written_rim = pixels.composite(image, rim_alpha, rim_colour, min_change)
        hole_alpha = hole.astype(np.float32) * np.float32(1.0 / 255.0)
        background = _background(rng, dark_background_probability)
        image, written_hole = pixels.composite(image, hole_alpha, background, min_change)
        mask |= written_rim | written_hole
    return image, mask


def _background(rng: np.random.Generator, dark_probability: float) -> np.ndarray:
    """Cream paper base, or a dark scanner lid."""
    if rng.random() < dark_probability:
        return np.full(3, rng.uniform(5.0, 40.0))
    base = rng.uniform(215.0, 245.0)
    return np.array([base, base - rng.uniform(3, 12), base - rng.uniform(10, 30)])


def _missing_corner(
    rng: np.random.Generator, width: int, height: int, extent: float
) -> tuple[np.ndarray, np.ndarray]:
    """Outline polygon and torn edge of a cut-off corner."""
    corner_x = float(rng.integers(0, 2) * width)
    corner_y = float(rng.integers(0, 2) * height)
    sign_x = 1.0 if corner_x == 0 else -1.0
    sign_y = 1.0 if corner_y == 0 else -1.0
    along_x = extent * rng.uniform(0.6, 1.6)
    along_y = extent * rng.uniform(0.6, 1.6)
    # Start and end a few px outside the image so the edge meets the border cleanly.
    start = np.array([corner_x + sign_x * along_x, corner_y - sign_y * 3.0])
    end = np.array([corner_x - sign_x * 3.0, corner_y + sign_y * along_y])
    edge = curves.jagged_path(rng, start, end, roughness=extent * 0.04, segments=24)
    corner = np.array([[corner_x - sign_x * 3.0, corner_y - sign_y * 3.0]])
    return np.vstack([edge, corner]), edge


def _edge_tear(
    rng: np.random.Generator, width: int, height: int, extent: float
) -> tuple[np.ndarray, np.ndarray]:
    """Outline polygon and torn edge of a bite out of one edge (drawn for the top edge, then
    rotated to the chosen side)."""
    side = int(rng.integers(0, 4))
    span = width if side % 2 == 0 else height
    depth = extent * rng.uniform(0.3, 0.8)
    centre = rng.uniform(0.2, 0.8) * span
    half = extent * rng.uniform(0.6, 1.2)
    left = np.array([centre - half, -3.0])
    apex = np.array([centre + rng.uniform(-0.3, 0.3) * half, depth])
    right = np.array([centre + half, -3.0])
    first = curves.jagged_path(rng, left, apex, roughness=extent * 0.05, segments=12)
    second = curves.jagged_path(rng, apex, right, roughness=extent * 0.05, segments=12)
    edge = _place_on_side(np.vstack([first, second[1:]]), side, width, height)
    return edge, edge


def _place_on_side(points: np.ndarray, side: int, width: int, height: int) -> np.ndarray:
    """Maps (position along edge, depth) from the top edge to side 0 top, 1 right, 2 bottom,
    3 left."""
    along, depth = points[:, 0], points[:, 1]
    if side == 0:
        return np.stack([along, depth], axis=1)
    if side == 1:
        return np.stack([width - depth, along], axis=1)
    if side == 2:
        return np.stack([width - along, height - depth], axis=1)
    return np.stack([depth, height - along], axis=1)
