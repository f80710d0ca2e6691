"""The three sets of the latent-gap measurement as crops of photos.

* R: real old photos, as they are;
* X: the clean photos degraded with ``data_synth`` (the training recipe of VAE_A's synthetic
  half), one degradation per photo with a seed that depends only on ``--seed`` and the photo;
* Y: the clean photos.

Every photo is first downscaled so its longer side is at most ``max_side`` and centre-cropped to
sides that are multiples of 16 (``evaluation.degraded_set.fit_clean``, as the evaluation does);
then ``crops_per_photo`` square crops of ``crop_size`` pixels are cut at random positions drawn
from the seed and the photo's label. A clean photo's X and Y crops sit at the same positions, so
X and Y differ only by the degradation (a paired design). Each crop is one sample; its group is
its source photo (``groups``), so the statistics resample and permute whole photos.
"""
from __future__ import annotations

import dataclasses
import pathlib
import zlib
from typing import Callable, Sequence

import numpy as np

from oldphoto_jax import photo_files
from oldphoto_jax.evaluation import degraded_set

SET_NAMES = ("R", "X", "Y")
# Files of a folder that are read as photos (a README beside the photos is left out); a file named
# on the command line is read whatever its name.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
SET_TITLES = {"R": "real old photos", "X": "synthetic old photos (degraded clean photos)",
              "Y": "clean photos"}


class InputError(ValueError):
    """A bad input path or photo; ``str(error)`` is one line naming it."""


@dataclasses.dataclass(frozen=True)
class CropSet:
    """One set's crops: ``crops`` N x S x S x 3 uint8, ``groups`` N (source photo ids, shared
    between X and Y of one clean photo), ``photos`` the labels of the photos (``photos[i]`` is the
    label of group ``photo_groups[i]``)."""

    name: str
    crops: np.ndarray
    groups: np.ndarray
    photos: tuple[str, ...]
    photo_groups: tuple[int, ...]


def photo_paths(entries: Sequence[str], what: str, log: Callable[[str], None] = print
                ) -> list[pathlib.Path]:
    """The photos of ``entries`` (folders: every photo in them, sorted; files: themselves).
    Raises :class:`InputError` for a path that does not exist or an empty result."""
    paths: list[pathlib.Path] = []
    for entry in entries:
        path = pathlib.Path(entry)
        if path.is_dir():
            found, notes = photo_files.list_photos(path)
            for note in notes:
                log(f"note: {path}: {note}")
            for candidate in found:
                if candidate.suffix.lower() in IMAGE_SUFFIXES:
                    paths.append(candidate)
                else:
                    log(f"note: {path}: {candidate.name}: skipped (not an image file name)")
        elif path.is_file():
            paths.append(path)
        else:
            raise InputError(f"{what}: {entry} does not exist")
    if not paths:
        raise InputError(f"{what}: no photos in {', '.join(entries)}")
    return paths


def photo_label(path: pathlib.Path) -> str:
    """``<folder>/<file>``: tells ``old/a.png`` from ``old_w_scratch/a.png``."""
    return f"{path.parent.name}/{path.name}"


def crop_positions(shape: tuple[int, int], size: int, count: int, seed: int, label: str
                   ) -> np.ndarray:
    """``count`` (top, left) offsets of ``size`` crops, uniform over the photo, drawn from
    ``(seed, crc32(label))`` only. Raises :class:`InputError` when the photo is too small."""
    height, width = shape
    if height < size or width < size:
        raise InputError(f"{label}: {width}x{height} after fitting is smaller than the "
                         f"{size} px crops (lower --crop_size)")
    rng = np.random.default_rng((int(seed), zlib.crc32(label.encode("utf-8"))))
    tops = rng.integers(0, height - size + 1, count)
    lefts = rng.integers(0, width - size + 1, count)
    return np.stack([tops, lefts], axis=1)


def cut(rgb: np.ndarray, positions: np.ndarray, size: int) -> np.ndarray:
    return np.stack([rgb[t:t + size, l:l + size] for t, l in positions])


def _fit(path: pathlib.Path, max_side: int | None) -> np.ndarray:
    try:
        rgb = photo_files.read_photo(path).rgb
        return degraded_set.fit_clean(rgb, max_side)
    except photo_files.PhotoError as error:
        raise InputError(str(error)) from error
    except ValueError as error:
        raise InputError(f"{path.name}: {error}") from error


def build_sets(real: Sequence[pathlib.Path], clean: Sequence[pathlib.Path], *, seed: int,
               preset: str, max_side: int | None, crop_size: int, crops_per_photo: int,
               log: Callable[[str], None] = print) -> dict[str, CropSet]:
    """``{"R": ..., "X": ..., "Y": ...}`` (see the module docstring). Group ids: the real photos
    0..len(real)-1, then the clean photos (shared by X and Y)."""
    import data_synth

    config = data_synth.get_preset(preset)
    crops = {name: [] for name in SET_NAMES}
    groups = {name: [] for name in SET_NAMES}
    photos = {name: [] for name in SET_NAMES}
    for i, path in enumerate(real):
        label = photo_label(path)
        rgb = _fit(path, max_side)
        positions = crop_positions(rgb.shape[:2], crop_size, crops_per_photo, seed, label)
        crops["R"].append(cut(rgb, positions, crop_size))
        groups["R"].append(np.full(crops_per_photo, i))
        photos["R"].append((label, i))
    log(f"R: {len(real)} real old photo(s), {len(real) * crops_per_photo} crops")
    for j, path in enumerate(clean):
        label = photo_label(path)
        group = len(real) + j
        rgb = _fit(path, max_side)
        positions = crop_positions(rgb.shape[:2], crop_size, crops_per_photo, seed, label)
        degraded = data_synth.degrade(rgb, degraded_set.photo_seed(seed, label), config).degraded
        for name, image in (("X", degraded), ("Y", rgb)):
            crops[name].append(cut(image, positions, crop_size))
            groups[name].append(np.full(crops_per_photo, group))
            photos[name].append((label, group))
        if (j + 1) % 10 == 0 or j + 1 == len(clean):
            log(f"X, Y: degraded {j + 1}/{len(clean)} clean photo(s) ({preset} preset)")
    return {name: CropSet(name, np.concatenate(crops[name]), np.concatenate(groups[name]),
                          tuple(p for p, _ in photos[name]), tuple(g for _, g in photos[name]))
            for name in SET_NAMES}
