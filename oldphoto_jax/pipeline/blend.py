"""Stage 4 of the official pipeline: enhanced faces warped back into the restored photo.

Reproduces ``Face_Detection/align_warp_back_multiple_dlib.py`` (and ``_HR.py``), reference
section 8, with scikit-image and OpenCV as the official script uses them. For each face ``k`` (dlib
order), with ``T`` its alignment transform (aligned ``(x, y)`` → photo ``(x, y)``) and ``S`` the
face size:

1. ``reference = warp(photo, T, (S, S, 3), order=1, preserve_range=True).astype(uint8)`` — the
   photo's own face crop, 0..255 floats truncated (not rounded, unlike the stage-2 crop);
   ``forward_mask = warp(ones, T, (S, S, 3), order=0, preserve_range=True)``;
2. the enhanced face's colours are matched to ``reference`` channel by channel
   (:func:`match_histograms_official`);
3. ``warped_back = warp(face, T.inverse, (H, W, 3), order=3, preserve_range=True)`` (bicubic,
   constant 0 outside, clipped to the face's value range) and ``backward_mask`` = the forward
   mask warped back with nearest neighbour;
4. ``blended = blur_blend(warped_back, blended, backward_mask)`` (:func:`blur_blend`).

After all faces the file written is ``img_as_ubyte(blended / 255)``. ``blended`` starts as the
photo itself (uint8) and becomes float64 0..255 after the first face.

The masks are float64: the official run used an older scikit-image whose nearest-neighbour
``warp`` with ``preserve_range=True`` returned float64 (scikit-image 0.26 keeps uint8, on which the
official in-place ``mask *= 255.0`` would fail); the fixtures reproduce that.

The official script detects the faces again on the photo to recover each ``T``; here the
transforms come from stage 2 (:func:`oldphoto_jax.pipeline.faces.extract_faces`), which gives the
same matrices because detection and landmarks are deterministic.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
from skimage.transform import SimilarityTransform, warp
from skimage.util import img_as_ubyte

# blur_blending_cv2: ``cv2.erode(mask, np.ones((9, 9)), iterations=3)``.
ERODE_KERNEL_SIZE = 9
ERODE_ITERATIONS = 3
# ``cv2.GaussianBlur(mask, (25, 25), 0)``: sigma from the kernel size, 0.3 * (12 - 1) + 0.8 = 4.1.
BLUR_KERNEL_SIZE = 25
HISTOGRAM_BINS = 256


def _check_face(face: np.ndarray) -> np.ndarray:
    face = np.asarray(face)
    if face.dtype != np.uint8 or face.ndim != 3 or face.shape[2] != 3:
        raise ValueError(f"expected a uint8 H x W x 3 image, got {face.dtype} {face.shape}")
    return face


def official_cdf(channel: np.ndarray) -> np.ndarray:
    """``calculate_cdf``: cumulative 256-bin histogram of uint8 values divided by its maximum."""
    histogram = np.bincount(np.asarray(channel, np.uint8).ravel(), minlength=HISTOGRAM_BINS)
    cdf = np.cumsum(histogram)
    return cdf / float(cdf.max())


def official_lookup_table(source_cdf: np.ndarray, reference_cdf: np.ndarray) -> np.ndarray:
    """``calculate_lookup``: float64 table of 256 values.

    Source value ``s`` maps to the smallest reference value ``r`` with
    ``reference_cdf[r] >= source_cdf[s]``; when there is none, the value looked up for ``s - 1``
    carries over (0 for ``s = 0``). ``reference_cdf`` is non-decreasing, so the first such ``r``
    is a left binary search.
    """
    found = np.searchsorted(reference_cdf, source_cdf, side="left")
    table = np.zeros(len(source_cdf))
    previous = 0
    for value, index in enumerate(found):
        if index < len(reference_cdf):
            previous = int(index)
        table[value] = previous
    return table


def match_histograms_official(source_face: np.ndarray, reference_uint8: np.ndarray) -> np.ndarray:
    """The official ``match_histograms`` (section 8 step 4): per-channel histogram matching.

    Each channel of ``source_face`` is mapped through the lookup table of its cdf against the cdf
    of the same channel of ``reference_uint8`` with ``cv2.LUT``, then ``cv2.convertScaleAbs``
    gives uint8. The official code works in BGR order; channels are independent, so RGB in gives
    the same RGB out. Both images are uint8 ``H x W x 3`` (sizes may differ).
    """
    source_face = _check_face(source_face)
    reference_uint8 = _check_face(reference_uint8)
    channels = []
    for c in range(3):
        source = np.ascontiguousarray(source_face[..., c])
        table = official_lookup_table(official_cdf(source), official_cdf(reference_uint8[..., c]))
        channels.append(cv2.LUT(source, table))
    return cv2.convertScaleAbs(np.dstack(channels))


def aligned_reference(photo: np.ndarray, transform: SimilarityTransform, size: int) -> np.ndarray:
    """The photo's face crop that colours are matched to: bilinear, 0..255, truncated to uint8."""
    warped = warp(_check_face(photo), transform, output_shape=(size, size, 3), order=1,
                  mode="constant", cval=0.0, clip=True, preserve_range=True)
    return warped.astype(np.uint8)


def forward_mask(photo_shape: Sequence[int], transform: SimilarityTransform, size: int
                 ) -> np.ndarray:
    """Which aligned pixels come from inside the photo: nearest-neighbour warp of ones, float64
    ``size x size x 3`` in {0, 1}."""
    ones = np.ones((photo_shape[0], photo_shape[1], 3), np.uint8)
    warped = warp(ones, transform, output_shape=(size, size, 3), order=0, mode="constant",
                  cval=0.0, preserve_range=True)
    return warped.astype(np.float64)


def backward_mask(mask: np.ndarray, transform: SimilarityTransform, shape: Sequence[int]
                  ) -> np.ndarray:
    """The forward mask brought back to the photo (nearest neighbour), float64 ``H x W x 3``."""
    warped = warp(np.asarray(mask, np.float64), transform.inverse,
                  output_shape=(shape[0], shape[1], 3), order=0, mode="constant", cval=0.0,
                  preserve_range=True)
    return warped.astype(np.float64)


def warp_back(face: np.ndarray, transform: SimilarityTransform, shape: Sequence[int]) -> np.ndarray:
    """An aligned face brought back into photo coordinates: float64 ``H x W x 3`` in 0..255.

    ``warp(face, T.inverse, (H, W, 3), order=3, preserve_range=True)``: bicubic, constant 0
    outside the face, clipped to the face's value range (0 is kept where the constant fills).
    """
    return warp(_check_face(face), transform.inverse, output_shape=(shape[0], shape[1], 3),
                order=3, mode="constant", cval=0.0, clip=True, preserve_range=True)


def blur_blend(warped_back: np.ndarray, background: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The official ``blur_blending_cv2`` followed by the caller's ``blended *= 255``.

    ``m = GaussianBlur(erode(mask * 255, ones(9, 9), iterations=3), (25, 25), 0) / 255`` (OpenCV
    defaults: erosion ignores the border, the blur reflects it as 101), then
    ``clip((warped_back * m + (1 - m) * background) / 255, 0, 1) * 255``. ``mask`` is the {0, 1}
    backward mask (float64 ``H x W x 3``); returns float64 ``H x W x 3`` in 0..255.
    """
    scaled = np.asarray(mask, np.float64) * 255.0
    kernel = np.ones((ERODE_KERNEL_SIZE, ERODE_KERNEL_SIZE), np.uint8)
    eroded = cv2.erode(scaled, kernel, iterations=ERODE_ITERATIONS)
    weight = cv2.GaussianBlur(eroded, (BLUR_KERNEL_SIZE, BLUR_KERNEL_SIZE), 0)
    weight /= 255.0
    mixed = warped_back * weight + (1 - weight) * background
    mixed /= 255.0
    return np.clip(mixed, 0.0, 1.0) * 255.0


def paste_face(photo: np.ndarray, blended: np.ndarray, face: np.ndarray,
               transform: SimilarityTransform) -> np.ndarray:
    """One step of the official loop: match ``face`` to ``photo``'s crop, warp it back, blend it
    over ``blended`` (uint8 photo or float64 0..255). Returns float64 0..255."""
    face = _check_face(face)
    size = int(face.shape[0])
    if face.shape[:2] != (size, size):
        raise ValueError(f"expected a square aligned face, got shape {face.shape}")
    reference = aligned_reference(photo, transform, size)
    matched = match_histograms_official(face, reference)
    back = warp_back(matched, transform, photo.shape)
    mask = backward_mask(forward_mask(photo.shape, transform, size), transform, photo.shape)
    return blur_blend(back, blended, mask)


def paste_faces(restored_rgb: np.ndarray, enhanced_faces: Sequence[np.ndarray],
                transforms: Sequence[SimilarityTransform]) -> np.ndarray:
    """Stage 4 on one photo: every enhanced face blended back in order; uint8 ``H x W x 3``.

    ``enhanced_faces[k]`` (uint8 ``S x S x 3``) replaces face ``k`` whose alignment transform is
    ``transforms[k]`` (both in dlib order). The face size ``S`` (256, or 512 for HR) is taken
    from each face. Without faces the photo comes back unchanged.
    """
    restored_rgb = _check_face(restored_rgb)
    if len(enhanced_faces) != len(transforms):
        raise ValueError(f"{len(enhanced_faces)} faces but {len(transforms)} transforms")
    blended = restored_rgb
    for face, transform in zip(enhanced_faces, transforms):
        blended = paste_face(restored_rgb, blended, face, transform)
    return img_as_ubyte(blended / 255.0)
