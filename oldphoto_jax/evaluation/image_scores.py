"""Full-reference image metrics (scikit-image): PSNR and SSIM on 8-bit colour images, and the
global colour offset diagnosis (what a restoration's overall colour cast costs in PSNR)."""
from __future__ import annotations

import numpy as np
from skimage import metrics as sk_metrics

DATA_RANGE = 255


def _check(reference: np.ndarray, image: np.ndarray) -> None:
    if reference.shape != image.shape:
        raise ValueError(f"shapes differ: reference {reference.shape}, image {image.shape}")
    if reference.ndim != 3 or reference.shape[2] != 3:
        raise ValueError(f"expected H x W x 3 colour images, got {reference.shape}")


def psnr(reference: np.ndarray, image: np.ndarray) -> float:
    """PSNR in dB over all three channels (data range 255)."""
    _check(reference, image)
    return float(sk_metrics.peak_signal_noise_ratio(reference, image, data_range=DATA_RANGE))


def ssim(reference: np.ndarray, image: np.ndarray) -> float:
    """SSIM averaged over the colour channels (scikit-image defaults: 7x7 uniform window)."""
    _check(reference, image)
    return float(sk_metrics.structural_similarity(reference, image, data_range=DATA_RANGE,
                                                  channel_axis=2))


def mean_colour_offset(reference: np.ndarray, image: np.ndarray) -> np.ndarray:
    """The mean of ``image - reference`` per colour channel (float64, in levels of 255)."""
    _check(reference, image)
    difference = image.astype(np.float64) - reference.astype(np.float64)
    return difference.reshape(-1, difference.shape[-1]).mean(axis=0)


def offset_removed(reference: np.ndarray, image: np.ndarray) -> np.ndarray:
    """``image`` less its :func:`mean_colour_offset` from ``reference`` (rounded, clipped uint8):
    what an image would score if only its global colour cast were fixed."""
    shifted = image.astype(np.float64) - mean_colour_offset(reference, image)
    return np.clip(np.round(shifted), 0, 255).astype(np.uint8)


def psnr_offset_removed(reference: np.ndarray, image: np.ndarray) -> float:
    """:func:`psnr` of :func:`offset_removed`: a diagnosis, not a score (it looks at the
    reference to remove the cast). Its gap to :func:`psnr` is what the global colour costs."""
    return psnr(reference, offset_removed(reference, image))
