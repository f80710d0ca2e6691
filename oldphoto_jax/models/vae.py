"""The VAE of the global restoration stage: ``GlobalGenerator_DCDCv2`` (reference section 4).

VAE_A (old photos) and VAE_B (clean photos) have the same structure. At inference the pipeline
runs only VAE_A's encoder (image -> latent) and VAE_B's decoder (latent -> image), so
:class:`VAEEncoder` and :class:`VAEDecoder` are complete networks on their own; :class:`VAE`
holds one of each under the names ``encoder`` and ``decoder``.

Official inference configuration (``n_downsample_global=3, mc=64, k_size=4, start_r=1,
spatio_size=64, feat_dim=-1``) and how it maps to the fields here:

* every feature map has ``min(ngf * 2**i, max_channels)`` channels at level ``i`` (level 0 = full
  resolution); with ngf = mc = 64 that is 64 everywhere;
* ``n_down_convs = 2``: the official ``n_downsampling=3`` builds only two stride-2 convolutions
  (its loops stop at ``n_downsampling - 1``), so the latent is ``H/4 x W/4``;
* ``n_res_blocks = 4`` ResnetBlocks at the latent resolution on each side: on the encoder side
  2 from the ``start_r .. n_downsampling-2`` loop, 1 because ``spatio_size == 64`` and 1 final
  block; on the decoder side the mirror image (1 + 1 for spatio_size + 2 from the loop).
  With more stride-2 layers the official code would interleave the loop's blocks between them;
  here all blocks sit at the latent resolution (identical for the official configuration).

Layers (NHWC):

* encoder: ReflectionPad(3) + Conv 7x7 (in -> c0) + IN + ReLU; ``n_down_convs`` x [Conv k x k,
  stride 2, zero pad 1 + IN + ReLU]; ``n_res_blocks`` x ResnetBlock; no final activation.
* decoder: ``n_res_blocks`` x ResnetBlock; ``n_down_convs`` x [ConvTranspose k x k, stride 2,
  pad 1, output_padding 0 for k = 4 (else 1) + IN + ReLU]; ReflectionPad(3) + Conv 7x7 (c0 -> out)
  + Tanh.

Param trees: ``ResnetBlock`` = {conv1, conv2}; ``ResnetStack`` = {blocks_0, ...};
``VAEEncoder`` = {conv_in, downs_0, downs_1, trunk}; ``VAEDecoder`` = {trunk, ups_0, ups_1,
conv_out}; ``VAE`` = {encoder, decoder}. Each conv holds ``kernel`` (HWIO) and ``bias``.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from oldphoto_jax.layers import Conv2d, ConvTranspose2d, Precision, instance_norm

Array = jax.Array


def level_channels(base: int, level: int, max_channels: int) -> int:
    """Channels at a level of the official width rule ``min(base * 2**level, max_channels)``."""
    return min(base * 2 ** level, max_channels)


class ResnetBlock(nn.Module):
    """The official ``ResnetBlock(dim, padding_type="reflect", norm=instance)``.

    ``x + IN(conv2(pad1(ReLU(IN(conv1(pad_d(x)))))))``: both 3x3 convs are preceded by a
    reflection pad (``dilation`` for the first, dilated conv; 1 for the second), the norms are
    instance norms without parameters, and there is no activation after the residual sum.
    Param tree: ``conv1`` (official ``conv_block.1``), ``conv2`` (official ``conv_block.5``).
    """

    features: int
    precision: Precision = "highest"
    dilation: int = 1

    @nn.compact
    def __call__(self, x: Array) -> Array:
        h = Conv2d(self.features, 3, padding=1, pad_mode="reflect", dilation=self.dilation,
                   precision=self.precision, name="conv1")(x)
        h = nn.relu(instance_norm(h))
        h = Conv2d(self.features, 3, padding=1, pad_mode="reflect", precision=self.precision,
                   name="conv2")(h)
        return x + instance_norm(h)


class ResnetStack(nn.Module):
    """``n_blocks`` ResnetBlocks in sequence; param tree {blocks_0, blocks_1, ...}."""

    features: int
    n_blocks: int
    precision: Precision = "highest"
    dilation: int = 1

    def setup(self):
        self.blocks = [ResnetBlock(self.features, self.precision, self.dilation)
                       for _ in range(self.n_blocks)]

    def __call__(self, x: Array) -> Array:
        for block in self.blocks:
            x = block(x)
        return x


def _transpose_output_padding(kernel_size: int) -> int:
    # The official code uses output_padding 0 for k_size 4 and 1 otherwise (k_size 3).
    return 0 if kernel_size == 4 else 1


class VAEEncoder(nn.Module):
    """``GlobalGenerator_DCDCv2.encoder``: B x H x W x in_channels in [-1, 1] -> latent.

    The latent is ``B x H/2**n_down_convs x W/2**n_down_convs x min(ngf*2**n_down_convs, mc)``
    (official: B x H/4 x W/4 x 64). H and W must be multiples of ``2**n_down_convs``.
    """

    in_channels: int = 3
    ngf: int = 64
    max_channels: int = 64
    n_down_convs: int = 2
    n_res_blocks: int = 4
    kernel_size: int = 4
    precision: Precision = "highest"

    def _ch(self, level: int) -> int:
        return level_channels(self.ngf, level, self.max_channels)

    def setup(self):
        self.conv_in = Conv2d(self._ch(0), 7, padding=3, pad_mode="reflect",
                              precision=self.precision)
        self.downs = [Conv2d(self._ch(k + 1), self.kernel_size, stride=2, padding=1,
                             pad_mode="zeros", precision=self.precision)
                      for k in range(self.n_down_convs)]
        self.trunk = ResnetStack(self._ch(self.n_down_convs), self.n_res_blocks, self.precision)

    def __call__(self, x: Array) -> Array:
        if x.shape[-1] != self.in_channels:
            raise ValueError(f"VAEEncoder expects {self.in_channels} input channels (NHWC), "
                             f"got shape {x.shape}")
        h = nn.relu(instance_norm(self.conv_in(x)))
        for down in self.downs:
            h = nn.relu(instance_norm(down(h)))
        return self.trunk(h)


class VAEDecoder(nn.Module):
    """``GlobalGenerator_DCDCv2.decoder``: latent -> B x H x W x out_channels in (-1, 1)."""

    out_channels: int = 3
    ngf: int = 64
    max_channels: int = 64
    n_down_convs: int = 2
    n_res_blocks: int = 4
    kernel_size: int = 4
    precision: Precision = "highest"

    def _ch(self, level: int) -> int:
        return level_channels(self.ngf, level, self.max_channels)

    def setup(self):
        n = self.n_down_convs
        self.trunk = ResnetStack(self._ch(n), self.n_res_blocks, self.precision)
        self.ups = [ConvTranspose2d(self._ch(n - k - 1), self.kernel_size, stride=2, padding=1,
                                    output_padding=_transpose_output_padding(self.kernel_size),
                                    precision=self.precision)
                    for k in range(n)]
        self.conv_out = Conv2d(self.out_channels, 7, padding=3, pad_mode="reflect",
                               precision=self.precision)

    def __call__(self, z: Array) -> Array:
        if z.shape[-1] != self._ch(self.n_down_convs):
            raise ValueError(f"VAEDecoder expects {self._ch(self.n_down_convs)} latent channels "
                             f"(NHWC), got shape {z.shape}")
        h = self.trunk(z)
        for up in self.ups:
            h = nn.relu(instance_norm(up(h)))
        return jnp.tanh(self.conv_out(h))


VAE_PARTS = ("both", "encoder", "decoder")


class VAE(nn.Module):
    """``GlobalGenerator_DCDCv2``: an :class:`VAEEncoder` and a :class:`VAEDecoder`.

    ``required`` only matters when converting an official checkpoint
    (:mod:`oldphoto_jax.convert.global_nets`): it names the part(s) that must be in the file —
    ``"encoder"`` for a VAE_A file used as the pipeline's encoder, ``"decoder"`` for a VAE_B
    file, ``"both"`` (default) for a complete VAE. Parts that are present are always converted.
    Variables that hold only one part can run only that part (``encode`` or ``decode``).
    """

    in_channels: int = 3
    out_channels: int = 3
    ngf: int = 64
    max_channels: int = 64
    n_down_convs: int = 2
    n_res_blocks: int = 4
    kernel_size: int = 4
    required: str = "both"
    precision: Precision = "highest"

    def setup(self):
        if self.required not in VAE_PARTS:
            raise ValueError(f"VAE.required must be one of {VAE_PARTS}, got {self.required!r}")
        common = dict(ngf=self.ngf, max_channels=self.max_channels,
                      n_down_convs=self.n_down_convs, n_res_blocks=self.n_res_blocks,
                      kernel_size=self.kernel_size, precision=self.precision)
        self.encoder = VAEEncoder(in_channels=self.in_channels, **common)
        self.decoder = VAEDecoder(out_channels=self.out_channels, **common)

    @property
    def latent_channels(self) -> int:
        """Channels of the latent code."""
        return level_channels(self.ngf, self.n_down_convs, self.max_channels)

    def encode(self, x: Array) -> Array:
        """Image (B x H x W x in_channels, [-1, 1]) -> latent (official ``flow="enc"``)."""
        return self.encoder(x)

    def decode(self, z: Array) -> Array:
        """Latent -> image in (-1, 1) (official ``flow="dec"``)."""
        return self.decoder(z)

    def __call__(self, x: Array) -> Array:
        """Encoder then decoder (official ``flow="enc_dec"``)."""
        return self.decoder(self.encoder(x))
