"""Parity with the official PyTorch implementation, measured on fixture sets of its outputs.

``RUNNERS`` maps each case kind to a function that runs our code on a case and returns the
comparisons of its outputs with the fixture's tolerances; ``python -m oldphoto_jax.parity`` prints
them for every case of a fixture set.
"""
from oldphoto_jax.parity import (runners_detection_face, runners_faces, runners_global,  # noqa
                                 runners_pipeline)
from oldphoto_jax.parity.fixtures import (EXPECTED_FAILURES, RUNNERS, Case, Comparison, cases_dir,
                                          list_cases, load_case)

__all__ = ["EXPECTED_FAILURES", "RUNNERS", "Case", "Comparison", "cases_dir", "list_cases",
           "load_case"]
