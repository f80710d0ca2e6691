"""Packaging beyond pyproject.toml: the repository's configs/ and the bundled model
(weights/default) ship inside the package as oldphoto_jax/configs and oldphoto_jax/weights, so an
installed wheel has no top-level ``configs`` package and no folder outside ``oldphoto_jax``.
An editable install (``make setup``) maps the same names onto the repository's folders.

The model's files are package data of ``oldphoto_jax.weights`` by glob (its orbax folders, such
as ``ocdbt.process_0``, are not valid package names); setuptools warns that those folders "would
be ignored" as packages, which is what is meant: they are installed as data.
"""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["oldphoto_jax", "oldphoto_jax.*", "data_synth",
                                    "data_synth.*"])
    + ["oldphoto_jax.configs", "oldphoto_jax.weights", "oldphoto_jax.serve.static"],
    package_dir={"oldphoto_jax.configs": "configs", "oldphoto_jax.weights": "weights"},
    package_data={"oldphoto_jax.weights": ["default/*", "default/**/*"],
                  "oldphoto_jax.serve.static": ["*"]},
)
