"""VAE_B: the VAE of clean photos (reference 10.3).

    .venv/bin/python train.py --config configs/vae_b.py --workdir runs/vae_b
    .venv/bin/python train.py --config configs/vae_b.py:tiny --workdir runs/vae_b_tiny
    .venv/bin/python train.py --config configs/vae_b.py:small --workdir weights/runs/vae_b_small
    .venv/bin/python train.py --config configs/vae_b.py:small_colour --workdir runs/vae_b_colour

Argument: the size and variant, as ``configs/vae_a.py`` (the same networks, losses, optimiser
and schedule; see there): none = the official run (batch 120 of 256 px crops), ``tiny`` or
``small``, each optionally with ``colour`` (the ``vae_colour`` variant). VAE_B has no latent discriminator and reads clean photos only.

Photos: ``../shared/photos/clean`` relative to the repository; override with
``--config.data.clean=/data/VOC/JPEGImages``. The export holds the trained VAE under both
``vae_b_quality`` and ``vae_b_scratch`` (``--config.export_roles="('vae_b_quality',)"`` for one).
"""
import ml_collections

from configs import common, vae_a

SMALL_STEPS = 10000  # the bundled run (weights/README.md)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    size, _ = vae_a.parse(arg, "vae_b.py")
    config = vae_a.get_config(arg)
    config.task = "vae_b"
    for latent_d_field in ("latent_ndf", "latent_n_layers", "latent_chunks"):
        del config.disc[latent_d_field]
    del config.loss.latent_gan
    batch = {"": 120, "tiny": 2, "small": 16}[size]
    config.input = common.input_pipeline("domain_b", batch, config.input.crop_size, size)
    del config.data.old
    config.export_roles = ("vae_b_quality", "vae_b_scratch")
    if size == "small":
        common.fit_schedule(config, SMALL_STEPS)
    return config
