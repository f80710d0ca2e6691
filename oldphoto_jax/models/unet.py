"""Scratch-detection UNet (reference section 2.2) and a PyTorch-exact batch norm.

The official detector is ``UNet(in_channels=1, out_channels=1, depth=4, conv_num=2, wf=6,
padding=True, batch_norm=True, up_mode="upsample", antialiasing=True)`` from
``Global/detection_models/networks.py``. :class:`ScratchUNet` reproduces exactly that
configuration (the other official options are not used by any released checkpoint), with the
widths and depths as constructor arguments:

* ``first``: reflect-pad 3, 7x7 conv ``in -> 2**wf``, LeakyReLU(0.2);
* ``down_sample_i`` (i < depth, C = 2**(wf+i)): reflect-pad 1, 3x3 conv ``C -> C``, batch norm,
  LeakyReLU(0.2), then the anti-aliased stride-2 downsampling (reflect-pad 1 and a depthwise
  conv with the *fixed* blur ``[1,2,1] x [1,2,1] / 16``; a constant here, not a parameter);
* ``down_path_i``: ``conv_num`` x (reflect-pad 1, 3x3 conv, batch norm, LeakyReLU(0.2)),
  ``C -> 2C``;
* ``up_path_j`` (Cin = 2**(wf+depth-j)): bilinear x2 (align_corners=False), reflect-pad 1, 3x3
  conv ``Cin -> Cin/2`` (no norm, no activation), concatenation ``[up, skip]`` on channels, then
  a conv block ``Cin -> Cin/2``;
* ``last``: reflect-pad 1, 3x3 conv ``2**wf -> out``; the output is the logits (no sigmoid).

Parameter tree (Flax names; official state-dict prefixes in brackets)::

    first/{kernel,bias}                                  [first.1]
    down_sample_{i}/conv/{kernel,bias}                   [down_sample.i.1]
    down_sample_{i}/norm/{scale,bias} + batch_stats mean,var  [down_sample.i.2]
    down_path_{i}/conv_{k}/{kernel,bias}                 [down_path.i.block.{4k+1}]
    down_path_{i}/norm_{k}/{scale,bias} + batch_stats    [down_path.i.block.{4k+2}]
    up_path_{j}/up_conv/{kernel,bias}                    [up_path.j.up.2]
    up_path_{j}/conv_block/conv_{k}, norm_{k}            [up_path.j.conv_block.block.*]
    last/{kernel,bias}                                   [last.1]
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from oldphoto_jax.layers import Conv2d, Precision, leaky_relu, reflect_pad, resize_bilinear

Array = jax.Array


def blur_filter_3x3() -> np.ndarray:
    """The anti-aliasing filter of the official ``Downsample(filt_size=3)``: [1,2,1]x[1,2,1]/16."""
    a = np.array([1.0, 2.0, 1.0], np.float64)
    return (np.outer(a, a) / 16.0).astype(np.float32)


class BatchNorm2d(nn.Module):
    """``nn.BatchNorm2d`` on NHWC with PyTorch's exact semantics in both modes.

    Evaluation (``train=False``): ``(x - running_mean) / sqrt(running_var + eps) * scale + bias``
    with the running statistics stored in the ``batch_stats`` collection as ``mean`` and ``var``.

    Training (``train=True``, call ``apply`` with ``mutable=["batch_stats"]``): normalises with the
    batch mean and the *biased* batch variance over (N, H, W), and updates the running statistics
    the PyTorch way: ``running = (1 - momentum) * running + momentum * batch`` with PyTorch's
    ``momentum`` (default 0.1, i.e. Flax's ``momentum=0.9``), where the running variance is
    updated with the *unbiased* batch variance (``var * n / (n - 1)``, n = N*H*W), unlike Flax's
    ``nn.BatchNorm``. Under ``jax.jit`` with a batch sharded over devices the means are global,
    which is what the official ``SynchronizedBatchNorm2d`` computes. Nothing is updated while the
    module is being initialised.

    ``affine=False`` gives the parameter-free norm of SPADE (no ``scale``/``bias`` params).
    """

    affine: bool = True
    epsilon: float = 1e-5
    momentum: float = 0.1  # PyTorch's meaning: weight of the new batch statistics

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        c = x.shape[-1]
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
        if train:
            axes = tuple(range(x.ndim - 1))
            mean = jnp.mean(x, axis=axes)
            var = jnp.mean(jnp.square(x - mean), axis=axes)
            if not self.is_initializing():
                n = x.size // c
                unbiased = var * (n / max(n - 1, 1))
                m = self.momentum
                ra_mean.value = (1.0 - m) * ra_mean.value + m * mean
                ra_var.value = (1.0 - m) * ra_var.value + m * unbiased
        else:
            mean, var = ra_mean.value, ra_var.value
        y = (x - mean.astype(x.dtype)) * jax.lax.rsqrt(var.astype(x.dtype) + self.epsilon)
        if self.affine:
            scale = self.param("scale", nn.initializers.ones, (c,))
            bias = self.param("bias", nn.initializers.zeros, (c,))
            y = y * scale.astype(x.dtype) + bias.astype(x.dtype)
        return y


def blur_downsample(x: Array, precision: Precision = "highest") -> Array:
    """Official ``Downsample(channels, filt_size=3, stride=2, pad_type="reflect")`` on NHWC.

    Reflect-pad 1, then the fixed 3x3 binomial filter ``[1,2,1] x [1,2,1] / 16`` at stride 2 on
    every channel. Computed as what it is, two separable weighted sums of strided rows and
    columns and an exact power-of-two scale, not as the official depthwise convolution, which
    XLA:CPU runs slowly (alone, at the official widths: 63, 23, 11 and 11 ms for the four levels
    at 256 px, against 1-2 ms this way; the detection stage went from 0.64-0.68 to 0.56-0.59 s,
    benchmarks/README.md, issue 18). Same values up to float32 rounding (the weights are powers
    of two, only the order of the additions differs: max 2.4e-7 on unit-normal inputs).
    ``precision`` is accepted for the callers' uniformity; no matrix product is involved.
    """
    del precision
    xp = reflect_pad(x, 1)
    out_h, out_w = (x.shape[1] - 1) // 2 + 1, (x.shape[2] - 1) // 2 + 1
    # Output row i reads padded rows 2i, 2i+1, 2i+2 with weights 1, 2, 1; then the same on columns.
    rows = xp[:, 0:2 * out_h - 1:2] + 2 * xp[:, 1:2 * out_h:2] + xp[:, 2:2 * out_h + 1:2]
    both = (rows[:, :, 0:2 * out_w - 1:2] + 2 * rows[:, :, 1:2 * out_w:2]
            + rows[:, :, 2:2 * out_w + 1:2])
    return both * jnp.asarray(1.0 / 16.0, x.dtype)


class ConvNormAct(nn.Module):
    """Reflect-pad 1, 3x3 conv, batch norm, LeakyReLU(0.2) (repeated ``conv_num`` times)."""

    features: int
    conv_num: int = 2
    precision: Precision = "highest"

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        for k in range(self.conv_num):
            x = Conv2d(self.features, 3, padding=1, pad_mode="reflect", precision=self.precision,
                       name=f"conv_{k}")(x)
            x = BatchNorm2d(name=f"norm_{k}")(x, train=train)
            x = leaky_relu(x, 0.2)
        return x


class DownSample(nn.Module):
    """``down_sample.i``: conv-BN-LReLU at the same width, then the anti-aliased stride-2 blur."""

    precision: Precision = "highest"

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        x = Conv2d(x.shape[-1], 3, padding=1, pad_mode="reflect", precision=self.precision,
                   name="conv")(x)
        x = BatchNorm2d(name="norm")(x, train=train)
        x = leaky_relu(x, 0.2)
        return blur_downsample(x, self.precision)


class UpBlock(nn.Module):
    """``up_path.j``: bilinear x2, reflect-pad conv to ``features``, concat [up, skip], convs."""

    features: int
    conv_num: int = 2
    precision: Precision = "highest"

    @nn.compact
    def __call__(self, x: Array, skip: Array, train: bool = False) -> Array:
        h, w = x.shape[1], x.shape[2]
        up = resize_bilinear(x, (2 * h, 2 * w), scale_factor=2)
        up = Conv2d(self.features, 3, padding=1, pad_mode="reflect", precision=self.precision,
                    name="up_conv")(up)
        # The official center_crop is the identity: the input sides are multiples of 2**depth.
        x = jnp.concatenate([up, skip], axis=-1)
        return ConvNormAct(self.features, self.conv_num, self.precision, name="conv_block")(
            x, train=train)


class ScratchUNet(nn.Module):
    """The scratch detector: grayscale image in [-1, 1] (NHWC) -> scratch logits (NHWC).

    Defaults are the official inference configuration (37,626,177 parameters). Input height and
    width must be multiples of ``2**depth`` (16 by default; the official pre-processing rounds the
    network input to x16). ``train=True`` uses batch statistics and updates ``batch_stats`` (see
    :class:`BatchNorm2d`).
    """

    in_channels: int = 1
    out_channels: int = 1
    depth: int = 4
    wf: int = 6
    conv_num: int = 2
    precision: Precision = "highest"

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        if x.ndim != 4 or x.shape[-1] != self.in_channels:
            raise ValueError(f"ScratchUNet expects NHWC input with {self.in_channels} channel(s), "
                             f"got shape {tuple(x.shape)}")
        multiple = 2 ** self.depth
        h, w = x.shape[1], x.shape[2]
        if h % multiple or w % multiple:
            raise ValueError(f"ScratchUNet (depth {self.depth}) needs input height and width that "
                             f"are multiples of {multiple}, got {h}x{w}")
        x = Conv2d(2 ** self.wf, 7, padding=3, pad_mode="reflect", precision=self.precision,
                   name="first")(x)
        x = leaky_relu(x, 0.2)
        skips = []
        for i in range(self.depth):
            skips.append(x)
            x = DownSample(self.precision, name=f"down_sample_{i}")(x, train=train)
            x = ConvNormAct(2 ** (self.wf + i + 1), self.conv_num, self.precision,
                            name=f"down_path_{i}")(x, train=train)
        for j in range(self.depth):
            i = self.depth - 1 - j
            x = UpBlock(2 ** (self.wf + i), self.conv_num, self.precision,
                        name=f"up_path_{j}")(x, skips[i], train=train)
        return Conv2d(self.out_channels, 3, padding=1, pad_mode="reflect",
                      precision=self.precision, name="last")(x)
