"""The training configs of ``configs/`` for tests and benchmarks: ``load_config("vae_a", "tiny")``
is what ``train.py --config configs/vae_a.py:tiny`` runs (before command-line overrides)."""
from __future__ import annotations

import importlib
import pathlib
import sys

import ml_collections

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
# Every config file and the arguments it takes (the first is its default).
CONFIG_ARGS = {
    "vae_a": ("", "tiny", "small", "colour", "tiny_colour", "small_colour"),
    "vae_b": ("", "tiny", "small", "colour", "tiny_colour", "small_colour"),
    "scratch": ("", "tiny", "small"),
    "face": ("256", "512", "tiny"),
    "mapping": ("quality", "scratch", "hr", "tiny", "tiny_quality", "tiny_scratch", "tiny_hr",
                "small", "small_quality", "small_scratch", "small_hr"),
}


def config_module(name: str):
    """``configs/<name>.py`` as a module (the repository root on ``sys.path``, as for
    ``train.py``, whose config files import ``configs.common``)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module(f"configs.{name}")


def load_config(name: str, arg: str | None = None) -> ml_collections.ConfigDict:
    return config_module(name).get_config(arg)
