"""Training-only discriminators: the multi-scale PatchGAN and the latent discriminator.

Reference section 10.1 ("Image discriminator") and 10.2 (``feat_D``); for the face stage the
NVlabs/SPADE variant of the same network (section 10.6).

One scale (:class:`PatchDiscriminator`, official ``NLayerDiscriminator``) is five blocks of 4x4
convolutions with zero padding 2 and bias::

    b0: conv in -> ndf, stride 2, LeakyReLU(0.2)                (no norm)
    b1 .. b{n-1}: conv -> min(2*prev, 512), stride 2, IN, LeakyReLU(0.2)
    b{n}: conv -> min(2*prev, 512), stride 1, IN, LeakyReLU(0.2)
    b{n+1}: conv -> 1, stride 1                                  (score map, no sigmoid)

with ``n = n_layers`` (official 3) and IN the parameter-free instance norm. Every block's output
is returned (b0..b{n} are the features matched by the feature-matching loss, the last one is the
score map). For 256 x 256 inputs the block outputs are 129, 65, 33, 34, 35 px. SPADE's
``NLayerDiscriminator`` has the same blocks with its ``n_layers_D`` one larger than
``n_layers`` here (its default 4 is ``n_layers=3``); it wraps only the normalised convs in
spectral norm (``sn_outer=False``) and removes their bias (``norm_bias=False``).

:class:`MultiscaleDiscriminator` runs ``num_D`` such scales; scale ``i`` sees the input after
``i`` 3x3 average poolings (stride 2, padding 1, padded cells not counted). Its output is a list
over scales (full size first) of the lists of block outputs. Sub-module names follow the
official state dict: the full-size scale is ``scale{num_D-1}``, the once-pooled one
``scale{num_D-2}``, ... Parameters (official 2 scales, ndf 64, n_layers 3): 5,529,474 for a
3-channel input, 5,535,618 for a 6-channel (conditional) input.

The latent discriminator of VAE_A (``feat_D``) is the same network with one scale and a
64-channel input (:func:`latent_discriminator`): 33, 17, 9, 10, 11 px on a 64 x 64 latent,
2,827,201 parameters.

Spectral norm (``spectral_norm=True``): the ``kernel`` param holds PyTorch's ``weight_orig``
(HWIO) and the ``spectral`` collection holds ``u`` [out] and ``v`` [in*kh*kw] (PyTorch's
flattening order), as :class:`oldphoto_jax.models.spectral.SpectralConv2d` (shared with the
face generator). With ``train=True`` (apply with ``mutable=["spectral"]``) every call advances ``u, v`` by one power iteration on the stop-gradient weight before
``sigma = u . (W v)`` is computed; with ``train=False`` there is no iteration (PyTorch's eval).
:func:`fold_spectral_norm` turns such params into plain effective kernels.

Layout NHWC; kernels HWIO; initialisation as the official training code (section 10.1):
kernels N(0, 0.02), biases U(+-1/sqrt(fan_in)).
"""
from __future__ import annotations

from typing import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from oldphoto_jax.layers import Precision, instance_norm, leaky_relu
from oldphoto_jax.models.spectral import SpectralConv2d, kernel_matrix, spectral_sigma

Array = jax.Array
Features = list[Array]          # the block outputs of one scale, score map last


def fold_spectral_norm(params: Mapping, spectral: Mapping, precision: Precision = "highest"):
    """Params of spectral-norm convs -> params with the effective kernels ``weight_orig/sigma``.

    ``spectral`` mirrors the parts of ``params`` whose convs are spectrally normalised (a dict
    holding ``u`` and ``v`` next to the conv's ``kernel``); sigma is PyTorch's eval-mode value
    ``u . (W v)`` with the stored vectors (no power iteration). Other params are copied as is.
    """
    out = {}
    for name, value in params.items():
        sub = spectral.get(name) if isinstance(spectral, Mapping) else None
        if isinstance(value, Mapping):
            out[name] = fold_spectral_norm(value, sub or {}, precision) if sub else dict(value)
        else:
            out[name] = value
    if isinstance(spectral, Mapping) and "u" in spectral and "v" in spectral:
        kernel = jnp.asarray(params["kernel"])
        sigma = spectral_sigma(kernel_matrix(kernel), jnp.asarray(spectral["u"]),
                               jnp.asarray(spectral["v"]), precision)
        out["kernel"] = kernel / sigma
    return out


def avg_pool_3x3_s2(x: Array) -> Array:
    """``F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)`` on NHWC."""
    return nn.avg_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)),
                       count_include_pad=False)


def block_channels(ndf: int, n_layers: int, max_channels: int = 512) -> list[int]:
    """Output channels of the blocks b0 .. b{n_layers+1} of one scale."""
    chans, nf = [ndf], ndf
    for _ in range(n_layers):
        nf = min(nf * 2, max_channels)
        chans.append(nf)
    return chans + [1]


class PatchDiscriminator(nn.Module):
    """One PatchGAN scale (official ``NLayerDiscriminator``, ``getIntermFeat=True``).

    ``__call__(x, train)`` -> list of the ``n_layers + 2`` block outputs (score map last).
    ``in_channels`` is checked against the input (3 unconditional, 6 conditional, 64 latent).
    """

    in_channels: int = 3
    ndf: int = 64
    n_layers: int = 3
    max_channels: int = 512
    spectral_norm: bool = False
    sn_outer: bool = True       # with spectral_norm: also the first and the last conv
    norm_bias: bool = True      # bias on the instance-normalised convs (SPADE: False)
    precision: Precision = "highest"

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Features:
        if x.ndim != 4 or x.shape[-1] != self.in_channels:
            raise ValueError(f"PatchDiscriminator expects NHWC input with {self.in_channels} "
                             f"channels, got shape {tuple(x.shape)}")
        chans = block_channels(self.ndf, self.n_layers, self.max_channels)
        last = len(chans) - 1
        outputs = []
        for i, c in enumerate(chans):
            outer = i in (0, last)
            stride = 2 if i < self.n_layers else 1
            conv = SpectralConv2d(c, 4, stride=stride, padding=2,
                            use_bias=self.norm_bias or outer,
                            spectral_norm=self.spectral_norm and (self.sn_outer or not outer),
                            precision=self.precision, name=f"model{i}")
            x = conv(x, train)
            if i != last:
                if i > 0:
                    x = instance_norm(x)
                x = leaky_relu(x, 0.2)
            outputs.append(x)
        return outputs


class MultiscaleDiscriminator(nn.Module):
    """``num_D`` PatchGAN scales; returns [features of the full-size scale, of the pooled, ...]."""

    in_channels: int = 3
    num_D: int = 2
    ndf: int = 64
    n_layers: int = 3
    max_channels: int = 512
    spectral_norm: bool = False
    sn_outer: bool = True
    norm_bias: bool = True
    precision: Precision = "highest"

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> list[Features]:
        results = []
        for i in range(self.num_D):
            if i > 0:
                x = avg_pool_3x3_s2(x)
            scale = PatchDiscriminator(self.in_channels, self.ndf, self.n_layers,
                                       self.max_channels, self.spectral_norm, self.sn_outer,
                                       self.norm_bias, self.precision,
                                       name=f"scale{self.num_D - 1 - i}")
            results.append(scale(x, train))
        return results


def latent_discriminator(in_channels: int = 64, ndf: int = 64, n_layers: int = 3,
                         precision: Precision = "highest") -> MultiscaleDiscriminator:
    """VAE_A's ``feat_D`` (reference 10.2): one scale, no pooling, instance norm, no SN."""
    return MultiscaleDiscriminator(in_channels=in_channels, num_D=1, ndf=ndf, n_layers=n_layers,
                                   precision=precision)
