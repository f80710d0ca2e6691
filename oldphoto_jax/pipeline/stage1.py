"""Stage 1 of the pipeline: scratch detection and global restoration (reference sections 2–3).

These functions run the networks; the image handling before and after is in ``preprocess`` and
``postprocess``. Networks are passed as ``(module, variables)`` pairs, as
``oldphoto_jax.model_files.Model.network`` returns them. The jitted functions take the modules as
closed-over constants of cached jitted functions, so XLA compiles once per (networks, input
shape) and reuses the executable. ``detection_function`` and ``restoration_function`` are the
pure functions that the batched, sharded inference engine compiles.
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from oldphoto_jax.models import mapping as mapping_models

Network = tuple[nn.Module, dict]


def detection_function(unet: nn.Module):
    """The pure function ``(params, gray) -> sigmoid(logits)`` of scratch detection."""
    def probability(params, gray):
        return jax.nn.sigmoid(unet.apply(params, gray))
    return probability


@functools.lru_cache(maxsize=4)
def _jitted_detection(unet):
    return jax.jit(detection_function(unet))


def scratch_probability(detector: Network, unet_input: np.ndarray) -> np.ndarray:
    """Sigmoid of the detector's logits for a 1 x h x w x 1 input in [-1, 1] (sides % 16 == 0)."""
    module, variables = detector
    return np.asarray(_jitted_detection(module)(variables, jnp.asarray(unet_input)))


def restoration_function(encoder: nn.Module, mapping: nn.Module, decoder: nn.Module):
    """The pure function ``(params, image, mask) -> restored`` of global restoration.

    ``params`` is ``(vae_a variables, mapping variables, vae_b variables)``; ``mask`` is None for
    ``MappingModel``. The HR mapping selects its query patches from the first batch element only
    (official quirk), so it runs per image under ``vmap``: a batch restores each photo exactly as
    a batch of one would.
    """
    per_image = isinstance(mapping, mapping_models.MappingModelWithMask2)

    def apply_mapping(map_vars, z, mask):
        if mask is None:
            return mapping.apply(map_vars, z)
        if per_image:
            one = lambda zi, mi: mapping.apply(map_vars, zi[None], mi[None])[0]  # noqa: E731
            return jax.vmap(one)(z, mask)
        return mapping.apply(map_vars, z, mask)

    def restore_fn(params, image, mask=None):
        enc_vars, map_vars, dec_vars = params
        z = encoder.apply(enc_vars, image, method="encode")
        z = apply_mapping(map_vars, z, mask)
        return decoder.apply(dec_vars, z, method="decode")

    return restore_fn


@functools.lru_cache(maxsize=16)
def _jitted_restoration(encoder, mapping, decoder):
    return jax.jit(restoration_function(encoder, mapping, decoder))


def restore(vae_a: Network, mapping: Network, vae_b: Network, image: np.ndarray,
            mask: np.ndarray | None = None) -> np.ndarray:
    """VAE_A encoder -> mapping -> VAE_B decoder (``Pix2PixHDModel_Mapping.inference``).

    ``image``: B x H x W x 3 in [-1, 1] (H, W multiples of 4); ``mask``: B x H x W x 1 in {0, 1}
    (1 = scratch) for the masked mappings, None for ``MappingModel``. Returns B x H x W x 3 in the
    tanh range.
    """
    fn = _jitted_restoration(vae_a[0], mapping[0], vae_b[0])
    mask = None if mask is None else jnp.asarray(mask)
    return np.asarray(fn((vae_a[1], mapping[1], vae_b[1]), jnp.asarray(image), mask))
