"""Smooth random fields: shape, scale, smoothness and reproducibility."""
from __future__ import annotations

import numpy as np

from data_synth import textures


def test_smooth_noise_has_unit_variance_on_average_and_is_smooth():
    rng = np.random.default_rng(0)
    fields = [textures.smooth_noise(rng, 128, 160, cell=16.0) for _ in range(20)]
    assert fields[0].shape == (128, 160) and fields[0].dtype == np.float32
    assert 0.8 < np.mean([f.var() for f in fields]) < 1.2
    # neighbouring pixels are strongly correlated (cell 16 px)
    f = fields[0]
    assert np.corrcoef(f[:, :-1].ravel(), f[:, 1:].ravel())[0, 1] > 0.95


def test_fractal_noise_is_reproducible_and_normalised():
    a = textures.fractal_noise(np.random.default_rng(3), 64, 64, cell=32.0, octaves=4)
    b = textures.fractal_noise(np.random.default_rng(3), 64, 64, cell=32.0, octaves=4)
    np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(1)
    variances = [textures.fractal_noise(rng, 128, 128, 32.0, 4).var() for _ in range(20)]
    assert 0.75 < np.mean(variances) < 1.25
