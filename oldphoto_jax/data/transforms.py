"""Pure image functions of the training pipeline: resize, crop, flip and conversion to model inputs.

Images are uint8 ``H x W x 3`` RGB numpy arrays and masks uint8 {0, 1} ``H x W x 1`` until
``model_inputs`` turns a batch into float32: images in [-1, 1] (``u8 / 127.5 - 1``, reference
section 10.1), masks in {0, 1}. Batches cross from grain workers to the training process as
uint8, a quarter of the bytes (shared-memory transfer is the costly step on small machines).
Random choices are drawn from a ``numpy.random.Generator`` passed in, so every function is
deterministic given its generator.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from data_synth import pixels, unstructured
from oldphoto_jax.pipeline import preprocess


def upscale_short_side(image: np.ndarray, size: int) -> np.ndarray:
    """Pillow bicubic resize so the short side is ``size`` when it is smaller (reference sections
    10.2 and 10.5.7); the long side becomes ``floor(size * long / short)``. Larger images are
    returned unchanged (never downscaled)."""
    height, width = image.shape[:2]
    short = min(height, width)
    if short >= size:
        return image
    if height <= width:
        new_height, new_width = size, width * size // height
    else:
        new_height, new_width = height * size // width, size
    resized = Image.fromarray(image).resize((new_width, new_height), Image.Resampling.BICUBIC)
    return np.asarray(resized)


def downscale(image: np.ndarray, factor: float, min_short_side: int) -> np.ndarray:
    """Pillow Lanczos resize by ``factor`` <= 1, but never below ``min_short_side`` on the short
    side (the factor is raised to keep it; an image already at or under it is unchanged)."""
    height, width = image.shape[:2]
    short = min(height, width)
    factor = min(1.0, max(float(factor), min_short_side / short))
    if factor >= 1.0:
        return image
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def crop_offset(height: int, width: int, size: int, rng: np.random.Generator) -> tuple[int, int]:
    """(top, left) of a ``size`` square crop, uniform integers in [0, H - size] x [0, W - size]."""
    if height < size or width < size:
        raise ValueError(f"cannot crop {size} px from a {height} x {width} image")
    top = int(rng.integers(0, height - size + 1))
    left = int(rng.integers(0, width - size + 1))
    return top, left


def crop(image: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    """The ``size`` square at (top, left), as a contiguous copy."""
    return np.ascontiguousarray(image[top : top + size, left : left + size])


def hflip(image: np.ndarray) -> np.ndarray:
    """Mirror left-right (H x W or H x W x C), as a view: the float conversion that follows
    makes the contiguous copy."""
    return image[:, ::-1]


def grayscale(image: np.ndarray) -> np.ndarray:
    """Pillow "L" luma copied to three channels (reference section 11.2)."""
    return unstructured.to_grayscale(image)


def luma(image: np.ndarray) -> np.ndarray:
    """Pillow "L" luma as ``H x W x 1`` uint8 (the scratch detector's grey input)."""
    return pixels.luma_uint8(image)[..., None]


def shrink_for_detection(image: np.ndarray, mask: np.ndarray, size: int,
                         coverage: float) -> tuple[np.ndarray, np.ndarray]:
    """A degraded square window and its damage mask brought to ``size`` px as the scratch
    detector's input is: the image (uint8 ``S x S x C``) with the bilinear resize of
    ``preprocess.resize_bilinear_numpy`` (no antialiasing, as ``detection_input``), rounded
    to uint8; the mask (float in [0, 1], ``S x S``) area-averaged, a pixel damaged (1) where
    the average is at least ``coverage``; returned as uint8 {0, 1} ``size x size x 1``."""
    if image.shape[0] == size:
        return image, binary_mask(mask)
    shrunk = preprocess.resize_bilinear_numpy(
        image[None].astype(np.float32), (size, size))[0]
    shrunk = np.clip(np.rint(shrunk), 0, 255).astype(np.uint8)
    import cv2  # here: only zoomed detection records need it

    covered = cv2.resize(np.asarray(mask, np.float32), (size, size),
                         interpolation=cv2.INTER_AREA)
    return shrunk, (covered >= np.float32(coverage)).astype(np.uint8)[..., None]


def to_signed_unit(image: np.ndarray) -> np.ndarray:
    """uint8 to float32 in [-1, 1]: ``u8 / 127.5 - 1``."""
    return image.astype(np.float32) * np.float32(1.0 / 127.5) - np.float32(1.0)


def binary_mask(mask: np.ndarray) -> np.ndarray:
    """A damage mask (float in [0, 1], ``H x W``) as uint8 {0, 1} ``H x W x 1``: 1 where >= 0.5.

    Drawn damage is binary already; grey-level mask files blend holes, and the half-visible
    blend counts as damaged.
    """
    return (np.asarray(mask) >= 0.5).astype(np.uint8)[..., None]


def paint_mask_holes(degraded: np.ndarray, mask: np.ndarray, dilation: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The degraded image with its damage mask painted white, and the mask, as inference prepares
    them for the scratch and HR mappings: the mask (uint8 {0, 1} ``H x W x 1``) dilated
    ``dilation`` times by a 3x3 square (``--HR`` inference: 3), then ``irregular_hole_synthesize``.
    The same functions as ``oldphoto_jax.pipeline.preprocess``, so training sees what the mapping
    is given at inference."""
    mask_u8 = np.asarray(mask, dtype=np.uint8)[..., 0] * np.uint8(255)
    if dilation:
        mask_u8 = preprocess.dilate_mask(mask_u8, dilation)
    painted = preprocess.paint_holes(degraded, mask_u8[..., None])  # broadcast over RGB
    return painted, (mask_u8 > 0).astype(np.uint8)[..., None]


IMAGE_KEYS = frozenset({"image", "degraded", "clean"})
MASK_KEYS = frozenset({"mask"})


def model_inputs(batch: dict[str, np.ndarray], dtype: str = "float32") -> dict[str, np.ndarray]:
    """A batch of uint8 images and masks as the model reads it, in new ordinary arrays.

    ``dtype="float32"``: images (keys ``IMAGE_KEYS``) to [-1, 1] and masks to float32 {0, 1};
    ``"uint8"``: values unchanged (convert on the accelerator with ``u8 / 127.5 - 1``). Other
    entries (flags) are copied unchanged.
    """
    if dtype not in ("float32", "uint8"):
        raise ValueError(f"unknown output dtype {dtype!r}")
    out = {}
    for key, value in batch.items():
        if dtype == "float32" and key in IMAGE_KEYS:
            out[key] = to_signed_unit(value)
        elif dtype == "float32" and key in MASK_KEYS:
            out[key] = np.asarray(value, dtype=np.float32).copy()
        else:
            out[key] = np.array(value)
    return out


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Pillow bicubic resize to ``size x size`` (aligned faces of another size); a no-op when the
    image already has that size."""
    if image.shape[:2] == (size, size):
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))
