"""Fixture sets of official outputs (laid out like ``../shared/parity``) and their tolerances.

A fixture set is a folder with ``make_weights.py``, ``keys/`` and ``cases/`` side by side;
``cases/cases.json`` lists the cases, each ``cases/<case>.npz`` holds its inputs (``in_*``),
expected outputs (``out_*``), float32 error bounds (``fp32_err_*``) and weight overrides
(``override/<keys name>/<state-dict key>``). The cases folder comes from ``OLDPHOTO_PARITY_DIR``
(default ``<repository>/../shared/parity/cases``).
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import os
import pathlib
from typing import Callable

import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_CASES_DIR = REPO_ROOT.parent / "shared" / "parity" / "cases"


def cases_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("OLDPHOTO_PARITY_DIR", DEFAULT_CASES_DIR)).resolve()


def fixture_set_missing(directory: pathlib.Path | None = None) -> str | None:
    """Why the fixture set cannot be used (its ``cases.json`` is not there), or None.
    Tests skip with this message on a checkout without ``../shared/parity``."""
    directory = directory or cases_dir()
    if (directory / "cases.json").is_file():
        return None
    return (f"parity fixture set not found ({directory / 'cases.json'}): set "
            "OLDPHOTO_PARITY_DIR or put shared/parity beside the checkout")


def list_cases(directory: pathlib.Path | None = None) -> dict[str, dict]:
    """``cases.json`` of a fixture set: ``{case name: metadata}``."""
    directory = directory or cases_dir()
    with open(directory / "cases.json") as f:
        return json.load(f)


@functools.lru_cache(maxsize=4)
def make_weights_module(fixture_root: str):
    path = pathlib.Path(fixture_root) / "make_weights.py"
    spec = importlib.util.spec_from_file_location(f"_parity_make_weights_{abs(hash(fixture_root))}",
                                                  path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclasses.dataclass
class Case:
    """One parity case: its metadata, arrays and a way to rebuild its official state dicts."""

    name: str
    meta: dict
    arrays: dict[str, np.ndarray]
    directory: pathlib.Path

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    def key_listings(self) -> list[tuple[str, int]]:
        """(keys name, seed) of every network of the case, in order."""
        keys, seeds = self.meta["keys"], self.meta.get("seeds", self.meta.get("seed"))
        if isinstance(keys, str):
            return [(keys, int(seeds))]
        return [(k, int(s)) for k, s in zip(keys, seeds)]

    def state_dict(self, keys_name: str) -> dict[str, np.ndarray]:
        """The official state dict the case's network ``keys_name`` was run with (overrides applied)."""
        seeds = dict(self.key_listings())
        if keys_name not in seeds:
            raise KeyError(f"case {self.name} has no network {keys_name!r}")
        root = self.directory.parent
        make_weights = make_weights_module(str(root))
        sd = make_weights.make_state_dict(str(root / "keys" / f"{keys_name}.txt"), seeds[keys_name])
        prefix = f"override/{keys_name}/"
        sd.update({k[len(prefix):]: v for k, v in self.arrays.items() if k.startswith(prefix)})
        return sd

    def nhwc(self, name: str) -> np.ndarray:
        """A stored NCHW float array as NHWC (uint8 photos are returned unchanged)."""
        a = self.arrays[name]
        return a.transpose(0, 2, 3, 1) if a.ndim == 4 and a.dtype != np.uint8 else a


def load_case(name: str, directory: pathlib.Path | None = None) -> Case:
    directory = directory or cases_dir()
    meta = list_cases(directory)[name]
    with np.load(directory / f"{name}.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    return Case(name=name, meta=meta, arrays=arrays, directory=directory)


# ----------------------------------------------------------------------------------------------
# Comparisons and tolerances (the fixtures' README, "Tolerances").


@dataclasses.dataclass
class Comparison:
    """One checked output: the measured error, the allowed error and whether it passes."""

    case: str
    output: str
    measure: str  # what ``error`` means, e.g. "max abs" or "levels>1 / values"
    error: float
    tolerance: float
    passed: bool
    detail: str = ""

    def line(self) -> str:
        mark = "ok  " if self.passed else "FAIL"
        text = f"{mark} {self.case:22s} {self.output:24s} {self.measure:18s} " \
               f"{self.error:.3g} (tol {self.tolerance:.3g})"
        return text + (f"  {self.detail}" if self.detail else "")


def compare_float(case: Case, output: str, ours: np.ndarray, expected: np.ndarray | None = None,
                  tolerance: float | None = None) -> Comparison:
    """Max |ours - expected|; tolerance 1e-4 + 20 * fp32_err_<output> unless given."""
    if expected is None:
        expected = case.nhwc(f"out_{output}")
    if tolerance is None:
        tolerance = 1e-4 + 20.0 * float(case.arrays[f"fp32_err_{output}"])
    ours = np.asarray(ours, np.float64)
    if ours.shape != expected.shape:
        return Comparison(case.name, output, "shape", float("inf"), tolerance, False,
                          f"got {ours.shape}, expected {expected.shape}")
    err = float(np.max(np.abs(ours - expected))) if ours.size else 0.0
    return Comparison(case.name, output, "max abs", err, tolerance, bool(err <= tolerance))


def compare_png(case: Case, output: str, ours: np.ndarray, expected: np.ndarray | None = None,
                max_level: int = 1, max_fraction: float = 0.005) -> Comparison:
    """uint8 images: every value within ``max_level``, and at most ``max_fraction`` differing."""
    if expected is None:
        expected = case.arrays[f"out_{output}"]
    if ours.shape != expected.shape:
        return Comparison(case.name, output, "shape", float("inf"), max_fraction, False,
                          f"got {ours.shape}, expected {expected.shape}")
    diff = np.abs(ours.astype(np.int32) - expected.astype(np.int32))
    fraction = float(np.mean(diff > 0))
    worst = int(diff.max()) if diff.size else 0
    passed = worst <= max_level and fraction <= max_fraction
    return Comparison(case.name, output, "fraction differing", fraction, max_fraction, passed,
                      f"max level diff {worst} (allowed {max_level}), "
                      f"{int(np.sum(diff > 0))} values differ")


def compare_exact(case: Case, output: str, ours: np.ndarray, expected: np.ndarray | None = None,
                  ignore: np.ndarray | None = None) -> Comparison:
    """Exact equality, except where ``ignore`` is True (e.g. probabilities at the threshold)."""
    if expected is None:
        expected = case.arrays[f"out_{output}"]
    if ours.shape != expected.shape:
        return Comparison(case.name, output, "shape", float("inf"), 0, False,
                          f"got {ours.shape}, expected {expected.shape}")
    differ = ours != expected
    if ignore is not None:
        differ = differ & ~ignore
    count = int(np.sum(differ))
    detail = f"{int(ignore.sum())} values at the threshold ignored" if ignore is not None else ""
    return Comparison(case.name, output, "values differing", count, 0, count == 0, detail)


# A runner takes a Case and returns the comparisons of its outputs. Runners register per kind.
RUNNERS: dict[str, Callable[[Case], list[Comparison]]] = {}
EXPECTED_FAILURES: dict[str, str] = {}


def runner(kind: str):
    def decorator(fn):
        RUNNERS[kind] = fn
        return fn
    return decorator
