"""Face-enhancement generator: the official ``SPADEGenerator`` (reference section 7).

Official inference configuration: ``netG="spade"``, ``ngf=64``,
``norm_G="spectralspadesyncbatch3x3"``, ``num_upsampling_layers="normal"``, ``no_parsing_map``,
``load_size`` 256 (``Setting_9_epoch_100``) or 512 (``FaceSR_512``); both checkpoints have the
same parameter shapes, only the start size ``load_size // 32`` differs.

The degraded face (NHWC, [-1, 1]) is the only input. With ``no_parsing_map`` the official
18-channel parsing map is all zeros and never used, so it is not an argument here.

Structure (``n = num_up_blocks``, default 4; ``top = ngf * 2**n``; start size
``s0 = load_size // 2**(n+1)``)::

    x = fc(resize_bilinear(face, s0))          # 3x3 zero-pad conv 3 -> top, no norm
    x = head_0(x)                              # SPADE resblock top -> top @ s0
    x = up(x); x = G_middle_0(x); x = G_middle_1(x)   # @ 2*s0
    for i < n: x = up(x); x = up_i(x)          # ngf*2**(n-i) -> ngf*2**(n-1-i)
    out = tanh(conv_img(leaky_relu(x, 0.2)))   # 3x3 zero-pad conv -> 3

``up`` is nearest x2. Every SPADE layer at resolution r modulates with the bilinear
(align_corners=False, no antialias) resize of the face to r x r, computed once per resolution.

Spectral norm (``conv_0``, ``conv_1``, ``conv_s`` of every resblock): with
``spectral_norm=False`` (inference) the params hold the folded effective kernels
``weight_orig / sigma`` that the official eval-mode module uses. With ``spectral_norm=True`` the
params hold ``weight_orig`` and the ``spectral`` collection holds PyTorch's ``u`` [out] and
``v`` [in*kh*kw] (PyTorch's flattening order ``(in, kh, kw)``); in eval mode
``sigma = u . (W v)`` with no power iteration (exactly PyTorch's eval), and with
``train=True`` (apply with ``mutable=["batch_stats", "spectral"]``) one power iteration on the
stop-gradient weight updates ``u, v`` before ``sigma`` is computed, as
``torch.nn.utils.spectral_norm`` does in training mode.

Parameter tree::

    fc/{kernel,bias}   conv_img/{kernel,bias}
    <block>/conv_0/{kernel,bias}  <block>/conv_1/{kernel,bias}  <block>/conv_s/{kernel}  (up_i)
    <block>/norm_{0,1,s}/mlp_shared/{kernel,bias}, mlp_gamma/..., mlp_beta/...
    batch_stats: <block>/norm_{0,1,s}/param_free_norm/{mean,var}
    spectral (spectral_norm=True only): <block>/conv_{0,1,s}/{u,v}

with ``<block>`` in ``head_0, G_middle_0, G_middle_1, up_0 .. up_{n-1}``.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from oldphoto_jax.layers import (Conv2d, Precision, leaky_relu, resize_bilinear,
                                 upsample_nearest2x)
from oldphoto_jax.models.spectral import SpectralConv2d
from oldphoto_jax.models.unet import BatchNorm2d

Array = jax.Array


class SPADE(nn.Module):
    """``SPADE(norm_nc)`` with ``spadesyncbatch3x3``: param-free batch norm modulated by the face.

    ``out = BN(x) * (1 + gamma(d)) + beta(d)`` with ``gamma, beta`` 3x3 convs of
    ``relu(mlp_shared(d))``; ``d`` is the face already resized to ``x``'s resolution.
    """

    nhidden: int = 128
    precision: Precision = "highest"

    @nn.compact
    def __call__(self, x: Array, d: Array, train: bool = False) -> Array:
        c = x.shape[-1]
        normalized = BatchNorm2d(affine=False, name="param_free_norm")(x, train=train)
        actv = nn.relu(Conv2d(self.nhidden, 3, padding=1, precision=self.precision,
                              name="mlp_shared")(d))
        gamma = Conv2d(c, 3, padding=1, precision=self.precision, name="mlp_gamma")(actv)
        beta = Conv2d(c, 3, padding=1, precision=self.precision, name="mlp_beta")(actv)
        return normalized * (1.0 + gamma) + beta


class SPADEResnetBlock(nn.Module):
    """``SPADEResnetBlock(fin, fout)``; the shortcut is learned (1x1, no bias) when fin != fout."""

    features: int
    nhidden: int = 128
    spectral_norm: bool = False
    precision: Precision = "highest"

    @nn.compact
    def __call__(self, x: Array, d: Array, train: bool = False) -> Array:
        fin, fout = x.shape[-1], self.features
        fmiddle = min(fin, fout)

        def conv(features, k, name, use_bias=True):
            return SpectralConv2d(features, k, padding=k // 2, use_bias=use_bias,
                                  spectral_norm=self.spectral_norm, precision=self.precision,
                                  name=name)

        def norm(name):
            return SPADE(self.nhidden, self.precision, name=name)

        if fin != fout:
            x_s = conv(fout, 1, "conv_s", use_bias=False)(norm("norm_s")(x, d, train), train)
        else:
            x_s = x
        dx = conv(fmiddle, 3, "conv_0")(leaky_relu(norm("norm_0")(x, d, train), 0.2), train)
        dx = conv(fout, 3, "conv_1")(leaky_relu(norm("norm_1")(dx, d, train), 0.2), train)
        return x_s + dx


class SPADEGenerator(nn.Module):
    """Degraded face (NHWC, [-1, 1], any size; official: load_size x load_size) -> restored face.

    The output is always ``load_size x load_size`` (tanh, in [-1, 1]). ``semantic_nc`` is the
    official parsing-map width (18); with ``no_parsing_map`` (the released configuration, the
    only one implemented) it does not enter the computation and is kept only so the
    configuration records it. ``train=True`` uses batch statistics (apply with
    ``mutable=["batch_stats"]``, plus ``"spectral"`` when ``spectral_norm=True``).
    """

    ngf: int = 64
    load_size: int = 256
    num_up_blocks: int = 4
    nhidden: int = 128
    semantic_nc: int = 18
    spectral_norm: bool = False
    precision: Precision = "highest"

    @property
    def start_size(self) -> int:
        return self.load_size // 2 ** (self.num_up_blocks + 1)

    def block_widths(self) -> dict[str, int]:
        """Output width of every resblock, by name, in forward order."""
        n, top = self.num_up_blocks, self.ngf * 2 ** self.num_up_blocks
        widths = {"head_0": top, "G_middle_0": top, "G_middle_1": top}
        widths.update({f"up_{i}": self.ngf * 2 ** (n - 1 - i) for i in range(n)})
        return widths

    @nn.compact
    def __call__(self, face: Array, train: bool = False) -> Array:
        if face.ndim != 4 or face.shape[-1] != 3:
            raise ValueError(f"SPADEGenerator expects an NHWC RGB face, got shape {face.shape}")
        s0 = self.start_size
        if s0 < 1:
            raise ValueError(f"load_size {self.load_size} is too small for "
                             f"{self.num_up_blocks} up blocks")
        injected: dict[int, Array] = {}

        def inject(size: int) -> Array:
            if size not in injected:
                injected[size] = resize_bilinear(face, (size, size))
            return injected[size]

        def block(name: str):
            return SPADEResnetBlock(widths[name], self.nhidden, self.spectral_norm,
                                    self.precision, name=name)

        widths = self.block_widths()
        x = Conv2d(widths["head_0"], 3, padding=1, precision=self.precision, name="fc")(inject(s0))
        size = s0
        x = block("head_0")(x, inject(size), train)
        x, size = upsample_nearest2x(x), size * 2
        x = block("G_middle_0")(x, inject(size), train)
        x = block("G_middle_1")(x, inject(size), train)
        for i in range(self.num_up_blocks):
            x, size = upsample_nearest2x(x), size * 2
            x = block(f"up_{i}")(x, inject(size), train)
        x = Conv2d(3, 3, padding=1, precision=self.precision, name="conv_img")(leaky_relu(x, 0.2))
        return jnp.tanh(x)
