"""VAE_A: the VAE of old photos, real and synthetic, with its latent discriminator (ref. 10.2).

    .venv/bin/python train.py --config configs/vae_a.py --workdir runs/vae_a
    .venv/bin/python train.py --config configs/vae_a.py:tiny --workdir runs/vae_a_tiny

Default: the official run (VAE widths ngf 64, 2-scale PatchGAN, latent D, batch 100 of 256 px
crops, Adam 2e-4 with 100 + 100 epochs of floor(N/100) steps). ``tiny``: 8-channel networks,
32 px crops, batch 2, 300 steps (a CPU smoke run; the reconstruction metric is ``metric/l1``).

Photos (relative to the repository): ``../shared/photos/clean`` (synthetic old photos are made
from them) and ``../shared/photos/old`` + ``../shared/photos/old_w_scratch`` (the two real
old-photo sets, each drawn with probability 1/4). Override with e.g.
``--config.data.clean=/data/VOC/JPEGImages --config.data.old="('/data/L_old', '/data/RGB_old')"``.
The export (``<workdir>/export``) holds role ``vae_a``.
"""
import pathlib

from oldphoto_jax.training import loop

PHOTOS = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "photos"

SMALL_STEPS = 10000  # the bundled run (weights/README.md)


def get_config(arg: str | None = None):
    if arg not in (None, "", "tiny", "small"):
        raise ValueError(f"configs/vae_a.py takes no argument, 'tiny' or 'small', got {arg!r}")
    return loop.stage_config("vae_a", photos_root=PHOTOS, size=arg or "",
                             small_steps=SMALL_STEPS)
