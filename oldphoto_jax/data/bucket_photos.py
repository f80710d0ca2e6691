"""Photos in a cloud-storage folder (``gs://bucket/photos``), read through ``etils.epath``.

The same contract as :class:`~oldphoto_jax.data.photos.FolderPhotos` (the image files of one
folder, not recursive, in name order), except that files are not decoded when the folder is
listed (each would be a download): a file that cannot be decoded is reported and replaced by the
next readable photo when it is first read, as for a local file that changed. For large sets, a
prepared tensorflow-datasets directory (``tfds:gs://bucket/prepared:train``) reads faster.
"""
from __future__ import annotations

from data_synth import imagefiles
from oldphoto_jax import paths
from oldphoto_jax.data.photos import CachedPhotos, decode_training_photo


class BucketPhotos(CachedPhotos):
    def __init__(self, folder: str, cache_mb: int = 512, exclude: tuple[str, ...] = ()):
        super().__init__(cache_mb)
        root = paths.resolve(folder)
        self.folder = str(root)
        if not root.is_dir():
            raise ValueError(f"{self.folder} is not a folder")
        names = sorted(p.name for p in root.iterdir()
                       if p.name.lower().endswith(imagefiles.IMAGE_EXTENSIONS))
        missing = sorted(set(exclude) - set(names))
        if missing:
            raise ValueError(f"excluded photos not found in {self.folder}: {missing}")
        names = [name for name in names if name not in set(exclude)]
        if not names:
            raise ValueError(f"no image files in {self.folder}")
        self.paths = tuple(f"{self.folder}/{name}" for name in names)
        self.skipped: list = []

    def __len__(self) -> int:
        return len(self.paths)

    def name(self, index: int) -> str:
        return self.paths[index].rsplit("/", 1)[-1]

    def _decode(self, index: int):
        path = self.paths[index]
        return decode_training_photo(paths.resolve(path).read_bytes(), path)

    def __repr__(self) -> str:
        return f"BucketPhotos({self.folder!r}, {len(self)} photos)"
