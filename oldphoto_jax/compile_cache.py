"""XLA's persistent compilation cache, switched on by the inference entry points.

Compiling a restoration stage costs seconds and memory every time a program starts: XLA:CPU
builds the executable with LLVM, whose working memory the process keeps afterwards. With JAX's
persistent cache, the executable of a (network, photo size, flags, jaxlib) combination compiled
once is read back from disk by later runs. Measured for the official-width quality networks at
256 px (``python -m oldphoto_jax.bench``, an empty cache, then the same command again;
benchmarks/README.md): compile 2.76 -> 0.99 s, peak RSS 666 -> 577 MiB.

``infer.py`` (and the ``restore`` console script), the Python API, the web server and the
benchmark call :func:`enable` before compiling anything. The folder is
``$OLDPHOTO_JAX_COMPILE_CACHE`` when that names a folder, else
``$XDG_CACHE_HOME/oldphoto_jax/xla`` (``~/.cache/oldphoto_jax/xla``); ``OLDPHOTO_JAX_COMPILE_CACHE=0``
switches it off, and a cache folder the user gave JAX itself (``JAX_COMPILATION_CACHE_DIR`` or
``jax.config``) is kept. JAX keys each entry by the computation, the jaxlib version, the device
and the ``XLA_FLAGS`` in force, so a stale entry is never used; it reports (and skips) a folder it
cannot write. Entries are small (100-300 KB per compiled stage); deleting the folder is always
safe.
"""
from __future__ import annotations

import os
import pathlib
from typing import Mapping

from oldphoto_jax import cache_folders

SWITCH = "OLDPHOTO_JAX_COMPILE_CACHE"
# Compilations shorter than this are not written (the small pre- and post-processing jits).
MIN_COMPILE_SECONDS = 0.25


def chosen_directory(environ: Mapping[str, str] = os.environ) -> pathlib.Path | None:
    """The cache folder :func:`enable` uses, or None when switched off."""
    return cache_folders.chosen_directory(SWITCH, "xla", environ)


def enable(environ: Mapping[str, str] = os.environ) -> str | None:
    """Points JAX's persistent compilation cache at :func:`chosen_directory` (unless the user set
    one). Returns the folder in use, or None when off. Call before the first compilation."""
    import jax

    existing = jax.config.jax_compilation_cache_dir
    if existing:
        return existing
    directory = chosen_directory(environ)
    if directory is None:
        return None
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return str(directory)
