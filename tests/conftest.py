"""The test suite runs with the fast CPU configuration the entry points use
(:mod:`oldphoto_jax.cpu_tuning`), set here before any test starts the JAX backend;
``OLDPHOTO_JAX_CPU_TUNING=0`` runs it without."""
from oldphoto_jax import cpu_tuning

cpu_tuning.apply()
