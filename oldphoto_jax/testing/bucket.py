"""A local stand-in for a Cloud Storage bucket, for tests where no bucket can be reached.

    with local_bucket(tmp_path) as root:
        epath.Path("gs://bucket/run/x.json").write_text("{}")   # -> root/bucket/run/x.json

``etils.epath`` sends ``gs://`` paths to fsspec's ``gcs`` file system when TensorFlow is not
installed (with ``gcsfs`` in production); inside the context that file system is a local folder,
so everything that goes through the path layer (``oldphoto_jax.paths``) really takes the bucket
route (no ``os`` call on a ``gs:`` path) and lands in ``root``. Only the path layer: orbax writes
checkpoint arrays to ``gs://`` through tensorstore's own GCS driver, which this does not replace.
"""
from __future__ import annotations

import contextlib
import os
import pathlib

import fsspec
from fsspec.implementations.local import LocalFileSystem


class _LocalBucketFileSystem(LocalFileSystem):
    protocol = ("gcs", "gs")
    root = "/nonexistent"

    @classmethod
    def _strip_protocol(cls, path):
        path = os.fspath(path)
        for prefix in ("gs://", "gcs://"):
            if path.startswith(prefix):
                return os.path.join(cls.root, path[len(prefix):]).rstrip("/") or "/"
        return super()._strip_protocol(path)

    def _to_bucket(self, path: str) -> str:
        relative = os.path.relpath(path, self.root)
        return relative.replace(os.sep, "/")

    def glob(self, path, **kwargs):
        return [self._to_bucket(p) for p in super().glob(path, **kwargs)]


@contextlib.contextmanager
def local_bucket(root: str | os.PathLike):
    """Within the context, ``gs://<bucket>/<path>`` is ``root/<bucket>/<path>`` for epath."""
    from etils.epath import backend

    root = pathlib.Path(root).absolute()
    root.mkdir(parents=True, exist_ok=True)
    previous = {name: fsspec.registry.get(name) for name in ("gcs", "gs")}
    _LocalBucketFileSystem.root = str(root)
    _LocalBucketFileSystem.clear_instance_cache()
    for name in ("gcs", "gs"):
        fsspec.register_implementation(name, _LocalBucketFileSystem, clobber=True)
    backend.fsspec_backend._get_filesystem.cache_clear()
    try:
        yield root
    finally:
        for name, implementation in previous.items():
            if implementation is None:
                from fsspec.registry import _registry  # the loaded implementations

                _registry.pop(name, None)  # back to the known one (gcsfs), loaded on use
            else:
                fsspec.register_implementation(name, implementation, clobber=True)
        _LocalBucketFileSystem.clear_instance_cache()
        backend.fsspec_backend._get_filesystem.cache_clear()
