"""Scratch detection: the UNet that finds scratches, trained on synthetic damage (ref. 10.6).

    .venv/bin/python train.py --config configs/scratch.py --workdir runs/scratch
    .venv/bin/python train.py --config configs/scratch.py:tiny --workdir runs/scratch_tiny
    .venv/bin/python train.py --config configs/scratch.py:small --workdir weights/runs/scratch_small

The release has no training code for this network; the task trains it on grey crops of clean
photos with synthetic local damage and its mask (the data pipeline's ``detection`` records).
Argument: the size (``configs/common.py``): none = the official UNet (depth 4, wf 6), batch 16
of 256 px crops, class-balanced BCE; ``tiny``: wf 2, 32 px crops, batch 2, 300 steps
(reconstruction metric ``loss/bce``); ``small``: the bundled detector (wf 3, plain BCE, 8000
steps). ``--config.loss.detection=bce|balanced_bce|focal`` chooses the loss; the extended
degradation preset gives richer damage: ``--config.input.preset=extended``.

Photos: ``../shared/photos/clean`` relative to the repository; override with
``--config.data.clean=/data/VOC/JPEGImages``. The export holds ``scratch_detector``.
"""
import ml_collections

from configs import common

SIZES = ("", "tiny", "small")
SMALL_STEPS = 8000  # the bundled run (weights/README.md)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    size = arg or ""
    if size not in SIZES:
        raise ValueError(f"configs/scratch.py takes no argument, 'tiny' or 'small', got {arg!r}")
    config = ml_collections.ConfigDict(common.trainer(size))
    config.task = "scratch"
    config.model = dict(name="unet", in_channels=1,  # must equal input.detection_channels
                        depth=4, wf={"": 6, "tiny": 2, "small": 3}[size], conv_num=2)
    config.loss = dict(
        # plain BCE in the small run: the class-balanced BCE flagged 20-60 % of every photo at
        # the 0.4 threshold in the bundled model's first attempt (true masks: 1-5 %)
        detection="bce" if size == "small" else "balanced_bce",
        positive_weight=1.0,   # "bce": weight of the scratch pixels
        focal_gamma=2.0, focal_alpha=0.25,  # "focal"
        detection_threshold=0.4)  # for the precision / recall metrics (reference 2.3)
    config.optim = dict(lr=2e-4, ttur=False, b1=0.9, b2=0.999, eps=1e-8, niter=100,
                        niter_decay=100,
                        steps_per_epoch=0,  # 0 = floor(N / batch_size) of the clean photos
                        # held fixed: NETWORK/PATH prefixes (training/optim.py)
                        frozen="")
    batch, crop = {"": (16, 256), "tiny": (2, 32), "small": (16, 256)}[size]
    config.input = common.input_pipeline("detection", batch, crop, size)
    config.data = common.clean_photos(size)
    # Start from a trained detector (a model directory, and its role; empty = its
    # scratch_detector): every parameter and running statistic of the same place and shape.
    config.init_from = dict(checkpoint="", role="", embed=False)
    if size == "small":
        common.fit_schedule(config, SMALL_STEPS)
    return config
