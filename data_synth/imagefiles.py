"""Reading photos from a folder and cutting crops, for the preview tool and the benchmark."""
from __future__ import annotations

import os
from typing import Callable, Iterable

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def list_images(folder: str) -> list[str]:
    """Sorted paths of the files in ``folder`` whose extension looks like an image."""
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    return [os.path.join(folder, n) for n in names]


def load_rgb(path: str) -> np.ndarray:
    """Decodes an image file to uint8 RGB (H, W, 3); alpha is dropped, grayscale is replicated."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).copy()


def load_readable(
    paths: Iterable[str], report: Callable[[str], None] = print
) -> list[tuple[str, np.ndarray]]:
    """Loads every readable image as (path, RGB array); each unreadable file is reported once
    through ``report`` and skipped."""
    loaded = []
    for path in paths:
        try:
            loaded.append((path, load_rgb(path)))
        except (OSError, UnidentifiedImageError, ValueError) as error:
            report(f"skipping unreadable image {os.path.basename(path)} ({type(error).__name__})")
    return loaded


def fit_short_side(image: np.ndarray, size: int) -> np.ndarray:
    """Downscales (Pillow bicubic) so the shorter side equals ``size``; smaller images are kept."""
    height, width = image.shape[:2]
    scale = size / min(height, width)
    if scale >= 1.0:
        return image
    new_size = (max(size, round(width * scale)), max(size, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(new_size, Image.Resampling.BICUBIC))


def random_crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A ``size`` x ``size`` crop at a uniform random integer offset (reference section 10.1);
    images with a side below ``size`` are first upscaled (bicubic) so the short side is ``size``."""
    height, width = image.shape[:2]
    if min(height, width) < size:
        scale = size / min(height, width)
        new_size = (max(size, int(width * scale)), max(size, int(height * scale)))
        image = np.asarray(Image.fromarray(image).resize(new_size, Image.Resampling.BICUBIC))
        height, width = image.shape[:2]
    top = int(rng.integers(0, height - size + 1))
    left = int(rng.integers(0, width - size + 1))
    return np.ascontiguousarray(image[top : top + size, left : left + size])
