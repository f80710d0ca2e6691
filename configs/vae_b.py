"""VAE_B: the VAE of clean photos (reference 10.3).

    .venv/bin/python train.py --config configs/vae_b.py --workdir runs/vae_b
    .venv/bin/python train.py --config configs/vae_b.py:tiny --workdir runs/vae_b_tiny

Default: the official run (VAE widths ngf 64, 2-scale PatchGAN, batch 120 of 256 px crops,
Adam 2e-4 with 100 + 100 epochs of floor(N/120) steps). ``tiny``: 8-channel networks, 32 px
crops, batch 2, 300 steps (reconstruction metric ``metric/l1``).

Photos: ``../shared/photos/clean`` relative to the repository; override with
``--config.data.clean=/data/VOC/JPEGImages``. The export holds the trained VAE under both
``vae_b_quality`` and ``vae_b_scratch`` (``--config.export_roles="('vae_b_quality',)"`` for one).
"""
import pathlib

from oldphoto_jax.training import loop

PHOTOS = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "photos"

SMALL_STEPS = 10000  # the bundled run (weights/README.md)


def get_config(arg: str | None = None):
    if arg not in (None, "", "tiny", "small"):
        raise ValueError(f"configs/vae_b.py takes no argument, 'tiny' or 'small', got {arg!r}")
    return loop.stage_config("vae_b", photos_root=PHOTOS, size=arg or "",
                             small_steps=SMALL_STEPS)
