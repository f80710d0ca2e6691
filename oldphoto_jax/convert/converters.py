"""Which function converts an official state dict into the params of which network class."""
from __future__ import annotations

from typing import Callable, Mapping

import flax.linen as nn
import numpy as np

from oldphoto_jax.convert.common import StateDictReader

# class name -> fn(reader, module) -> Flax variables ({"params": ..., maybe "batch_stats": ...})
CONVERTERS: dict[str, Callable[[StateDictReader, nn.Module], dict]] = {}


def converter(class_name: str):
    """Decorator registering the converter of the network class named ``class_name``."""
    def decorator(fn):
        CONVERTERS[class_name] = fn
        return fn
    return decorator


def convert_state_dict(module: nn.Module, arrays: Mapping[str, np.ndarray], source: str
                       ) -> tuple[dict, list[str]]:
    """Official ``{key: array}`` -> (Flax variables of ``module``, warnings about unused keys).

    Raises ConversionError (naming ``source`` and the key) for a missing or misshapen key.
    """
    import oldphoto_jax.convert.networks  # noqa: F401  (registers every converter)
    name = type(module).__name__
    if name not in CONVERTERS:
        raise ValueError(f"no converter for network class {name!r}")
    reader = StateDictReader(arrays, source)
    variables = CONVERTERS[name](reader, module)
    return variables, reader.unused_warnings()
