"""The test suite runs with the fast CPU configuration the entry points use
(:mod:`oldphoto_jax.cpu_tuning`), set here before any test starts the JAX backend;
``OLDPHOTO_JAX_CPU_TUNING=0`` runs it without."""
import os

from oldphoto_jax import compile_cache, cpu_tuning, params_cache

cpu_tuning.apply()
# The entry points the tests call write no persistent compilation cache into the home folder
# (tests/test_compile_cache.py switches it on in folders of its own).
os.environ.setdefault(compile_cache.SWITCH, "0")
os.environ.setdefault(params_cache.SWITCH, "0")  # nor a parameter cache


import pytest  # noqa: E402

# Photos of the API and server tests are downscaled to this longer side (few compiled shapes).
TINY_MAX_SIDE = 64


@pytest.fixture(scope="session")
def tiny_restorer(tmp_path_factory):
    """An ``oldphoto_jax.api.Restorer`` of a tiny random-weight model (quality and scratch
    networks, no faces), photos downscaled to ``TINY_MAX_SIDE``: shared by the API and server
    tests so that each photo size compiles once."""
    from oldphoto_jax.api import Restorer
    from oldphoto_jax.testing.random_model import write_random_model

    directory = tmp_path_factory.mktemp("api_model") / "tiny"
    write_random_model(directory, roles=["vae_a", "mapping_quality", "vae_b_quality",
                                         "mapping_scratch", "vae_b_scratch", "scratch_detector"])
    return Restorer(directory, max_side=TINY_MAX_SIDE, faces=False, with_scratch=True)
