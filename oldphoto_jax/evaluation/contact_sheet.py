"""Side-by-side sheets of photos (before / after), for the README and evaluation reports.

    .venv/bin/python -m oldphoto_jax.evaluation.contact_sheet --output docs/bundled/samples.png \\
        --columns samples/old_w_scratch outputs/samples/old_w_scratch/final_output

Each column is a folder; a row is one file name present in the first folder (matched by stem in
the others, e.g. ``a.jpg`` -> ``a.png``), each image scaled to ``--height`` pixels.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np
from PIL import Image

from oldphoto_jax import photo_files

GAP = 4


def scaled(rgb: np.ndarray, height: int) -> np.ndarray:
    width = max(1, round(rgb.shape[1] * height / rgb.shape[0]))
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.LANCZOS))


def sheet(rows: list[list[np.ndarray]], height: int) -> np.ndarray:
    """Rows of images -> one white-separated uint8 RGB sheet."""
    lines = []
    for row in rows:
        cells = [scaled(image, height) for image in row]
        parts = []
        for cell in cells:
            parts += [cell, np.full((height, GAP, 3), 255, np.uint8)]
        lines += [np.concatenate(parts[:-1], axis=1)]
    width = max(line.shape[1] for line in lines)
    padded = []
    for line in lines:
        pad = np.full((height, width - line.shape[1], 3), 255, np.uint8)
        padded += [np.concatenate([line, pad], axis=1), np.full((GAP, width, 3), 255, np.uint8)]
    return np.concatenate(padded[:-1], axis=0)


def folder_rows(columns: list[pathlib.Path]) -> list[list[np.ndarray]]:
    first, *others = columns
    paths, _ = photo_files.list_photos(first)
    rows = []
    for path in paths:
        row = [photo_files.read_photo(path).rgb]
        for folder in others:
            matches = sorted(folder.glob(f"{path.stem}.*"))
            if not matches:
                raise FileNotFoundError(f"no {path.stem}.* in {folder}")
            row.append(photo_files.read_photo(matches[0]).rgb)
        rows.append(row)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--columns", nargs="+", required=True, help="folders, one per column")
    parser.add_argument("--output", required=True, help="PNG to write")
    parser.add_argument("--height", type=int, default=256, help="row height in pixels")
    args = parser.parse_args(argv)
    try:
        rows = folder_rows([pathlib.Path(c) for c in args.columns])
    except (FileNotFoundError, photo_files.PhotoError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if not rows:
        print(f"error: no photos in {args.columns[0]}", file=sys.stderr)
        return 1
    photo_files.write_png_atomic(args.output, sheet(rows, args.height))
    print(f"wrote {args.output} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
