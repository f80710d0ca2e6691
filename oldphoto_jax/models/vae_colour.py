"""``vae_colour``: the release's VAE with each photo's global colour carried in the latent code.

The release's VAE (:class:`~oldphoto_jax.models.vae.VAE`) follows every convolution with a
parameter-free instance norm, so its first layer throws away each photo's overall colour and
brightness and the decoder has to guess them from content (measured on the bundled VAE_B:
held-out photos re-rendered at 19.1 dB, 23.8 dB once one colour offset per channel is removed).
This variant carries them past the encoder on purpose:

* **encode**: per photo and channel c, the mean ``m_c`` and standard deviation ``s_c`` of the
  image; the release's encoder runs on the standardised image ``(x - m) / max(s, min_std)``
  (so its latent holds content only), and the 2 * C statistics, times ``stats_scale``, are
  appended to its latent as constant channels: latent channels = the VAE's + 2 * C (38 for the
  small widths: 32 + 6);
* **decode**: the statistics are read back as the spatial mean of those channels (latent noise
  of unit variance per element in VAE training moves them by ``1 / (stats_scale * sqrt(h w))``),
  the release's decoder renders the standardised image from the content channels as
  ``norm_range * tanh(.)``, and the output is ``clip(m + max(s, min_std) * that, -1, 1)``.
  With ``restandardise`` the decoder's output is first standardised again per photo and
  channel (its own mean subtracted, divided by its own std), so the image has the carried
  statistics exactly (up to clipping) whatever content latent it decodes: decoding a scratch
  mapping's output, the colour VAE_B of ``weights/runs`` (trained without it) moved real photos'
  colours by up to 17 in Lab a*/b*, and by at most 3.8 with it switched on (weights/README.md,
  *The colour mappings, second CPU attempt*).

A mapping network between two such latents translates the statistics with the content (it sees
them as channels), so it can keep a photo's colours or correct a faded one, on purpose and under
the latent L1 loss, instead of a decoder inventing them. Same parameters as the VAE of the same
widths (the statistics have none); ``encode``, ``decode``, ``latent_channels`` and
``n_down_convs`` as the VAE, so the training stages and the pipeline run it unchanged.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from oldphoto_jax.models.vae import VAE

Array = jax.Array

# Floor of the decoder output's own std when ``restandardise`` divides by it (a flat output).
RESTANDARDISE_MIN_STD = 1e-3


class VAEColour(VAE):
    """:class:`VAE` whose latent code also holds each photo's per-channel mean and std."""

    min_std: float = 0.05      # floor of the standard deviation used to standardise
    norm_range: float = 4.0    # the decoder renders standardised values in (-norm_range, ...)
    stats_scale: float = 4.0   # statistics are stored in the latent times this
    restandardise: bool = False  # standardise the decoder's output again before the statistics

    # Fields that hold no parameters: ``assemble --set vae_b_quality.restandardise=true`` may
    # change them on a trained network.
    PARAMETER_FREE_FIELDS = ("restandardise",)

    @property
    def stats_channels(self) -> int:
        return 2 * self.in_channels

    @property
    def latent_channels(self) -> int:
        return super().latent_channels + self.stats_channels

    def _stats(self, x: Array) -> tuple[Array, Array]:
        if self.out_channels != self.in_channels:
            raise ValueError("VAEColour renders the channels it measured: in_channels and "
                             f"out_channels must be equal, got {self.in_channels} and "
                             f"{self.out_channels}")
        mean = jnp.mean(x, axis=(1, 2), keepdims=True)
        std = jnp.sqrt(jnp.mean(jnp.square(x - mean), axis=(1, 2), keepdims=True))
        return mean, std

    def encode(self, x: Array) -> Array:
        mean, std = self._stats(x)
        content = self.encoder((x - mean) / jnp.maximum(std, self.min_std))
        stats = jnp.concatenate([mean, std], axis=-1) * self.stats_scale
        stats = jnp.broadcast_to(stats, content.shape[:3] + (self.stats_channels,))
        return jnp.concatenate([content, stats], axis=-1)

    def decode(self, z: Array) -> Array:
        if z.shape[-1] != self.latent_channels:
            raise ValueError(f"VAEColour expects {self.latent_channels} latent channels (NHWC), "
                             f"got shape {z.shape}")
        content, stats = z[..., :-self.stats_channels], z[..., -self.stats_channels:]
        stats = jnp.mean(stats, axis=(1, 2), keepdims=True) / self.stats_scale
        mean, std = stats[..., :self.in_channels], stats[..., self.in_channels:]
        # The release's decoder ends in tanh: its output, scaled, is the standardised image.
        standardised = self.norm_range * self.decoder(content)
        if self.restandardise:
            own_mean, own_std = self._stats(standardised)
            standardised = (standardised - own_mean) / jnp.maximum(own_std, RESTANDARDISE_MIN_STD)
        image = mean + jnp.maximum(std, self.min_std) * standardised
        return jnp.clip(image, -1.0, 1.0)

    def __call__(self, x: Array) -> Array:
        return self.decode(self.encode(x))
