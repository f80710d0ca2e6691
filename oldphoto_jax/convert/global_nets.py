"""Converters for the Global networks: the VAE and the three mapping networks.

Official key layout (``nn.Sequential`` indices, reference sections 4 and 5; listings in
``shared/parity/keys/vae_a.txt`` and ``mapping_*.txt``) and where each key goes:

* ResnetBlock ``<p>.conv_block.1`` / ``<p>.conv_block.5`` -> ``conv1`` / ``conv2``.
* VAE (``GlobalGenerator_DCDCv2``), with n = n_down_convs and r = n_res_blocks:
  ``encoder.1`` -> encoder/conv_in; ``encoder.{4+3k}`` -> encoder/downs_k;
  ``encoder.{4+3n+j}`` -> encoder/trunk/blocks_j; ``decoder.{j}`` -> decoder/trunk/blocks_j;
  ``decoder.{r+3k}`` (ConvTranspose2d) -> decoder/ups_k; ``decoder.{r+3n+1}`` -> decoder/conv_out.
  (Official: encoder.1/4/7/10-13, decoder.0-3/4/7/11.)
* ``Mapping_Model``: ``model.{3i}`` -> head/convs_i; ``model.{3u+j}`` -> trunk/blocks_j;
  ``model.{3u+b+3i}`` -> tail/convs_i (u = n_up, b = n_blocks; official 0-9, 12-17, 18-27).
* ``Mapping_Model_with_mask``: ``before_NL.{3i}`` -> head; ``NL.{theta,phi,g,W}`` -> nl/...;
  ``NL.res_block.k`` -> nl/res/blocks_k; ``after_NL.{j}`` -> trunk; ``after_NL.{b+3i}`` -> tail.
* ``Mapping_Model_with_mask_2``: ``before_NL.{3i}`` -> head; ``before_NL.{3u+j}`` -> pre;
  ``NL_scale_{s+1}.F_Combine`` / ``.res_block.0`` -> attn_s/combine / attn_s/res_block;
  ``res_block_{s+1}.j`` -> between_s/blocks_j; ``after_NL.{j}`` -> post;
  ``after_NL.{m+3i}`` -> tail (m = stage_blocks).

Every shape is derived from the module's fields, so a checkpoint of another width fails with the
file and key named. VAE files: the official pipeline uses only VAE_A's encoder and VAE_B's
decoder. The ``VAE`` converter converts every part present in the file (a part is present when any
of its keys is); a present part must be complete, and the part(s) named by ``VAE.required``
("both", "encoder" or "decoder") must be present — in both cases a missing key is a
ConversionError naming the file and the key. ``VAEEncoder`` / ``VAEDecoder`` modules can also be
converted directly from a full VAE file: they read their part and silently skip the other one.
"""
from __future__ import annotations

import flax.linen as nn

from oldphoto_jax.convert.common import (ConversionError, StateDictReader, conv_kernel,
                                         conv_transpose_kernel)
from oldphoto_jax.convert.converters import converter
from oldphoto_jax.models.vae import VAE, VAEDecoder, VAEEncoder, level_channels


def _conv(reader: StateDictReader, key: str, in_ch: int, out_ch: int, k: int) -> dict:
    weight = reader.take(f"{key}.weight", (out_ch, in_ch, k, k))
    bias = reader.take(f"{key}.bias", (out_ch,))
    return {"kernel": conv_kernel(weight), "bias": bias}


def _conv_transpose(reader: StateDictReader, key: str, in_ch: int, out_ch: int, k: int) -> dict:
    weight = reader.take(f"{key}.weight", (in_ch, out_ch, k, k))
    bias = reader.take(f"{key}.bias", (out_ch,))
    return {"kernel": conv_transpose_kernel(weight), "bias": bias}


def _resnet_block(reader: StateDictReader, key: str, ch: int) -> dict:
    return {"conv1": _conv(reader, f"{key}.conv_block.1", ch, ch, 3),
            "conv2": _conv(reader, f"{key}.conv_block.5", ch, ch, 3)}


def _stack(reader: StateDictReader, prefix: str, first: int, ch: int, n: int) -> dict:
    """ResnetStack from the blocks ``<prefix><first>`` ... ``<prefix><first+n-1>``."""
    return {f"blocks_{j}": _resnet_block(reader, f"{prefix}{first + j}", ch) for j in range(n)}


# ----------------------------------------------------------------------------------------------
# VAE


def _encoder_params(reader: StateDictReader, m) -> dict:
    """``encoder.*`` keys (reader already under ``encoder.``); ``m`` has the VAE width fields."""
    ch = lambda level: level_channels(m.ngf, level, m.max_channels)
    n, k = m.n_down_convs, m.kernel_size
    params = {"conv_in": _conv(reader, "1", m.in_channels, ch(0), 7)}
    for i in range(n):
        params[f"downs_{i}"] = _conv(reader, str(4 + 3 * i), ch(i), ch(i + 1), k)
    params["trunk"] = _stack(reader, "", 4 + 3 * n, ch(n), m.n_res_blocks)
    return params


def _decoder_params(reader: StateDictReader, m) -> dict:
    ch = lambda level: level_channels(m.ngf, level, m.max_channels)
    n, k, r = m.n_down_convs, m.kernel_size, m.n_res_blocks
    params = {"trunk": _stack(reader, "", 0, ch(n), r)}
    for i in range(n):
        params[f"ups_{i}"] = _conv_transpose(reader, str(r + 3 * i), ch(n - i), ch(n - i - 1), k)
    params["conv_out"] = _conv(reader, str(r + 3 * n + 1), ch(0), m.out_channels, 7)
    return params


@converter("VAE")
def convert_vae(reader: StateDictReader, module: VAE) -> dict:
    if module.required not in ("both", "encoder", "decoder"):
        raise ValueError(f"VAE.required must be 'both', 'encoder' or 'decoder', "
                         f"got {module.required!r}")
    needed = {"encoder": module.required in ("both", "encoder"),
              "decoder": module.required in ("both", "decoder")}
    build = {"encoder": _encoder_params, "decoder": _decoder_params}
    params = {}
    for part in ("encoder", "decoder"):
        if needed[part] or reader.has_prefix(f"{part}."):
            params[part] = build[part](reader.sub(f"{part}."), module)
    return {"params": params}


@converter("VAEEncoder")
def convert_vae_encoder(reader: StateDictReader, module: VAEEncoder) -> dict:
    reader.skip_prefix("decoder.")  # loaded but never run by the official pipeline
    return {"params": _encoder_params(reader.sub("encoder."), module)}


@converter("VAEDecoder")
def convert_vae_decoder(reader: StateDictReader, module: VAEDecoder) -> dict:
    reader.skip_prefix("encoder.")
    return {"params": _decoder_params(reader.sub("decoder."), module)}


# ----------------------------------------------------------------------------------------------
# Mapping networks


def _head(reader: StateDictReader, prefix: str, m) -> dict:
    ch = lambda level: level_channels(m.nc, level, m.mc)
    return {f"convs_{i}": _conv(reader, f"{prefix}{3 * i}", ch(i), ch(i + 1), 3)
            for i in range(m.n_up)}


def _tail(reader: StateDictReader, prefix: str, first: int, m) -> dict:
    ch = lambda level: level_channels(m.nc, level, m.mc)
    u = m.n_up
    return {f"convs_{i}": _conv(reader, f"{prefix}{first + 3 * i}", ch(u - i), ch(u - 1 - i), 3)
            for i in range(u)}


def _width(m) -> int:
    return level_channels(m.nc, m.n_up, m.mc)


@converter("MappingModel")
def convert_mapping_model(reader: StateDictReader, module: nn.Module) -> dict:
    u, b, width = module.n_up, module.n_blocks, _width(module)
    return {"params": {
        "head": _head(reader, "model.", module),
        "trunk": _stack(reader, "model.", 3 * u, width, b),
        "tail": _tail(reader, "model.", 3 * u + b, module),
    }}


@converter("MappingModelWithMask")
def convert_mapping_model_with_mask(reader: StateDictReader, module: nn.Module) -> dict:
    width = _width(module)
    nl = {name: _conv(reader, f"NL.{name}", width, width, 1)
          for name in ("theta", "phi", "g", "W")}
    nl["res"] = _stack(reader, "NL.res_block.", 0, width, module.nl_res_blocks)
    return {"params": {
        "head": _head(reader, "before_NL.", module),
        "nl": nl,
        "trunk": _stack(reader, "after_NL.", 0, width, module.n_blocks),
        "tail": _tail(reader, "after_NL.", module.n_blocks, module),
    }}


@converter("MappingModelWithMask2")
def convert_mapping_model_with_mask2(reader: StateDictReader, module: nn.Module) -> dict:
    width, m = _width(module), module.stage_blocks
    n_scales = len(tuple(module.patch_sizes))
    params = {
        "head": _head(reader, "before_NL.", module),
        "pre": _stack(reader, "before_NL.", 3 * module.n_up, width, m),
        "post": _stack(reader, "after_NL.", 0, width, m),
        "tail": _tail(reader, "after_NL.", m, module),
    }
    for s in range(n_scales):
        params[f"attn_{s}"] = {
            "res_block": _resnet_block(reader, f"NL_scale_{s + 1}.res_block.0", width),
            "combine": _conv(reader, f"NL_scale_{s + 1}.F_Combine", 2 * width + 1, width, 3),
        }
        if s < n_scales - 1:
            params[f"between_{s}"] = _stack(reader, f"res_block_{s + 1}.", 0, width, m)
    return {"params": params}


__all__ = ["ConversionError", "convert_vae", "convert_vae_encoder", "convert_vae_decoder",
           "convert_mapping_model", "convert_mapping_model_with_mask",
           "convert_mapping_model_with_mask2"]
