"""Fixtures of the input-pipeline tests: tiny generated photo folders and input settings."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from oldphoto_jax.data import FolderPhotos, InputConfig, TrainingPhotos

CROP = 32


def make_photo(height: int, width: int, seed: int) -> np.ndarray:
    """A photo-like uint8 RGB image: smooth colour ramps plus texture, different per seed."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 200, size=3)
    image = base + 50 * np.stack([xs / width, ys / height, (xs + ys) / (width + height)], -1)
    image += rng.normal(0, 12, size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def write_folder(folder, shapes, seed0: int):
    folder.mkdir()
    for k, (height, width) in enumerate(shapes):
        Image.fromarray(make_photo(height, width, seed0 + k)).save(folder / f"photo{k}.png")
    return folder


@pytest.fixture(scope="session")
def folders(tmp_path_factory):
    """clean/ (three photos, one smaller than the crop, a corrupt JPEG and a text file), old/
    (two photos) and old_grey/ (one grey JPEG)."""
    root = tmp_path_factory.mktemp("photos")
    clean = write_folder(root / "clean", [(48, 64), (64, 48), (20, 40)], seed0=1)
    (clean / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (clean / "notes.txt").write_text("not an image")
    write_folder(root / "old", [(40, 56), (56, 40)], seed0=10)
    grey = root / "old_grey"
    grey.mkdir()
    Image.fromarray(make_photo(36, 36, 20)).convert("L").save(grey / "grey.jpg", quality=90)
    return root


@pytest.fixture(scope="session")
def photos(folders) -> TrainingPhotos:
    return TrainingPhotos(
        clean=FolderPhotos(str(folders / "clean")),
        old=(FolderPhotos(str(folders / "old")), FolderPhotos(str(folders / "old_grey"))),
    )


def small_config(records: str, **overrides) -> InputConfig:
    """An ``InputConfig`` with small crops and batches, for fast tests."""
    settings = {"batch_size": 4, "crop_size": CROP, "seed": 7, "read_threads": 0}
    settings.update(overrides)
    return InputConfig(records, **settings)


@pytest.fixture(scope="session")
def config_for():
    """``config_for(records, **overrides)``: see ``small_config``."""
    return small_config
