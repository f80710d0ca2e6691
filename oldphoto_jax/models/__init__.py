"""The networks of oldphoto-jax, one module per official network (all Flax Linen, NHWC), and the
registry that names them (:mod:`oldphoto_jax.models.registry`)."""
from oldphoto_jax.models.registry import (EXECUTION_FIELDS, MODELS, architecture, build_model,
                                          build_network, model_name, network_args)

__all__ = ["EXECUTION_FIELDS", "MODELS", "architecture", "build_model", "build_network",
           "model_name", "network_args"]
