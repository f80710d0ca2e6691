"""Shared fixtures for the data_synth tests: small deterministic test images."""
from __future__ import annotations

import numpy as np
import pytest


def make_photo(height: int = 96, width: int = 96, seed: int = 0) -> np.ndarray:
    """A photo-like uint8 RGB image: colour gradients, a few flat shapes and fine texture."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack(
        [60 + 120 * xs / width, 50 + 140 * ys / height, 180 - 100 * (xs + ys) / (width + height)],
        axis=-1,
    )
    for _ in range(4):
        top, left = rng.integers(0, height - 16), rng.integers(0, width - 16)
        image[top : top + 16, left : left + 16] = rng.uniform(20, 235, size=3)
    image += 12 * np.sin(xs * 0.9)[..., None] * np.cos(ys * 0.7)[..., None]
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


@pytest.fixture
def photo() -> np.ndarray:
    return make_photo()


@pytest.fixture
def grey_image() -> np.ndarray:
    """Flat mid-grey 64x64, where every degradation's effect is easy to measure."""
    return np.full((64, 64, 3), 128, dtype=np.uint8)


@pytest.fixture
def photo_folder(tmp_path):
    """A folder with two readable photos of different sizes, one corrupt JPEG and a text file."""
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(make_photo(80, 100, seed=1)).save(folder / "first.png")
    Image.fromarray(make_photo(120, 90, seed=2)).save(folder / "second.jpg", quality=95)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    (folder / "readme.txt").write_text("not an image")
    return folder
