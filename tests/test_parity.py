"""Parity with the official PyTorch outputs, over every case of the fixture set.

The fixture set comes from OLDPHOTO_PARITY_DIR (default: ../shared/parity/cases from the
repository root). Each case is dispatched on its ``kind``; a kind without a runner fails, so a new
kind can never pass or vanish silently.
"""
import os
import pathlib
import subprocess
import sys

import pytest

from oldphoto_jax.parity import EXPECTED_FAILURES, RUNNERS, cases_dir, list_cases, load_case
from oldphoto_jax.parity.fixtures import fixture_set_missing

MISSING = fixture_set_missing()
CASES = {} if MISSING else list_cases()
REPO = pathlib.Path(__file__).resolve().parents[1]


def test_fixture_set_is_not_empty():
    if MISSING:
        pytest.skip(MISSING)
    assert CASES, f"no cases in {cases_dir()}/cases.json"


def test_without_the_fixture_set_its_tests_skip_with_a_message(tmp_path):
    """A checkout without ../shared/parity: the tests that need it skip, naming the path, and the
    rest of the suite runs (it used to stop at collection). A pytest subprocess over one test of
    each kind that reads the fixture set (~10 s, mostly imports)."""
    missing = tmp_path / "no_parity" / "cases"
    nodes = ["tests/test_parity.py::test_fixture_set_is_not_empty",
             "tests/pipeline/test_postprocess.py::test_minmax_png_matches_fixture",
             "tests/pipeline/test_preprocess.py::test_quality_input_matches_fixture_size",
             "tests/convert/test_official.py::test_missing_key_names_file_and_key"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *nodes],
        cwd=REPO, env=dict(os.environ, OLDPHOTO_PARITY_DIR=str(missing)),
        capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "passed" not in result.stdout and "failed" not in result.stdout
    assert result.stdout.count(f"parity fixture set not found ({missing}") >= 4, result.stdout


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_matches_official_output(name):
    kind = CASES[name]["kind"]
    if kind in EXPECTED_FAILURES:
        pytest.xfail(EXPECTED_FAILURES[kind])
    assert kind in RUNNERS, f"case {name}: no runner for kind {kind!r} (known: {sorted(RUNNERS)})"
    comparisons = RUNNERS[kind](load_case(name))
    assert comparisons, f"case {name}: the runner compared nothing"
    report = "\n".join(c.line() for c in comparisons)
    print(report)
    assert all(c.passed for c in comparisons), report


# The fixtures are small (latents of 16 x 24), below the layer size at which "auto" chooses
# Winograd convolutions (layers.winograd_worthwhile), so these cases run the release-width
# networks with Winograd forced on every 3x3 stride-1 layer: the same tolerances hold.
WINOGRAD_CASES = [name for name in ("vae_encoder", "mapping_quality", "mapping_scratch",
                                    "mapping_hr", "scratch_unet") if name in CASES]


@pytest.mark.parametrize("name", WINOGRAD_CASES)
def test_case_matches_official_output_with_winograd_convolutions(name):
    from oldphoto_jax import layers

    with layers.using_conv_algorithm("winograd"):
        comparisons = RUNNERS[CASES[name]["kind"]](load_case(name))
    report = "\n".join(c.line() for c in comparisons)
    print(report)
    assert comparisons and all(c.passed for c in comparisons), report
