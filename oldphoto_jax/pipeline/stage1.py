"""Stage 1 of the pipeline: scratch detection and global restoration (reference sections 2–3).

These functions run the networks; the image handling before and after is in ``preprocess`` and
``postprocess``. Networks are passed as ``(module, variables)`` pairs, as
``oldphoto_jax.checkpoints.Model.network`` returns them. The jitted functions take the modules as
static arguments, so XLA compiles once per (networks, input shape) and reuses the executable.
"""
from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from oldphoto_jax.pipeline import postprocess, preprocess

Network = tuple[nn.Module, dict]


@functools.partial(jax.jit, static_argnums=0)
def _scratch_probability(unet: nn.Module, variables, gray):
    return jax.nn.sigmoid(unet.apply(variables, gray))


def scratch_probability(detector: Network, unet_input: np.ndarray) -> np.ndarray:
    """Sigmoid of the detector's logits for a 1 x h x w x 1 input in [-1, 1] (sides % 16 == 0)."""
    module, variables = detector
    return np.asarray(_scratch_probability(module, variables, jnp.asarray(unet_input)))


@dataclasses.dataclass
class Detection:
    """What detection.py computes and writes for one photo."""

    rgb: np.ndarray           # the photo resized to multiples of 16 (masks/input/<stem>.png)
    unet_input: np.ndarray    # 1 x h' x w' x 1 grey input at short side ~256
    probability: np.ndarray   # 1 x h' x w' x 1 sigmoid output
    mask: np.ndarray          # H x W float32 {0, 1} at the size of ``rgb``
    mask_png: np.ndarray      # H x W x 3 uint8 as written to masks/mask/<stem>.png


def detect_scratches(detector: Network, image: Image.Image,
                     threshold: float = postprocess.SCRATCH_THRESHOLD) -> Detection:
    """detection.py with ``--input_size full_size`` on one RGB photo."""
    rgb, unet_input = preprocess.detection_input(image)
    probability = scratch_probability(detector, unet_input)
    mask = postprocess.scratch_mask_from_probability(probability, rgb.shape[:2], threshold)
    return Detection(rgb, unet_input, probability, mask, postprocess.mask_png(mask))


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _restore(encoder: nn.Module, mapping: nn.Module, decoder: nn.Module,
             enc_vars, map_vars, dec_vars, image, mask):
    z = encoder.apply(enc_vars, image, method="encode")
    z = mapping.apply(map_vars, z) if mask is None else mapping.apply(map_vars, z, mask)
    return decoder.apply(dec_vars, z, method="decode")


def restore(vae_a: Network, mapping: Network, vae_b: Network, image: np.ndarray,
            mask: np.ndarray | None = None) -> np.ndarray:
    """VAE_A encoder -> mapping -> VAE_B decoder (``Pix2PixHDModel_Mapping.inference``).

    ``image``: B x H x W x 3 in [-1, 1] (H, W multiples of 4); ``mask``: B x H x W x 1 in {0, 1}
    (1 = scratch) for the masked mappings, None for ``MappingModel``. Returns B x H x W x 3 in the
    tanh range.
    """
    mask = None if mask is None else jnp.asarray(mask)
    return np.asarray(_restore(vae_a[0], mapping[0], vae_b[0], vae_a[1], mapping[1], vae_b[1],
                               jnp.asarray(image), mask))
