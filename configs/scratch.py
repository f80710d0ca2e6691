"""Scratch detection: the UNet that finds scratches, trained on synthetic damage (ref. 10.6).

    .venv/bin/python train.py --config configs/scratch.py --workdir runs/scratch
    .venv/bin/python train.py --config configs/scratch.py:tiny --workdir runs/scratch_tiny

The release has no training code for this network; the stage trains it on grey crops of clean
photos with synthetic local damage and its mask (the data pipeline's ``detection`` stage), with
a class-balanced BCE (``--config.loss.detection=bce|focal`` for the others). Default: the official
UNet (depth 4, wf 6), batch 16 of 256 px crops; ``tiny``: wf 2, 32 px crops, batch 2, 300 steps
(reconstruction metric ``loss/bce``). The extended degradation preset gives richer damage:
``--config.input.preset=extended``.

Photos: ``../shared/photos/clean`` relative to the repository; override with
``--config.data.clean=/data/VOC/JPEGImages``. The export holds ``scratch_detector``.
"""
import pathlib

from oldphoto_jax.training import loop

PHOTOS = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "photos"

SMALL_STEPS = 8000  # the bundled run (weights/README.md)


def get_config(arg: str | None = None):
    if arg not in (None, "", "tiny", "small"):
        raise ValueError(f"configs/scratch.py takes no argument, 'tiny' or 'small', got {arg!r}")
    return loop.stage_config("scratch", photos_root=PHOTOS, size=arg or "",
                             small_steps=SMALL_STEPS)
