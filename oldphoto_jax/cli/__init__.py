"""The command-line programs, installed as console scripts (``pyproject.toml``):
``oldphoto-restore`` (``infer.py``), ``oldphoto-train`` (``train.py``), ``oldphoto-convert``
(``python -m oldphoto_jax.convert``) and ``oldphoto-serve`` (``python -m oldphoto_jax.serve``).
The top-level ``infer.py`` and ``train.py`` of a checkout run the same code."""
