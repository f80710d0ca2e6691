"""Pooled precision / recall / F1 of scratch masks (the detector check of the bundled model)."""
from __future__ import annotations

import numpy as np
import pytest

from oldphoto_jax.evaluation.detection_scores import markdown_table, score_masks


def test_scores_pool_every_pixel_of_every_photo():
    true_a = np.zeros((4, 5), bool)
    true_a[0, :2] = True            # 2 damaged pixels
    pred_a = np.zeros((4, 5), bool)
    pred_a[0, 0] = pred_a[3, 4] = True  # 1 hit, 1 false alarm
    true_b = np.zeros((2, 2), bool)
    true_b[1, 1] = True
    pred_b = true_b.copy()          # 1 hit
    score = score_masks([pred_a, pred_b], [true_a, true_b], 0.4)
    assert score.precision == pytest.approx(2 / 3)
    assert score.recall == pytest.approx(2 / 3)
    assert score.f1 == pytest.approx(2 / 3)
    assert score.flagged == pytest.approx(3 / 24) and score.true == pytest.approx(3 / 24)
    assert "| 0.4 | 0.667 | 0.667 | 0.667 | 12.5 % | 12.5 % |" in markdown_table([score])


def test_no_predictions_score_zero_not_nan():
    true = np.ones((3, 3), bool)
    score = score_masks([np.zeros((3, 3), bool)], [true], 0.9)
    assert (score.precision, score.recall, score.f1, score.flagged) == (0.0, 0.0, 0.0, 0.0)


def test_shapes_and_counts_must_match():
    with pytest.raises(ValueError):
        score_masks([np.zeros((2, 2), bool)], [], 0.4)
