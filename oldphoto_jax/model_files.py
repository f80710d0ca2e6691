"""The one checkpoint format of oldphoto-jax, shared by the converter, ``train.py`` and ``infer.py``.

A *model* is a directory::

    <model>/
      manifest.json          {"format": "oldphoto-jax-model", "version": 1,
                              "networks": {<role>: <subdirectory>, ...}, "source": "...",
                              "checksums": {<path of every other file>: <sha256>, ...},
                              "restored_range": "clamp"}   (optional, see below)
      <network>/
        config.json          {"format": "oldphoto-jax-network", "version": 2,
                              "model": "<registered model name>", "args": {...}, "source": "..."}
        params/              orbax checkpoint of the Flax variables ({"params": ..., ...})

``model`` is the network's name in :data:`oldphoto_jax.models.registry.MODELS` and ``args`` its
architecture fields only: execution settings (matmul precision, attention chunk size) are chosen
when a model is run, never saved. Version 1 network configs (``"class": "<class name>"``, with
every constructor argument) still load; their execution settings are ignored.

Roles name what a network is used for (:data:`oldphoto_jax.roles.ROLES`); a model holds the networks it has (a model
without faces simply has no ``face_256``). Every write goes to a temporary sibling directory that is
renamed into place at the end, so a failed or interrupted write leaves nothing half-written.

Every file is checksummed (SHA-256) when written: a model's ``manifest.json`` records the checksum
of each of its other files, a network written alone (``save_network``) records those of its
``params/`` files in its ``config.json``. Loading a network verifies them first, so a damaged or
missing file is an error naming it rather than silently different weights. Models written before
checksums were recorded still load, with a note (``Model.notes``). Every problem with a model
directory is a one-line ``CheckpointError`` naming the file. Where the inference entry points
have switched on :mod:`oldphoto_jax.params_cache`, a network whose params files were read and
verified once is read from its cache entry instead (named by those checksums, verified by its
own), without importing orbax.

``restored_range`` says how global restoration's output becomes an image: ``"minmax"`` (the
default, and what a manifest without the key means) is the official ``test.py``, which writes
``save_image((out + 1) / 2, normalize=True)``, a min-max stretch of the whole image to 0..255;
``"clamp"`` writes ``(out + 1) / 2`` clamped, as the network rendered it. Models whose VAE_B
renders each photo's own colour statistics (``vae_colour``) are assembled with ``"clamp"``: the
stretch would re-tone what they kept (measured: -0.57 dB in quality mode, weights/README.md).
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import tempfile
from typing import Any, Mapping

import flax.linen as nn
import numpy as np

from oldphoto_jax import params_cache
from oldphoto_jax.roles import ROLES
from oldphoto_jax.models.registry import (EXECUTION_FIELDS, architecture, build_model,
                                          build_network, model_name)

MODEL_FORMAT = "oldphoto-jax-model"
NETWORK_FORMAT = "oldphoto-jax-network"
MODEL_VERSION = 1
# How global restoration's output is written (module docstring); the first is the default.
RESTORED_RANGES = ("minmax", "clamp")
# 2: networks recorded by model name and architecture fields (1: class name, every argument).
NETWORK_VERSION = 2



class CheckpointError(Exception):
    """A checkpoint directory is missing, incomplete or of another format."""


def _write_json(path: pathlib.Path, data: Mapping[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")


def _read_json(path: pathlib.Path) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None


def file_sha256(path: pathlib.Path) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_checksums(root: pathlib.Path) -> dict[str, str]:
    """``{path relative to root (POSIX): sha256}`` of every file under ``root``."""
    return {path.relative_to(root).as_posix(): file_sha256(path)
            for path in sorted(root.rglob("*")) if path.is_file()}


def verify_checksums(root: pathlib.Path, checksums: Mapping[str, str]) -> None:
    """Raise ``CheckpointError`` naming the first file under ``root`` that is missing or whose
    content differs from its recorded checksum."""
    for relative, expected in sorted(checksums.items()):
        path = root / relative
        try:
            actual = file_sha256(path)
        except FileNotFoundError:
            raise CheckpointError(f"{path} is missing") from None
        except OSError as e:
            raise CheckpointError(f"{path} cannot be read: {e.strerror or e}") from None
        if actual != expected:
            raise CheckpointError(f"{path}: checksum mismatch (the file is damaged or was "
                                  "changed after the model was written)")


def error_line(error: BaseException, max_chars: int | None = None) -> str:
    """``"<ExceptionType>: <first line of its message>"`` (the line cut to ``max_chars``), for
    one-line error messages."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:max_chars]}" if lines else type(error).__name__


def _to_numpy(tree):
    if isinstance(tree, Mapping):
        return {k: _to_numpy(v) for k, v in tree.items()}
    return np.asarray(tree)


def _one_process_checkpointer():
    """An orbax checkpointer that this process uses on its own: model directories are written
    by one process (the trainer's process 0) and read by each process for itself, so orbax must
    not wait at barriers for the job's other processes (``oldphoto_jax.distributed``)."""
    import orbax.checkpoint as ocp

    from oldphoto_jax.distributed import single_process_options

    return ocp.StandardCheckpointer(multiprocessing_options=single_process_options())


def _write_network(directory: pathlib.Path, module: nn.Module, variables: Mapping,
                   source: str, record_checksums: bool = False,
                   params_from: pathlib.Path | None = None) -> None:
    """Write params/ then config.json (with the params' checksums if ``record_checksums``).

    ``params_from``: a network's ``params`` folder holding exactly ``variables``, copied byte
    for byte instead of written anew (orbax lays the same arrays out in new files each time)."""
    directory.mkdir(parents=True)
    if params_from is not None:
        shutil.copytree(params_from, directory / "params")
    else:
        checkpointer = _one_process_checkpointer()
        checkpointer.save(directory / "params", _to_numpy(variables))
        checkpointer.wait_until_finished()
    config = {
        "format": NETWORK_FORMAT,
        "version": NETWORK_VERSION,
        "model": model_name(module),
        "args": architecture(module),
        "source": source,
    }
    if record_checksums:
        config["checksums"] = tree_checksums(directory)
    _write_json(directory / "config.json", config)


class _AtomicDirectory:
    """Context manager: yields a temporary directory that replaces ``target`` on success."""

    def __init__(self, target: pathlib.Path, overwrite: bool):
        self.target = pathlib.Path(target).absolute()
        self.overwrite = overwrite

    def __enter__(self) -> pathlib.Path:
        if self.target.exists() and not self.overwrite:
            raise CheckpointError(f"{self.target} already exists (pass overwrite=True to replace)")
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{self.target.name}.tmp-",
                                                 dir=self.target.parent))
        return self.tmp / "content"

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        old = None
        if self.target.exists():
            old = self.tmp / "old"
            os.rename(self.target, old)
        os.rename(self.tmp / "content", self.target)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return False


def save_network(directory: str | os.PathLike, module: nn.Module, variables: Mapping, *,
                 source: str = "", overwrite: bool = False) -> pathlib.Path:
    """Write one network (class, constructor arguments and variables) atomically."""
    with _AtomicDirectory(pathlib.Path(directory), overwrite) as tmp:
        _write_network(tmp, module, variables, source, record_checksums=True)
    return pathlib.Path(directory)


def read_network_config(directory: str | os.PathLike) -> dict:
    directory = pathlib.Path(directory)
    config = _read_json(directory / "config.json")
    if config.get("format") != NETWORK_FORMAT:
        raise CheckpointError(f"{directory}/config.json is not an oldphoto-jax network config")
    if config.get("version", 0) > NETWORK_VERSION:
        raise CheckpointError(f"{directory}: format version {config['version']} is newer than "
                              f"this oldphoto-jax understands ({NETWORK_VERSION})")
    return config


def load_network(directory: str | os.PathLike,
                 checksums: Mapping[str, str] | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the network of a checkpoint directory and load its variables (read-only arrays on
    this process's first device: ``np.asarray`` gives a host copy).

    ``checksums`` (paths relative to ``directory``, from the model's manifest) are verified
    first; without them, those recorded in ``config.json`` (a network saved alone) are. With
    :mod:`oldphoto_jax.params_cache` on, a network found in the cache is read from its entry
    (verified by its own checksum) and its ``params/`` files are neither read nor verified.
    """
    directory = pathlib.Path(directory).absolute()
    if checksums is not None:  # the files read now (config.json) before reading them
        verify_checksums(directory, {path: digest for path, digest in checksums.items()
                                     if not path.startswith("params/")})
    config = read_network_config(directory)
    if checksums is None and isinstance(config.get("checksums"), Mapping):
        checksums = config["checksums"]  # a network saved alone: its params/ files
    cache_key = params_cache.key_of(checksums) if checksums and params_cache.directory() else None
    # A cache entry holds what the params files held when their checksums were last verified.
    cached = params_cache.read(cache_key) if cache_key else None
    if cached is None and checksums is not None:
        verify_checksums(directory, {path: digest for path, digest in checksums.items()
                                     if path.startswith("params/")})
    module = _build_network(directory / "config.json", config)
    if cached is not None:
        return module, cached
    params_dir = directory / "params"
    if not params_dir.is_dir():
        raise CheckpointError(f"{params_dir} is missing")
    try:
        variables = _as_dicts(_restore_on_device(_one_process_checkpointer(), params_dir))
    except Exception as e:  # orbax/tensorstore errors vary; the file names the problem
        raise CheckpointError(f"{params_dir} cannot be restored ({error_line(e)})") from None
    if cache_key:
        params_cache.write(cache_key, variables)
    return module, variables


def _restore_on_device(checkpointer, params_dir: pathlib.Path):
    """The saved variables read straight into arrays on this process's first device.

    Restoring to host numpy arrays and placing them on the device afterwards held the weights
    twice (measured for the official quality networks, 138 MiB of weights: 627 MiB resident
    after placing, 725 MiB at the peak, against 438 / 452 MiB this way); on a CPU the device
    array is the only copy, and placing it on a one-device mesh copies nothing.
    """
    import jax

    tree = checkpointer.metadata(params_dir).item_metadata.tree
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                          tree)
    return checkpointer.restore(params_dir, target)


def _as_dicts(tree):
    if isinstance(tree, Mapping):
        return {k: _as_dicts(v) for k, v in tree.items()}
    return tree


def _build_network(config_path: pathlib.Path, config: Mapping) -> nn.Module:
    """The module a network config describes (version 2: model name; version 1: class name, its
    execution settings dropped), or a ``CheckpointError`` naming the config."""
    try:
        args = {k: v for k, v in config.get("args", {}).items() if k not in EXECUTION_FIELDS}
        if "model" in config:
            return build_model({"name": config["model"], **args})
        return build_network(config["class"], args)
    except KeyError:
        raise CheckpointError(f"{config_path} names no network (no 'model' or 'class')") from None
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{config_path}: {error_line(e)}") from None


def save_model(directory: str | os.PathLike,
               networks: Mapping[str, tuple[nn.Module, Mapping]], *, source: str = "",
               overwrite: bool = False, restored_range: str = RESTORED_RANGES[0],
               params_from: Mapping[str, pathlib.Path] | None = None) -> pathlib.Path:
    """Write a model: each ``role -> (module, variables)`` in its own subdirectory, plus manifest.

    All or nothing: the directory appears only once every network has been written.
    ``restored_range`` is recorded only when it is not the default (module docstring).
    ``params_from``: ``{role: params folder}`` for networks whose variables were loaded from
    that folder unchanged (:meth:`Model.params_directory`): their files are copied as they are,
    so a model assembled again from the same networks has the same bytes (a repository that
    tracks model directories then stores each network once).
    """
    unknown = sorted(set(networks) - set(ROLES))
    if unknown:
        raise ValueError(f"unknown network roles {unknown}; known: {sorted(ROLES)}")
    if restored_range not in RESTORED_RANGES:
        raise ValueError(f"restored_range must be one of {RESTORED_RANGES}, "
                         f"got {restored_range!r}")
    with _AtomicDirectory(pathlib.Path(directory), overwrite) as tmp:
        tmp.mkdir()
        params_from = params_from or {}
        for role, (module, variables) in networks.items():
            _write_network(tmp / role, module, variables, source,
                           params_from=params_from.get(role))
        manifest = {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "networks": {role: role for role in networks},
            "source": source,
            "checksums": tree_checksums(tmp),
        }
        if restored_range != RESTORED_RANGES[0]:
            manifest["restored_range"] = restored_range
        _write_json(tmp / "manifest.json", manifest)
    return pathlib.Path(directory)


class Model:
    """A model directory: its manifest, and its networks loaded on first use."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = pathlib.Path(directory).absolute()
        if not self.directory.is_dir():
            raise CheckpointError(f"model directory {self.directory} does not exist")
        self.manifest = _read_json(self.directory / "manifest.json")
        if self.manifest.get("format") != MODEL_FORMAT:
            raise CheckpointError(f"{self.directory}/manifest.json is not an oldphoto-jax manifest")
        if self.manifest.get("version", 0) > MODEL_VERSION:
            raise CheckpointError(f"{self.directory}: format version {self.manifest['version']} "
                                  f"is newer than this oldphoto-jax understands ({MODEL_VERSION})")
        manifest_path = self.directory / "manifest.json"
        networks = self.manifest.get("networks")
        if not isinstance(networks, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in networks.items()):
            raise CheckpointError(f"{manifest_path} has no 'networks' table of role -> folder")
        checksums = self.manifest.get("checksums")
        if checksums is not None and not isinstance(checksums, Mapping):
            raise CheckpointError(f"{manifest_path}: 'checksums' is not a table of file -> sha256")
        self.checksums: Mapping[str, str] | None = checksums
        self.restored_range: str = self.manifest.get("restored_range", RESTORED_RANGES[0])
        if self.restored_range not in RESTORED_RANGES:
            raise CheckpointError(f"{manifest_path}: 'restored_range' must be one of "
                                  f"{', '.join(RESTORED_RANGES)}, got {self.restored_range!r}")
        # What loading could not check (shown by infer.py).
        self.notes: list[str] = []
        if checksums is None:
            self.notes.append(f"{manifest_path} records no checksums (a model written before "
                              "they were): its files are not verified")
        self._cache: dict[str, tuple[nn.Module, dict]] = {}

    @property
    def roles(self) -> list[str]:
        return sorted(self.manifest["networks"])

    @property
    def source(self) -> str:
        return self.manifest.get("source", "")

    def has(self, role: str) -> bool:
        return role in self.manifest["networks"]

    def params_directory(self, role: str) -> pathlib.Path:
        """The folder holding ``role``'s parameters (orbax files)."""
        if not self.has(role):
            raise CheckpointError(f"model {self.directory} has no '{role}' network")
        return self.directory / self.manifest["networks"][role] / "params"

    def network(self, role: str) -> tuple[nn.Module, dict]:
        if not self.has(role):
            what = ROLES[role].description if role in ROLES else role
            raise CheckpointError(f"model {self.directory} has no '{role}' network ({what}); "
                                  f"it has: {', '.join(self.roles) or 'none'}")
        if role not in self._cache:
            subdirectory = self.manifest["networks"][role]
            self._cache[role] = load_network(self.directory / subdirectory,
                                             self._network_checksums(subdirectory))
        return self._cache[role]

    def _network_checksums(self, subdirectory: str) -> dict[str, str] | None:
        """The manifest's checksums of the files under ``subdirectory``, relative to it (None
        for a model without checksums)."""
        if self.checksums is None:
            return None
        prefix = pathlib.PurePosixPath(subdirectory).as_posix().rstrip("/") + "/"
        return {path[len(prefix):]: digest for path, digest in self.checksums.items()
                if path.startswith(prefix)}


def load_model(directory: str | os.PathLike) -> Model:
    return Model(directory)
