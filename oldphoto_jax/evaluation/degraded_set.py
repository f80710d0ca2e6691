"""A reproducible degraded test set: clean photos, their degraded versions and damage masks."""
from __future__ import annotations

import dataclasses
import pathlib
import zlib

import numpy as np
from PIL import Image

import data_synth
from oldphoto_jax import photo_files
from oldphoto_jax.data.config import without_local_damage

# The scratch pipeline works on sides that are multiples of 16 (detection input): clean photos are
# centre-cropped to such sides so the restoration has exactly the clean photo's size.
SIDE_MULTIPLE = 16


@dataclasses.dataclass(frozen=True)
class Case:
    """One test photo: ``clean`` and ``degraded`` uint8 RGB of equal size, ``mask`` bool (True =
    local damage: scratches, dust, folds, tears) from the degradation recipe."""

    name: str
    clean: np.ndarray
    degraded: np.ndarray
    mask: np.ndarray

    @property
    def stem(self) -> str:
        return pathlib.Path(self.name).stem


def fit_clean(rgb: np.ndarray, max_side: int | None) -> np.ndarray:
    """Downscale (PIL Lanczos) so the longer side is at most ``max_side``, then centre-crop both
    sides to multiples of :data:`SIDE_MULTIPLE`."""
    height, width = rgb.shape[:2]
    if max_side is not None and max(height, width) > max_side:
        width, height = photo_files.fit_within((width, height), max_side)
        rgb = np.asarray(Image.fromarray(rgb).resize((width, height), Image.LANCZOS))
    crop_h = height - height % SIDE_MULTIPLE
    crop_w = width - width % SIDE_MULTIPLE
    if crop_h < SIDE_MULTIPLE * 2 or crop_w < SIDE_MULTIPLE * 2:
        raise ValueError(f"photo of {width}x{height} is too small to evaluate")
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return np.ascontiguousarray(rgb[top:top + crop_h, left:left + crop_w])


def photo_seed(seed: int, name: str) -> tuple[int, int]:
    """The degradation seed of one photo: depends on its name only (not on the other photos)."""
    return (int(seed), zlib.crc32(name.encode("utf-8")))


def make_case(name: str, rgb: np.ndarray, seed: int, preset: str = "extended",
              max_side: int | None = 512, local_damage: bool = True) -> Case:
    """The case of one photo. ``local_damage`` False drops the recipe's local-damage steps
    (scratches, dust, folds, cracks, holes, tears): the unstructured degradations that quality
    mode restores, with an empty mask."""
    clean = fit_clean(rgb, max_side)
    recipe = data_synth.get_preset(preset)
    if not local_damage:
        recipe = without_local_damage(recipe)
    sample = data_synth.degrade(clean, photo_seed(seed, name), recipe)
    return Case(name=name, clean=clean, degraded=sample.degraded, mask=sample.mask > 0)


def load_cases(folder: str | pathlib.Path, names: list[str] | None, seed: int,
               preset: str = "extended", max_side: int | None = 512,
               log=print, local_damage: bool = True) -> list[Case]:
    """The cases of ``names`` in ``folder`` (None: every photo there), in the order given.
    A photo that cannot be read is an error naming it (an evaluation must not silently shrink)."""
    folder = pathlib.Path(folder)
    if names is None:
        paths, notes = photo_files.list_photos(folder)
        for note in notes:
            log(f"note: {note}")
    else:
        paths = [folder / name for name in names]
    if not paths:
        raise ValueError(f"no photos to evaluate in {folder}")
    cases = []
    for path in paths:
        photo = photo_files.read_photo(path)  # PhotoError names the file
        cases.append(make_case(path.name, photo.rgb, seed, preset, max_side, local_damage))
    return cases


def define_case_flags(model_help: str) -> None:
    """The flags of the model diagnostics' command lines (``detection_scores``,
    ``vae_reconstruction``): ``--checkpoint_dir`` (``model_help``), and the evaluation set:
    ``--clean_folder``, ``--photos``, ``--seed``, ``--max_side``."""
    from absl import flags

    flags.DEFINE_string("checkpoint_dir", None, model_help)
    flags.DEFINE_string("clean_folder", None, "Clean photos (default: ../shared/photos/clean).")
    flags.DEFINE_list("photos", None, "Photo names in --clean_folder (default: the bundled "
                      "model's held-out photos).")
    flags.DEFINE_integer("seed", 0, "Degradation seed.")
    flags.DEFINE_integer("max_side", 512, "Longer side of the evaluated photos.")


def model_and_cases_from_flags():
    """``(model, cases, clean folder)`` of the flags of :func:`define_case_flags`: the bundled
    model's held-out photos by default, degraded with its preset, as the evaluation does."""
    from absl import app, flags

    from oldphoto_jax import bundled, model_files

    values = flags.FLAGS
    if not values.checkpoint_dir:
        raise app.UsageError("--checkpoint_dir is required")
    clean = values.clean_folder or str(bundled.REPO.parent / "shared" / "photos" / "clean")
    names = values.photos or list(bundled.HOLDOUT)
    cases = load_cases(clean, names, values.seed, bundled.PRESET, values.max_side)
    return model_files.load_model(values.checkpoint_dir), cases, clean
