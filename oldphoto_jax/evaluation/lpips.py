"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric"), the "lin" variant on VGG16, computed in JAX from user-supplied weights.

``d(x, y) = sum_l mean_{h,w} sum_c w_{l,c} (f_l(x) - f_l(y))^2`` where ``f_l`` are the channel
unit-normalised ReLU outputs relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3 of VGG16 fed with
[-1, 1] images passed through the LPIPS scaling layer, and ``w_l`` the learned non-negative
per-channel weights (the 1x1 convs ``lin0``..``lin4``). Lower is more similar; 0 for identical
images. Nothing is downloaded: see :func:`load_lpips_vgg_npz` for how to make the weights file.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from oldphoto_jax.evaluation.npz_weights import NpzWeights
from oldphoto_jax.layers import conv2d

# torchvision ``vgg16().features`` up to relu5_3: conv widths by torchvision index; "M" = max pool.
VGG16_LAYERS: tuple[tuple[int, int | str], ...] = (
    (0, 64), (2, 64), (4, "M"), (5, 128), (7, 128), (9, "M"),
    (10, 256), (12, 256), (14, 256), (16, "M"), (17, 512), (19, 512), (21, 512), (23, "M"),
    (24, 512), (26, 512), (28, 512))
# The ReLUs after these convs are relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (the ends of the
# lpips package's slices features[0:4], [4:9], [9:16], [16:23], [23:30]).
VGG16_TAPS = (2, 7, 14, 21, 28)
LIN_CHANNELS = (64, 128, 256, 512, 512)
# The lpips ScalingLayer (inputs in [-1, 1]): x = (x - SHIFT) / SCALE.
SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
SCALE = np.array([0.458, 0.448, 0.450], np.float32)
EPS = 1e-10
MIN_SIDE = 16  # four 2x2 pools before relu5_3


def load_lpips_vgg_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """LPIPS-VGG weights from one ``.npz``: ``{"features_{i}_kernel": HWIO, "features_{i}_bias",
    "lin_{k}": (C_k,)}`` (float32 numpy arrays; a flat dict, i.e. a JAX pytree).

    The file holds torchvision's VGG16 ``features.{i}.weight`` (OIHW, ``(out, in, 3, 3)``) and
    ``features.{i}.bias`` for the convs ``i`` in 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28,
    and the LPIPS linear layers ``lin{k}.model.1.weight`` of shape ``(1, C_k, 1, 1)``,
    ``C = 64, 128, 256, 512, 512``, as in the state dict of ``lpips.LPIPS(net='vgg')`` (other
    keys are ignored). Make it once where torch, torchvision's ImageNet weights and the ``lpips``
    package are available (the lpips package builds its VGG16 from the same torchvision
    ``IMAGENET1K_V1`` weights, and ships the linear layers as ``lpips/weights/v0.1/vgg.pth``)::

        import numpy as np, torch, torchvision, lpips, os
        vgg = torchvision.models.vgg16(weights=torchvision.models.VGG16_Weights.IMAGENET1K_V1)
        state_dict = {f"features.{k}": v for k, v in vgg.features.state_dict().items()}
        lin_path = os.path.join(os.path.dirname(lpips.__file__), "weights", "v0.1", "vgg.pth")
        state_dict.update(torch.load(lin_path, map_location="cpu"))  # lin0.model.1.weight, ...
        np.savez("lpips_vgg.npz", **{k: v.numpy() for k, v in state_dict.items()})

    Equivalently, from a loaded ``lpips.LPIPS(net='vgg')`` (whose VGG keys are
    ``net.slice{n}.{i}.weight`` with the same torchvision index ``i``)::

        import re
        model = lpips.LPIPS(net="vgg")
        state_dict = {re.sub(r"^net\\.slice\\d\\.", "features.", k): v
                      for k, v in model.state_dict().items()}
        np.savez("lpips_vgg.npz", **{k: v.numpy() for k, v in state_dict.items()})

    Then pass ``--lpips_weights lpips_vgg.npz`` to ``python -m oldphoto_jax.evaluate``.

    Raises ValueError naming the key when an array is missing or has the wrong shape.
    """
    get = NpzWeights(path, "torchvision VGG16 features.* and LPIPS lin*.model.1.weight "
                           "arrays").get

    weights: dict[str, np.ndarray] = {}
    channels = 3
    for index, spec in VGG16_LAYERS:
        if spec == "M":
            continue
        kernel = get(f"features.{index}.weight", (int(spec), channels, 3, 3))
        weights[f"features_{index}_kernel"] = kernel.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        weights[f"features_{index}_bias"] = get(f"features.{index}.bias", (int(spec),))
        channels = int(spec)
    for k, c in enumerate(LIN_CHANNELS):
        weights[f"lin_{k}"] = get(f"lin{k}.model.1.weight", (1, c, 1, 1)).reshape(c)
    return weights


def vgg16_taps(weights: dict, x: jax.Array) -> list[jax.Array]:
    """relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 of NHWC ``x`` (already scaled)."""
    taps = []
    for index, spec in VGG16_LAYERS:
        if spec == "M":
            x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1),
                                      "VALID")
            continue
        x = conv2d(x, weights[f"features_{index}_kernel"], padding=1, precision="highest")
        x = jax.nn.relu(x + weights[f"features_{index}_bias"])
        if index in VGG16_TAPS:
            taps.append(x)
    return taps


def _unit_normalize(x: jax.Array) -> jax.Array:
    return x / (jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True)) + EPS)


@jax.jit
def _features(weights: dict, image: jax.Array) -> list[jax.Array]:
    """Channel unit-normalised LPIPS taps of one uint8 HxWx3 image, each 1xhxwxC."""
    x = image[None].astype(jnp.float32) / 127.5 - 1.0  # lpips' im2tensor: [0, 255] -> [-1, 1]
    x = (x - SHIFT) / SCALE
    return [_unit_normalize(feat) for feat in vgg16_taps(weights, x)]


@jax.jit
def _distance(lins: list[jax.Array], feats_a: list[jax.Array],
              feats_b: list[jax.Array]) -> jax.Array:
    """sum over layers of the spatial mean of the lin-weighted squared feature differences."""
    total = jnp.zeros((), jnp.float32)
    for lin, a, b in zip(lins, feats_a, feats_b):
        total = total + jnp.mean(jnp.sum((a - b) ** 2 * lin, axis=-1))
    return total


def _check(reference: np.ndarray, image: np.ndarray) -> None:
    if reference.shape != image.shape:
        raise ValueError(f"shapes differ: reference {reference.shape}, image {image.shape}")
    if reference.ndim != 3 or reference.shape[2] != 3:
        raise ValueError(f"expected H x W x 3 colour images, got {reference.shape}")
    if min(reference.shape[:2]) < MIN_SIDE:
        raise ValueError(f"images must be at least {MIN_SIDE} x {MIN_SIDE} for LPIPS-VGG, got "
                         f"{reference.shape[:2]}")
    if reference.dtype != np.uint8 or image.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {reference.dtype} and {image.dtype}")


def lpips_distances(weights: dict, reference_uint8: np.ndarray,
                    images_uint8: list[np.ndarray]) -> list[float]:
    """LPIPS between the reference and each image (the reference's features computed once).

    Each image goes through VGG16 on its own, so that equal images give equal features and the
    distance is exactly 0 for identical images and exactly symmetric.
    """
    reference = np.asarray(reference_uint8)
    images = [np.asarray(image) for image in images_uint8]
    for image in images:
        _check(reference, image)
    if not images:
        return []
    weights = {k: jnp.asarray(v) for k, v in weights.items()}  # one host-to-device copy
    lins = [weights[f"lin_{k}"] for k in range(len(LIN_CHANNELS))]
    ref_feats = _features(weights, reference)
    return [float(_distance(lins, ref_feats, _features(weights, image))) for image in images]
