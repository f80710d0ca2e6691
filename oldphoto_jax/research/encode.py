"""Feature vectors of crops in each space the latent-gap tool compares.

* ``pixels``, ``image_stats``: the weight-free image-space features of
  :mod:`oldphoto_jax.research.image_features`;
* ``vae_a``: VAE_A's encoder (the pipeline's encoder, trained on real and synthetic old photos
  with the latent discriminator pulling them together);
* ``vae_b``: VAE_B's encoder (trained on clean photos only; no term pulls old photos in): the
  control, a latent space of the same architecture that was not trained to close the gap.

A crop's latent is a ``S/4 x S/4 x C`` map; its vector is the per-channel mean and standard
deviation over the map (``2C`` values): the mean says where the crop sits in the latent space,
the deviation keeps how much the latent varies inside it (noise and texture live there).
"""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from oldphoto_jax.research import image_features
from oldphoto_jax.roles import VAE_B_ROLES

SPACES = ("pixels", "image_stats", "vae_a", "vae_b")
SPACE_TITLES = {"pixels": "image: pixels (8x8 thumbnails)",
                "image_stats": "image: colour/tone/texture statistics",
                "vae_a": "latent: VAE_A encoder", "vae_b": "latent: VAE_B encoder"}
# Which model role supplies VAE_B: the first of VAE_B_ROLES (the quality VAE_B when the model
# has both).


@functools.lru_cache(maxsize=8)
def _jitted_encoder(module):
    import jax

    if hasattr(module, "encode"):
        return jax.jit(lambda variables, x: module.apply(variables, x, method="encode"))
    return jax.jit(module.apply)


def pooled_latents(vae, crops: np.ndarray, batch_size: int = 16,
                   progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """N x 2C: per-channel mean and deviation of the latent map of each uint8 crop, encoded as
    the pipeline does (``[-1, 1]`` input). Batches are padded to ``batch_size`` so one
    compilation serves them all (the encoder's instance norms act per crop)."""
    from oldphoto_jax.pipeline import preprocess

    module, variables = vae
    encode = _jitted_encoder(module)
    rows = []
    for start in range(0, len(crops), batch_size):
        batch = crops[start:start + batch_size]
        x = np.concatenate([preprocess.to_network_input(c) for c in batch])
        if len(x) < batch_size:
            x = np.concatenate([x, np.zeros((batch_size - len(x),) + x.shape[1:], x.dtype)])
        z = np.asarray(encode(variables, x), np.float64)[:len(batch)]
        rows.append(np.concatenate([z.mean((1, 2)), z.std((1, 2))], axis=1))
        if progress is not None:
            progress(start + len(batch), len(crops))
    return np.concatenate(rows)


def vae_b_role(model) -> str | None:
    return next((role for role in VAE_B_ROLES if model.has(role)), None)


def space_features(model, crop_sets: dict, log: Callable[[str], None] = print,
                   batch_size: int = 16) -> dict[str, dict[str, np.ndarray]]:
    """``{space: {set name: N x d features}}`` for every space the model allows (``vae_b`` only
    when it has a VAE_B)."""
    features: dict[str, dict[str, np.ndarray]] = {
        "pixels": {n: np.stack([image_features.thumbnail(c) for c in s.crops])
                   for n, s in crop_sets.items()},
        "image_stats": {n: np.stack([image_features.statistics(c) for c in s.crops])
                        for n, s in crop_sets.items()},
    }
    log("image-space features done")
    roles = {"vae_a": "vae_a", "vae_b": vae_b_role(model)}
    for space, role in roles.items():
        if role is None:
            log(f"{space}: the model has no VAE_B ({' or '.join(VAE_B_ROLES)}); space skipped")
            continue
        vae = model.network(role)
        features[space] = {}
        for name, crop_set in crop_sets.items():
            step = max(1, len(crop_set.crops) // 4 // batch_size) * batch_size

            def progress(done, total, name=name):
                if done % step == 0 or done == total:
                    log(f"{space} ({role}): encoding {name} {done}/{total} crops")
            features[space][name] = pooled_latents(vae, crop_set.crops, batch_size, progress)
    return features
