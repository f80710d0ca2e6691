"""The fast XLA:CPU configuration, applied by every entry point before the JAX backend starts.

By default jaxlib 0.10.2 hands convolutions to YNNPACK, which runs a 3x3 VALID convolution on a
reflection-padded input (every ResnetBlock of the VAEs, the mapping trunk, the UNet) on a slow
path that also allocates and releases a ~72 MiB scratch buffer per call: the official-width
networks ran 1.8-3.6x slower than the official PyTorch code on the same CPU. With
``--xla_cpu_experimental_ynn_fusion_type=-individual_convolution`` convolutions go to XLA's own
kernel (reductions such as instance norm stay in YNNPACK) and the same networks run at 0.5-1.2x
the PyTorch time, with the same outputs (``benchmarks/README.md``, issue 18). A second flag,
``--xla_cpu_enable_concurrency_optimized_scheduler=false``, schedules instructions to keep memory
low instead of running independent ones side by side (face 512 generator peak 2.1 -> 1.4 GiB at
the same CPU time).

XLA reads ``XLA_FLAGS`` once, when the backend starts (the first ``jax.devices()``, ``jit`` call
or array), not at ``import jax``; :func:`apply` must run before that. It *appends* to the
``XLA_FLAGS`` the user gave (``--xla_force_host_platform_device_count=4`` and the like are kept);
a flag the user already set wins over ours, and ``OLDPHOTO_JAX_CPU_TUNING=0`` turns the tuning
off altogether. The flags only concern the CPU backend; GPU/TPU runs ignore them.

The allocator, by default: at most two glibc malloc arenas (``glibc.malloc.arena_max=2``,
:data:`DEFAULT_MALLOC_TUNABLES`): each thread that allocates concurrently otherwise gets an arena
of its own that keeps what was freed into it; the limit lowered the peak of every inference
stage by 26-121 MiB at the same run time (benchmarks/README.md, issue 18, third session).

More allocator tuning (opt-in, ``OLDPHOTO_JAX_MALLOC_TUNING=1``): XLA:CPU allocates its large
temporary buffers with ``malloc`` on every call; glibc serves blocks above its mmap threshold with
fresh mappings, so every call pays page faults (system time) for them. :func:`tune_allocator`
keeps one arena, no mmap and up to 512 MiB of freed memory. Measured with the XLA flag on
(``benchmarks/README.md``): faults and system time fall and the peak RSS of the restoration stages
drops 60-100 MiB, but CPU seconds barely change, and the face 512 generator's peak *rises* from
2.6 to 3.8 GiB (fragmentation of the single heap), so it is not applied by default. Applied to
this process with ``mallopt`` and to child processes (the benchmarks' workers) with
``GLIBC_TUNABLES``; a tunable the user set wins.

The flag is experimental: if a jaxlib upgrade drops it, XLA refuses to start with "Unknown flags
in XLA_FLAGS" (loud, not silent), and ``tests/test_cpu_tuning.py`` checks that a convolution on a
reflection-padded input is no longer compiled into a YNNPACK fusion.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import warnings
from typing import MutableMapping

SWITCH = "OLDPHOTO_JAX_CPU_TUNING"
MALLOC_SWITCH = "OLDPHOTO_JAX_MALLOC_TUNING"  # opt-in: see the module docstring

# (flag name, value): convolutions to XLA's own CPU kernel instead of YNNPACK; instructions
# scheduled to keep memory low rather than to run independent ones side by side (the
# concurrency-optimised scheduler kept many large buffers alive at once: face 512 generator peak
# 2.1 -> 1.3 GiB, faults 330 k -> 135 k per run, same CPU time; benchmarks/README.md).
FLAGS = (("--xla_cpu_experimental_ynn_fusion_type", "-individual_convolution"),
         ("--xla_cpu_enable_concurrency_optimized_scheduler", "false"))


# glibc malloc: one arena, no mmap for large blocks and freed memory kept up to 512 MiB, so the
# large temporary buffers XLA allocates on every call are reused instead of being mapped and
# unmapped (each map costs page faults). As GLIBC_TUNABLES for child processes (read when they
# start) and as mallopt() parameters for this one.
MALLOC_TUNABLES = (("glibc.malloc.arena_max", "1"), ("glibc.malloc.mmap_max", "0"),
                   ("glibc.malloc.trim_threshold", str(512 << 20)))
# Always (with the tuning on): at most two malloc arenas. glibc gives each thread that allocates
# concurrently an arena of its own, and memory freed into one is kept for that arena: reading
# the weights (tensorstore's threads) and running XLA's thread pool otherwise leave 26-121 MiB
# more resident at the peak of each stage at the same run time (benchmarks/README.md, issue
# 18, third session).
DEFAULT_MALLOC_TUNABLES = (("glibc.malloc.arena_max", "2"),)
_MALLOPT = {"glibc.malloc.arena_max": -8, "glibc.malloc.mmap_max": -4,
            "glibc.malloc.trim_threshold": -1}  # M_ARENA_MAX, M_MMAP_MAX, M_TRIM_THRESHOLD


def enabled(environ: MutableMapping[str, str] = os.environ) -> bool:
    """False when ``OLDPHOTO_JAX_CPU_TUNING`` is 0/false/no/off."""
    return environ.get(SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def _flag_names(xla_flags: str) -> set[str]:
    return {item.split("=", 1)[0] for item in xla_flags.split()}


def tuned_xla_flags(xla_flags: str) -> str:
    """``xla_flags`` with each of :data:`FLAGS` appended unless a flag of that name is already
    there (the user's setting wins)."""
    present = _flag_names(xla_flags)
    extra = [f"{name}={value}" for name, value in FLAGS if name not in present]
    return " ".join([xla_flags.strip(), *extra]).strip()


def tuned_glibc_tunables(tunables: str, wanted=MALLOC_TUNABLES) -> str:
    """``tunables`` (GLIBC_TUNABLES syntax) with ``wanted`` added unless already set (the
    user's setting wins)."""
    present = {item.split("=", 1)[0] for item in tunables.split(":") if item}
    extra = [f"{name}={value}" for name, value in wanted if name not in present]
    return ":".join([t for t in tunables.split(":") if t] + extra)


def _libc_function(name: str):
    """glibc's function ``name`` (``mallopt``, ``malloc_trim``), or None where the C library
    is not glibc."""
    path = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(path), name) if path else None
    except (OSError, AttributeError):  # not glibc
        return None


def _mallopt():
    return _libc_function("mallopt")


def tune_allocator(environ: MutableMapping[str, str] = os.environ,
                   wanted=MALLOC_TUNABLES) -> bool:
    """Adds ``wanted`` (:data:`MALLOC_TUNABLES` or :data:`DEFAULT_MALLOC_TUNABLES`) to
    ``environ["GLIBC_TUNABLES"]`` (child processes) and, when ``environ`` is this process's
    environment, applies them here with ``mallopt`` (those the user set in GLIBC_TUNABLES
    excepted: glibc read them at start-up). Returns whether every ``mallopt`` call succeeded
    (False where the C library is not glibc)."""
    user = {item.split("=", 1)[0] for item in environ.get("GLIBC_TUNABLES", "").split(":")}
    environ["GLIBC_TUNABLES"] = tuned_glibc_tunables(environ.get("GLIBC_TUNABLES", ""), wanted)
    if environ is not os.environ:
        return True
    mallopt = _mallopt()
    if mallopt is None:
        return False
    return all(mallopt(_MALLOPT[name], int(value)) == 1
               for name, value in wanted if name not in user)


def release_free_memory() -> bool:
    """Gives the memory glibc holds freed back to the system (``malloc_trim(0)``).

    Reading the weights (tensorstore's buffers) and compiling leave tens of MiB freed but
    resident in malloc's heaps, and the restoration's own peak comes later, on top of them.
    Called after the weights are placed and after each compilation (``pipeline.engine``, the
    bench): the peak of the official-width quality stage at 256 px fell from 570 to 546-548 MiB
    (issue 18). A few milliseconds. False where the C library is not glibc."""
    trim = _libc_function("malloc_trim")
    if trim is None:
        return False
    trim(0)
    return True


def backend_started() -> bool:
    """Whether this process has already started a JAX backend (too late to change XLA_FLAGS)."""
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge
        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # a JAX without this helper: assume not started
        return False


def apply(environ: MutableMapping[str, str] = os.environ) -> str | None:
    """Adds the fast CPU flags to ``environ["XLA_FLAGS"]``, and tunes the allocator
    (:func:`tune_allocator`) when ``OLDPHOTO_JAX_MALLOC_TUNING=1`` (see the module docstring).

    Returns the resulting ``XLA_FLAGS``, or None when the tuning is switched off. Idempotent.
    Warns when the JAX backend of this process has already started (the flags then only reach
    child processes).
    """
    if not enabled(environ):
        return None
    flags = tuned_xla_flags(environ.get("XLA_FLAGS", ""))
    if flags != environ.get("XLA_FLAGS", "") and environ is os.environ and backend_started():
        warnings.warn("oldphoto_jax.cpu_tuning.apply() called after the JAX backend started: "
                      "the CPU flags take effect in child processes only", stacklevel=2)
    environ["XLA_FLAGS"] = flags
    if environ.get(MALLOC_SWITCH, "0").strip().lower() in ("1", "true", "yes", "on"):
        tune_allocator(environ)
    else:
        tune_allocator(environ, DEFAULT_MALLOC_TUNABLES)
    return flags


def describe(environ: MutableMapping[str, str] = os.environ) -> str:
    """One line for logs: whether the tuning is on and the XLA_FLAGS in force."""
    state = "on" if enabled(environ) else f"off ({SWITCH}=0)"
    return (f"CPU tuning {state}; XLA_FLAGS={environ.get('XLA_FLAGS', '')!r}; "
            f"GLIBC_TUNABLES={environ.get('GLIBC_TUNABLES', '')!r}")
