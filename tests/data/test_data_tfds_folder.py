"""The tensorflow-datasets builder for local folders and its photo-source adaptor."""
from __future__ import annotations

import io
import logging
import pickle

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from oldphoto_jax.data import FolderPhotos, TrainingPhotos, batch_iterator, tfds_folder


def split_names(builder_dir: str) -> tuple[str, ...]:
    """The splits of a prepared dataset."""
    return tuple(sorted(tfds.builder_from_directory(builder_dir).info.splits.keys()))


@pytest.fixture(scope="module")
def manual_dir(tmp_path_factory):
    """clean/ with three 64x64 PNGs and a corrupt file; old/ with an RGBA PNG and a grey JPEG."""
    root = tmp_path_factory.mktemp("manual")
    (root / "clean").mkdir()
    (root / "old").mkdir()
    (root / "empty").mkdir()
    rng = np.random.default_rng(0)
    for k in range(3):
        image = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "clean" / f"c{k}.png")
    (root / "clean" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    rgba = rng.integers(0, 256, size=(48, 64, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(root / "old" / "rgba.png")
    grey = rng.integers(0, 256, size=(40, 40), dtype=np.uint8)
    Image.fromarray(grey).save(root / "old" / "grey.jpg", quality=90)
    return root


@pytest.fixture(scope="module")
def prepared(manual_dir, tmp_path_factory):
    tfds.disable_progress_bar()
    data_dir = tmp_path_factory.mktemp("tfds")
    builder = tfds_folder.PhotoFolders(data_dir=str(data_dir))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


def test_builder_writes_one_array_record_split_per_folder(prepared):
    builder_dir = str(prepared.data_dir)
    assert split_names(builder_dir) == ("clean", "old")
    files = sorted(p.name for p in prepared.data_path.iterdir())
    assert any(name.startswith("photo_folders-clean.array_record") for name in files)
    source = tfds.builder_from_directory(builder_dir).as_data_source("clean")
    assert len(source) == 3
    record = source[0]
    assert record["image"].shape == (64, 64, 3) and record["name"].startswith(b"c")


def test_corrupt_file_is_reported_once_and_skipped(manual_dir, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="oldphoto_jax.data"):
        builder_dir = tfds_folder.prepare_photo_folders(str(manual_dir), str(tmp_path))
    assert sum("corrupt.png" in r.getMessage() for r in caplog.records) == 1
    names = {tfds_folder.TfdsPhotos(builder_dir, "clean").name(i) for i in range(3)}
    assert names == {"c0.png", "c1.png", "c2.png"}


def test_tfds_photos_decode_the_same_pixels_as_the_folder(prepared, manual_dir):
    builder_dir = str(prepared.data_dir)
    for split in ("clean", "old"):
        stored = tfds_folder.TfdsPhotos(builder_dir, split)
        folder = FolderPhotos(str(manual_dir / split))
        by_name = {folder.name(i): folder[i] for i in range(len(folder))}
        assert sorted(stored.name(i) for i in range(len(stored))) == sorted(by_name)
        for i in range(len(stored)):
            np.testing.assert_array_equal(stored[i], by_name[stored.name(i)])
    old = tfds_folder.TfdsPhotos(builder_dir, "old")
    kinds = {old.name(i): old.encoded(i)[:4] for i in range(len(old))}
    assert kinds["grey.jpg"] == b"\xff\xd8\xff\xe0"  # JPEG kept byte for byte
    assert kinds["rgba.png"] == b"\x89PNG"  # re-encoded as RGB PNG


def test_stored_bytes_rule():
    rgb = np.zeros((4, 4, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    assert tfds_folder.stored_image_bytes(buffer.getvalue()) == buffer.getvalue()
    buffer = io.BytesIO()
    Image.fromarray(rgb).convert("P").save(buffer, format="PNG")
    stored = tfds_folder.stored_image_bytes(buffer.getvalue())
    with Image.open(io.BytesIO(stored)) as image:
        assert image.mode == "RGB"
    with pytest.raises(OSError):
        tfds_folder.stored_image_bytes(b"junk")


def test_prepared_splits_feed_the_pipeline(prepared, config_for):
    builder_dir = str(prepared.data_dir)
    clean = tfds_folder.TfdsPhotos(builder_dir, "clean")
    photos = TrainingPhotos(clean=clean, old=(tfds_folder.TfdsPhotos(builder_dir, "old"),))
    config = config_for("domain_a")
    first = next(batch_iterator(config, photos))
    again = next(batch_iterator(config, photos))
    np.testing.assert_array_equal(first["image"], again["image"])
    assert first["image"].shape == (4, 32, 32, 3)
    clone = pickle.loads(pickle.dumps(clean))  # what a grain worker receives
    assert clone._source is None and len(clone) == 3
    np.testing.assert_array_equal(clone[0], clean[0])


def test_folder_names_must_be_split_names(tmp_path):
    (tmp_path / "bad-name").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "bad-name" / "a.png")
    with pytest.raises(ValueError, match="split"):
        tfds_folder.photo_folders(str(tmp_path))
