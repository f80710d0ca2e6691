"""Photo collections the input pipeline reads: random access to decoded uint8 RGB photos.

A photo source has ``len(source)``, ``source[i]`` (uint8 ``H x W x 3``, read-only, shared with
the cache: copy before writing) and ``source.name(i)``. Sources:

* ``FolderPhotos``: the image files of one folder, checked when the source is made;
* ``ArrayPhotos``: photos already in memory (aligned faces, test images);
* ``JoinedPhotos``: several sources read as one (e.g. two folders of clean photos);
* ``tfds_folder.TfdsPhotos``: a split prepared by the tensorflow-datasets builder.

Decoding is the project's one photo reader, :func:`oldphoto_jax.photo_files.read_photo` (the
reader of ``infer.py`` and the evaluation) without its minimum size, so a file gives the same
pixels here as for inference: an ordinary 8-bit RGB, grey or palette JPEG/PNG decodes as the
official loader's Pillow ``convert("RGB")`` (alpha dropped, grey replicated); the EXIF orientation
is applied, 16-bit samples keep their high byte, CMYK goes through Pillow's RGB conversion. Each
process (training process or grain worker) keeps the photos it decodes in its own size-bounded
LRU cache, so a photo is decoded once per process rather than once per sample.

Bad files are reported once (``logging`` warning, logger ``oldphoto_jax.data``) and skipped. A
file that decodes at listing time but fails later (it changed on disk) is reported once per
process and replaced by the next readable photo, which is deterministic and never stops a run.
"""
from __future__ import annotations

import abc
import collections
import logging
import os
import threading
from typing import Callable, Protocol, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from data_synth import imagefiles
from oldphoto_jax import photo_files

logger = logging.getLogger("oldphoto_jax.data")

DECODE_ERRORS = (photo_files.PhotoError, OSError, UnidentifiedImageError, ValueError,
                 SyntaxError, Image.DecompressionBombError)
Report = Callable[[str], None]


class PhotoSource(Protocol):
    """Random access to decoded photos."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> np.ndarray: ...

    def name(self, index: int) -> str: ...


def read_training_photo(path: str) -> np.ndarray:
    """An image file as uint8 RGB ``H x W x 3`` (module docstring); raises ``PhotoError``."""
    return photo_files.read_photo(path, min_side=1).rgb


def decode_training_photo(data: bytes, name: str) -> np.ndarray:
    """:func:`read_training_photo` for a file's bytes (``name`` names it in errors)."""
    return photo_files.read_photo_bytes(data, name, min_side=1).rgb


class DecodedCache:
    """A thread-safe LRU map from keys to arrays, bounded by their total size in bytes.

    An array larger than the whole budget is returned but not kept.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self._items: collections.OrderedDict[object, np.ndarray] = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key, load: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached array for ``key``, or ``load()`` (stored read-only, evicting the oldest)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        array = load()
        array.setflags(write=False)
        with self._lock:
            if key not in self._items and array.nbytes <= self.max_bytes:
                self._items[key] = array
                self._bytes += array.nbytes
                while self._bytes > self.max_bytes:
                    _, evicted = self._items.popitem(last=False)
                    self._bytes -= evicted.nbytes
        return array


class CachedPhotos(abc.ABC):
    """Base of the sources that decode on demand: cache, lazy-failure fallback, pickling.

    Subclasses implement ``__len__``, ``name(i)`` and ``_decode(i)``. The cache is per process:
    it is dropped when the source is pickled to a grain worker.
    """

    def __init__(self, cache_mb: int = 512):
        self.cache_mb = cache_mb
        self._cache = DecodedCache(cache_mb * 2**20)
        self._failed: set[int] = set()

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of photos."""

    @abc.abstractmethod
    def name(self, index: int) -> str:
        """A readable name of photo ``index`` (for reports)."""

    @abc.abstractmethod
    def _decode(self, index: int) -> np.ndarray:
        """Photo ``index`` decoded to uint8 RGB; raises one of ``DECODE_ERRORS`` if it cannot."""

    def __getitem__(self, index: int) -> np.ndarray:
        count = len(self)
        index = int(index) % count
        for offset in range(count):
            candidate = (index + offset) % count
            if candidate in self._failed:
                continue
            try:
                return self._cache.get(candidate, lambda i=candidate: self._decode(i))
            except DECODE_ERRORS as error:
                self._failed.add(candidate)
                logger.warning("skipping unreadable photo %s (%s: %s)", self.name(candidate),
                               type(error).__name__, error)
        raise RuntimeError(f"no readable photo left in {self!r}")

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_cache"] = None
        state["_failed"] = set()
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._cache = DecodedCache(self.cache_mb * 2**20)


def readable_image_files(
    folder: str, check: bool = True, report: Report | None = None, exclude: tuple[str, ...] = ()
) -> tuple[list[str], list[tuple[str, str]]]:
    """(readable paths, skipped (name, reason)) of the image files of ``folder``, sorted by name,
    leaving out the file names in ``exclude`` (each must be in the folder, else ValueError).

    With ``check`` every file is decoded once (slow for very large folders: prepare those with the
    tensorflow-datasets builder); without it, only the listing is returned. Each skipped file is
    reported once through ``report`` (default: a logging warning).
    """
    report = report or logger.warning
    listed = imagefiles.list_images(folder)
    excluded = set(exclude)
    missing = sorted(excluded - {os.path.basename(path) for path in listed})
    if missing:
        raise ValueError(f"excluded photos not found in {folder}: {missing}")
    paths = [path for path in listed if os.path.basename(path) not in excluded]
    if not check:
        return paths, []
    readable, skipped = [], []
    for path in paths:
        try:
            read_training_photo(path)
        except DECODE_ERRORS as error:
            reason = f"{type(error).__name__}: {error}"
            skipped.append((os.path.basename(path), reason))
            report(f"skipping unreadable image {path} ({reason})")
        else:
            readable.append(path)
    return readable, skipped


class FolderPhotos(CachedPhotos):
    """The readable image files of one folder (not recursive), in name order.

    ``skipped`` lists the (name, reason) of the files that could not be decoded. ``exclude``:
    file names left out (e.g. photos held out for evaluation); each must exist in the folder.
    """

    def __init__(self, folder: str, check: bool = True, cache_mb: int = 512,
                 report: Report | None = None, exclude: tuple[str, ...] = ()):
        super().__init__(cache_mb)
        self.folder = os.path.abspath(folder)
        paths, self.skipped = readable_image_files(self.folder, check, report,
                                                   exclude=tuple(exclude))
        if not paths:
            raise ValueError(f"no readable images in {self.folder}")
        self.paths = tuple(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def name(self, index: int) -> str:
        return os.path.basename(self.paths[index])

    def _decode(self, index: int) -> np.ndarray:
        return read_training_photo(self.paths[index])

    def __repr__(self) -> str:
        return f"FolderPhotos({self.folder!r}, {len(self)} photos)"


class ArrayPhotos:
    """Photos held in memory (uint8 RGB arrays, stored read-only)."""

    def __init__(self, images: Sequence[np.ndarray], names: Sequence[str] | None = None):
        if not images:
            raise ValueError("ArrayPhotos needs at least one image")
        arrays = []
        for image in images:
            image = np.array(image, dtype=np.uint8, copy=True)
            if image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"expected H x W x 3 images, got shape {image.shape}")
            image.setflags(write=False)
            arrays.append(image)
        self.images = tuple(arrays)
        self.names = tuple(names) if names is not None else tuple(
            f"image{i}" for i in range(len(arrays)))
        if len(self.names) != len(self.images):
            raise ValueError("one name per image")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.images[int(index) % len(self.images)]

    def name(self, index: int) -> str:
        return self.names[index]

    def __repr__(self) -> str:
        return f"ArrayPhotos({len(self)} photos)"


class JoinedPhotos:
    """Several photo sources as one, in order: photo ``i`` of the second source is photo
    ``len(first) + i`` of the whole."""

    def __init__(self, sources: Sequence[PhotoSource]):
        if not sources:
            raise ValueError("JoinedPhotos needs at least one source")
        self.sources = tuple(sources)
        self.starts = tuple(np.cumsum([0] + [len(s) for s in self.sources[:-1]]).tolist())

    def __len__(self) -> int:
        return sum(len(s) for s in self.sources)

    def _locate(self, index: int) -> tuple[PhotoSource, int]:
        index = int(index) % len(self)
        which = int(np.searchsorted(self.starts, index, side="right")) - 1
        return self.sources[which], index - self.starts[which]

    def __getitem__(self, index: int) -> np.ndarray:
        source, local = self._locate(index)
        return source[local]

    def name(self, index: int) -> str:
        source, local = self._locate(index)
        return source.name(local)

    def __repr__(self) -> str:
        return f"JoinedPhotos({', '.join(map(repr, self.sources))})"
