"""The two-sample statistics against known answers (fixed seeds: deterministic, never flaky)."""
import numpy as np
import pytest
from scipy import linalg

from oldphoto_jax.evaluation import fid
from oldphoto_jax.research import stats


def closed_form_frechet(mu_a, sigma_a, mu_b, sigma_b):
    root = linalg.sqrtm(sigma_a @ sigma_b).real
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(sigma_a + sigma_b - 2 * root))


def test_frechet_distance_of_gaussian_samples_approaches_the_closed_form():
    rng = np.random.default_rng(0)
    mu_a, mu_b = np.array([0.0, 1.0, -1.0]), np.array([2.0, 0.0, 0.5])
    m_a, m_b = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    sigma_a, sigma_b = m_a @ m_a.T + 0.5 * np.eye(3), m_b @ m_b.T + 0.5 * np.eye(3)
    a = rng.multivariate_normal(mu_a, sigma_a, 20000)
    b = rng.multivariate_normal(mu_b, sigma_b, 20000)
    expected = closed_form_frechet(mu_a, sigma_a, mu_b, sigma_b)
    assert expected > 5
    assert stats.frechet_distance(a, b) == pytest.approx(expected, rel=0.03)


def test_frechet_distance_of_diagonal_gaussians_is_mean_gap_plus_deviation_gaps():
    # With commuting covariances FD = |mu_a - mu_b|^2 + sum (s_a - s_b)^2 (s: deviations); the
    # sample estimate is exact for the sample's own mean and covariance, so build rows whose
    # sample mean and covariance are exactly the wanted ones.
    def exact_rows(mean, deviations, n=64):
        rng = np.random.default_rng(1)
        z = rng.normal(size=(n, len(mean)))
        z -= z.mean(0)
        z = z @ linalg.inv(linalg.cholesky(np.cov(z, rowvar=False)))  # whiten exactly
        return mean + z * deviations

    a = exact_rows(np.array([1.0, 2.0]), np.array([1.0, 3.0]))
    b = exact_rows(np.array([4.0, 2.0]), np.array([2.0, 1.0]))
    assert stats.frechet_distance(a, b) == pytest.approx(9.0 + 1.0 + 4.0, abs=1e-9)
    assert stats.frechet_distance(a, b) == pytest.approx(
        fid.frechet_distance(*fid.gaussian(a), *fid.gaussian(b)), abs=1e-6)


def test_frechet_distance_is_exact_with_more_dimensions_than_rows():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(10, 30)), rng.normal(1.0, 2.0, size=(12, 30))
    dense = fid.frechet_distance(*fid.gaussian(a), *fid.gaussian(b), eps=0)
    assert stats.frechet_distance(a, b) == pytest.approx(dense, rel=1e-6)


def test_mmd_is_near_zero_for_one_distribution_and_large_for_two():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(300, 4)), rng.normal(size=(300, 4))
    assert abs(stats.mmd2(a, b)) < 0.01
    assert stats.mmd2(a, rng.normal(3.0, 1.0, size=(300, 4))) > 0.3
    assert stats.mmd2(a, a + 0.0) < 0.01  # identical rows: the unbiased estimate is about 0


def test_mmd_bandwidth_is_the_median_squared_distance():
    x = np.array([[0.0], [1.0], [3.0]])  # squared distances 1, 9, 4
    assert stats.median_bandwidth(x) == 4.0


def _null_p_values(paired: bool, trials: int = 120):
    p_values = []
    for seed in range(trials):
        rng = np.random.default_rng(seed)
        if paired:  # 12 photos, 3 crops each, in both sets; both sets from one distribution
            a, b = rng.normal(size=(36, 2)), rng.normal(size=(36, 2))
            groups = np.repeat(np.arange(12), 3)
            sets = stats.TwoSets.of(a, b, groups, groups)
        else:
            sets = stats.TwoSets.of(rng.normal(size=(15, 2)), rng.normal(size=(25, 2)))
        p_values.append(stats.mmd_permutation_test(sets, 99, rng)[1])
    return np.array(p_values)


@pytest.mark.parametrize("paired", [False, True])
def test_permutation_p_values_are_roughly_uniform_under_the_null(paired):
    p = _null_p_values(paired)
    assert 0.40 < p.mean() < 0.60
    assert np.mean(p <= 0.1) < 0.2          # nominal 0.1
    assert np.mean(p <= 0.5) == pytest.approx(0.5, abs=0.15)
    # Kolmogorov-Smirnov distance to the uniform distribution
    ordered = np.sort(p)
    grid = np.arange(1, len(p) + 1) / len(p)
    assert np.max(np.abs(ordered - grid)) < 0.2


def test_permutation_p_value_is_minimal_for_separated_sets():
    rng = np.random.default_rng(4)
    sets = stats.TwoSets.of(rng.normal(size=(20, 3)), rng.normal(4.0, 1.0, size=(20, 3)))
    mmd2, p, _ = stats.mmd_permutation_test(sets, 199, rng)
    assert mmd2 > 0.5 and p == pytest.approx(1 / 200)


def test_group_permutations_keep_photos_whole():
    rng = np.random.default_rng(5)
    groups_a, groups_b = np.repeat([0, 1, 2], 4), np.repeat([3, 4, 5, 6], 4)
    sets = stats.TwoSets.of(np.zeros((12, 1)), np.zeros((16, 1)), groups_a, groups_b)
    for _ in range(20):
        labels = stats._permuted_labels(sets, rng)
        for g in range(7):
            assert len(set(labels[sets.groups == g])) == 1
        assert len(set(sets.groups[labels == 1])) == 4
    paired = stats.TwoSets.of(np.zeros((6, 1)), np.zeros((6, 1)), [0, 0, 1, 1, 2, 2],
                              [0, 0, 1, 1, 2, 2])
    assert paired.paired
    for _ in range(10):
        labels = stats._permuted_labels(paired, rng)
        for g in range(3):  # a swap within the photo: each photo keeps one of each
            assert sorted(labels[paired.groups == g]) == [0, 0, 1, 1]


def test_classifier_is_at_chance_on_one_distribution_and_perfect_on_separated_ones():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(200, 5)), rng.normal(size=(300, 5))
    chance = stats.domain_classifier_accuracy(stats.TwoSets.of(a, b), rng)
    assert 0.40 < chance < 0.60
    shifted = rng.normal(size=(300, 5)) + np.array([5.0, 0, 0, 0, 0])
    assert stats.domain_classifier_accuracy(stats.TwoSets.of(a, shifted), rng) > 0.97


def test_classifier_folds_never_split_a_photo():
    rng = np.random.default_rng(7)
    groups = np.repeat(np.arange(10), 5)
    sets = stats.TwoSets.of(rng.normal(size=(50, 2)), rng.normal(size=(50, 2)), groups,
                            groups)
    folds = stats.group_folds(sets, 5, rng)
    for g in range(10):
        assert len(set(folds[sets.groups == g])) == 1
    assert sorted(set(folds)) == [0, 1, 2, 3, 4]


def test_bootstrap_interval_brackets_the_estimate_and_narrows_with_more_photos():
    rng = np.random.default_rng(8)

    def interval(n):
        sets = stats.TwoSets.of(rng.normal(size=(n, 2)), rng.normal(1.0, 1.0, size=(n, 2)))
        value = stats.frechet_distance(sets.a, sets.b)
        low, high = stats.bootstrap_interval(lambda s: stats.frechet_distance(s.a, s.b), sets,
                                             200, np.random.default_rng(0))
        return value, low, high

    value, low, high = interval(40)
    assert low < value < high and low < 2.0 < high  # true distance: |(1, 1)|^2 = 2
    _, low_big, high_big = interval(640)
    assert high_big - low_big < (high - low) / 2


def test_group_resample_redraws_whole_photos():
    sets = stats.TwoSets.of(np.arange(6.0)[:, None], np.arange(6.0, 14.0)[:, None],
                            [0, 0, 1, 1, 2, 2], [3, 3, 3, 3, 4, 4, 4, 4])
    resampled = stats.resample_groups(sets, np.random.default_rng(0))
    assert (resampled.labels == 0).sum() == 6 and (resampled.labels == 1).sum() == 8
    for g in np.unique(resampled.groups):  # each new group is one original photo, complete
        rows = resampled.x[resampled.groups == g, 0]
        originals = {int(sets.groups[int(v)]) for v in rows}
        assert len(originals) == 1
        assert len(rows) == (sets.groups == originals.pop()).sum()


def test_mixed_designs_are_refused():
    sets = stats.TwoSets.of(np.zeros((4, 1)), np.zeros((4, 1)), [0, 0, 1, 1], [1, 1, 2, 2])
    with pytest.raises(ValueError, match="neither independent nor paired"):
        sets.check()


@pytest.mark.parametrize("n_a,n_b,d", [(50, 70, 4), (6, 9, 20), (30, 8, 12)])
def test_frechet_distance_matches_the_evaluation_fid_formula(n_a, n_b, d):
    rng = np.random.default_rng(n_a + d)
    a, b = rng.normal(size=(n_a, d)), rng.normal(0.5, 1.5, size=(n_b, d))
    assert stats.frechet_distance(a, b) == pytest.approx(fid.features_distance(a, b), rel=1e-9)


def _clustered_null_p_value(seed: int, grouped: bool) -> float:
    """Two sets of 8 photos x 5 crops from one distribution of photos; crops of a photo share
    its offset (as crops of one real photo share its content)."""
    rng = np.random.default_rng(seed)

    def photos(n):
        return (rng.normal(size=(n, 1, 2)) + 0.3 * rng.normal(size=(n, 5, 2))).reshape(-1, 2)

    groups_a, groups_b = np.repeat(np.arange(8), 5), np.repeat(np.arange(8, 16), 5)
    if grouped:
        sets = stats.TwoSets.of(photos(8), photos(8), groups_a, groups_b)
    else:  # every crop its own group: the naive row permutation
        sets = stats.TwoSets.of(photos(8), photos(8))
    return stats.mmd_permutation_test(sets, 99, rng)[1]


def test_permuting_whole_photos_keeps_the_test_valid_for_crops_of_one_photo():
    grouped = np.array([_clustered_null_p_value(s, True) for s in range(120)])
    assert 0.40 < grouped.mean() < 0.60 and np.mean(grouped <= 0.1) < 0.2
    ks = np.max(np.abs(np.sort(grouped) - np.arange(1, 121) / 120))
    assert ks < 0.2
    # Permuting single crops ignores that crops of one photo are alike: under the same null it
    # rejects most of the time (why the tool permutes photos).
    naive = np.array([_clustered_null_p_value(s, False) for s in range(40)])
    assert np.mean(naive <= 0.1) > 0.5


def test_mmd_interval_indexes_the_pooled_kernel_like_a_recomputed_one():
    rng = np.random.default_rng(9)
    sets = stats.TwoSets.of(rng.normal(size=(12, 2)), rng.normal(1.0, 1.0, size=(15, 2)),
                            np.repeat(np.arange(4), 3), np.repeat(np.arange(4, 9), 3))
    bandwidth = stats.median_bandwidth(sets.x)
    fast = stats.mmd2_interval(sets, bandwidth, 30, np.random.default_rng(0))
    slow = stats.bootstrap_interval(lambda s: stats.mmd2(s.a, s.b, bandwidth), sets, 30,
                                    np.random.default_rng(0))
    assert fast == pytest.approx(slow, rel=1e-9)
