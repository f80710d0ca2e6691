"""One photo reader (issue 13): a file decodes to the same pixels for inference and training.

The training input pipeline (folders and prepared tfds records) decodes with
``oldphoto_jax.photo_files``, the reader of ``infer.py``: EXIF orientation, 16-bit and CMYK files
give the array the pipeline restores, and ordinary 8-bit files the official ``convert("RGB")``.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from oldphoto_jax import photo_files
from oldphoto_jax.data import FolderPhotos, decode_training_photo
from oldphoto_jax.data.tfds_folder import stored_image_bytes


def _picture(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (height + width)],
                    axis=-1).astype(np.uint8)


def _write(kind: str, path) -> None:
    if kind == "exif_rotated.jpg":
        exif = Image.Exif()
        exif[274] = 6  # rotate 90 degrees clockwise to view
        Image.fromarray(_picture(40, 64)).save(path, "JPEG", quality=95, exif=exif)
    elif kind == "grey16.png":
        values = np.linspace(0, 65535, 48 * 56).reshape(48, 56).astype(np.uint16)
        Image.fromarray(values).save(path, "PNG")
    elif kind == "cmyk.jpg":
        Image.fromarray(_picture(44, 52)).convert("CMYK").save(path, "JPEG", quality=95)
    elif kind == "plain.jpg":
        Image.fromarray(_picture(36, 50)).save(path, "JPEG", quality=90)
    elif kind == "plain.png":
        Image.fromarray(_picture(33, 47)).save(path, "PNG")


KINDS = ["exif_rotated.jpg", "grey16.png", "cmyk.jpg", "plain.jpg", "plain.png"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for kind in KINDS:
        _write(kind, folder / kind)
    return folder


@pytest.mark.parametrize("kind", KINDS)
def test_training_and_inference_decode_a_file_alike(folder, kind):
    path = folder / kind
    inference = photo_files.read_photo(path).rgb
    photos = FolderPhotos(str(folder))
    from_folder = photos[[photos.name(i) for i in range(len(photos))].index(kind)]
    data = path.read_bytes()
    from_record = decode_training_photo(stored_image_bytes(data, kind), kind)
    np.testing.assert_array_equal(from_folder, inference)
    np.testing.assert_array_equal(from_record, inference)
    with Image.open(path) as image:
        official = np.asarray(image.convert("RGB"))
    if kind == "exif_rotated.jpg":
        assert inference.shape == (64, 40, 3) and official.shape == (40, 64, 3)
    elif kind == "grey16.png":  # convert("RGB") clips every value above 255 to white
        assert np.array_equal(inference[..., 0], (np.asarray(Image.open(path)) >> 8))
        assert not np.array_equal(inference, official)
    else:  # ordinary 8-bit files (and CMYK) decode exactly as the official loader's
        np.testing.assert_array_equal(inference, official)
