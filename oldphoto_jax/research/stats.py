"""Two-sample statistics for the domain-gap measurements (numpy / scipy only).

Every function compares two sets of feature rows ``a`` (n_a x d) and ``b`` (n_b x d). The rows of
one photo are not independent (several crops of one photo share its content), so the resampling
procedures work on *groups* (one group = one source photo): the permutation test permutes whole
groups between the sets, the bootstrap resamples whole groups, and the classifier's folds never
split a group. When the two sets come from the same photos (a clean photo and its synthetic
degradation: a *paired* design, every group holds rows of both sets) the permutation test swaps
the set labels within each group and the bootstrap draws groups once for both sets.

* :func:`frechet_distance`: the Fréchet distance of Gaussian fits (FID's formula, exact for
  rank-deficient covariances, as :func:`oldphoto_jax.evaluation.fid.features_distance`).
* :func:`mmd2`: the unbiased squared maximum mean discrepancy with an RBF kernel whose bandwidth is
  the median heuristic; :func:`mmd_permutation_test` its permutation p-value.
* :func:`domain_classifier_accuracy`: the held-out balanced accuracy of an L2-regularised logistic
  regression told to separate the two sets (0.5 = indistinguishable, 1 = perfectly separable).
* :func:`bootstrap_interval`: a percentile interval of any of them, resampling groups.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np


# ---- two labelled sets ----


@dataclasses.dataclass(frozen=True)
class TwoSets:
    """Rows of two sets stacked: ``x`` (n x d), ``labels`` (n, 0 = a, 1 = b), ``groups`` (n, an int
    per source photo; the same int in both sets means the same photo: a paired design)."""

    x: np.ndarray
    labels: np.ndarray
    groups: np.ndarray

    @classmethod
    def of(cls, a, b, groups_a=None, groups_b=None) -> "TwoSets":
        """Stack ``a`` and ``b``; without groups every row is its own group (independent rows)."""
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
            raise ValueError(f"expected two sets of equal-length rows, got {a.shape} and "
                             f"{b.shape}")
        if groups_a is None:
            groups_a = np.arange(len(a))
        if groups_b is None:
            groups_b = np.arange(len(a), len(a) + len(b))
        groups_a, groups_b = np.asarray(groups_a), np.asarray(groups_b)
        if groups_a.shape != (len(a),) or groups_b.shape != (len(b),):
            raise ValueError("one group id per row is needed")
        return cls(np.concatenate([a, b]),
                   np.concatenate([np.zeros(len(a), int), np.ones(len(b), int)]),
                   np.concatenate([groups_a, groups_b]))

    @property
    def a(self) -> np.ndarray:
        return self.x[self.labels == 0]

    @property
    def b(self) -> np.ndarray:
        return self.x[self.labels == 1]

    @property
    def paired(self) -> bool:
        """True when every group has rows in both sets (same photos on both sides)."""
        return set(self.groups[self.labels == 0]) == set(self.groups[self.labels == 1])

    def check(self) -> None:
        if not self.paired and set(self.groups[self.labels == 0]) & set(
                self.groups[self.labels == 1]):
            raise ValueError("the two sets share some groups but not all: neither independent "
                             "nor paired")
        for label in (0, 1):
            if len(set(self.groups[self.labels == label])) < 2:
                raise ValueError("each set needs rows from at least 2 groups (photos)")


# ---- Fréchet distance ----

def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` of the Gaussian fits of the rows:
    FID's formula, :func:`oldphoto_jax.evaluation.fid.features_distance` (exact also for
    rank-deficient covariances, memory bounded by ``min(n, d)``). It is a biased estimate: two
    samples of one distribution give about ``2 Tr(S) / n`` and more from the square-root term,
    growing with the dimension; compare values at equal ``d`` and ``n``."""
    from oldphoto_jax.evaluation import fid

    return fid.features_distance(a, b)


# ---- kernel MMD ----

def squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances (clipped at 0 against rounding)."""
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return np.maximum(d, 0.0)


def median_bandwidth(x: np.ndarray) -> float:
    """The median heuristic: the median squared distance between distinct rows of ``x`` (the
    kernel is ``exp(-|u - v|^2 / bandwidth)``); 1 when all rows coincide."""
    d = squared_distances(x, x)
    distinct = d[np.triu_indices(len(x), 1)]
    median = float(np.median(distinct)) if distinct.size else 0.0
    return median if median > 0 else 1.0


def rbf_kernel(x: np.ndarray, bandwidth: float) -> np.ndarray:
    return np.exp(-squared_distances(x, x) / bandwidth)


def _mmd2_from_kernel(k: np.ndarray, in_b: np.ndarray) -> float:
    """Unbiased MMD^2 (Gretton et al. 2012, eq. 3) from the pooled kernel matrix and the rows of
    set b."""
    in_a = ~in_b
    n_a, n_b = int(in_a.sum()), int(in_b.sum())
    k_aa = k[np.ix_(in_a, in_a)]
    k_bb = k[np.ix_(in_b, in_b)]
    k_ab = k[np.ix_(in_a, in_b)]
    term_a = (k_aa.sum() - np.trace(k_aa)) / (n_a * (n_a - 1))
    term_b = (k_bb.sum() - np.trace(k_bb)) / (n_b * (n_b - 1))
    return float(term_a + term_b - 2.0 * k_ab.mean())


def mmd2(a: np.ndarray, b: np.ndarray, bandwidth: float | None = None) -> float:
    """Unbiased squared MMD with the RBF kernel ``exp(-|u - v|^2 / bandwidth)``; ``bandwidth``
    defaults to the median heuristic on the pooled rows. About 0 (either sign) for two samples of
    one distribution; at most 2."""
    sets = TwoSets.of(a, b)
    if len(sets.a) < 2 or len(sets.b) < 2:
        raise ValueError("MMD needs at least 2 rows per set")
    bandwidth = median_bandwidth(sets.x) if bandwidth is None else bandwidth
    return _mmd2_from_kernel(rbf_kernel(sets.x, bandwidth), sets.labels == 1)


def _permuted_labels(sets: TwoSets, rng: np.random.Generator) -> np.ndarray:
    """Labels with whole groups permuted: swapped within each group (paired design) or the groups
    dealt anew to the two sets, keeping the number of groups of each (independent sets)."""
    labels = sets.labels.copy()
    if sets.paired:
        for group in np.unique(sets.groups):
            if rng.random() < 0.5:
                rows = sets.groups == group
                labels[rows] = 1 - labels[rows]
        return labels
    groups_b = np.unique(sets.groups[sets.labels == 1])
    all_groups = np.unique(sets.groups)
    chosen = rng.choice(all_groups, size=len(groups_b), replace=False)
    return np.isin(sets.groups, chosen).astype(int)


def mmd_permutation_test(sets: TwoSets, n_permutations: int, rng: np.random.Generator
                         ) -> tuple[float, float, float]:
    """``(mmd2, p_value, bandwidth)``: the p-value of "both sets come from one distribution" is
    ``(1 + #{permuted MMD^2 >= observed}) / (1 + n_permutations)`` over permutations of whole
    groups (:func:`_permuted_labels`). The bandwidth (median heuristic on the pooled rows) does not
    depend on the labels, so it is fixed across permutations."""
    sets.check()
    bandwidth = median_bandwidth(sets.x)
    k = rbf_kernel(sets.x, bandwidth)
    observed = _mmd2_from_kernel(k, sets.labels == 1)
    exceed = 0
    for _ in range(n_permutations):
        labels = _permuted_labels(sets, rng)
        if labels.sum() < 2 or (labels == 0).sum() < 2:
            continue
        exceed += _mmd2_from_kernel(k, labels == 1) >= observed
    return observed, (1 + exceed) / (1 + n_permutations), bandwidth


# ---- linear domain classifier ----

def fit_logistic(x: np.ndarray, y: np.ndarray, weights: np.ndarray, l2: float = 1.0,
                 iterations: int = 50) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method: ``(w, b)`` stacked (last entry the
    unpenalised intercept) minimising ``sum_i weights_i * logloss_i + l2 / 2 |w|^2``."""
    design = np.hstack([x, np.ones((len(x), 1))])
    theta = np.zeros(design.shape[1])
    penalty = np.full(design.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ theta, -30, 30)))
        gradient = design.T @ (weights * (p - y)) + penalty * theta
        hessian = (design * (weights * p * (1 - p))[:, None]).T @ design + np.diag(penalty)
        hessian[-1, -1] += 1e-9
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return theta


def group_folds(sets: TwoSets, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """A fold index per row; whole groups go to one fold, the groups of each set spread evenly
    over the folds (so every test fold holds rows of both sets when each has ``n_folds``
    groups)."""
    fold_of_group = {}
    if sets.paired:
        order = rng.permutation(np.unique(sets.groups))
        fold_of_group.update({g: i % n_folds for i, g in enumerate(order)})
    else:
        for label in (0, 1):
            order = rng.permutation(np.unique(sets.groups[sets.labels == label]))
            fold_of_group.update({g: i % n_folds for i, g in enumerate(order)})
    return np.array([fold_of_group[g] for g in sets.groups])


def _balanced_accuracy(correct: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean([correct[labels == c].mean() for c in (0, 1)]))


def held_out_predictions(sets: TwoSets, rng: np.random.Generator, n_folds: int = 5,
                         l2: float = 1.0) -> np.ndarray:
    """Whether each row is classified correctly by a logistic regression trained on the other
    folds (:func:`group_folds`, at most ``n_folds``, at most the groups of the smaller set).
    Features are standardised with the training fold's mean and deviation; each set weighs half
    of the training loss whatever its size."""
    sets.check()
    n_groups = min(len(set(sets.groups[sets.labels == c])) for c in (0, 1))
    folds = group_folds(sets, max(2, min(n_folds, n_groups)), rng)
    correct = np.zeros(len(sets.x), bool)
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        x_train, y_train = sets.x[train], sets.labels[train]
        mean, std = x_train.mean(0), x_train.std(0)
        std[std == 0] = 1.0
        counts = np.bincount(y_train, minlength=2).astype(float)
        if counts.min() == 0:
            raise ValueError("a training fold lacks one of the sets")
        weights = (0.5 * len(y_train) / counts)[y_train]
        theta = fit_logistic((x_train - mean) / std, y_train, weights, l2)
        scores = np.hstack([(sets.x[test] - mean) / std, np.ones((test.sum(), 1))]) @ theta
        correct[test] = (scores > 0).astype(int) == sets.labels[test]
    return correct


def domain_classifier_accuracy(sets: TwoSets, rng: np.random.Generator, n_folds: int = 5,
                               l2: float = 1.0) -> float:
    """Held-out balanced accuracy (mean of the two sets' accuracies) of the linear domain
    classifier: 0.5 = the sets cannot be told apart linearly, 1 = they are separable."""
    return _balanced_accuracy(held_out_predictions(sets, rng, n_folds, l2), sets.labels)


# ---- bootstrap ----

def resample_groups(sets: TwoSets, rng: np.random.Generator) -> TwoSets:
    """One bootstrap resample of whole groups: the groups of each set drawn with replacement
    (independent sets), or the shared groups drawn once for both sets (paired design). Each draw
    becomes a new group (a photo drawn twice counts as two photos), so the resample can be fed to
    the group-aware statistics."""
    rows, ids = [], []

    def take(group, draw, label=None):
        selected = sets.groups == group
        if label is not None:
            selected &= sets.labels == label
        found = np.flatnonzero(selected)
        rows.append(found)
        ids.append(np.full(len(found), draw))

    if sets.paired:
        unique = np.unique(sets.groups)
        for draw, group in enumerate(rng.choice(unique, len(unique))):
            take(group, draw)
    else:
        draw = 0
        for label in (0, 1):
            unique = np.unique(sets.groups[sets.labels == label])
            for group in rng.choice(unique, len(unique)):
                take(group, draw, label)
                draw += 1
    rows = np.concatenate(rows)
    return TwoSets(sets.x[rows], sets.labels[rows], np.concatenate(ids))


def bootstrap_interval(statistic: Callable[[TwoSets], float], sets: TwoSets, n_resamples: int,
                       rng: np.random.Generator, level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of ``statistic`` over ``n_resamples`` group resamples
    (:func:`resample_groups`). Resamples where the statistic cannot be computed (e.g. a set drawn
    from a single group) are left out; (nan, nan) when none can."""
    values = []
    for _ in range(n_resamples):
        try:
            values.append(statistic(resample_groups(sets, rng)))
        except (ValueError, np.linalg.LinAlgError):
            continue
    if not values:
        return (float("nan"), float("nan"))
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def accuracy_interval(sets: TwoSets, correct: np.ndarray, n_resamples: int,
                      rng: np.random.Generator, level: float = 0.95) -> tuple[float, float]:
    """A percentile interval of the held-out balanced accuracy: the classifiers' held-out
    verdicts (``correct`` per row, :func:`held_out_predictions`) resampled by whole groups. It
    shows how much the accuracy depends on which photos were measured (the classifiers are not
    refitted)."""
    verdicts = TwoSets(np.asarray(correct, np.float64)[:, None], sets.labels, sets.groups)
    return bootstrap_interval(lambda s: _balanced_accuracy(s.x[:, 0] > 0.5, s.labels),
                              verdicts, n_resamples, rng, level)


def mmd2_interval(sets: TwoSets, bandwidth: float, n_resamples: int, rng: np.random.Generator,
                  level: float = 0.95) -> tuple[float, float]:
    """A percentile interval of the unbiased MMD^2 (fixed ``bandwidth``) over group resamples;
    the pooled kernel matrix is computed once and indexed by the resampled rows. A photo drawn
    twice pairs its crops with their own copies (kernel 1), which inflates the within-set terms:
    the interval leans high when few photos are drawn."""
    k = rbf_kernel(sets.x, bandwidth)
    rows = TwoSets(np.arange(len(sets.x), dtype=np.float64)[:, None], sets.labels, sets.groups)

    def statistic(resampled: TwoSets) -> float:
        index = resampled.x[:, 0].astype(int)
        return _mmd2_from_kernel(k[np.ix_(index, index)], resampled.labels == 1)

    return bootstrap_interval(statistic, rows, n_resamples, rng, level)
