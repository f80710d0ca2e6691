"""Mapping: translation from VAE_A's latent space to VAE_B's (reference 10.4), three variants.

    .venv/bin/python train.py --config configs/mapping.py:quality --workdir runs/mapping_quality
    .venv/bin/python train.py --config configs/mapping.py:scratch --workdir runs/mapping_scratch
    .venv/bin/python train.py --config configs/mapping.py:hr --workdir runs/mapping_hr
    .venv/bin/python train.py --config configs/mapping.py:tiny_scratch --workdir runs/mapping_tiny

Argument: ``quality`` (default; ``Mapping_Model``, TTUR, batch 80), ``scratch``
(``Mapping_Model_with_mask`` with the partial non-local block, spectral-norm D, batch 36,
synthetic scratches and holes) or ``hr`` (multi-scale patch attention), each optionally prefixed
by ``tiny_`` (``tiny`` alone = ``tiny_quality``): 8-channel latents, 32 px crops, batch 2, 300
steps (reconstruction metric ``loss/latent_l1``).

The frozen VAEs come from the exports of the VAE runs, by default (relative to the repository)
``runs/vae_a/export`` and ``runs/vae_b/export`` (``runs/vae_a_tiny/export`` and
``runs/vae_b_tiny/export`` for the tiny variants, whose widths match ``configs/vae_*.py:tiny``);
override with ``--config.vae_a_checkpoint=... --config.vae_b_checkpoint=...``.

Photos: ``../shared/photos/clean`` relative to the repository (degraded on the fly); override
with ``--config.data.clean=/data/VOC/JPEGImages``. The export holds ``mapping_quality``,
``mapping_scratch`` or ``mapping_hr``.
"""
import pathlib

from oldphoto_jax import bundled
from oldphoto_jax.training import loop

REPO = pathlib.Path(__file__).resolve().parents[1]
PHOTOS = REPO.parent / "shared" / "photos"
VARIANTS = ("quality", "scratch", "hr")


SMALL_STEPS = 8000  # the bundled run (weights/README.md)


def get_config(arg: str | None = None):
    arg = arg or "quality"
    size = next((p for p in ("tiny", "small") if arg == p or arg.startswith(p + "_")), "")
    variant = arg.removeprefix(size).removeprefix("_") or "quality"
    if variant not in VARIANTS:
        raise ValueError(f"configs/mapping.py takes one of {VARIANTS}, optionally prefixed by "
                         f"'tiny_' or 'small_' (or 'tiny' / 'small' alone), got {arg!r}")
    config = loop.stage_config("mapping", photos_root=PHOTOS, size=size, variant=variant,
                               small_steps=SMALL_STEPS)
    suffix = f"_{size}" if size else ""
    runs = bundled.RUNS_DIR if size == "small" else REPO / "runs"
    config.vae_a_checkpoint = str(runs / f"vae_a{suffix}" / "export")
    config.vae_b_checkpoint = str(runs / f"vae_b{suffix}" / "export")
    return config
