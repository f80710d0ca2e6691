"""Global ageing of a print: every pixel changes, so these produce no damage mask.

Paper texture, film grain, halftone screens, fading, sepia/yellowing, contrast loss and
vignetting. Each function maps a uint8 RGB image to a new uint8 RGB image of the same size.
"""
from __future__ import annotations

import cv2
import numpy as np

from data_synth import pixels, textures

# Classic sepia toning matrix (rows give output R, G, B from input R, G, B).
_SEPIA = np.array(
    [[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], dtype=np.float32
)
# Screen angles of the three ink layers (degrees), as in colour printing.
_SCREEN_ANGLES = (15.0, 75.0, 45.0)


def paper_texture(
    image: np.ndarray, rng: np.random.Generator, strength: float, cell: float
) -> np.ndarray:
    """Multiplies by ``1 + strength * n`` with ``n`` a fractal smooth noise field of base cell
    ``cell`` px: blotchy, fibrous unevenness of old paper."""
    height, width = image.shape[:2]
    field = textures.fractal_noise(rng, height, width, cell, octaves=4)
    values = pixels.to_unit_float(image) * (1.0 + np.float32(strength) * field)[..., None]
    return pixels.unit_float_to_uint8_round(values)


def film_grain(
    image: np.ndarray, rng: np.random.Generator, amount: float, size: float
) -> np.ndarray:
    """Monochrome grain: white noise blurred to clumps of ``size`` px, rescaled to unit variance,
    scaled by ``amount`` (in [0, 1] units) and strongest in the mid-tones."""
    height, width = image.shape[:2]
    grain = rng.standard_normal((height, width), dtype=np.float32)
    if size > 0.3:
        kernel = cv2.getGaussianKernel(2 * int(np.ceil(3.0 * size)) + 1, size, cv2.CV_32F)
        grain = cv2.sepFilter2D(grain, -1, kernel, kernel)
        # Blurred unit white noise has variance (sum of squared 1-D taps)^2 away from the border.
        grain *= np.float32(1.0 / float(np.sum(kernel**2)))
    values = pixels.to_unit_float(image)
    luma = pixels.luma_float(values)
    weight = 0.35 + 2.6 * luma * (1.0 - luma)  # 0.35 at black/white, 1.0 at mid-grey
    values += (np.float32(amount) * grain * weight)[..., None]
    return pixels.unit_float_to_uint8_round(values)


def halftone(
    image: np.ndarray, period: float, angle: float, strength: float, softness: float = 0.35
) -> np.ndarray:
    """Dot-screen printing: each channel is thresholded against a rotated cosine screen of
    ``period`` px (the ink layers at 15/75/45 degrees plus ``angle``), softened by a blur of
    ``softness * period`` px (scanning) and mixed into the image with weight ``strength``."""
    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    values = pixels.to_unit_float(image)
    frequency = np.float32(2 * np.pi / period)
    screened = np.empty_like(values)
    for channel, base_angle in enumerate(_SCREEN_ANGLES):
        theta = np.deg2rad(base_angle + angle)
        u = (xs * np.float32(np.cos(theta)) + ys * np.float32(np.sin(theta))) * frequency
        v = (ys * np.float32(np.cos(theta)) - xs * np.float32(np.sin(theta))) * frequency
        screen = 0.5 + 0.25 * (np.cos(u) + np.cos(v))
        ink = 1.0 - values[..., channel]
        screened[..., channel] = (ink <= screen).astype(np.float32)
    screened = cv2.GaussianBlur(screened, (0, 0), max(0.3, softness * period))
    values += np.float32(strength) * (screened - values)
    return pixels.unit_float_to_uint8_round(values)


def fade(
    image: np.ndarray, amount: float, desaturation: float, paper: tuple[float, float, float]
) -> np.ndarray:
    """Moves colours towards grey by ``desaturation`` and then towards the ``paper`` tone
    (RGB 0..255) by ``amount``: dyes bleach, shadows lift towards the paper."""
    values = pixels.to_unit_float(image)
    luma = pixels.luma_float(values)[..., None]
    values += np.float32(desaturation) * (luma - values)
    paper_unit = np.asarray(paper, dtype=np.float32) / np.float32(255.0)
    values += np.float32(amount) * (paper_unit - values)
    return pixels.unit_float_to_uint8_round(values)


def sepia(image: np.ndarray, strength: float, tint: tuple[float, float, float]) -> np.ndarray:
    """Sepia toning mixed in with weight ``strength``, then a per-channel multiplicative ``tint``
    (e.g. (1.0, 0.95, 0.8) for yellowing)."""
    values = pixels.to_unit_float(image)
    toned = values @ _SEPIA.T
    values += np.float32(strength) * (toned - values)
    values *= np.asarray(tint, dtype=np.float32)
    return pixels.unit_float_to_uint8_round(values)


def contrast_loss(image: np.ndarray, black: float, white: float) -> np.ndarray:
    """Maps the range [0, 1] linearly onto [black, white] (both in [0, 1]): lifted blacks, dull
    whites."""
    values = pixels.to_unit_float(image)
    values = np.float32(black) + values * np.float32(white - black)
    return pixels.unit_float_to_uint8_round(values)


def vignette(
    image: np.ndarray, strength: float, power: float, centre: tuple[float, float]
) -> np.ndarray:
    """Darkens by ``1 - strength * r**power``, with r the distance from ``centre`` (fractions of
    width and height) normalised so the image corners are at r ~ 1."""
    height, width = image.shape[:2]
    ys = (np.arange(height, dtype=np.float32) + 0.5) / np.float32(height) - np.float32(centre[1])
    xs = (np.arange(width, dtype=np.float32) + 0.5) / np.float32(width) - np.float32(centre[0])
    radius_sq = (ys[:, None] ** 2 + xs[None, :] ** 2) * np.float32(2.0)
    gain = 1.0 - np.float32(strength) * np.minimum(radius_sq, 2.0) ** np.float32(power / 2.0)
    values = pixels.to_unit_float(image) * gain[..., None]
    return pixels.unit_float_to_uint8_round(values)
