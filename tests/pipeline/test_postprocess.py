"""Tests of oldphoto_jax.pipeline.postprocess against the official fixtures and torch."""
from __future__ import annotations

import numpy as np
import pytest

from oldphoto_jax.layers import nearest_source_indices
from oldphoto_jax.parity import fixtures
from oldphoto_jax.pipeline import postprocess as post

PIPELINE_CASES = ["pipeline_quality", "pipeline_scratch", "pipeline_scratch_hr"]
SCRATCH_CASES = ["pipeline_scratch", "pipeline_scratch_hr"]


def load_case(name: str) -> dict[str, np.ndarray]:
    """The arrays of a parity case of the fixture set ($OLDPHOTO_PARITY_DIR); skips the test
    when the fixture set is not there."""
    missing = fixtures.fixture_set_missing()
    if missing:
        pytest.skip(missing)
    return fixtures.load_case(name).arrays


def nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
    return np.transpose(x, (0, 2, 3, 1))


def torch_save_image_uint8(tensor_nchw: np.ndarray, normalize: bool) -> np.ndarray:
    """torchvision's make_grid + save_image for one image, spelled with torch ops."""
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(np.ascontiguousarray(tensor_nchw)).clone()
    if t.shape[1] == 1:
        t = torch.cat((t, t, t), 1)
    if normalize:
        low, high = float(t.min()), float(t.max())
        t.clamp_(min=low, max=high)
        t.sub_(low).div_(max(high - low, 1e-5))
    t = t.squeeze(0)
    return t.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to("cpu", torch.uint8).numpy()


# --- min-max PNG (test.py restored_image) ---------------------------------------------------

@pytest.mark.parametrize("case", PIPELINE_CASES)
def test_minmax_png_matches_fixture(case):
    data = load_case(case)
    ours = post.minmax_png(nchw_to_nhwc(data["out_network"]))
    expected = data["out_png"]
    assert ours.shape == expected.shape and ours.dtype == np.uint8
    diff = np.abs(ours.astype(np.int16) - expected.astype(np.int16))
    # Contract: at most 1 level, on at most 0.5% of the values (measured: 0 differing values).
    assert diff.max() <= 1
    assert np.count_nonzero(diff) <= 0.005 * diff.size


@pytest.mark.parametrize("case", PIPELINE_CASES)
def test_minmax_png_matches_torch_bitwise_on_fixture_outputs(case):
    out = load_case(case)["out_network"]
    expected = torch_save_image_uint8((out + np.float32(1.0)) / np.float32(2.0), normalize=True)
    np.testing.assert_array_equal(post.minmax_png(nchw_to_nhwc(out)), expected)


def test_minmax_png_matches_torch_bitwise_on_random_outputs():
    rng = np.random.default_rng(0)
    out = np.tanh(rng.standard_normal((1, 3, 31, 29)) * 0.7).astype(np.float32)
    expected = torch_save_image_uint8((out + np.float32(1.0)) / np.float32(2.0), normalize=True)
    np.testing.assert_array_equal(post.minmax_png(nchw_to_nhwc(out)), expected)


def test_minmax_png_stretches_all_channels_jointly():
    out = np.zeros((1, 2, 2, 3), np.float32)
    out[..., 0] = -0.5      # unit value 0.25 -> global min
    out[..., 1] = 0.5       # unit value 0.75 -> global max
    out[..., 2] = 0.0       # unit value 0.5  -> middle
    png = post.minmax_png(out)
    assert np.all(png[..., 0] == 0) and np.all(png[..., 1] == 255)
    assert np.all(png[..., 2] == 128)   # floor(0.5 * 255 + 0.5)


def test_minmax_png_of_a_constant_output_is_black():
    assert np.all(post.minmax_png(np.full((1, 4, 5, 3), 0.3, np.float32)) == 0)


def test_minmax_png_rejects_batches():
    with pytest.raises(ValueError):
        post.minmax_png(np.zeros((2, 4, 4, 3), np.float32))


def test_restored_png_stretches_or_clamps_as_the_model_says():
    """``restored_range``: "minmax" is test.py's stretch; "clamp" keeps the rendered levels."""
    out = np.zeros((1, 2, 2, 3), np.float32)
    out[..., 0], out[..., 1], out[..., 2] = -0.5, 0.5, 1.5
    np.testing.assert_array_equal(post.restored_png(out, "minmax"), post.minmax_png(out))
    clamped = post.restored_png(out, "clamp")
    assert clamped.shape == (2, 2, 3)
    assert np.all(clamped[..., 0] == 64) and np.all(clamped[..., 1] == 191)
    assert np.all(clamped[..., 2] == 255)
    with pytest.raises(ValueError, match="restored_range"):
        post.restored_png(out, "stretch")


# --- clamped PNG (face stage) -----------------------------------------------------------------

def test_clamped_png_matches_torch_bitwise():
    rng = np.random.default_rng(1)
    out = (rng.standard_normal((1, 3, 16, 12)) * 0.8).astype(np.float32)   # some beyond [-1, 1]
    expected = torch_save_image_uint8((out + np.float32(1.0)) / np.float32(2.0), normalize=False)
    np.testing.assert_array_equal(post.clamped_png(nchw_to_nhwc(out))[0], expected)


def test_clamped_png_has_no_normalisation():
    out = np.array([[-2.0, -1.0, 0.0], [0.5, 1.0, 3.0]], np.float32)[None, :, :, None]
    out = np.repeat(out, 3, axis=-1)
    png = post.clamped_png(out)
    assert png.shape == (1, 2, 3, 3)
    np.testing.assert_array_equal(png[0, :, :, 0], [[0, 0, 128], [191, 255, 255]])


# --- detection mask -----------------------------------------------------------------------------

@pytest.mark.parametrize("case", SCRATCH_CASES)
def test_mask_png_from_stored_probability_matches_fixture(case):
    data = load_case(case)
    expected = data["out_mask_png"]
    prob = nchw_to_nhwc(data["out_unet_prob"])
    mask = post.scratch_mask_from_probability(prob, expected.shape[:2])
    ours = post.mask_png(mask)
    assert ours.shape == expected.shape and ours.dtype == np.uint8
    assert set(np.unique(ours)) <= {0, 255}
    # Exact except where the probability is within 1e-4 of the threshold.
    rows = nearest_source_indices(prob.shape[1], expected.shape[0])
    cols = nearest_source_indices(prob.shape[2], expected.shape[1])
    near_threshold = np.abs(prob[0, rows][:, cols, 0] - 0.4) <= 1e-4
    differs = np.any(ours != expected, axis=-1)
    assert not np.any(differs & ~near_threshold)


def test_scratch_mask_threshold_is_inclusive_float32():
    prob = np.array([[np.float32(0.4), np.nextafter(np.float32(0.4), np.float32(0)),
                      np.float32(0.9)]], np.float32)[None, :, :, None]
    mask = post.scratch_mask_from_probability(prob, (1, 3))
    np.testing.assert_array_equal(mask, [[1.0, 0.0, 1.0]])


def test_scratch_mask_upsamples_with_legacy_nearest():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    prob = rng.uniform(0, 1, (1, 1, 16, 20)).astype(np.float32)
    for size in [(11, 13), (16, 20), (32, 40), (37, 23)]:
        ref = torch.nn.functional.interpolate(torch.from_numpy(prob), size, mode="nearest")
        expected = (ref >= 0.4).float()[0, 0].numpy()
        ours = post.scratch_mask_from_probability(nchw_to_nhwc(prob), size)
        np.testing.assert_array_equal(ours, expected)


def test_mask_png_matches_torch_and_is_binary():
    mask = np.zeros((5, 6), np.float32)
    mask[1:3, 2:5] = 1.0
    png = post.mask_png(mask)
    np.testing.assert_array_equal(png, torch_save_image_uint8(mask[None, None], normalize=True))
    np.testing.assert_array_equal(png[..., 0], mask * 255)
    assert png.shape == (5, 6, 3)


def test_mask_png_all_ones_quirk_writes_no_scratch():
    assert np.all(post.mask_png(np.ones((4, 4), np.float32)) == 0)
    assert np.all(post.mask_png(np.zeros((4, 4), np.float32)) == 0)
