"""Preview what the model will see: degrade a few crops and write them next to their clean and
mask versions, plus a contact sheet.

    python -m data_synth.preview --input DIR --output DIR --n 6 --seed 0 [--preset extended]

For each sample ``<name>_clean.png``, ``<name>_degraded.png`` and ``<name>_mask.png`` (white =
damaged) are written, and ``contact_sheet.png`` shows one row per sample (clean | degraded |
mask) under a line naming the applied ops. Unreadable input files are reported once and skipped.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

import cv2
import numpy as np
from PIL import Image

from data_synth import config as config_lib
from data_synth import imagefiles, pipeline

_LABEL_HEIGHT = 16
_GAP = 4


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m data_synth.preview",
        description="Degrade a few crops and write clean, degraded and mask PNGs plus a contact "
        "sheet, to look at what the model will see.",
    )
    parser.add_argument("--input", required=True, help="folder of clean photos")
    parser.add_argument("--output", required=True, help="folder to write the previews to")
    parser.add_argument("--n", type=int, default=6, help="number of samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default="extended", choices=sorted(config_lib.PRESETS))
    parser.add_argument("--size", type=int, default=256, help="crop size in px")
    parser.add_argument(
        "--fit", type=int, default=0,
        help="first downscale each photo so its short side is FIT px (0: crop at native size)",
    )
    parser.add_argument("--mask-dir", default=None, help="folder of hole masks (official preset)")
    return parser.parse_args(argv)


def make_samples(
    photos: Sequence[tuple[str, np.ndarray]],
    n: int,
    seed: int,
    config,
    size: int,
    fit: int = 0,
) -> list[tuple[str, np.ndarray, pipeline.DegradedSample]]:
    """``n`` (name, clean crop, degraded sample) triples; photos are visited in a seeded order
    (cycling if ``n`` exceeds their number), sample ``i`` uses the seed ``(seed, i)``."""
    order = np.random.default_rng(seed).permutation(len(photos))
    samples = []
    for i in range(n):
        path, photo = photos[order[i % len(photos)]]
        if fit:
            photo = imagefiles.fit_short_side(photo, fit)
        clean = imagefiles.random_crop(photo, size, np.random.default_rng((seed, i, 1)))
        sample = pipeline.degrade(clean, (seed, i), config)
        name = f"{i:02d}_{os.path.splitext(os.path.basename(path))[0]}"
        samples.append((name, clean, sample))
    return samples


def mask_to_rgb(mask: np.ndarray) -> np.ndarray:
    """float mask in [0, 1] to a uint8 RGB image (white = damaged)."""
    grey = np.rint(np.clip(mask, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def contact_sheet(samples: Sequence[tuple[str, np.ndarray, pipeline.DegradedSample]]) -> np.ndarray:
    """One row per sample: a label line (name and applied ops), then clean | degraded | mask."""
    rows = []
    for name, clean, sample in samples:
        tiles = [clean, sample.degraded, mask_to_rgb(sample.mask)]
        height = max(t.shape[0] for t in tiles)
        gap = np.full((height, _GAP, 3), 255, dtype=np.uint8)
        padded = [_pad_to_height(tile, height) for tile in tiles]
        body = np.concatenate([padded[0], gap, padded[1], gap, padded[2]], axis=1)
        label = np.full((_LABEL_HEIGHT, body.shape[1], 3), 255, dtype=np.uint8)
        text = f"{name}: {' '.join(sample.op_names) or '(none)'}"
        origin = (2, _LABEL_HEIGHT - 4)
        cv2.putText(label, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
        rows.append(np.concatenate([label, body], axis=0))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(rows, axis=0)


def _pad_to_height(tile: np.ndarray, height: int) -> np.ndarray:
    return np.pad(tile, ((0, height - tile.shape[0]), (0, 0), (0, 0)), constant_values=255)


def write_png(path: str, image: np.ndarray) -> None:
    Image.fromarray(image).save(path, format="PNG", optimize=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    config = config_lib.get_preset(args.preset)
    if args.mask_dir:
        config.ops.holes.mask_dir = args.mask_dir
    photos = imagefiles.load_readable(
        imagefiles.list_images(args.input), report=lambda message: print(message, file=sys.stderr)
    )
    if not photos:
        print(f"no readable images in {args.input}", file=sys.stderr)
        return 1
    os.makedirs(args.output, exist_ok=True)
    samples = make_samples(photos, args.n, args.seed, config, args.size, args.fit)
    for name, clean, sample in samples:
        write_png(os.path.join(args.output, f"{name}_clean.png"), clean)
        write_png(os.path.join(args.output, f"{name}_degraded.png"), sample.degraded)
        write_png(os.path.join(args.output, f"{name}_mask.png"), mask_to_rgb(sample.mask)[..., 0])
        print(f"{name}: {sample.describe()}")
    write_png(os.path.join(args.output, "contact_sheet.png"), contact_sheet(samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
