"""The bundled default model: where it lives and how it was trained (see ``weights/README.md``).

The ``small`` variants of ``configs/*.py`` train it with ``train.py`` on ``../shared/photos``
(the clean photos minus :data:`HOLDOUT`, which the evaluation uses), with the :data:`PRESET`
degradation preset; the whole recipe is in those config files. ``infer.py`` loads :data:`DEFAULT_DIR` when ``--checkpoint_dir`` is not given.
"""
from __future__ import annotations

import importlib.util
import pathlib
import sys

PACKAGE = pathlib.Path(__file__).resolve().parent
REPO = PACKAGE.parent
# In a checkout (also an editable install) the model and the configs are the repository's
# weights/default and configs/; an installed wheel carries them as package data in
# oldphoto_jax/weights/default and oldphoto_jax/configs (pyproject.toml, setup.py).
DEFAULT_DIR = REPO / "weights" / "default"
if not (DEFAULT_DIR / "manifest.json").exists() and (
        PACKAGE / "weights" / "default" / "manifest.json").exists():
    DEFAULT_DIR = PACKAGE / "weights" / "default"
CONFIGS_DIR = REPO / "configs"
if not (CONFIGS_DIR / "common.py").exists() and (PACKAGE / "configs" / "common.py").exists():
    CONFIGS_DIR = PACKAGE / "configs"
# The bundled runs' work directories (committed: their last checkpoint resumes a run).
RUNS_DIR = REPO / "weights" / "runs"

# Clean photos of ../shared/photos/clean never seen in training: the evaluation set.
HOLDOUT = ("building.jpg", "fruits.jpg", "home.jpg", "leuvena.jpg", "storm.jpg")

# The degradation preset of the bundled runs (and of the evaluation).
PRESET = "extended"


def resolve_config_args(argv: list[str]) -> list[str]:
    """``train.py`` arguments with a ``--config`` file that does not exist (``configs/vae_a.py``,
    ``vae_a.py``, with or without ``:<arg>``) replaced by the bundled config of that name."""
    resolved = []
    take_next = False
    for arg in argv:
        if take_next:
            arg, take_next = _bundled_config(arg), False
        elif arg in ("--config", "-config"):
            take_next = True
        elif arg.startswith(("--config=", "-config=")):
            flag, value = arg.split("=", 1)
            arg = f"{flag}={_bundled_config(value)}"
        resolved.append(arg)
    return resolved


def _bundled_config(value: str) -> str:
    path, colon, config_arg = value.partition(":")
    if not path or pathlib.Path(path).exists():
        return value
    candidate = CONFIGS_DIR / pathlib.Path(path).name
    return f"{candidate}{colon}{config_arg}" if candidate.is_file() else value


def use_configs_package() -> None:
    """Make ``from configs import common`` (in every config file) work where the configs are
    not importable as a top-level package: an installed wheel keeps them in
    ``oldphoto_jax/configs``, and console scripts do not run from the repository. The package
    is registered as ``configs`` from ``CONFIGS_DIR``; nothing else is added to ``sys.path``."""
    if "configs" in sys.modules or importlib.util.find_spec("configs") is not None:
        return
    spec = importlib.util.spec_from_file_location(
        "configs", CONFIGS_DIR / "__init__.py", submodule_search_locations=[str(CONFIGS_DIR)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["configs"] = module
    spec.loader.exec_module(module)
