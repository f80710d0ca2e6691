"""The model diagnostics of the bundled model's report: the scratch detector's pooled precision /
recall / F1 per threshold, and the VAEs' reconstruction PSNR."""
from __future__ import annotations

import numpy as np
import pytest

from oldphoto_jax import model_files
from oldphoto_jax.evaluation import degraded_set, image_scores
from oldphoto_jax.evaluation.detection_scores import detection_scores, markdown_table, score_masks
from oldphoto_jax.evaluation.vae_reconstruction import (OFFSET_REMOVED, reconstruct,
                                                         reconstruction_psnr)
from oldphoto_jax.testing.random_model import write_random_model


@pytest.fixture(scope="module")
def random_model(tmp_path_factory):
    directory = tmp_path_factory.mktemp("diagnostics") / "model"
    write_random_model(directory, roles=("vae_a", "vae_b_scratch", "scratch_detector"))
    return model_files.load_model(directory)


@pytest.fixture(scope="module")
def cases():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:80, 0:96].astype(np.float32)
    photo = np.stack([120 + 80 * np.sin(x / 9 + c) * np.cos(y / 13 - c) for c in range(3)], -1)
    photo = np.clip(photo + rng.normal(0, 2, photo.shape), 0, 255).astype(np.uint8)
    return [degraded_set.make_case("p.png", photo, seed=0, max_side=None)]


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


def test_detection_scores_threshold_the_detectors_probability(random_model, cases):
    scores = detection_scores(random_model.network("scratch_detector"), cases, (0.0, 0.5, 1.01))
    assert [s.threshold for s in scores] == [0.0, 0.5, 1.01]
    assert scores[0].flagged == 1.0 and scores[0].recall == 1.0  # every pixel >= 0
    assert scores[2].flagged == 0.0                               # no probability > 1
    assert scores[0].true == pytest.approx(cases[0].mask.mean())
    assert scores[0].flagged >= scores[1].flagged >= scores[2].flagged


def test_vae_reconstruction_psnr_is_the_psnr_of_decode_of_encode(random_model, cases):
    results = reconstruction_psnr(random_model, cases)
    assert set(results) == {"vae_b (clean)", "vae_a (degraded)",
                            "vae_b (clean)" + OFFSET_REMOVED, "vae_a (degraded)" + OFFSET_REMOVED}
    case = cases[0]
    again = reconstruct(random_model.network("vae_b_scratch"), case.clean)
    assert again.shape == case.clean.shape and again.dtype == np.uint8
    assert results["vae_b (clean)"] == [pytest.approx(image_scores.psnr(case.clean, again))]
    assert results["vae_b (clean)" + OFFSET_REMOVED] == [
        pytest.approx(image_scores.psnr_offset_removed(case.clean, again))]
