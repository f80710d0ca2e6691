"""Parity with the official PyTorch outputs, over every case of the fixture set.

The fixture set comes from OLDPHOTO_PARITY_DIR (default: ../shared/parity/cases from the
repository root). Each case is dispatched on its ``kind``; a kind without a runner fails, so a new
kind can never pass or vanish silently.
"""
import pytest

from oldphoto_jax.parity import EXPECTED_FAILURES, RUNNERS, cases_dir, list_cases, load_case

CASES = list_cases()


def test_fixture_set_is_not_empty():
    assert CASES, f"no cases in {cases_dir()}/cases.json"


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
