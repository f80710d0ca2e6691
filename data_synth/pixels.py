"""Pixel-level helpers shared by every degradation: conversions, luminance and alpha compositing.

Images are ``uint8`` arrays of shape ``(H, W, 3)`` (RGB). Functions never modify their inputs.
"""
from __future__ import annotations

import numpy as np

# Pillow's "L" conversion (ITU-R 601-2 luma) in 16-bit fixed point.
_LUMA_WEIGHTS_FIXED = (19595, 38470, 7471)
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)

# Local damage that would change a pixel by fewer grey levels than this (in every channel) is not
# drawn: the damage mask then marks exactly the pixels that were changed, and only visible ones.
DEFAULT_MIN_CHANGE = 6


def check_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Returns ``image`` if it is a uint8 RGB array of shape (H, W, 3), else raises ValueError."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"expected a uint8 RGB image of shape (H, W, 3), got {image.dtype} {image.shape}"
        )
    return image


def to_unit_float(image: np.ndarray) -> np.ndarray:
    """uint8 values to float32 in [0, 1]."""
    return image.astype(np.float32) * np.float32(1.0 / 255.0)


def unit_float_to_uint8_truncate(values: np.ndarray) -> np.ndarray:
    """Clips to [0, 1] and truncates ``255 * v`` to uint8 (the official noise round trip)."""
    return (np.clip(values, 0.0, 1.0) * np.float32(255.0)).astype(np.uint8)


def unit_float_to_uint8_round(values: np.ndarray) -> np.ndarray:
    """Clips to [0, 1] and rounds ``255 * v`` to the nearest uint8 level."""
    return np.rint(np.clip(values, 0.0, 1.0) * np.float32(255.0)).astype(np.uint8)


def luma_uint8(image: np.ndarray) -> np.ndarray:
    """Pillow's exact ``convert("L")``: (19595 R + 38470 G + 7471 B + 2**15) >> 16, shape (H, W)."""
    rgb = image.astype(np.uint32)
    wr, wg, wb = _LUMA_WEIGHTS_FIXED
    luma = (wr * rgb[..., 0] + wg * rgb[..., 1] + wb * rgb[..., 2] + (1 << 15)) >> 16
    return luma.astype(np.uint8)


def luma_float(values: np.ndarray) -> np.ndarray:
    """Luminance of a float RGB array (..., 3) with the same 601 weights, shape (...)."""
    return values @ _LUMA_WEIGHTS


def composite(
    image: np.ndarray,
    alpha: np.ndarray,
    colour: np.ndarray | tuple[float, float, float],
    min_change: float = DEFAULT_MIN_CHANGE,
) -> tuple[np.ndarray, np.ndarray]:
    """Blends ``colour`` over ``image`` with per-pixel weight ``alpha`` and returns (image, mask).

    ``alpha`` is (H, W) in [0, 1]; ``colour`` is an RGB triple in 0..255 or an (H, W, 3) array.
    A pixel is written only where the rounded blend differs from the input by at least
    ``min_change`` levels in some channel; the returned boolean mask is True exactly on the written
    pixels, so pixels outside it are bit-identical to the input. The dropped changes (below
    ``min_change`` levels) are invisible, and the mask does not mark damage nobody could see.
    """
    alpha = np.asarray(alpha, dtype=np.float32)
    index = np.flatnonzero(alpha >= np.float32(0.5 / 255.0))  # below: no level can change
    out = image.copy()
    mask = np.zeros(image.shape[:2], dtype=bool)
    if index.size == 0:
        return out, mask
    flat = out.reshape(-1, 3)
    base = flat[index].astype(np.float32)
    colour = np.asarray(colour, dtype=np.float32)
    if colour.ndim == 3:
        colour = colour.reshape(-1, 3)[index]
    weight = alpha.reshape(-1)[index][:, None]
    blended = np.clip(np.rint(base + weight * (colour - base)), 0.0, 255.0)
    visible = np.abs(blended - base).max(axis=1) >= max(float(min_change), 1.0)
    index = index[visible]
    flat[index] = blended[visible].astype(np.uint8)
    mask.reshape(-1)[index] = True
    return out, mask
