"""The weight-free image-space features on crops with known answers."""
import numpy as np
import pytest

from oldphoto_jax.research import image_features


def named(values):
    return dict(zip(image_features.STATISTICS, values))


def test_flat_grey_crop():
    stats = named(image_features.statistics(np.full((32, 32, 3), 102, np.uint8)))
    assert len(stats) == len(image_features.STATISTICS)
    assert stats["mean_r"] == stats["mean_g"] == stats["mean_b"] == pytest.approx(0.4)
    assert stats["luma_p50"] == pytest.approx(0.4)
    for name in ("std_r", "saturation_mean", "red_green_mean", "yellow_blue_mean",
                 "gradient_mean", "laplacian_mean", "fine_detail_share", "dark_fraction",
                 "bright_fraction"):
        assert stats[name] == pytest.approx(0.0, abs=1e-12), name


def test_colour_and_texture_move_their_statistics():
    rng = np.random.default_rng(0)
    smooth = np.tile(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], (32, 1, 3))
    noisy = np.clip(smooth + rng.normal(0, 40, smooth.shape), 0, 255).astype(np.uint8)
    sepia = (smooth * np.array([1.0, 0.8, 0.55])).astype(np.uint8)
    s, n, p = (named(image_features.statistics(c)) for c in (smooth, noisy, sepia))
    assert n["fine_detail_share"] > 5 * s["fine_detail_share"]
    assert n["laplacian_mean"] > 5 * s["laplacian_mean"]
    assert p["saturation_mean"] > 0.1 > s["saturation_mean"]
    assert p["yellow_blue_mean"] > 0.05 and abs(s["yellow_blue_mean"]) < 1e-9


def test_thumbnail_is_the_box_average():
    crop = np.zeros((16, 16, 3), np.uint8)
    crop[:8] = 200  # top half bright
    thumb = image_features.thumbnail(crop, side=2).reshape(2, 2, 3)
    np.testing.assert_allclose(thumb[0], 200 / 255)
    np.testing.assert_allclose(thumb[1], 0)
