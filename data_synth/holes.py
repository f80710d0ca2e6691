"""White holes painted from an irregular mask: the only structured damage of the official release
(reference section 11.3), plus a generator of irregular masks so no external mask set is needed.

Masks are uint8 (H, W) with 0 = intact and 255 = hole (grey levels blend).
"""
from __future__ import annotations

import functools
import os

import cv2
import numpy as np
from PIL import Image

MASK_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def paint_holes(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``x * (1 - m/255) + m`` per channel, truncated to uint8 as the official
    ``irregular_hole_synthesize``: binary masks paint white, grey masks blend towards white."""
    holes = mask > 0  # where m = 0 the formula returns x exactly
    out = image.copy()
    m = mask[holes].astype(np.float64)[:, None] / 255.0
    out[holes] = (image[holes].astype(np.float64) * (1.0 - m) + m * 255.0).astype(np.uint8)
    return out


def irregular_mask(
    rng: np.random.Generator,
    height: int,
    width: int,
    strokes: tuple[int, int] = (1, 5),
    thickness: tuple[int, int] = (2, 9),
) -> np.ndarray:
    """A binary {0, 255} mask of free-form strokes: each stroke is a polyline of 2-8 random
    segments drawn with round joints; sizes are for a 256 px image and scale with the image."""
    scale = min(height, width) / 256.0
    mask = np.zeros((height, width), dtype=np.uint8)
    for _ in range(rng.integers(strokes[0], strokes[1] + 1)):
        width_px = max(1, int(round(rng.integers(thickness[0], thickness[1] + 1) * scale)))
        point = rng.uniform((0, 0), (width, height))
        heading = rng.uniform(0.0, 2 * np.pi)
        for _ in range(rng.integers(2, 9)):
            heading += rng.normal(0.0, 0.8)
            step = rng.uniform(10.0, 50.0) * scale
            nxt = point + step * np.array([np.cos(heading), np.sin(heading)])
            cv2.line(mask, _pixel(point), _pixel(nxt), 255, width_px)
            cv2.circle(mask, _pixel(nxt), max(1, width_px // 2), 255, -1)
            point = nxt
    return mask


def list_mask_files(folder: str) -> tuple[str, ...]:
    """Sorted paths of the image files in ``folder`` (cached: a mask set does not change)."""
    return _list_mask_files(os.path.abspath(folder))


@functools.lru_cache(maxsize=8)
def _list_mask_files(folder: str) -> tuple[str, ...]:
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(MASK_EXTENSIONS))
    if not names:
        raise ValueError(f"no mask images in {folder}")
    return tuple(os.path.join(folder, n) for n in names)


def load_mask(path: str, height: int, width: int) -> np.ndarray:
    """Reads a mask file as Pillow "L" and resizes it to (height, width) with nearest neighbour
    (aspect ratio not kept, as the official loader does)."""
    with Image.open(path) as mask:
        resized = mask.convert("L").resize((width, height), Image.Resampling.NEAREST)
        return np.asarray(resized)


def _pixel(point: np.ndarray) -> tuple[int, int]:
    return int(round(point[0])), int(round(point[1]))
