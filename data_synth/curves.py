"""Random curve geometry and antialiased sub-pixel drawing on single-channel canvases.

Points are float arrays of shape (N, 2) holding (x, y) in pixel coordinates (pixel centres at
integers). Drawing uses OpenCV's antialiased rasteriser with 4 fractional bits.
"""
from __future__ import annotations

import cv2
import numpy as np

_SHIFT_BITS = 4
_SCALE = float(1 << _SHIFT_BITS)


def random_bezier(
    rng: np.random.Generator,
    start: np.ndarray,
    angle: float,
    length: float,
    bend: float,
    spacing: float = 3.0,
) -> np.ndarray:
    """A cubic Bézier curve from ``start`` roughly along ``angle`` (radians) over ``length`` px.

    The two inner control points sit at 1/3 and 2/3 of the chord, pushed sideways by normal draws
    with standard deviation ``bend * length``. The curve is sampled every ~``spacing`` px.
    """
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    start = np.asarray(start, dtype=np.float64)
    end = start + length * direction
    offsets = rng.normal(0.0, bend * length, size=2)
    c1 = start + length / 3.0 * direction + offsets[0] * normal
    c2 = start + 2.0 * length / 3.0 * direction + offsets[1] * normal
    count = max(4, int(length / spacing) + 1)
    t = np.linspace(0.0, 1.0, count)[:, None]
    u = 1.0 - t
    return u**3 * start + 3 * u**2 * t * c1 + 3 * u * t**2 * c2 + t**3 * end


def random_walk(
    rng: np.random.Generator,
    start: np.ndarray,
    angle: float,
    steps: int,
    step_length: float,
    turn_std: float,
) -> np.ndarray:
    """A polyline of ``steps`` segments whose heading changes by N(0, turn_std^2) radians per step:
    jagged for large ``turn_std`` (cracks, torn edges), wavy for small ones (hairs)."""
    headings = angle + np.cumsum(rng.normal(0.0, turn_std, size=steps))
    lengths = step_length * rng.uniform(0.5, 1.5, size=steps)
    moves = np.stack([np.cos(headings), np.sin(headings)], axis=1) * lengths[:, None]
    points = np.vstack([np.zeros((1, 2)), np.cumsum(moves, axis=0)])
    return points + np.asarray(start, dtype=np.float64)


def jagged_path(
    rng: np.random.Generator,
    start: np.ndarray,
    end: np.ndarray,
    roughness: float,
    segments: int,
    jitter: float = 0.0,
) -> np.ndarray:
    """A path from ``start`` to ``end`` through ``segments`` pieces whose inner vertices are pushed
    sideways by a random walk (a Brownian bridge) of step ``roughness`` px, plus independent
    zig-zag offsets of ``jitter`` px."""
    start = np.asarray(start, dtype=np.float64)
    end = np.asarray(end, dtype=np.float64)
    t = np.linspace(0.0, 1.0, segments + 1)
    chord = end - start
    normal = np.array([-chord[1], chord[0]]) / max(float(np.hypot(*chord)), 1e-9)
    walk = np.concatenate([[0.0], np.cumsum(rng.normal(0.0, roughness, size=segments))])
    bridge = walk - t * walk[-1]
    if jitter > 0.0:
        bridge[1:-1] += rng.normal(0.0, jitter, size=segments - 1)
    return start + t[:, None] * chord + bridge[:, None] * normal


def to_fixed_point(points: np.ndarray) -> np.ndarray:
    """(N, 2) float pixel coordinates to the int32 fixed-point format OpenCV draws with."""
    return np.rint(np.asarray(points) * _SCALE).astype(np.int32)


def draw_polyline(canvas: np.ndarray, points: np.ndarray, value: int, thickness: int) -> None:
    """Draws an open antialiased polyline of ``thickness`` px and grey ``value`` into ``canvas``
    (uint8, modified in place: canvases are scratch buffers owned by the caller)."""
    cv2.polylines(
        canvas,
        [to_fixed_point(points)],
        False,
        int(value),
        int(thickness),
        cv2.LINE_AA,
        _SHIFT_BITS,
    )


def draw_disc(canvas: np.ndarray, centre: np.ndarray, radius: float, value: int) -> None:
    """Draws a filled antialiased disc with sub-pixel centre and radius into ``canvas``
    (in place)."""
    centre_fixed = tuple(int(c) for c in to_fixed_point(centre))
    radius_fixed = max(1, int(round(radius * _SCALE)))
    cv2.circle(canvas, centre_fixed, radius_fixed, int(value), -1, cv2.LINE_AA, _SHIFT_BITS)


def fill_polygon(canvas: np.ndarray, points: np.ndarray, value: int) -> None:
    """Fills an antialiased polygon into ``canvas`` (in place)."""
    cv2.fillPoly(canvas, [to_fixed_point(points)], int(value), cv2.LINE_AA, _SHIFT_BITS)
