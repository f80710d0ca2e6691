"""The classical baseline: OpenCV non-local-means denoising, then Telea inpainting of a mask."""
from __future__ import annotations

import cv2
import numpy as np

# cv2.fastNlMeansDenoisingColored settings (OpenCV's documented defaults but a stronger h, as
# commonly used for noisy photos) and the inpainting radius. Fixed: not tuned on the test set.
NLM_H = 10
NLM_H_COLOR = 10
NLM_TEMPLATE = 7
NLM_SEARCH = 21
INPAINT_RADIUS = 3


def classical_restore(degraded: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Denoise ``degraded`` (uint8 RGB) with non-local means, then fill ``mask`` (bool, True =
    damaged) by Telea's fast-marching inpainting. The baseline is given the true mask."""
    if degraded.dtype != np.uint8 or degraded.ndim != 3 or degraded.shape[2] != 3:
        raise ValueError(f"expected uint8 RGB, got {degraded.dtype} {degraded.shape}")
    if mask.shape != degraded.shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match image {degraded.shape[:2]}")
    bgr = cv2.cvtColor(degraded, cv2.COLOR_RGB2BGR)
    denoised = cv2.fastNlMeansDenoisingColored(bgr, None, NLM_H, NLM_H_COLOR, NLM_TEMPLATE,
                                               NLM_SEARCH)
    holes = mask.astype(np.uint8) * 255
    if holes.any():
        denoised = cv2.inpaint(denoised, holes, INPAINT_RADIUS, cv2.INPAINT_TELEA)
    return cv2.cvtColor(denoised, cv2.COLOR_BGR2RGB)
