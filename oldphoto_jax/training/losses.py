"""Loss functions of every training task (reference sections 10.1-10.6).

Discriminator outputs are in the format of
:class:`oldphoto_jax.models.discriminators.MultiscaleDiscriminator`: a list over scales of the
lists of block outputs, the score map last. All functions are pure and jittable; batch
reductions are plain means over the global batch (under a sharded ``jit`` they are global, which
equals the official 4-GPU average of per-chunk means for every mean-reduced loss, 10.1).

* Least squares GAN (Global tasks, 10.1): ``LS(outputs, t) = sum over scales of
  mean((score - t)**2)``; D objective ``1/2 [LS(D(real), 1) + LS(D(fake), 0)]``; G objective
  ``LS(D(fake), 1)``.
* Hinge GAN (face task, SPADE defaults, 10.6): D terms ``mean(relu(1 - D(real)))`` and
  ``mean(relu(1 + D(fake)))`` returned separately (the D objective is their plain sum), G term
  ``-mean(D(fake))``; each averaged over the scales.
* Feature matching (10.1): ``sum_scales sum_k w * lambda_feat * mean|feat_k(fake) - feat_k(real)|``
  over all block outputs but the score map, real features constant; ``w = (1/num_D) *
  (4/(n_layers+1))`` for pix2pixHD (every term 5 with the official 2 scales, 3 layers,
  lambda 10) or ``w = 1/num_D`` for SPADE.
* KL of VAE_A/VAE_B (10.2): ``kl * mean(h**2)``; mapping latent loss (10.4):
  ``weight * mean|z_hat - z_B|``.
* VAE_A latent adversarial terms with the "first L of each group" rule (10.2, 10.5 #6):
  :func:`latent_group_weights`, :func:`latent_adversarial_losses`.
* Scratch detection (not released, 10.6): class-balanced BCE (default), weighted BCE or focal
  loss on the logits; see :func:`detection_loss`.
* VGG19 perceptual loss (10.1), optional: :class:`VGG19Features`, :func:`load_vgg19_npz`,
  :func:`vgg_loss`.
"""
from __future__ import annotations

import os
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from oldphoto_jax.layers import Conv2d, Precision

Array = jax.Array
DOutputs = Sequence[Sequence[Array]]      # [scale][block] as returned by the discriminators


def score_maps(outputs: DOutputs) -> list[Array]:
    """The score map (last block output) of every scale."""
    return [scale[-1] for scale in outputs]


# ----------------------------------------------------------------------------------------------
# Least squares GAN (pix2pixHD, Global tasks)


def ls_per_sample(outputs: DOutputs, target: float) -> Array:
    """Per-sample least-squares term (B,): sum over scales of the per-sample mean (score - t)^2.

    Its batch mean is :func:`lsgan_loss` (every sample's score map has the same size).
    """
    total = 0.0
    for score in score_maps(outputs):
        total = total + jnp.mean(jnp.square(score - target), axis=tuple(range(1, score.ndim)))
    return total


def lsgan_loss(outputs: DOutputs, target: float) -> Array:
    """``LS(outputs, t)``: sum over scales of the mean of (score - t)^2 over the score map."""
    return sum(jnp.mean(jnp.square(score - target)) for score in score_maps(outputs))


def lsgan_d_loss(real_outputs: DOutputs, fake_outputs: DOutputs) -> tuple[Array, Array, Array]:
    """D objective ``1/2 [LS(real, 1) + LS(fake, 0)]`` and its two terms (unhalved).

    The caller makes ``fake_outputs`` come from a stop-gradient fake (or takes only the D-side
    gradient of this objective).
    """
    real, fake = lsgan_loss(real_outputs, 1.0), lsgan_loss(fake_outputs, 0.0)
    return 0.5 * (real + fake), real, fake


# ----------------------------------------------------------------------------------------------
# Hinge GAN (SPADE, face task)


def hinge_d_losses(real_outputs: DOutputs, fake_outputs: DOutputs) -> tuple[Array, Array]:
    """SPADE's ``D_real`` and ``D_Fake``: means of relu(1 - s) and relu(1 + s), averaged over
    scales. The D objective is their sum (no 1/2)."""
    real_maps, fake_maps = score_maps(real_outputs), score_maps(fake_outputs)
    real = sum(jnp.mean(jax.nn.relu(1.0 - s)) for s in real_maps) / len(real_maps)
    fake = sum(jnp.mean(jax.nn.relu(1.0 + s)) for s in fake_maps) / len(fake_maps)
    return real, fake


def hinge_g_loss(fake_outputs: DOutputs) -> Array:
    """SPADE's generator hinge term ``-mean(D(fake))``, averaged over scales."""
    maps = score_maps(fake_outputs)
    return -sum(jnp.mean(s) for s in maps) / len(maps)


# ----------------------------------------------------------------------------------------------
# Feature matching


def feature_matching_loss(fake_outputs: DOutputs, real_outputs: DOutputs,
                          lambda_feat: float = 10.0, weighting: str = "pix2pixhd") -> Array:
    """Discriminator feature matching (reference 10.1 / 10.6).

    Matches every block output but the score map, at every scale; the real features are
    constants (stop-gradient). ``weighting="pix2pixhd"``: each term ``(1/num_D) *
    (4/(n_layers+1)) * lambda_feat * mean|diff|`` with ``n_layers + 1`` the number of matched
    blocks; ``"spade"``: ``lambda_feat / num_D * mean|diff|``.
    """
    if weighting not in ("pix2pixhd", "spade"):
        raise ValueError(f"unknown feature-matching weighting {weighting!r}")
    num_d = len(fake_outputs)
    loss = 0.0
    for fake_scale, real_scale in zip(fake_outputs, real_outputs):
        matched = len(fake_scale) - 1
        weight = lambda_feat / num_d
        if weighting == "pix2pixhd":
            weight = weight * 4.0 / matched
        for fake, real in zip(fake_scale[:-1], real_scale[:-1]):
            loss = loss + weight * jnp.mean(jnp.abs(fake - jax.lax.stop_gradient(real)))
    return loss


# ----------------------------------------------------------------------------------------------
# VAE and mapping terms


def kl_loss(h: Array, weight: float = 1.0) -> Array:
    """The release's KL term ``kl * mean(h**2)`` (posterior N(h, I), no 1/2; reference 10.2)."""
    return weight * jnp.mean(jnp.square(h))


def latent_l1_loss(z_hat: Array, z_target: Array, weight: float = 60.0) -> Array:
    """Mapping latent loss ``weight * mean|z_hat - z_target|`` (``--use_l1_feat``, 10.4)."""
    return weight * jnp.mean(jnp.abs(z_hat - z_target))


def latent_group_weights(is_real: Array, chunks: int = 1) -> tuple[Array, Array]:
    """Per-sample weights of VAE_A's latent adversarial terms (reference 10.2, 10.5 #6).

    ``is_real`` (B,) is 1 for real old photos and 0 for synthetic (degraded clean) samples.
    The batch is cut into ``chunks`` equal consecutive chunks (1 = the whole batch; 4 with the
    official batch reproduces the release's per-GPU behaviour). In each chunk, ``L = min(#real,
    #synthetic)`` and the first L samples of each group in batch order are kept; a chunk with an
    empty group contributes nothing (the intended fix of 10.5 #6). Returns ``(w_real, w_syn)``,
    each (B,): ``1 / (L_chunk * n_used_chunks)`` on kept samples, 0 elsewhere, so that
    ``sum(w * per_sample_term)`` is the equal-weight average over the used chunks of the mean
    over each chunk's kept samples. All shapes are static (masks, no boolean indexing), so it
    jits and shards.
    """
    b = is_real.shape[0]
    if chunks < 1 or b % chunks:
        raise ValueError(f"batch {b} does not split into {chunks} latent-D chunks")
    real = (is_real.reshape(chunks, b // chunks) > 0.5).astype(jnp.float32)
    syn = 1.0 - real
    n_keep = jnp.minimum(real.sum(axis=1, keepdims=True), syn.sum(axis=1, keepdims=True))
    keep_real = real * (jnp.cumsum(real, axis=1) <= n_keep)
    keep_syn = syn * (jnp.cumsum(syn, axis=1) <= n_keep)
    used = (n_keep > 0).astype(jnp.float32)
    scale = used / (jnp.maximum(n_keep, 1.0) * jnp.maximum(used.sum(), 1.0))
    return (keep_real * scale).reshape(b), (keep_syn * scale).reshape(b)


def latent_adversarial_losses(feat_d_outputs: DOutputs, is_real: Array,
                              chunks: int = 1) -> dict[str, Array]:
    """VAE_A's latent GAN terms from one ``feat_D`` pass over every sample's latent h.

    * ``feat_d``: ``1/2 [LS(feat_D(h_syn), 1) + LS(feat_D(h_real), 0)]`` (take only its
      feat_D-side gradient: the latents are constants for it);
    * ``g_latent``: ``LS(feat_D(h_real), 1)``, the encoder term, whose gradient reaches the
      encoder through the kept real-old latents only;
    restricted to the kept samples of :func:`latent_group_weights`; both are 0 when no chunk
    has both groups. Also returns ``pairs`` (the number of kept pairs, for logging).
    """
    w_real, w_syn = latent_group_weights(is_real, chunks)
    ls_syn_true = ls_per_sample(feat_d_outputs, 1.0)
    ls_real_false = ls_per_sample(feat_d_outputs, 0.0)
    feat_d = 0.5 * (jnp.sum(w_syn * ls_syn_true) + jnp.sum(w_real * ls_real_false))
    g_latent = jnp.sum(w_real * ls_syn_true)
    pairs = jnp.sum(w_real > 0).astype(jnp.float32)
    return {"feat_d": feat_d, "g_latent": g_latent, "pairs": pairs}


# ----------------------------------------------------------------------------------------------
# Scratch detection (no released recipe; reference 10.6)

DETECTION_LOSSES = ("balanced_bce", "bce", "focal")


def _bce_terms(logits: Array, target: Array) -> tuple[Array, Array]:
    """Per-pixel -log p and -log(1-p) of ``sigmoid(logits)`` (stable)."""
    return jax.nn.softplus(-logits), jax.nn.softplus(logits)


def balanced_bce_loss(logits: Array, mask: Array) -> Array:
    """Class-balanced BCE: ``1/2 mean_scratch(-log p) + 1/2 mean_clean(-log(1-p))``.

    Scratch pixels are typically 1-5% of a photo, so plain BCE learns to predict "clean"; here
    each class present in the batch carries half of the loss (a class absent from the batch
    gives its half to the other). Means are over the whole (global) batch.
    """
    pos_term, neg_term = _bce_terms(logits, mask)
    n_pos, n_neg = jnp.sum(mask), jnp.sum(1.0 - mask)
    pos = jnp.sum(mask * pos_term) / jnp.maximum(n_pos, 1.0)
    neg = jnp.sum((1.0 - mask) * neg_term) / jnp.maximum(n_neg, 1.0)
    has_pos, has_neg = (n_pos > 0).astype(logits.dtype), (n_neg > 0).astype(logits.dtype)
    return (has_pos * pos + has_neg * neg) / jnp.maximum(has_pos + has_neg, 1.0)


def weighted_bce_loss(logits: Array, mask: Array, positive_weight: float = 1.0) -> Array:
    """``mean(positive_weight * m * -log p + (1 - m) * -log(1-p))`` (torch's ``pos_weight``)."""
    pos_term, neg_term = _bce_terms(logits, mask)
    return jnp.mean(positive_weight * mask * pos_term + (1.0 - mask) * neg_term)


def focal_loss(logits: Array, mask: Array, gamma: float = 2.0, alpha: float = 0.25) -> Array:
    """Focal loss (Lin et al. 2017): ``mean(-alpha_t (1 - p_t)^gamma log p_t)``."""
    pos_term, neg_term = _bce_terms(logits, mask)
    p = jax.nn.sigmoid(logits)
    pos = alpha * jnp.power(1.0 - p, gamma) * pos_term
    neg = (1.0 - alpha) * jnp.power(p, gamma) * neg_term
    return jnp.mean(mask * pos + (1.0 - mask) * neg)


def detection_loss(logits: Array, mask: Array, kind: str = "balanced_bce",
                   positive_weight: float = 1.0, gamma: float = 2.0,
                   alpha: float = 0.25) -> Array:
    """The scratch-detection loss selected by ``kind`` (one of :data:`DETECTION_LOSSES`)."""
    if kind == "balanced_bce":
        return balanced_bce_loss(logits, mask)
    if kind == "bce":
        return weighted_bce_loss(logits, mask, positive_weight)
    if kind == "focal":
        return focal_loss(logits, mask, gamma, alpha)
    raise ValueError(f"unknown detection loss {kind!r}; choose from {DETECTION_LOSSES}")


def detection_metrics(logits: Array, mask: Array, threshold: float = 0.4) -> dict[str, Array]:
    """Pixel precision, recall and IoU of ``sigmoid(logits) >= threshold`` (the inference
    threshold of reference 2.3) against the mask, over the whole batch."""
    pred = (jax.nn.sigmoid(logits) >= threshold).astype(jnp.float32)
    target = (mask > 0.5).astype(jnp.float32)
    tp = jnp.sum(pred * target)
    fp = jnp.sum(pred * (1.0 - target))
    fn = jnp.sum((1.0 - pred) * target)
    return {"precision": tp / jnp.maximum(tp + fp, 1.0),
            "recall": tp / jnp.maximum(tp + fn, 1.0),
            "iou": tp / jnp.maximum(tp + fp + fn, 1.0)}


# ----------------------------------------------------------------------------------------------
# VGG19 perceptual loss (optional: needs user-supplied ImageNet weights)

# torchvision ``vgg19().features`` up to relu5_1: conv widths by torchvision index; "M" = max pool.
VGG19_LAYERS: tuple[tuple[int, int | str], ...] = (
    (0, 64), (2, 64), (4, "M"), (5, 128), (7, 128), (9, "M"),
    (10, 256), (12, 256), (14, 256), (16, 256), (18, "M"),
    (19, 512), (21, 512), (23, 512), (25, 512), (27, "M"), (28, 512))
# ReLU outputs used by the loss: relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 (indices 1, 6, 11,
# 20, 29) = the ReLUs that follow the convs at these indices.
VGG19_TAPS = (0, 5, 10, 19, 28)
VGG_LAYER_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


class VGG19Features(nn.Module):
    """torchvision ``vgg19().features[:30]`` on NHWC; returns the 5 tapped ReLU activations.

    3x3 zero-padded convs with bias, ReLU, 2x2 max pools. Param tree ``features_{i}/{kernel,
    bias}`` with ``i`` the torchvision index. Fed [-1, 1] images directly, without ImageNet
    mean/std normalisation (as the release does).
    """

    precision: Precision = "highest"

    @nn.compact
    def __call__(self, x: Array) -> list[Array]:
        taps = []
        for index, spec in VGG19_LAYERS:
            if spec == "M":
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
                continue
            x = nn.relu(Conv2d(int(spec), 3, padding=1, precision=self.precision,
                               name=f"features_{index}")(x))
            if index in VGG19_TAPS:
                taps.append(x)
        return taps


def load_vgg19_npz(path: str | os.PathLike) -> dict:
    """Params of :class:`VGG19Features` from an ``.npz`` of torchvision VGG19 arrays.

    The file holds torchvision's ``features.{i}.weight`` (OIHW) and ``features.{i}.bias`` for
    the convs ``i`` in 0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28 (others are ignored).
    Make it once where torchvision and its ImageNet weights are available::

        import numpy as np, torchvision
        vgg = torchvision.models.vgg19(weights=torchvision.models.VGG19_Weights.IMAGENET1K_V1)
        np.savez("vgg19_features.npz",
                 **{f"features.{k}": v.numpy() for k, v in vgg.features.state_dict().items()})

    and point ``config.loss.vgg_weights`` at it.
    """
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    params = {}
    for index, spec in VGG19_LAYERS:
        if spec == "M":
            continue
        w_key, b_key = f"features.{index}.weight", f"features.{index}.bias"
        if w_key not in arrays or b_key not in arrays:
            raise ValueError(f"{path}: missing {w_key} / {b_key} (expected torchvision VGG19 "
                             "features.* arrays)")
        weight = np.asarray(arrays[w_key], np.float32)
        expected_in = 3 if index == 0 else None
        if weight.ndim != 4 or weight.shape[0] != spec or weight.shape[2:] != (3, 3) or (
                expected_in is not None and weight.shape[1] != expected_in):
            raise ValueError(f"{path}: {w_key} has shape {weight.shape}, expected "
                             f"({spec}, in, 3, 3)")
        params[f"features_{index}"] = {"kernel": weight.transpose(2, 3, 1, 0),
                                       "bias": np.asarray(arrays[b_key], np.float32)}
    return params


def vgg_loss(vgg_params, fake: Array, real: Array, weight: float = 10.0,
             layer_weights: Sequence[float] = VGG_LAYER_WEIGHTS,
             precision: Precision = "highest") -> Array:
    """``weight * sum_i w_i mean|phi_i(fake) - phi_i(real)|`` with constant real features
    (reference 10.1: weight = lambda_feat = 10 in Global; lambda_vgg = 10 for faces).

    One VGG pass over the concatenated batch [fake, real]; grayscale (1-channel) inputs are
    repeated to 3 channels.
    """
    if fake.shape[-1] == 1:
        fake, real = jnp.repeat(fake, 3, axis=-1), jnp.repeat(real, 3, axis=-1)
    b = fake.shape[0]
    taps = VGG19Features(precision).apply({"params": vgg_params},
                                          jnp.concatenate([fake, real], axis=0))
    loss = 0.0
    for w, feat in zip(layer_weights, taps):
        loss = loss + w * jnp.mean(jnp.abs(feat[:b] - jax.lax.stop_gradient(feat[b:])))
    return weight * loss
