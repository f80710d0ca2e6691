"""Networks' parameters kept as plain arrays in a cache folder, read back without orbax.

Reading a network's orbax checkpoint imports orbax and tensorstore and leaves their buffers
resident for the rest of the program: for the official-width quality networks (144 MiB of
weights) the process held 402 MiB after loading them through orbax and 353 MiB after reading
the same arrays from a plain file (benchmarks/README.md, issue 18). So the inference entry
points (``infer.py``, the Python API, the web server, the benchmark) call :func:`enable`, and
:func:`oldphoto_jax.model_files.load_network` then reads each network from orbax once, writes
its arrays here, and reads them from here on every later load.

An entry is one file, ``<key>.params``: the arrays' bytes (each aligned to 64 bytes), then a
JSON header (the tree of names, dtypes, shapes and offsets, and the SHA-256 of the bytes), then
the header's length and a magic word. The key is the SHA-256 of the network's recorded file
checksums (the model's manifest, or the network's ``config.json``), so an entry is used only
for exactly the files it was made from, and networks without recorded checksums are never
cached. Entries are written to a temporary file and renamed into place; on reading, the bytes
are hashed and compared with the header, and an entry that does not match is ignored (the
network is read from its orbax files again and the entry rewritten). A folder that cannot be
written is reported once and skipped.

The folder is ``$OLDPHOTO_JAX_PARAMS_CACHE`` when that names a folder, else
``$XDG_CACHE_HOME/oldphoto_jax/params`` (``~/.cache/oldphoto_jax/params``);
``OLDPHOTO_JAX_PARAMS_CACHE=0`` switches it off. An entry is as large as the network's weights
(the bundled model's networks: ~29 MB together; the official ones: ~1.4 GB if all are used).
The folder is kept under ``$OLDPHOTO_JAX_PARAMS_CACHE_LIMIT_GB`` (default 3): after each write
the entries read or written longest ago are deleted until it fits (the new entry always stays).
Deleting the folder is always safe.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
import struct
import tempfile
import time
from typing import Any, Mapping

import numpy as np

from oldphoto_jax import cache_folders

SWITCH = "OLDPHOTO_JAX_PARAMS_CACHE"
LIMIT = "OLDPHOTO_JAX_PARAMS_CACHE_LIMIT_GB"
DEFAULT_LIMIT_GB = 3.0
DEFAULT_LIMIT_BYTES = int(DEFAULT_LIMIT_GB * 1e9)
FORMAT = "oldphoto-jax-params-cache"
VERSION = 1
MAGIC = b"OPJXPRM1"
ALIGNMENT = 64
STALE_TMP_SECONDS = 3600
_TRAILER = struct.Struct("<Q8s")  # header length, magic

_log = logging.getLogger(__name__)
_directory: pathlib.Path | None = None
_limit: int = DEFAULT_LIMIT_BYTES
_reported: set[str] = set()


def chosen_directory(environ: Mapping[str, str] = os.environ) -> pathlib.Path | None:
    """The folder :func:`enable` uses, or None when switched off."""
    return cache_folders.chosen_directory(SWITCH, "params", environ)


def limit_bytes(environ: Mapping[str, str] = os.environ) -> int:
    """The most the folder may hold (``$OLDPHOTO_JAX_PARAMS_CACHE_LIMIT_GB``, default 3 GB)."""
    value = environ.get(LIMIT, "").strip()
    try:
        gigabytes = float(value) if value else None
    except ValueError:
        raise ValueError(f"{LIMIT} must be a number of gigabytes, got {value!r}") from None
    return DEFAULT_LIMIT_BYTES if gigabytes is None else int(max(gigabytes, 0.0) * 1e9)


def enable(environ: Mapping[str, str] = os.environ) -> str | None:
    """Use :func:`chosen_directory` for the loads of this process from now on. Returns the
    folder in use, or None when off."""
    global _directory, _limit
    _directory = chosen_directory(environ)
    try:
        _limit = limit_bytes(environ)
    except ValueError as e:  # a cache setting never stops a restoration
        _log.warning("%s; the parameter cache keeps the default limit, %g GB", e,
                     DEFAULT_LIMIT_GB)
        _limit = DEFAULT_LIMIT_BYTES
    return None if _directory is None else str(_directory)


def disable() -> None:
    global _directory
    _directory = None


def directory() -> pathlib.Path | None:
    """The folder in use (None unless :func:`enable` switched the cache on)."""
    return _directory


def key_of(checksums: Mapping[str, str]) -> str:
    """The entry name for a network whose files have these checksums (relative path -> sha256)."""
    text = json.dumps({"format": FORMAT, "version": VERSION,
                       "files": dict(sorted(checksums.items()))}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _leaves(tree: Mapping, prefix: tuple[str, ...] = ()):
    for name in sorted(tree):
        value = tree[name]
        if isinstance(value, Mapping):
            yield from _leaves(value, prefix + (name,))
        else:
            yield prefix + (name,), value


def _insert(tree: dict, path: list[str], value) -> None:
    for name in path[:-1]:
        tree = tree.setdefault(name, {})
    tree[path[-1]] = value


def _report(folder: pathlib.Path, what: str) -> None:
    if str(folder) not in _reported:
        _reported.add(str(folder))
        _log.warning("parameter cache %s skipped: %s", folder, what)


def write(key: str, variables: Mapping, folder: pathlib.Path | None = None) -> pathlib.Path | None:
    """Write ``variables`` (nested dicts of arrays) as the entry ``key``; returns its path, or
    None when the cache is off or the folder cannot be written (reported once)."""
    folder = folder if folder is not None else _directory
    if folder is None:
        return None
    leaves, offset = [], 0
    for path, value in _leaves(variables):
        array = np.asarray(value)
        offset = -(-offset // ALIGNMENT) * ALIGNMENT
        leaves.append((path, array, offset))
        offset += array.nbytes
    digest = hashlib.sha256()
    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as f:
            header_leaves = []
            for path, array, start in leaves:
                if f.tell() < start:
                    f.write(b"\0" * (start - f.tell()))
                data = np.ascontiguousarray(array).view(np.uint8).reshape(-1)
                f.write(data)
                digest.update(data)
                header_leaves.append({"path": list(path), "dtype": array.dtype.name,
                                      "shape": list(array.shape), "offset": start})
            header = json.dumps({"format": FORMAT, "version": VERSION, "key": key,
                                 "sha256": digest.hexdigest(), "leaves": header_leaves}).encode()
            f.write(header)
            f.write(_TRAILER.pack(len(header), MAGIC))
        target = folder / f"{key}.params"
        os.replace(tmp, target)
        evict(folder, _limit, keep=target)
        return target
    except OSError as e:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        _report(folder, e.strerror or str(e))
        return None


def evict(folder: pathlib.Path, limit: int, keep: pathlib.Path | None = None) -> list[str]:
    """Delete the entries of ``folder`` used longest ago (modification time: reads touch it)
    until the rest hold at most ``limit`` bytes, never ``keep``, and temporary files of writes
    that never finished (older than an hour). Returns the deleted entries' names."""
    for stale in folder.glob(".*.tmp"):  # left by a process killed while writing
        try:
            if time.time() - stale.stat().st_mtime > STALE_TMP_SECONDS:
                stale.unlink()
        except OSError:
            pass
    entries = []
    for path in folder.glob("*.params"):
        try:
            info = path.stat()
        except OSError:  # deleted meanwhile by another process
            continue
        entries.append((info.st_mtime, info.st_size, path))
    total = sum(size for _, size, _ in entries)
    deleted = []
    for _, size, path in sorted(entries, key=lambda e: e[0]):
        if total <= limit:
            break
        if keep is not None and path == keep:
            continue
        try:
            path.unlink()
        except OSError:
            continue
        total -= size
        deleted.append(path.name)
    return deleted


def read(key: str, device=None, folder: pathlib.Path | None = None) -> dict | None:
    """The variables of entry ``key`` as arrays on ``device`` (default: this process's first),
    or None when the cache is off, the entry is missing, or it does not match its header."""
    folder = folder if folder is not None else _directory
    if folder is None:
        return None
    path = folder / f"{key}.params"
    try:
        with open(path, "rb") as f:
            tree = _read_entry(f, key, device)
        os.utime(path)  # recently used: evicted last
        return tree
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        _log.warning("parameter cache entry %s ignored: %s", path, e)
        return None


def _read_entry(f, key: str, device) -> dict:
    import jax

    f.seek(0, os.SEEK_END)
    size = f.tell()
    if size < _TRAILER.size:
        raise ValueError("too short")
    f.seek(size - _TRAILER.size)
    header_length, magic = _TRAILER.unpack(f.read(_TRAILER.size))
    if magic != MAGIC or header_length > size - _TRAILER.size:
        raise ValueError("not a parameter cache entry")
    f.seek(size - _TRAILER.size - header_length)
    header: dict[str, Any] = json.loads(f.read(header_length))
    if (header.get("format"), header.get("version"), header.get("key")) != (FORMAT, VERSION, key):
        raise ValueError("written by another version or for another network")
    if device is None:
        device = jax.local_devices()[0]
    digest = hashlib.sha256()
    tree: dict = {}
    f.seek(0)
    for leaf in header["leaves"]:
        # By name: jax has registered ml_dtypes' names (bfloat16) with numpy.
        array = np.empty(leaf["shape"], np.dtype(leaf["dtype"]))
        gap = leaf["offset"] - f.tell()
        if gap < 0:
            raise ValueError("overlapping arrays")
        f.seek(gap, os.SEEK_CUR)
        view = memoryview(array.reshape(-1).view(np.uint8))
        if f.readinto(view) != array.nbytes:
            raise ValueError("truncated")
        digest.update(view)
        _insert(tree, leaf["path"], jax.device_put(array, device))
        del array, view
    if digest.hexdigest() != header["sha256"]:
        raise ValueError("content does not match its checksum")
    return tree
