"""Imports every per-network converter so that they register themselves."""
from oldphoto_jax.convert import detection, face, global_nets  # noqa: F401
