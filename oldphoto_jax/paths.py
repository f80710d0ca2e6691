"""Paths that may be on cloud storage: ``gs://bucket/...`` (and ``s3://``...), through the path
layer orbax and tensorflow-datasets already use, ``etils.epath``.

``pathlib.Path("gs://bucket/run")`` is the local relative path ``gs:/bucket/run``: a run given a
bucket would silently write a local folder named ``gs:``. Every path the trainer is given goes
through :func:`resolve` instead: a URI stays a bucket path (an ``epath.Path`` whose operations
go to the bucket), anything else becomes an absolute local ``epath.Path``.

Bucket access needs a backend for ``epath``: ``gcsfs`` (``pip install gcsfs``, the ``cloud``
extra) or TensorFlow; orbax writes checkpoint arrays to ``gs://`` through tensorstore itself.
What cannot go to a bucket directly (``tempfile`` directories, ``os.rename``, tensorboardX event
files) is written to a local staging folder and copied with :func:`upload_tree`.
"""
from __future__ import annotations

import os
import tempfile

from etils import epath

URI_SCHEMES = ("gs://", "s3://", "az://", "hf://")


def is_uri(path: str | os.PathLike) -> bool:
    """Whether ``path`` names cloud storage (``gs://...``), not a local file."""
    text = os.fspath(path) if not isinstance(path, epath.Path) else str(path)
    return text.startswith(URI_SCHEMES)


def resolve(path: str | os.PathLike) -> epath.Path:
    """``path`` as an ``epath.Path``: a bucket path for a URI, else absolute and local."""
    if isinstance(path, epath.Path) and is_uri(path):
        return path
    text = os.fspath(path)
    if is_uri(text):
        return epath.Path(text)
    return epath.Path(os.path.abspath(text))


def is_local(path: str | os.PathLike) -> bool:
    return not is_uri(path)


def local_staging(prefix: str) -> str:
    """A new local temporary folder for what is copied to a bucket afterwards."""
    return tempfile.mkdtemp(prefix=f"oldphoto-{prefix}-")


def upload_tree(local: str | os.PathLike, target: str | os.PathLike,
                last: tuple[str, ...] = ()) -> None:
    """Copy every file under the local folder ``local`` to ``target`` (a bucket or a local
    folder), overwriting, with the files named in ``last`` (paths relative to ``local``) copied
    after all others: a reader that waits for them sees a complete tree."""
    local = os.fspath(local)
    target = resolve(target)
    files = []
    for root, _, names in os.walk(local):
        for name in names:
            files.append(os.path.relpath(os.path.join(root, name), local))
    files.sort(key=lambda rel: (rel in last, rel))
    for relative in files:
        destination = target / relative.replace(os.sep, "/")
        destination.parent.mkdir(parents=True, exist_ok=True)
        with open(os.path.join(local, relative), "rb") as source:
            destination.write_bytes(source.read())
