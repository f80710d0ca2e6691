"""Weight-free image-space features of crops: what the latent-space gap is compared against.

Two fixed descriptions of a uint8 RGB crop, no learned weights:

* :func:`thumbnail` ("pixels"): the crop box-averaged to ``side x side`` RGB values in [0, 1]
  (the pixels themselves, at a resolution where a few hundred crops can fit a Gaussian);
* :func:`statistics` ("image statistics"): :data:`STATISTICS` — colour (channel means and
  deviations, saturation, opponent colours), tone (luma percentiles, clipped shadows and
  highlights) and texture (gradient magnitudes, Laplacian energy, the share of fine detail),
  the properties old-photo degradations change (fading, colour casts, blur, noise, scratches).
"""
from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

STATISTICS = (
    "mean_r", "mean_g", "mean_b", "std_r", "std_g", "std_b",
    "luma_p05", "luma_p50", "luma_p95", "dark_fraction", "bright_fraction",
    "saturation_mean", "saturation_std", "red_green_mean", "yellow_blue_mean",
    "red_green_std", "yellow_blue_std",
    "gradient_mean", "gradient_std", "gradient_p90", "laplacian_mean", "fine_detail_share",
)


def thumbnail(crop: np.ndarray, side: int = 8) -> np.ndarray:
    """``side * side * 3`` values in [0, 1]: the crop box-filtered to ``side x side``."""
    small = Image.fromarray(crop).resize((side, side), Image.Resampling.BOX)
    return np.asarray(small, np.float64).reshape(-1) / 255.0


def statistics(crop: np.ndarray) -> np.ndarray:
    """The :data:`STATISTICS` of a uint8 H x W x 3 crop (values in [0, 1] units)."""
    rgb = np.asarray(crop, np.float64) / 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    saturation = rgb.max(-1) - rgb.min(-1)
    red_green, yellow_blue = r - g, 0.5 * (r + g) - b
    gy, gx = np.gradient(luma)
    gradient = np.hypot(gx, gy)
    laplacian = ndimage.laplace(luma, mode="reflect")
    smooth = ndimage.uniform_filter(luma, 3, mode="reflect")
    total = luma.var()
    fine = (luma - smooth).var() / total if total > 1e-12 else 0.0
    p05, p50, p95 = np.percentile(luma, [5, 50, 95])
    values = [
        *rgb.mean((0, 1)), *rgb.std((0, 1)),
        p05, p50, p95, (luma < 0.03).mean(), (luma > 0.97).mean(),
        saturation.mean(), saturation.std(), red_green.mean(), yellow_blue.mean(),
        red_green.std(), yellow_blue.std(),
        gradient.mean(), gradient.std(), np.percentile(gradient, 90), np.abs(laplacian).mean(),
        fine,
    ]
    return np.asarray(values, np.float64)
