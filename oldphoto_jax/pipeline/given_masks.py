"""Damage masks given with the photos (``infer.py --with_scratch --mask_folder``), instead of
the scratch detector's.

A mask is an image file in the mask folder named like its photo (``portrait.png`` or
``portrait.jpg`` for ``portrait.tif``: the stem decides), white (any channel >= 128) where the
photo is damaged. It may be drawn at any size with the photo's aspect ratio (within 2 %): it is
brought to the size the restoration runs at by nearest-neighbour sampling, as the detector's
probability map is. Photos without a mask are detected as usual.
"""
from __future__ import annotations

import os
import pathlib

import numpy as np

from oldphoto_jax import photo_files
from oldphoto_jax.layers import nearest_source_indices

ASPECT_TOLERANCE = 0.02  # relative difference of width / height between mask and photo


def mask_paths(folder: str | os.PathLike) -> tuple[dict[str, pathlib.Path], list[str]]:
    """``{stem: mask file}`` of ``folder`` and notes on what was left out (hidden and system
    files, sub-folders, a second file with a stem already taken). ``OSError`` if the folder
    cannot be listed."""
    paths, notes = photo_files.list_photos(folder)
    by_stem: dict[str, pathlib.Path] = {}
    for path in paths:
        if path.stem in by_stem:
            notes.append(f"{path.name}: skipped (the mask {by_stem[path.stem].name} has the "
                         "same name)")
            continue
        by_stem[path.stem] = path
    return by_stem, notes


def read_mask(path: str | os.PathLike, photo_shape: tuple[int, int],
              size: tuple[int, int]) -> np.ndarray:
    """The mask at ``path`` as float32 ``H x W`` in {0, 1} (1 = damage) at ``size`` (H, W: the
    size restoration runs at); ``photo_files.PhotoError`` naming the file if it cannot be read
    or its aspect ratio is not that of the photo (``photo_shape``: its H, W as read)."""
    mask = photo_files.read_photo(path, min_side=1)
    height, width = mask.rgb.shape[:2]
    photo_h, photo_w = photo_shape
    aspect, photo_aspect = width / height, photo_w / photo_h
    if abs(aspect - photo_aspect) > ASPECT_TOLERANCE * photo_aspect:
        raise photo_files.PhotoError(
            pathlib.Path(path), f"the mask is {width}x{height} px, its photo {photo_w}x{photo_h}"
            ": a mask must have its photo's aspect ratio")
    damaged = (mask.rgb.max(axis=2) >= 128).astype(np.float32)
    rows = nearest_source_indices(height, size[0])
    cols = nearest_source_indices(width, size[1])
    return damaged[rows][:, cols]
