"""The networks of oldphoto-jax, one module per official network (all Flax Linen, NHWC)."""
from oldphoto_jax.models import discriminators, mapping, spade, unet, vae  # noqa: F401
from oldphoto_jax.models.registry import (NETWORK_CLASSES, build_network, network_args,
                                          register_network)

__all__ = ["NETWORK_CLASSES", "build_network", "network_args", "register_network"]
