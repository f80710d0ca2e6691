"""FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium"): the Fréchet distance between Gaussians fitted to the Inception-v3 pool3 features
(2048 per image) of two sets of images, computed in JAX from user-supplied weights.

The network is the Inception-v3 of the FID reference implementation (the TensorFlow graph of
2015-12-05, as ported to PyTorch by the ``pytorch-fid`` package): torchvision's ``Inception3``
layout, but the average pools inside the Mixed_5*, Mixed_6b-e and Mixed_7b blocks leave the
padding out of their counts, and Mixed_7c pools its last branch with a max pool. Each image is
scaled to [0, 1], resized to 299 x 299 (bilinear, ``align_corners=False``, no antialiasing), mapped
to [-1, 1], and its last feature map averaged over space. ``FID = |mu_a - mu_b|^2 + Tr(S_a + S_b -
2 (S_a S_b)^(1/2))``; lower is closer. With few images the covariances are rank-deficient and FID
is dominated by estimation noise: it compares methods on the same photos, nothing more.

Nothing is downloaded: see :func:`load_fid_inception_npz` for how to make the weights file.
"""
from __future__ import annotations

import functools
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from scipy import linalg

from oldphoto_jax.evaluation.npz_weights import NpzWeights
from oldphoto_jax.layers import conv2d, resize_bilinear

INPUT_SIDE = 299
FEATURES = 2048
BN_EPS = 1e-3  # torchvision's BasicConv2d


# ---- the network, written once for both the forward pass and the loader's expected shapes ----

class _Convs:
    """Conv + batch norm + ReLU units by name: applies loaded weights, or (``weights=None``)
    records the weight shape each unit needs (for the loader) while computing with zeros."""

    def __init__(self, weights: dict | None):
        self.weights = weights
        self.shapes: dict[str, tuple[int, int, int, int]] = {}

    def __call__(self, name: str, x: jax.Array, out: int, kernel, stride: int = 1,
                 padding=0) -> jax.Array:
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        ph, pw = (padding, padding) if isinstance(padding, int) else padding
        if self.weights is None:
            self.shapes[name] = (out, int(x.shape[-1]), kh, kw)  # torch OIHW
            scaled = jnp.zeros((kh, kw, x.shape[-1], out), x.dtype)
            shift = jnp.zeros((out,), x.dtype)
        else:
            scaled, shift = self.weights[f"{name}.kernel"], self.weights[f"{name}.shift"]
        y = conv2d(x, scaled, stride=stride, padding_hw=((ph, ph), (pw, pw)),
                   precision="highest")
        return jax.nn.relu(y + shift)


def _max_pool(x: jax.Array, stride: int, padding: int = 0) -> jax.Array:
    pad = ((0, 0), (padding, padding), (padding, padding), (0, 0))
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, stride, stride, 1),
                                 pad)


def avg_pool_3x3_excluding_padding(x: jax.Array) -> jax.Array:
    """``F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)`` on NHWC."""
    pad = ((0, 0), (1, 1), (1, 1), (0, 0))
    window, strides = (1, 3, 3, 1), (1, 1, 1, 1)
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, pad)
    ones = jnp.ones((1,) + x.shape[1:3] + (1,), x.dtype)
    count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, window, strides, pad)
    return total / count


def _block_a(c: _Convs, name: str, x, pool_features: int):
    b1 = c(f"{name}.branch1x1", x, 64, 1)
    b5 = c(f"{name}.branch5x5_1", x, 48, 1)
    b5 = c(f"{name}.branch5x5_2", b5, 64, 5, padding=2)
    b3 = c(f"{name}.branch3x3dbl_1", x, 64, 1)
    b3 = c(f"{name}.branch3x3dbl_2", b3, 96, 3, padding=1)
    b3 = c(f"{name}.branch3x3dbl_3", b3, 96, 3, padding=1)
    bp = c(f"{name}.branch_pool", avg_pool_3x3_excluding_padding(x), pool_features, 1)
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


def _block_b(c: _Convs, name: str, x):
    b3 = c(f"{name}.branch3x3", x, 384, 3, stride=2)
    bd = c(f"{name}.branch3x3dbl_1", x, 64, 1)
    bd = c(f"{name}.branch3x3dbl_2", bd, 96, 3, padding=1)
    bd = c(f"{name}.branch3x3dbl_3", bd, 96, 3, stride=2)
    return jnp.concatenate([b3, bd, _max_pool(x, 2)], axis=-1)


def _block_c(c: _Convs, name: str, x, c7: int):
    b1 = c(f"{name}.branch1x1", x, 192, 1)
    b7 = c(f"{name}.branch7x7_1", x, c7, 1)
    b7 = c(f"{name}.branch7x7_2", b7, c7, (1, 7), padding=(0, 3))
    b7 = c(f"{name}.branch7x7_3", b7, 192, (7, 1), padding=(3, 0))
    bd = c(f"{name}.branch7x7dbl_1", x, c7, 1)
    bd = c(f"{name}.branch7x7dbl_2", bd, c7, (7, 1), padding=(3, 0))
    bd = c(f"{name}.branch7x7dbl_3", bd, c7, (1, 7), padding=(0, 3))
    bd = c(f"{name}.branch7x7dbl_4", bd, c7, (7, 1), padding=(3, 0))
    bd = c(f"{name}.branch7x7dbl_5", bd, 192, (1, 7), padding=(0, 3))
    bp = c(f"{name}.branch_pool", avg_pool_3x3_excluding_padding(x), 192, 1)
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


def _block_d(c: _Convs, name: str, x):
    b3 = c(f"{name}.branch3x3_1", x, 192, 1)
    b3 = c(f"{name}.branch3x3_2", b3, 320, 3, stride=2)
    b7 = c(f"{name}.branch7x7x3_1", x, 192, 1)
    b7 = c(f"{name}.branch7x7x3_2", b7, 192, (1, 7), padding=(0, 3))
    b7 = c(f"{name}.branch7x7x3_3", b7, 192, (7, 1), padding=(3, 0))
    b7 = c(f"{name}.branch7x7x3_4", b7, 192, 3, stride=2)
    return jnp.concatenate([b3, b7, _max_pool(x, 2)], axis=-1)


def _block_e(c: _Convs, name: str, x, pool: Callable):
    b1 = c(f"{name}.branch1x1", x, 320, 1)
    b3 = c(f"{name}.branch3x3_1", x, 384, 1)
    b3 = jnp.concatenate([c(f"{name}.branch3x3_2a", b3, 384, (1, 3), padding=(0, 1)),
                          c(f"{name}.branch3x3_2b", b3, 384, (3, 1), padding=(1, 0))], axis=-1)
    bd = c(f"{name}.branch3x3dbl_1", x, 448, 1)
    bd = c(f"{name}.branch3x3dbl_2", bd, 384, 3, padding=1)
    bd = jnp.concatenate([c(f"{name}.branch3x3dbl_3a", bd, 384, (1, 3), padding=(0, 1)),
                          c(f"{name}.branch3x3dbl_3b", bd, 384, (3, 1), padding=(1, 0))], axis=-1)
    bp = c(f"{name}.branch_pool", pool(x), 192, 1)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


def _pool3(c: _Convs, x: jax.Array) -> jax.Array:
    """N x 299 x 299 x 3 in [-1, 1] -> N x 2048 pool3 features."""
    x = c("Conv2d_1a_3x3", x, 32, 3, stride=2)
    x = c("Conv2d_2a_3x3", x, 32, 3)
    x = c("Conv2d_2b_3x3", x, 64, 3, padding=1)
    x = _max_pool(x, 2)
    x = c("Conv2d_3b_1x1", x, 80, 1)
    x = c("Conv2d_4a_3x3", x, 192, 3)
    x = _max_pool(x, 2)
    x = _block_a(c, "Mixed_5b", x, 32)
    x = _block_a(c, "Mixed_5c", x, 64)
    x = _block_a(c, "Mixed_5d", x, 64)
    x = _block_b(c, "Mixed_6a", x)
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        x = _block_c(c, name, x, c7)
    x = _block_d(c, "Mixed_7a", x)
    x = _block_e(c, "Mixed_7b", x, avg_pool_3x3_excluding_padding)
    x = _block_e(c, "Mixed_7c", x, functools.partial(_max_pool, stride=1, padding=1))
    return jnp.mean(x, axis=(1, 2))


@functools.lru_cache(maxsize=1)
def conv_shapes() -> dict[str, tuple[int, int, int, int]]:
    """``{unit name: (out, in, kh, kw)}`` of every conv of the network (torch OIHW order)."""
    recorder = _Convs(None)
    jax.eval_shape(lambda x: _pool3(recorder, x),
                   jax.ShapeDtypeStruct((1, INPUT_SIDE, INPUT_SIDE, 3), jnp.float32))
    return dict(recorder.shapes)


# ---- weights ----

def load_fid_inception_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """FID Inception weights from one ``.npz`` holding the ``pytorch-fid`` state dict: for each
    conv unit ``U`` (``Conv2d_1a_3x3``, ``Mixed_5b.branch1x1``, ...; :func:`conv_shapes`)
    ``U.conv.weight`` (OIHW, no bias) and ``U.bn.weight``, ``U.bn.bias``, ``U.bn.running_mean``,
    ``U.bn.running_var`` (other keys, e.g. ``fc.*``, are ignored). Make it once where torch and
    the FID weights are (``pytorch-fid`` fetches ``pt_inception-2015-12-05-6726825d.pth`` on its
    first use)::

        import numpy as np, torch
        state_dict = torch.load("pt_inception-2015-12-05-6726825d.pth", map_location="cpu")
        np.savez("fid_inception.npz", **{k: v.numpy() for k, v in state_dict.items()})

    Then pass ``--fid_weights fid_inception.npz`` to ``python -m oldphoto_jax.evaluate``.

    Each batch norm (eps 1e-3) is folded into its conv: ``kernel * s`` and ``bias - mean * s``
    with ``s = gamma / sqrt(var + eps)``. Returns ``{"U.kernel": HWIO, "U.shift": (out,)}``.
    Raises ValueError naming the key when an array is missing or has the wrong shape.
    """
    file = NpzWeights(path, "the pytorch-fid Inception-v3 state dict: <unit>.conv.weight and "
                            "<unit>.bn.*")

    def get(key: str, shape: tuple[int, ...]) -> np.ndarray:
        return file.get(key, shape, np.float64)

    weights = {}
    for unit, shape in conv_shapes().items():
        kernel = get(f"{unit}.conv.weight", shape)
        out = shape[0]
        gamma, beta = get(f"{unit}.bn.weight", (out,)), get(f"{unit}.bn.bias", (out,))
        mean, var = get(f"{unit}.bn.running_mean", (out,)), get(f"{unit}.bn.running_var", (out,))
        scale = gamma / np.sqrt(var + BN_EPS)
        weights[f"{unit}.kernel"] = (kernel * scale[:, None, None, None]).transpose(
            2, 3, 1, 0).astype(np.float32)
        weights[f"{unit}.shift"] = (beta - mean * scale).astype(np.float32)
    return weights


# ---- features and the distance ----

@jax.jit
def _features(weights: dict, image_uint8: jax.Array) -> jax.Array:
    x = image_uint8[None].astype(jnp.float32) / 255.0
    x = resize_bilinear(x, (INPUT_SIDE, INPUT_SIDE))
    return _pool3(_Convs(weights), 2.0 * x - 1.0)[0]


def inception_features(weights: dict, images_uint8: list[np.ndarray]) -> np.ndarray:
    """``len(images) x 2048`` pool3 features of uint8 H x W x 3 RGB images (any sizes; one
    compilation per size)."""
    device_weights = {k: jnp.asarray(v) for k, v in weights.items()}
    rows = []
    for image in images_uint8:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected uint8 H x W x 3 images, got {image.dtype} {image.shape}")
        rows.append(np.asarray(_features(device_weights, image), np.float64))
    return np.stack(rows) if rows else np.zeros((0, FEATURES))


def frechet_distance(mu_a: np.ndarray, sigma_a: np.ndarray, mu_b: np.ndarray,
                     sigma_b: np.ndarray, eps: float = 1e-6) -> float:
    """``|mu_a - mu_b|^2 + Tr(S_a) + Tr(S_b) - 2 Tr((S_a S_b)^(1/2))``. When the product's square
    root is not finite (singular covariances), ``eps * I`` is added to both first; a small
    imaginary part from rounding is dropped (a large one is an error)."""
    mu_a, mu_b = np.atleast_1d(mu_a), np.atleast_1d(mu_b)
    sigma_a, sigma_b = np.atleast_2d(sigma_a), np.atleast_2d(sigma_b)
    if mu_a.shape != mu_b.shape or sigma_a.shape != sigma_b.shape:
        raise ValueError("the two Gaussians have different dimensions")
    root = linalg.sqrtm(sigma_a @ sigma_b)
    if not np.isfinite(root).all():
        offset = np.eye(sigma_a.shape[0]) * eps
        root = linalg.sqrtm((sigma_a + offset) @ (sigma_b + offset))
    if np.iscomplexobj(root):
        if not np.allclose(np.diagonal(root).imag, 0, atol=1e-3):
            raise ValueError(f"complex square root: imaginary part up to "
                             f"{np.max(np.abs(root.imag)):.3g}")
        root = root.real
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * np.trace(root))


def features_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID of two sets of feature rows, the same number as ``frechet_distance(*gaussian(a),
    *gaussian(b))`` computed without any ``d x d`` matrix: with ``A``, ``B`` the centred rows
    scaled by ``1/sqrt(n - 1)`` (so ``S_a = A^T A``), the non-zero eigenvalues of ``S_a S_b`` are
    the squared singular values of ``A B^T``, so ``Tr((S_a S_b)^(1/2))`` is its nuclear norm;
    exact for rank-deficient covariances (fewer images than features), no offset needed. Both
    factors are first reduced by a thin QR (``A = Q_a R_a``: ``A B^T`` and ``R_a R_b^T`` share
    their singular values), so the matrix decomposed is at most ``min(n, d)`` on each side
    (``A B^T`` itself is ``n_a x n_b``: many rows, few features would not fit in memory)."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected two sets of equal-length feature rows, got {a.shape} and "
                         f"{b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("FID needs at least 2 images per set")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    scaled_a = (a - mu_a) / np.sqrt(len(a) - 1)
    scaled_b = (b - mu_b) / np.sqrt(len(b) - 1)
    r_a = np.linalg.qr(scaled_a, mode="r")
    r_b = np.linalg.qr(scaled_b, mode="r")
    nuclear = np.linalg.svd(r_a @ r_b.T, compute_uv=False).sum()
    diff = mu_a - mu_b
    return float(diff @ diff + np.sum(scaled_a ** 2) + np.sum(scaled_b ** 2) - 2.0 * nuclear)


def gaussian(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (``np.cov``, rows = images) of a set of feature rows."""
    if len(features) < 2:
        raise ValueError("FID needs at least 2 images per set")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def fid(weights: dict, reference_uint8: list[np.ndarray], images_uint8: list[np.ndarray]) -> float:
    """FID between two sets of uint8 RGB images (lower is closer)."""
    return features_distance(inception_features(weights, reference_uint8),
                             inception_features(weights, images_uint8))
