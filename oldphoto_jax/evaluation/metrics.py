"""Full-reference image metrics (scikit-image): PSNR and SSIM on 8-bit colour images."""
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
