"""Stage-1 post-processing of the official code: network outputs to the images written to disk.

Reproduces, without PyTorch or torchvision (reference sections 2.3, 3.5, 7.4):

* ``torchvision.utils.save_image(t, nrow=1, padding=0, normalize=...)`` for one image:
  with ``normalize=True`` the tensor is min-max stretched over all its values jointly,
  ``v = (v - min) / max(max - min, 1e-5)``; then ``uint8 = trunc(clamp(v * 255 + 0.5, 0, 255))``,
  all in float32 like torch (one-channel tensors are written as three equal channels);
* detection: ``sigmoid`` probabilities brought back to the photo size with legacy nearest
  interpolation, thresholded at ``>= 0.4`` and saved with ``normalize=True``;
* test.py: ``restored_image`` = ``save_image((out + 1) / 2, normalize=True)``;
* face stage: ``save_image((out + 1) / 2)`` without normalisation.

Network tensors are float32 NHWC; written images are uint8 ``H x W x 3`` RGB numpy arrays.
"""
from __future__ import annotations

import numpy as np

from oldphoto_jax.layers import nearest_source_indices

# detection.py: ``(P >= 0.4).float()``.
SCRATCH_THRESHOLD = 0.4
# torchvision's ``norm_ip``: ``div_(max(high - low, 1e-5))``.
MIN_RANGE = 1e-5


def _quantize(unit: np.ndarray) -> np.ndarray:
    """save_image's last step: ``mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)`` in float32."""
    scaled = unit.astype(np.float32) * np.float32(255.0) + np.float32(0.5)
    return np.clip(scaled, np.float32(0.0), np.float32(255.0)).astype(np.uint8)


def _minmax_stretch(values: np.ndarray) -> np.ndarray:
    """torchvision's ``normalize=True`` on a float32 tensor: joint min-max over all values.

    ``low``/``high`` become Python floats and ``max(high - low, 1e-5)`` is taken in float64,
    then the float32 tensor is shifted and divided (true float32 division). A constant tensor
    maps to all zeros.
    """
    values = values.astype(np.float32)
    low, high = float(values.min()), float(values.max())
    span = np.float32(max(high - low, MIN_RANGE))
    return (values - np.float32(low)) / span


def _as_hwc_image(tensor: np.ndarray) -> np.ndarray:
    """Batch-1 NHWC (or HWC) tensor -> ``H x W x C`` with one channel repeated to three."""
    tensor = np.asarray(tensor)
    if tensor.ndim == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"expected a batch of one image, got shape {tensor.shape}")
        tensor = tensor[0]
    if tensor.ndim != 3:
        raise ValueError(f"expected an H x W x C image, got shape {tensor.shape}")
    if tensor.shape[-1] == 1:
        tensor = np.repeat(tensor, 3, axis=-1)
    return tensor


def _to_unit_range(network_output: np.ndarray) -> np.ndarray:
    """``(out + 1.0) / 2.0`` in float32, the argument test.py and test_face.py give save_image."""
    out = np.asarray(network_output, dtype=np.float32)
    return (out + np.float32(1.0)) / np.float32(2.0)


def minmax_png(network_output: np.ndarray) -> np.ndarray:
    """test.py's ``restored_image``: ``save_image((out + 1) / 2, normalize=True)``.

    ``network_output``: float32 NHWC, batch 1, in the tanh range. The stretch runs over all
    channels jointly (not per channel). Returns uint8 ``H x W x 3``. This stretched image is
    also what face detection (stage 2) sees.
    """
    return _quantize(_minmax_stretch(_as_hwc_image(_to_unit_range(network_output))))


def restored_png(network_output: np.ndarray, restored_range: str = "minmax") -> np.ndarray:
    """Global restoration's output as written: :func:`minmax_png` (``"minmax"``, the official
    test.py) or clamped as rendered (``"clamp"``, models that keep each photo's colour
    statistics; ``oldphoto_jax.model_files``). ``network_output``: float32 NHWC, batch 1."""
    if restored_range == "minmax":
        return minmax_png(network_output)
    if restored_range == "clamp":
        return clamped_png(_as_hwc_image(network_output))
    raise ValueError(f"restored_range must be 'minmax' or 'clamp', got {restored_range!r}")


def clamped_png(network_output: np.ndarray) -> np.ndarray:
    """Face stage: ``save_image((out + 1) / 2)`` with no normalisation.

    ``network_output``: float32 ``... x H x W x 3`` in the tanh range (any leading batch axes are
    kept). Values are clamped by the final ``clamp(v * 255 + 0.5, 0, 255)``.
    """
    return _quantize(_to_unit_range(network_output))


def scratch_mask_from_probability(probability: np.ndarray, size: tuple[int, int],
                                  threshold: float = SCRATCH_THRESHOLD) -> np.ndarray:
    """detection.py post-processing: UNet probability -> binary mask at the photo's size.

    ``probability``: ``sigmoid(logits)``, float32 ``1 x h' x w' x 1``. It is brought to
    ``size = (H, W)`` (the x16 photo) with PyTorch's legacy nearest interpolation
    (``floor(dst * in / out)``), then ``P >= threshold`` compared in float32.
    Returns float32 ``H x W`` in {0, 1} (1 = scratch).
    """
    prob = np.asarray(probability, dtype=np.float32)
    if prob.ndim != 4 or prob.shape[0] != 1 or prob.shape[-1] != 1:
        raise ValueError(f"expected a 1 x h x w x 1 probability map, got shape {prob.shape}")
    rows = nearest_source_indices(prob.shape[1], size[0])
    cols = nearest_source_indices(prob.shape[2], size[1])
    full = prob[0, :, :, 0][rows][:, cols]
    return (full >= np.float32(threshold)).astype(np.float32)


def mask_png(mask: np.ndarray) -> np.ndarray:
    """detection.py's mask file: ``save_image(mask, normalize=True)`` of a {0, 1} ``H x W`` mask.

    Gives an RGB image with 0/255 values. Quirk reproduced: the min-max stretch maps a constant
    mask to zeros, so a mask that is scratch everywhere (all ones) is written as *no* scratch
    (all zeros); an all-zero mask stays zero.
    """
    mask = np.asarray(mask, dtype=np.float32)
    if mask.ndim != 2:
        raise ValueError(f"expected an H x W mask, got shape {mask.shape}")
    return _quantize(_minmax_stretch(_as_hwc_image(mask[:, :, None])))
