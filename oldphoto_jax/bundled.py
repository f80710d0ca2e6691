"""The bundled default model: where it lives and how it was trained (see ``weights/README.md``).

The ``small`` variants of ``configs/*.py`` train it with ``train.py`` on ``../shared/photos``
(the clean photos minus :data:`HOLDOUT`, which the evaluation uses), with the :data:`PRESET`
degradation preset; the whole recipe is in those config files. ``infer.py`` loads :data:`DEFAULT_DIR` when ``--checkpoint_dir`` is not given.
"""
from __future__ import annotations

import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DIR = REPO / "weights" / "default"
# The bundled runs' work directories (committed: their last checkpoint resumes a run).
RUNS_DIR = REPO / "weights" / "runs"

# Clean photos of ../shared/photos/clean never seen in training: the evaluation set.
HOLDOUT = ("building.jpg", "fruits.jpg", "home.jpg", "leuvena.jpg", "storm.jpg")

# The degradation preset of the bundled runs (and of the evaluation).
PRESET = "extended"
