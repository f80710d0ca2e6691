"""The gap measurements of one space: each pair of sets (R-X, X-Y, R-Y), every statistic with its
bootstrap interval (see :mod:`oldphoto_jax.research.stats`)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from oldphoto_jax.research import embedding, stats

PAIRS = (("R", "X"), ("X", "Y"), ("R", "Y"))


def reduce(features: dict[str, np.ndarray], dims: int) -> dict[str, np.ndarray]:
    """Standardise every dimension with the mean and deviation of all sets pooled, then keep the
    first ``dims`` principal components of the pooled rows. Both steps treat the sets alike, so
    they do not favour any pair, and every space ends with the same number of dimensions."""
    names = list(features)
    pooled = embedding.standardise(np.concatenate([features[n] for n in names]))
    reduced = embedding.pca(pooled, min(dims, pooled.shape[1]))
    out, start = {}, 0
    for name in names:
        out[name] = reduced[start:start + len(features[name])]
        start += len(features[name])
    return out


def measure_pair(sets: stats.TwoSets, *, n_bootstrap: int, n_permutations: int, seed: int
                 ) -> dict:
    """``{"frechet": {"value", "interval"}, "mmd2": {"value", "interval", "p_value",
    "bandwidth"}, "accuracy": {"value", "interval"}}`` for one pair of sets."""
    sets.check()
    rng = np.random.default_rng(seed)
    frechet = stats.frechet_distance(sets.a, sets.b)
    frechet_interval = stats.bootstrap_interval(
        lambda s: stats.frechet_distance(s.a, s.b), sets, n_bootstrap, rng)
    mmd2, p_value, bandwidth = stats.mmd_permutation_test(sets, n_permutations, rng)
    mmd_interval = stats.mmd2_interval(sets, bandwidth, n_bootstrap, rng)
    correct = stats.held_out_predictions(sets, np.random.default_rng(seed))
    accuracy = float(np.mean([correct[sets.labels == c].mean() for c in (0, 1)]))
    accuracy_interval = stats.accuracy_interval(sets, correct, n_bootstrap, rng)
    return {
        "frechet": {"value": frechet, "interval": list(frechet_interval)},
        "mmd2": {"value": mmd2, "interval": list(mmd_interval), "p_value": p_value,
                 "permutations": n_permutations, "bandwidth": bandwidth},
        "accuracy": {"value": accuracy, "interval": list(accuracy_interval)},
    }


def measure_space(features: dict[str, np.ndarray], groups: dict[str, np.ndarray], *, dims: int,
                  n_bootstrap: int, n_permutations: int, seed: int,
                  log: Callable[[str], None] = print, space: str = "") -> dict:
    """``{"dims": ..., "input_dims": ..., "pairs": {"R-X": measure_pair(...), ...}}``."""
    reduced = reduce(features, dims)
    result = {"input_dims": int(next(iter(features.values())).shape[1]),
              "dims": int(next(iter(reduced.values())).shape[1]), "pairs": {}}
    for a, b in PAIRS:
        if a not in reduced or b not in reduced:
            continue
        sets = stats.TwoSets.of(reduced[a], reduced[b], groups[a], groups[b])
        result["pairs"][f"{a}-{b}"] = measure_pair(
            sets, n_bootstrap=n_bootstrap, n_permutations=n_permutations, seed=seed)
        log(f"{space}: {a}-{b} measured")
    return result
