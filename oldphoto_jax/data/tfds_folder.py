"""A tensorflow-datasets builder for local photo folders, written as ArrayRecord (no TensorFlow).

Large collections are decoded and checked once, here, instead of at every start of a run:

    builder_dir = prepare_photo_folders(manual_dir="/data/photos", data_dir="/data/tfds")
    photos = TrainingPhotos(clean=TfdsPhotos(builder_dir, "clean"),
                            old=(TfdsPhotos(builder_dir, "old"),))

Every sub-folder of ``manual_dir`` holding image files becomes a split of the same name (e.g.
``clean/``, ``old/``, ``old_w_scratch/``; names of letters, digits and underscores). Features:
``image`` (the encoded file, ``tfds.features.Image``) and ``name`` (the file name). JPEG and PNG
files in RGB or grey are stored byte for byte; other files (RGBA, palette, 16-bit, other formats)
are stored as the lossless PNG of their ``convert("RGB")``, so every reader sees the same pixels the
folder source decodes. Files that do not decode are reported once (logging warning) and skipped.

``TfdsPhotos`` adapts ``tfds.builder_from_directory(dir).as_data_source(split)`` to the pipeline's
photo-source interface, decoding with Pillow exactly like ``FolderPhotos`` (same pixels for the
same files) and caching decoded photos per process.
"""
from __future__ import annotations

import io
import logging
import os
import re

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from data_synth import imagefiles
from oldphoto_jax.data.photos import DECODE_ERRORS, CachedPhotos, decode_training_photo

logger = logging.getLogger("oldphoto_jax.data")

SPLIT_NAME = re.compile(r"^[A-Za-z0-9_]+$")
KEPT_ENCODINGS = {("JPEG", "RGB"), ("JPEG", "L"), ("PNG", "RGB"), ("PNG", "L")}


def stored_image_bytes(data: bytes, name: str = "<image>") -> bytes:
    """The bytes stored for one image file: unchanged for RGB/grey JPEG and PNG, else the PNG of
    pixels the training pipeline decodes from it (``decode_training_photo``: EXIF orientation
    applied, 16-bit reduced, CMYK converted). Raises one of ``DECODE_ERRORS`` if the file does not
    decode fully."""
    with Image.open(io.BytesIO(data)) as image:  # the header: not an image fails here
        kind = (image.format, image.mode)
    rgb = decode_training_photo(data, name)  # decodes every pixel: truncated files fail here
    if kind in KEPT_ENCODINGS:
        return data
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def photo_folders(manual_dir: str) -> dict[str, str]:
    """Split name -> folder for the sub-folders of ``manual_dir`` that contain image files."""
    splits = {}
    for name in sorted(os.listdir(manual_dir)):
        folder = os.path.join(manual_dir, name)
        if not os.path.isdir(folder) or not imagefiles.list_images(folder):
            continue
        if not SPLIT_NAME.match(name):
            raise ValueError(f"folder {name!r} cannot name a split: use letters, digits and _")
        splits[name] = folder
    if not splits:
        raise ValueError(f"no sub-folder of {manual_dir} holds image files")
    return splits


class PhotoFolders(tfds.core.GeneratorBasedBuilder):
    """Photos from the sub-folders of ``manual_dir``, one split per sub-folder."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Encoded images and file names, one split per folder."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Put the photos in sub-folders of manual_dir (e.g. clean/, old/); each sub-folder "
        "becomes a split of the same name.")

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        """This file. (tfds 4.9.10 finds it through the ``importlib_resources`` backport, which is
        not installed, whenever a builder lives in a package; the answer is the same.)"""
        return epath.Path(__file__)

    def __init__(self, **kwargs):
        kwargs.setdefault("file_format", "array_record")
        super().__init__(**kwargs)
        self.skipped: list[tuple[str, str]] = []

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Photos of local folders for oldphoto-jax training (one split each).",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3)),
                "name": tfds.features.Text(),
            }),
        )

    def _split_generators(self, dl_manager):
        folders = photo_folders(os.fspath(dl_manager.manual_dir))
        return {split: self._generate_examples(folder) for split, folder in folders.items()}

    def _generate_examples(self, folder: str):
        for path in imagefiles.list_images(folder):
            name = os.path.basename(path)
            try:
                with open(path, "rb") as file:
                    data = stored_image_bytes(file.read(), name)
            except DECODE_ERRORS as error:
                reason = f"{type(error).__name__}: {error}"
                self.skipped.append((name, reason))
                logger.warning("skipping unreadable image %s (%s)", path, reason)
                continue
            yield name, {"image": data, "name": name}


def prepare_photo_folders(manual_dir: str, data_dir: str) -> str:
    """Builds (once) the ArrayRecord dataset of ``manual_dir`` under ``data_dir``; returns the
    builder directory that ``TfdsPhotos`` and ``tfds.builder_from_directory`` read."""
    builder = PhotoFolders(data_dir=data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    return os.fspath(builder.data_dir)


class TfdsPhotos(CachedPhotos):
    """One split of a prepared dataset as a photo source (opened lazily in each process)."""

    def __init__(self, builder_dir: str, split: str, cache_mb: int = 512):
        super().__init__(cache_mb)
        self.builder_dir = os.fspath(builder_dir)
        self.split = split
        self._source = None
        self._length = len(self._records())

    def _records(self):
        if self._source is None:
            builder = tfds.builder_from_directory(self.builder_dir)
            self._source = builder.as_data_source(
                self.split, decoders={"image": tfds.decode.SkipDecoding()})
        return self._source

    def __len__(self) -> int:
        return self._length

    def name(self, index: int) -> str:
        name = self._records()[int(index)]["name"]
        return name.decode() if isinstance(name, bytes) else str(name)

    def encoded(self, index: int) -> bytes:
        """The stored bytes of photo ``index``."""
        return self._records()[int(index)]["image"]

    def _decode(self, index: int) -> np.ndarray:
        return decode_training_photo(self.encoded(index), self.name(index))

    def __getstate__(self):
        state = super().__getstate__()
        state["_source"] = None  # readers are reopened in each process
        return state

    def __repr__(self) -> str:
        return f"TfdsPhotos({self.builder_dir!r}, {self.split!r}, {len(self)} photos)"
