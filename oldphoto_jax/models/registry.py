"""Names of the network classes, so that checkpoints can say which class their params belong to.

A checkpoint's ``config.json`` stores ``{"class": <registered name>, "args": {...}}``; the class is
rebuilt with ``build_network`` and the constructor arguments recovered with ``network_args``.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn

NETWORK_CLASSES: dict[str, type[nn.Module]] = {}


def register_network(cls: type[nn.Module]) -> type[nn.Module]:
    """Class decorator: make ``cls`` loadable from a checkpoint by its class name."""
    NETWORK_CLASSES[cls.__name__] = cls
    return cls


def build_network(class_name: str, args: dict[str, Any] | None = None) -> nn.Module:
    # Importing the models package registers every network class.
    import oldphoto_jax.models  # noqa: F401
    if class_name not in NETWORK_CLASSES:
        known = ", ".join(sorted(NETWORK_CLASSES))
        raise ValueError(f"unknown network class {class_name!r} (known: {known})")
    # JSON turns tuples into lists; modules must stay hashable (they are static jit arguments).
    args = {k: _as_tuples(v) for k, v in (args or {}).items()}
    return NETWORK_CLASSES[class_name](**args)


def _as_tuples(value):
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(v) for v in value)
    return value


def network_args(module: nn.Module) -> dict[str, Any]:
    """The constructor arguments of a network (its dataclass fields, without Flax's own)."""
    out = {}
    for field in dataclasses.fields(module):
        if field.name in ("parent", "name") or not field.init:
            continue
        out[field.name] = getattr(module, field.name)
    return out
