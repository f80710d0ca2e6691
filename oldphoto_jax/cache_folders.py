"""Where the program's caches live: one switch variable per cache, read the same way.

``$<SWITCH>`` = ``0``/``false``/``no``/``off``: the cache is off; a folder: that folder; empty or
``1``/``true``/``yes``/``on``: ``$XDG_CACHE_HOME/oldphoto_jax/<name>`` (``~/.cache/...``). Used by
:mod:`oldphoto_jax.compile_cache` (``xla``) and :mod:`oldphoto_jax.params_cache` (``params``).
"""
from __future__ import annotations

import os
import pathlib
from typing import Mapping

OFF = ("0", "false", "no", "off")
ON = ("1", "true", "yes", "on")


def default_directory(name: str, environ: Mapping[str, str] = os.environ) -> pathlib.Path:
    base = environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "oldphoto_jax" / name


def chosen_directory(switch: str, name: str,
                     environ: Mapping[str, str] = os.environ) -> pathlib.Path | None:
    """The folder of cache ``name`` as ``$switch`` chooses it, or None when switched off."""
    value = environ.get(switch, "").strip()
    if value.lower() in OFF:
        return None
    if value and value.lower() not in ON:
        return pathlib.Path(value).expanduser()
    return default_directory(name, environ)
