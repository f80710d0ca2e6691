"""Where the official checkpoints live, and their conversion into one oldphoto-jax model.

The official release ships two archives (reference section 9):

* ``global_checkpoints.zip`` (unzipped inside ``Global/``): ``checkpoints/restoration/<net>/
  latest_net_*.pth`` and ``checkpoints/detection/FT_Epoch_latest.pt``;
* ``face_checkpoints.zip`` (unzipped inside ``Face_Enhancement/``):
  ``checkpoints/{Setting_9_epoch_100,FaceSR_512}/latest_net_G.pth``.

Each may be given as the zip itself or as any folder that contains the unzipped files (the
``Global`` folder, its ``checkpoints`` folder, ...): files are found by the end of their path.
"""
from __future__ import annotations

import dataclasses
import io
import os
import pathlib
import zipfile
from typing import Any, Callable, Iterator

from oldphoto_jax.convert.common import ConversionError
from oldphoto_jax.roles import ROLES


@dataclasses.dataclass(frozen=True)
class OfficialFile:
    role: str            # role in our model (oldphoto_jax.roles.ROLES)
    archive: str         # "global" or "face"
    path: str            # path inside the archive, as the official code opens it
    class_name: str      # our network class
    args: dict = dataclasses.field(default_factory=dict)  # constructor arguments beyond defaults
    entry: str | None = None  # the state dict is obj[entry] (detection checkpoint)


# One per role of oldphoto_jax.roles.ROLES, from its official_* fields.
OFFICIAL_FILES = tuple(
    OfficialFile(role.name, role.official_archive, role.official_path, role.network,
                 dict(role.official_args), role.official_entry)
    for role in ROLES.values())


class CheckpointFolder:
    """Finds official files by path suffix in an unzipped folder or in a zip archive."""

    def __init__(self, location: str | os.PathLike):
        self.location = pathlib.Path(location)
        if not self.location.exists():
            raise ConversionError(f"{self.location} does not exist")
        if self.location.is_dir():
            self._zip = None
            self._names = sorted(str(p.relative_to(self.location)).replace(os.sep, "/")
                                 for p in self.location.rglob("*") if p.is_file())
        else:
            try:
                self._zip = zipfile.ZipFile(self.location)
            except (zipfile.BadZipFile, OSError) as e:
                raise ConversionError(f"{self.location} is neither a folder nor a readable zip "
                                      f"archive: {e}") from None
            self._names = sorted(n for n in self._zip.namelist() if not n.endswith("/"))

    def find(self, official_path: str) -> str | None:
        """The member whose path ends with the official path (minus a leading checkpoints/)."""
        suffix = official_path.split("checkpoints/", 1)[-1]
        matches = [n for n in self._names if n == suffix or n.endswith("/" + suffix)]
        if len(matches) > 1:
            raise ConversionError(f"{self.location}: several files match {suffix}: {matches}")
        return matches[0] if matches else None

    def display_name(self, member: str) -> str:
        sep = "!/" if self._zip is not None else "/"
        return f"{self.location}{sep}{member}"

    def open(self, member: str) -> io.BufferedIOBase:
        if self._zip is None:
            return open(self.location / member, "rb")
        return self._zip.open(member)


def locate_official_files(archives: dict[str, str | os.PathLike]
                          ) -> Iterator[tuple[OfficialFile, CheckpointFolder, str | None]]:
    """For each official file of the given archives: (spec, folder, member or None if absent)."""
    folders = {kind: CheckpointFolder(path) for kind, path in archives.items() if path}
    for spec in OFFICIAL_FILES:
        if spec.archive in folders:
            folder = folders[spec.archive]
            yield spec, folder, folder.find(spec.path)


def convert_official(archives: dict[str, str | os.PathLike], output: str | os.PathLike, *,
                     skip_missing: bool = False, overwrite: bool = False,
                     log: Callable[[str], Any] = print) -> list[str]:
    """Convert the official checkpoints of ``archives`` ({"global": path, "face": path}) into the
    model directory ``output``. Returns the warnings. Nothing is written unless every file
    converts; a missing file is an error unless ``skip_missing``.
    """
    # Imported here so that ``--help`` stays fast.
    from oldphoto_jax.model_files import save_model
    from oldphoto_jax.convert.converters import convert_state_dict
    from oldphoto_jax.convert.torch_file import read_state_dict
    from oldphoto_jax.models.registry import build_network

    if not any(archives.values()):
        raise ConversionError("give at least one of the global or face checkpoint archives")
    located = list(locate_official_files(archives))
    missing = [f"{folder.location}: {spec.path}" for spec, folder, member in located
               if member is None]
    if missing and not skip_missing:
        raise ConversionError("official checkpoint files not found:\n  " + "\n  ".join(missing)
                              + "\n(pass --skip_missing to convert the others)")
    warnings: list[str] = [f"skipped missing {m}" for m in missing]
    networks = {}
    for spec, folder, member in located:
        if member is None:
            continue
        name = folder.display_name(member)
        log(f"reading {name}")
        with folder.open(member) as f:
            arrays, read_warnings = read_state_dict(f, entry=spec.entry, name=name)
        module = build_network(spec.class_name, spec.args)
        variables, unused = convert_state_dict(module, arrays, name)
        warnings += read_warnings + unused
        networks[spec.role] = (module, variables)
        log(f"  -> {spec.role}: {spec.class_name}, "
            f"{sum(a.size for a in _leaves(variables)):,} values")
    if not networks:
        raise ConversionError("no official checkpoint file found")
    sources = ", ".join(f"{k}={v}" for k, v in archives.items() if v)
    save_model(output, networks, source=f"converted from the official checkpoints ({sources})",
               overwrite=overwrite)
    return warnings


def _leaves(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from _leaves(v)
    else:
        yield tree
