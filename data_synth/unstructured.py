"""Unstructured degradations of the official online recipe (reference section 11.1) and grayscale.

Each function maps a uint8 RGB image to a new uint8 RGB image of the same size. Scalar parameters
are explicit arguments; the functions that need random fields take a ``numpy.random.Generator``.
The semantics follow the released code: OpenCV blur on uint8, noise in float32 ``u8/255`` with
clipping and truncation back to uint8, salt and pepper per pixel *and* channel, Pillow bicubic
downscaling and JPEG with default settings.
"""
from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from data_synth import pixels

UPSAMPLE_FILTERS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR}


def gaussian_blur(image: np.ndarray, kernel_size: int, sigma: float) -> np.ndarray:
    """OpenCV Gaussian blur with a square ``kernel_size`` kernel, the same sigma in x and y and
    OpenCV's default border (reflect-101); rounding to uint8 is OpenCV's."""
    return cv2.GaussianBlur(image, (kernel_size, kernel_size), sigmaX=sigma, sigmaY=sigma)


def gaussian_noise(image: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Adds i.i.d. N(0, sigma^2) per pixel and channel to ``u8/255``; sigma is in [0, 1] units."""
    values = pixels.to_unit_float(image)
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    values += np.float32(sigma) * noise
    return pixels.unit_float_to_uint8_truncate(values)


def speckle_noise(image: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Multiplicative noise ``v + v * n`` with n ~ N(0, sigma^2) per pixel and channel."""
    values = pixels.to_unit_float(image)
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    values += values * (np.float32(sigma) * noise)
    return pixels.unit_float_to_uint8_truncate(values)


def salt_and_pepper(
    image: np.ndarray, rng: np.random.Generator, amount: float, salt_fraction: float
) -> np.ndarray:
    """Each pixel *and channel* is hit with probability ``amount``; a hit becomes 255 with
    probability ``salt_fraction`` and 0 otherwise. Untouched values come back exactly."""
    hit = rng.random(image.shape, dtype=np.float32) < amount
    salt = rng.random(image.shape, dtype=np.float32) < salt_fraction
    out = image.copy()
    out[hit & salt] = 255
    out[hit & ~salt] = 0
    return out


def low_resolution(image: np.ndarray, new_width: int, new_height: int, upsample: str) -> np.ndarray:
    """Pillow BICUBIC (antialiased) down to (new_width, new_height), then back to the original
    size with ``upsample`` in {"nearest", "bilinear"}."""
    height, width = image.shape[:2]
    small = Image.fromarray(image).resize((new_width, new_height), Image.Resampling.BICUBIC)
    restored = small.resize((width, height), UPSAMPLE_FILTERS[upsample])
    return np.asarray(restored)


def jpeg_compress(image: np.ndarray, quality: int) -> np.ndarray:
    """Pillow JPEG encode at ``quality`` with default settings (4:2:0), decoded back to RGB."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"))


def to_grayscale(image: np.ndarray) -> np.ndarray:
    """Pillow's "L" conversion copied to three channels (reference section 11.2)."""
    luma = pixels.luma_uint8(image)
    return np.repeat(luma[..., None], 3, axis=2)
