"""PyTorch-compatible primitives in NHWC, exact to float32 noise.

Every network of oldphoto-jax is built from these pieces so that a converted official checkpoint
computes what the official PyTorch code computes. The semantics follow the reference (section 0):

* reflection padding mirrors without repeating the edge pixel (``numpy`` ``mode="reflect"``);
* instance norm is per sample and channel, biased variance, eps 1e-5, no affine parameters;
* bilinear resizing is ``F.interpolate(..., mode="bilinear", align_corners=False)`` *without*
  antialiasing, also when downsampling (``jax.image.resize`` would antialias);
* nearest resizing is PyTorch's legacy ``mode="nearest"`` (``floor(dst * in/out)``);
* transposed convolution is ``nn.ConvTranspose2d`` (lhs-dilated convolution with a flipped kernel).

Layout: activations are NHWC, convolution kernels HWIO (``[kh, kw, in, out]``).
"""
from __future__ import annotations

import contextlib
import functools
import os
from typing import Any, Callable, Iterator, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from oldphoto_jax import winograd

Array = jax.Array
Precision = Any  # None, "default", "high", "highest" or a jax.lax.Precision

# PyTorch's Conv2d default bias init is U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the official training
# code re-initialises conv weights with N(0, 0.02) (reference section 10.1).
official_kernel_init = nn.initializers.normal(stddev=0.02)


def torch_bias_init(fan_in: int) -> Callable:
    bound = 1.0 / np.sqrt(max(fan_in, 1))

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def reflect_pad(x: Array, pad: int | Sequence[int]) -> Array:
    """``nn.ReflectionPad2d`` on an NHWC tensor. ``pad`` is an int or (top, bottom, left, right)."""
    if isinstance(pad, int):
        pad = (pad, pad, pad, pad)
    top, bottom, left, right = pad
    if top == bottom == left == right == 0:
        return x
    return jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), mode="reflect")


# How the gradient of a convolution with respect to its kernel is computed (training only; the
# forward pass and the input gradient are XLA's in both cases):
# * "xla": XLA's own (a convolution of the input with the output gradient);
# * "im2col": the kh*kw shifted views of the padded input stacked along channels, then one matmul
#   with the output gradient. On XLA:CPU this is faster for wide stride-1 layers on large images
#   (64 -> 64 channels at 256 px: 3.8x) but slower for narrow, strided and large-kernel ones, and
#   a whole official VAE_B step is slower with it (benchmarks/README.md). Same values up to
#   float32 summation order.
WEIGHT_GRADIENTS = ("xla", "im2col")
_weight_gradient = "xla"


def set_conv_weight_gradient(mode: str) -> None:
    """Chooses :data:`WEIGHT_GRADIENTS` mode for convolutions traced from now on."""
    global _weight_gradient
    if mode not in WEIGHT_GRADIENTS:
        raise ValueError(f"conv weight gradient must be one of {WEIGHT_GRADIENTS}, got {mode!r}")
    _weight_gradient = mode


def conv_weight_gradient() -> str:
    return _weight_gradient


@contextlib.contextmanager
def _temporarily(setter: Callable[[str], None], getter: Callable[[], str],
                 value: str) -> Iterator[None]:
    """A trace-time setting of this module, set for the duration of a ``with`` block."""
    previous = getter()
    setter(value)
    try:
        yield
    finally:
        setter(previous)


def using_conv_weight_gradient(mode: str) -> contextlib.AbstractContextManager:
    """:func:`set_conv_weight_gradient` for the duration of a ``with`` block (tracing inside)."""
    return _temporarily(set_conv_weight_gradient, conv_weight_gradient, mode)


# How a 3x3 stride-1 convolution's forward pass is computed:
# * "direct": XLA's convolution;
# * "winograd": Winograd F(2x2, 3x3) (oldphoto_jax.winograd: 16/36 of the multiply-adds, float32
#   rounding differences only, the gradient stays the direct convolution's);
# * "auto" (the default): "winograd" for the wide layers (see winograd_worthwhile) when the
#   default backend is the CPU, where XLA's convolution already runs near the peak FLOP rate;
#   "direct" on GPUs and TPUs, whose convolution libraries choose their own algorithms.
# The environment variable OLDPHOTO_JAX_CONV_ALGORITHM sets it for a whole program (infer.py,
# the benchmarks): "direct" uses 55-145 MiB less memory on the CPU, at up to 1.7x the time
# (benchmarks/README.md).
CONV_ALGORITHMS = ("auto", "direct", "winograd")
CONV_ALGORITHM_VARIABLE = "OLDPHOTO_JAX_CONV_ALGORITHM"


def _algorithm_from_environment() -> str:
    value = os.environ.get(CONV_ALGORITHM_VARIABLE, "auto").strip().lower() or "auto"
    if value not in CONV_ALGORITHMS:
        raise ValueError(f"{CONV_ALGORITHM_VARIABLE}={value!r}: must be one of "
                         f"{', '.join(CONV_ALGORITHMS)}")
    return value


_conv_algorithm = _algorithm_from_environment()


def set_conv_algorithm(algorithm: str) -> None:
    """Chooses the :data:`CONV_ALGORITHMS` entry for convolutions traced from now on."""
    global _conv_algorithm
    if algorithm not in CONV_ALGORITHMS:
        raise ValueError(f"conv algorithm must be one of {CONV_ALGORITHMS}, got {algorithm!r}")
    _conv_algorithm = algorithm


def conv_algorithm() -> str:
    return _conv_algorithm


def using_conv_algorithm(algorithm: str) -> contextlib.AbstractContextManager:
    """:func:`set_conv_algorithm` for the duration of a ``with`` block (tracing inside)."""
    return _temporarily(set_conv_algorithm, conv_algorithm, algorithm)


def winograd_worthwhile(in_features: int, out_features: int, out_pixels: int) -> bool:
    """Whether "auto" computes a 3x3 layer of these widths and output size by Winograd. The
    input and output transforms cost memory traffic per pixel and channel while the saved
    multiply-adds grow with in x out, so narrow layers are faster direct; the kernel transform
    costs in x out whatever the size, so small images are too (with 128-channel layers the face
    256 generator took 2.16 s against 1.68 s direct, and its 1024-channel layers at 8-32 px
    made it 20 % slower again; benchmarks/README.md)."""
    return (min(in_features, out_features) >= WINOGRAD_MIN_FEATURES
            and out_pixels >= WINOGRAD_MIN_PIXELS)


WINOGRAD_MIN_FEATURES = 256
WINOGRAD_MIN_PIXELS = 64 * 64


def _use_winograd(x: Array, kernel: Array, stride: int, dilation: int, groups: int,
                  lhs_dilation: int, padding_hw) -> bool:
    kh, kw, cin, cout = kernel.shape
    if (kh, kw) != (3, 3) or stride != 1 or dilation != 1 or groups != 1 or lhs_dilation != 1:
        return False
    if _conv_algorithm == "auto":
        (top, bottom), (left, right) = padding_hw
        out_pixels = (x.shape[1] + top + bottom - 2) * (x.shape[2] + left + right - 2)
        return jax.default_backend() == "cpu" and winograd_worthwhile(cin, cout, out_pixels)
    return _conv_algorithm == "winograd"


def conv2d(x: Array, kernel: Array, stride: int = 1, padding: int = 0, dilation: int = 1,
           groups: int = 1, lhs_dilation: int = 1,
           padding_hw: tuple[tuple[int, int], tuple[int, int]] | None = None,
           precision: Precision = "highest") -> Array:
    """Plain NHWC x HWIO convolution with zero padding (no bias)."""
    if padding_hw is None:
        padding_hw = ((padding, padding), (padding, padding))
    kernel = kernel.astype(x.dtype)
    if _weight_gradient == "xla" and _use_winograd(x, kernel, stride, dilation, groups,
                                                   lhs_dilation, padding_hw):
        return winograd.conv3x3(x, kernel, tuple(map(tuple, padding_hw)), precision,
                                winograd.BAND_TILES)
    if _weight_gradient == "im2col" and groups == 1:
        # Zero padding and input dilation become an explicit lax.pad, then a VALID convolution.
        (top, bottom), (left, right) = padding_hw
        interior = lhs_dilation - 1
        padded = jax.lax.pad(x, jnp.zeros((), x.dtype),
                             ((0, 0, 0), (top, bottom, interior), (left, right, interior),
                              (0, 0, 0)))
        return _valid_conv_im2col_grad(padded, kernel, stride, dilation, precision)
    return jax.lax.conv_general_dilated(
        x, kernel,
        window_strides=(stride, stride),
        padding=padding_hw,
        lhs_dilation=(lhs_dilation, lhs_dilation),
        rhs_dilation=(dilation, dilation),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
        precision=precision,
    )


def _phase_plan(size: int, out: int, k: int, stride: int, lo: int) -> list[tuple]:
    """Per output phase r (outputs r, r + stride, ...) along one axis of a transposed
    convolution: (kernel taps, padding low, padding high) of the stride-1 VALID convolution of
    the undilated input that computes that phase. Paddings may be negative (a crop)."""
    plan = []
    for r in range(stride):
        first = (lo - r) % stride           # taps that land on input pixels, not inserted zeros
        taps = tuple(range(first, k, stride))
        offset = (r + first - lo) // stride  # input row of the first tap for output row 0
        count = -(-(out - r) // stride)      # outputs of this phase
        plan.append((taps, -offset, offset + count + len(taps) - 2 - (size - 1)))
    return plan


def conv_transpose(x: Array, kernel: Array, stride: int, padding_hw, precision: Precision =
                   "highest") -> Array:
    """The convolution of the ``stride``-dilated ``x`` (``stride - 1`` zeros between pixels)
    with ``kernel`` (HWIO) and zero padding ``padding_hw`` = ((lo, hi), (lo, hi)): what
    ``nn.ConvTranspose2d`` computes, without multiplying the inserted zeros.

    Sub-pixel (phase) decomposition: output pixels whose coordinates are (r, c) modulo
    ``stride`` only ever meet the kernel taps ``r' = (lo - r) mod stride`` (step ``stride``) on
    input pixels, so each of the ``stride²`` phases is a small stride-1 convolution of the
    undilated input, and the phases are interleaved (depth-to-space). Same products as the dilated
    form, summed in another order (float32 rounding only); ~1/stride² of its multiplications
    and 2-3x faster on XLA:CPU (``benchmarks/bench_conv_transpose.py``). Falls back to the
    dilated form when the output size is not a multiple of ``stride`` on some axis.
    """
    (lo_h, hi_h), (lo_w, hi_w) = padding_hw
    _, h, w, _ = x.shape
    kh, kw = kernel.shape[:2]
    out_h, out_w = (h - 1) * stride + lo_h + hi_h - kh + 2, (w - 1) * stride + lo_w + hi_w - kw + 2
    if stride == 1 or out_h % stride or out_w % stride:
        return conv2d(x, kernel, lhs_dilation=stride, padding_hw=padding_hw, precision=precision)
    zero = jnp.zeros((), x.dtype)
    phases = []
    for taps_h, pad_top, pad_bottom in _phase_plan(h, out_h, kh, stride, lo_h):
        row = []
        for taps_w, pad_left, pad_right in _phase_plan(w, out_w, kw, stride, lo_w):
            padded = jax.lax.pad(x, zero, ((0, 0, 0), (pad_top, pad_bottom, 0),
                                           (pad_left, pad_right, 0), (0, 0, 0)))
            sub_kernel = kernel[np.asarray(taps_h)][:, np.asarray(taps_w)]
            row.append(conv2d(padded, sub_kernel, precision=precision))
        phases.append(jnp.stack(row, axis=3))   # B x H' x W' x stride(c) x C
    y = jnp.stack(phases, axis=2)               # B x H' x stride(r) x W' x stride(c) x C
    b, rows, _, cols, _, c = y.shape
    return y.reshape(b, rows * stride, cols * stride, c)


def _valid_conv(x: Array, kernel: Array, stride: int, dilation: int, precision) -> Array:
    return jax.lax.conv_general_dilated(
        x, kernel, window_strides=(stride, stride), padding="VALID",
        rhs_dilation=(dilation, dilation), dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _valid_conv_im2col_grad(x: Array, kernel: Array, stride: int, dilation: int,
                            precision) -> Array:
    """A VALID convolution whose kernel gradient is computed by im2col + matmul."""
    return _valid_conv(x, kernel, stride, dilation, precision)


def _im2col_fwd(x, kernel, stride, dilation, precision):
    return _valid_conv(x, kernel, stride, dilation, precision), (x, kernel)


def _im2col_bwd(stride, dilation, precision, residuals, grad_out):
    x, kernel = residuals
    _, input_vjp = jax.vjp(lambda a: _valid_conv(a, kernel, stride, dilation, precision), x)
    (grad_x,) = input_vjp(grad_out)
    kh, kw, cin, cout = kernel.shape
    n, out_h, out_w, _ = grad_out.shape
    views = [jax.lax.slice(x, (0, i * dilation, j * dilation, 0),
                           (n, i * dilation + (out_h - 1) * stride + 1,
                            j * dilation + (out_w - 1) * stride + 1, cin),
                           (1, stride, stride, 1))
             for i in range(kh) for j in range(kw)]
    columns = jnp.concatenate(views, axis=-1).reshape(-1, kh * kw * cin)
    grad_kernel = jnp.dot(columns.T, grad_out.reshape(-1, cout), precision=precision)
    return grad_x, grad_kernel.reshape(kh, kw, cin, cout).astype(kernel.dtype)


_valid_conv_im2col_grad.defvjp(_im2col_fwd, _im2col_bwd)


class Conv2d(nn.Module):
    """``nn.Conv2d`` with either zero padding or a preceding ``nn.ReflectionPad2d``.

    Parameters: ``kernel`` [kh, kw, in, out] and ``bias`` [out] (when ``use_bias``).
    """

    features: int
    kernel_size: int = 3
    stride: int = 1
    padding: int = 0
    pad_mode: str = "zeros"  # "zeros" or "reflect"
    dilation: int = 1
    use_bias: bool = True
    precision: Precision = "highest"
    kernel_init: Callable = official_kernel_init

    @nn.compact
    def __call__(self, x: Array) -> Array:
        in_features = x.shape[-1]
        k = self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (k, k, in_features, self.features))
        if self.pad_mode == "reflect":
            x = reflect_pad(x, self.padding * self.dilation)
            pad = 0
        elif self.pad_mode == "zeros":
            pad = self.padding * self.dilation
        else:
            raise ValueError(f"unknown pad_mode {self.pad_mode!r}")
        y = conv2d(x, kernel, stride=self.stride, padding=pad, dilation=self.dilation,
                   precision=self.precision)
        if self.use_bias:
            bias = self.param("bias", torch_bias_init(in_features * k * k), (self.features,))
            y = y + bias.astype(y.dtype)
        return y


class ConvTranspose2d(nn.Module):
    """``nn.ConvTranspose2d(in, out, k, stride, padding, output_padding)``.

    The ``kernel`` parameter is stored as the *equivalent forward convolution* kernel in HWIO:
    torch's ``[in, out, kh, kw]`` weight flipped spatially and transposed
    (``w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)``). The convolution inserts ``stride - 1`` zeros
    between input pixels and zero-pads by ``k - 1 - padding`` (plus ``output_padding`` at the end);
    :func:`conv_transpose` computes it phase by phase, skipping the inserted zeros.
    """

    features: int
    kernel_size: int = 4
    stride: int = 2
    padding: int = 1
    output_padding: int = 0
    use_bias: bool = True
    precision: Precision = "highest"
    kernel_init: Callable = official_kernel_init

    @nn.compact
    def __call__(self, x: Array) -> Array:
        in_features = x.shape[-1]
        k = self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (k, k, in_features, self.features))
        lo = k - 1 - self.padding
        hi = lo + self.output_padding
        y = conv_transpose(x, kernel, self.stride, ((lo, hi), (lo, hi)), self.precision)
        if self.use_bias:
            # PyTorch's ConvTranspose2d computes fan_in from weight.size(1) * k * k = out * k * k.
            bias = self.param("bias", torch_bias_init(self.features * k * k), (self.features,))
            y = y + bias.astype(y.dtype)
        return y


def instance_norm(x: Array, eps: float = 1e-5) -> Array:
    """``nn.InstanceNorm2d(affine=False)``: per sample and channel over H, W; biased variance."""
    mean = jnp.mean(x, axis=(1, 2), keepdims=True)
    centered = x - mean
    var = jnp.mean(centered * centered, axis=(1, 2), keepdims=True)
    return centered * jax.lax.rsqrt(var + eps)


def linear_source_taps(in_size: int, out_size: int, scale: float | None = None):
    """Source indices and weights of PyTorch's align_corners=False linear interpolation."""
    if scale is None:
        scale = np.float32(in_size) / np.float32(out_size)
    scale = np.float32(scale)
    # PyTorch's CPU kernel evaluates (dst + 0.5) * scale - 0.5 with a single rounding (fused
    # multiply-add); computing it in float64 and rounding once to float32 reproduces its weights.
    dst = np.arange(out_size, dtype=np.float64)
    src = ((dst + 0.5) * np.float64(scale) - 0.5).astype(np.float32)
    src = np.maximum(src, np.float32(0.0))
    i0 = np.floor(src).astype(np.int64)
    i0 = np.minimum(i0, in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    w1 = (src - i0.astype(np.float32)).astype(np.float32)
    w0 = (np.float32(1.0) - w1).astype(np.float32)
    return i0, i1, w0, w1


def _interp_axis(x: Array, axis: int, out_size: int, scale: float | None) -> Array:
    in_size = x.shape[axis]
    if in_size == out_size and scale is None:
        return x
    i0, i1, w0, w1 = linear_source_taps(in_size, out_size, scale)
    shape = [1] * x.ndim
    shape[axis] = out_size
    a = jnp.take(x, jnp.asarray(i0), axis=axis)
    b = jnp.take(x, jnp.asarray(i1), axis=axis)
    w0 = jnp.asarray(w0, x.dtype).reshape(shape)
    w1 = jnp.asarray(w1, x.dtype).reshape(shape)
    return a * w0 + b * w1


def resize_bilinear(x: Array, size: tuple[int, int],
                    scale_factor: float | None = None) -> Array:
    """``F.interpolate(x, size, mode="bilinear", align_corners=False)`` on NHWC, no antialias.

    With ``scale_factor`` (as ``nn.Upsample(scale_factor=s)``) PyTorch uses ``1/s`` as the
    source-to-destination scale instead of ``in/out``; for exact factors both are equal.
    """
    scale = None if scale_factor is None else 1.0 / scale_factor
    y = _interp_axis(x, 1, size[0], scale)
    return _interp_axis(y, 2, size[1], scale)


def nearest_source_indices(in_size: int, out_size: int) -> np.ndarray:
    if in_size == out_size:
        return np.arange(out_size)
    if out_size == 2 * in_size:
        return np.arange(out_size) >> 1
    scale = np.float32(in_size) / np.float32(out_size)
    src = np.floor(np.arange(out_size, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(src, in_size - 1)


def resize_nearest(x: Array, size: tuple[int, int]) -> Array:
    """PyTorch's legacy ``F.interpolate(x, size, mode="nearest")`` on NHWC."""
    rows = nearest_source_indices(x.shape[1], size[0])
    cols = nearest_source_indices(x.shape[2], size[1])
    if len(rows) != x.shape[1] or not np.array_equal(rows, np.arange(x.shape[1])):
        x = jnp.take(x, jnp.asarray(rows), axis=1)
    if len(cols) != x.shape[2] or not np.array_equal(cols, np.arange(x.shape[2])):
        x = jnp.take(x, jnp.asarray(cols), axis=2)
    return x


def upsample_nearest2x(x: Array) -> Array:
    """``nn.Upsample(scale_factor=2)`` (nearest): every pixel repeated 2x2."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def l1_normalize(x: Array, axis: int, eps: float = 1e-12) -> Array:
    """``F.normalize(x, p=1, dim=axis)``."""
    return x / jnp.maximum(jnp.sum(jnp.abs(x), axis=axis, keepdims=True), eps)


def l2_normalize(x: Array, axis: int, eps: float = 1e-12) -> Array:
    """``F.normalize(x, p=2, dim=axis)``."""
    return x / jnp.maximum(jnp.sqrt(jnp.sum(x * x, axis=axis, keepdims=True)), eps)


def leaky_relu(x: Array, slope: float = 0.2) -> Array:
    return jnp.where(x >= 0, x, slope * x)
