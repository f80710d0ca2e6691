"""The fast XLA:CPU configuration, applied by every entry point before the JAX backend starts.

By default jaxlib 0.10.2 hands convolutions to YNNPACK, which runs a 3x3 VALID convolution on a
reflection-padded input (every ResnetBlock of the VAEs, the mapping trunk, the UNet) on a slow
path that also allocates and releases a ~72 MiB scratch buffer per call: the official-width
networks ran 1.8-3.6x slower than the official PyTorch code on the same CPU. With
``--xla_cpu_experimental_ynn_fusion_type=-individual_convolution`` convolutions go to XLA's own
kernel (reductions such as instance norm stay in YNNPACK) and the same networks run at 0.5-1.2x
the PyTorch time, with the same outputs (``benchmarks/README.md``, issue 18).

XLA reads ``XLA_FLAGS`` once, when the backend starts (the first ``jax.devices()``, ``jit`` call
or array), not at ``import jax``; :func:`apply` must run before that. It *appends* to the
``XLA_FLAGS`` the user gave (``--xla_force_host_platform_device_count=4`` and the like are kept);
a flag the user already set wins over ours, and ``OLDPHOTO_JAX_CPU_TUNING=0`` turns the tuning
off altogether. The flags only concern the CPU backend; GPU/TPU runs ignore them.

The flag is experimental: if a jaxlib upgrade drops it, XLA refuses to start with "Unknown flags
in XLA_FLAGS" (loud, not silent), and ``tests/test_cpu_tuning.py`` checks that a convolution on a
reflection-padded input is no longer compiled into a YNNPACK fusion.
"""
from __future__ import annotations

import os
import sys
import warnings
from typing import MutableMapping

SWITCH = "OLDPHOTO_JAX_CPU_TUNING"

# (flag name, value): convolutions to XLA's own CPU kernel instead of YNNPACK.
FLAGS = (("--xla_cpu_experimental_ynn_fusion_type", "-individual_convolution"),)


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
    """Adds the fast CPU flags to ``environ["XLA_FLAGS"]`` (see the module docstring).

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
    return flags


def describe(environ: MutableMapping[str, str] = os.environ) -> str:
    """One line for logs: whether the tuning is on and the XLA_FLAGS in force."""
    state = "on" if enabled(environ) else f"off ({SWITCH}=0)"
    return f"CPU tuning {state}; XLA_FLAGS={environ.get('XLA_FLAGS', '')!r}"
