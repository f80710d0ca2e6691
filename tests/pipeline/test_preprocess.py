"""Tests of oldphoto_jax.pipeline.preprocess against the official fixtures and PIL/torch/cv2."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from oldphoto_jax.parity import fixtures
from oldphoto_jax.pipeline import preprocess as pre

def load_case(name: str) -> dict[str, np.ndarray]:
    """The arrays of a parity case of the fixture set ($OLDPHOTO_PARITY_DIR); skips the test
    when the fixture set is not there."""
    missing = fixtures.fixture_set_missing()
    if missing:
        pytest.skip(missing)
    return fixtures.load_case(name).arrays


def nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
    return np.transpose(x, (0, 2, 3, 1))


SCRATCH_CASES = ["pipeline_scratch", "pipeline_scratch_hr"]


# --- size rules -----------------------------------------------------------------------------

@pytest.mark.parametrize("value, multiple, expected", [
    (194, 4, 192),   # 48.5 -> 48 (half to even)
    (150, 4, 152),   # 37.5 -> 38 (half to even)
    (170, 16, 176),  # 10.625 -> 11
    (239, 16, 240),
    (190, 16, 192),
    (200, 16, 192),  # 12.5 -> 12
    (216, 16, 224),  # 13.5 -> 14
    (256, 16, 256),
])
def test_round_to_multiple_is_half_to_even(value, multiple, expected):
    assert pre.round_to_multiple(value, multiple) == expected


def test_resize_to_multiple_is_identity_when_already_a_multiple():
    image = Image.fromarray(np.zeros((32, 48, 3), np.uint8))
    assert pre.resize_to_multiple(image, 16, Image.BICUBIC) is image


def test_resize_to_multiple_sizes():
    image = Image.fromarray(np.zeros((194, 150, 3), np.uint8))
    assert pre.resize_to_multiple(image, 4, Image.BILINEAR).size == (152, 192)
    assert pre.resize_to_multiple(image, 16, Image.BICUBIC).size == (144, 192)


@pytest.mark.parametrize("hw, expected", [
    ((176, 176), (256, 256)),   # pipeline_scratch
    ((240, 192), (320, 256)),   # pipeline_scratch_hr: more rows than columns -> columns = 256
    ((192, 240), (256, 320)),   # fewer rows than columns -> rows = 256
    ((512, 512), (256, 256)),
    ((160, 336), (256, 544)),   # 537.6 -> 33.6 * 16 -> 544
    ((208, 176), (304, 256)),   # 302.5... -> 18.9 -> 19 * 16
])
def test_detection_network_size(hw, expected):
    assert pre.detection_network_size(*hw) == expected


# --- elementary conversions -------------------------------------------------------------------

def test_grayscale_matches_pil_l_conversion():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    rgb[0, :4] = [[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 0, 255]]
    expected = np.asarray(Image.fromarray(rgb).convert("L"))
    np.testing.assert_array_equal(pre.grayscale(rgb), expected)


def test_to_network_input_matches_torch_bitwise():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    rgb[0, 0] = [0, 128, 255]
    ours = pre.to_network_input(rgb)
    # torchvision ToTensor + Normalize(0.5, 0.5), spelled with torch ops.
    t = torch.from_numpy(rgb).permute(2, 0, 1).float().div(255)
    mean = torch.as_tensor([0.5, 0.5, 0.5], dtype=torch.float32)[:, None, None]
    t = t.sub(mean).div(mean)
    assert ours.dtype == np.float32 and ours.shape == (1, 9, 11, 3)
    np.testing.assert_array_equal(ours[0], t.permute(1, 2, 0).numpy())
    assert ours[0, 0, 0, 0] == -1.0 and ours[0, 0, 0, 2] == 1.0


def test_to_network_input_of_gray_image_has_one_channel():
    assert pre.to_network_input(np.zeros((4, 5), np.uint8)).shape == (1, 4, 5, 1)


def test_resize_bilinear_numpy_matches_torch_interpolate():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 23, 17, 1)).astype(np.float32)
    for size in [(32, 48), (11, 5), (23, 17), (40, 9)]:
        ours = pre.resize_bilinear_numpy(x, size)
        ref = torch.nn.functional.interpolate(torch.from_numpy(x).permute(0, 3, 1, 2), size,
                                              mode="bilinear", align_corners=False)
        # torch 2.13's CPU kernel computes the source coordinate with a fused multiply-add, so
        # its weights can differ from linear_source_taps by one float32 ulp of the coordinate
        # (about 1e-6 here); the pipeline contract for float intermediates is 1e-5.
        np.testing.assert_allclose(ours, ref.permute(0, 2, 3, 1).numpy(), rtol=0, atol=1e-5)


# --- detection pre-processing vs fixtures ---------------------------------------------------------

@pytest.mark.parametrize("case", SCRATCH_CASES)
def test_detection_input_matches_fixture(case):
    data = load_case(case)
    rgb_x16, unet_input = pre.detection_input(Image.fromarray(data["in_photo"]))
    np.testing.assert_array_equal(rgb_x16, data["out_detection_input_rgb"])
    expected = nchw_to_nhwc(data["out_unet_input"])
    assert unet_input.dtype == np.float32 and unet_input.shape == expected.shape
    assert np.max(np.abs(unet_input - expected)) <= 1e-5


# --- masks and holes ----------------------------------------------------------------------------

def test_dilate_mask_is_a_7x7_square_for_three_iterations():
    mask = np.zeros((15, 15, 3), np.uint8)
    mask[7, 7] = 255
    mask[0, 14] = 255
    dilated = pre.dilate_mask(mask, 3)
    expected = np.zeros((15, 15), np.uint8)
    expected[4:11, 4:11] = 255
    expected[0:4, 11:15] = 255
    for channel in range(3):
        np.testing.assert_array_equal(dilated[:, :, channel], expected)


def test_dilated_mask_input_matches_fixture():
    data = load_case("pipeline_scratch_hr")
    mask_used = pre.dilate_mask(data["out_mask_png"], pre.HR_MASK_DILATION)
    ours = pre.mask_network_input(mask_used)
    expected = nchw_to_nhwc(data["out_dilated_mask"])
    assert ours.shape == expected.shape
    assert np.max(np.abs(ours - expected)) <= 1e-5


def test_scratch_inputs_hr_composes_dilation_holes_and_mask():
    data = load_case("pipeline_scratch_hr")
    rgb = data["out_detection_input_rgb"]
    image_input, mask_input, mask_used = pre.scratch_inputs(rgb, data["out_mask_png"],
                                                            pre.HR_MASK_DILATION)
    np.testing.assert_allclose(mask_input, nchw_to_nhwc(data["out_dilated_mask"]), atol=1e-5)
    holes = mask_used[..., 0] == 255
    assert holes.any() and not holes.all()
    # Holes are white (1.0 after normalisation), the rest is the photo unchanged.
    assert np.all(image_input[0][holes] == 1.0)
    np.testing.assert_array_equal(image_input[0][~holes], pre.to_network_input(rgb)[0][~holes])


def test_scratch_inputs_without_dilation_keeps_the_mask():
    data = load_case("pipeline_scratch")
    image_input, mask_input, mask_used = pre.scratch_inputs(
        data["out_detection_input_rgb"], data["out_mask_png"], 0)
    np.testing.assert_array_equal(mask_used, data["out_mask_png"])
    np.testing.assert_array_equal(mask_input[0, :, :, 0], data["out_mask_png"][..., 0] / 255)
    assert image_input.shape == (1, 176, 176, 3)


def test_paint_holes_binary_mask_sets_white():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    mask = np.zeros_like(rgb)
    mask[2:4, 1:5] = 255
    painted = pre.paint_holes(rgb, mask)
    assert painted.dtype == np.uint8
    assert np.all(painted[2:4, 1:5] == 255)
    np.testing.assert_array_equal(painted[mask == 0], rgb[mask == 0])


def test_paint_holes_grey_levels_blend_and_truncate_like_float64_numpy():
    values = np.arange(256, dtype=np.uint8)
    rgb = np.broadcast_to(values[:, None, None], (256, 256, 3)).copy()
    mask = np.broadcast_to(values[None, :, None], (256, 256, 3)).copy()
    painted = pre.paint_holes(rgb, mask)
    # The exact value x (1 - m/255) + m lies in [x, 255]; the official float64 result is
    # truncated, so it never exceeds the exact value and is below it by less than one level
    # (it can be one level lower where float64 rounding lands just under an integer).
    x = rgb.astype(np.int64)
    m = mask.astype(np.int64)
    exact_times_255 = x * (255 - m) + 255 * m
    floor_exact = exact_times_255 // 255
    assert np.all((painted == floor_exact) | (painted == floor_exact - 1))
    assert np.mean(painted == floor_exact) > 0.95
    # Example: 100 * (1 - 128/255) + 128 = 177.80... -> 177.
    assert painted[100, 128, 0] == 177
    np.testing.assert_array_equal(painted[:, 0], rgb[:, 0])      # m = 0: unchanged
    assert np.all(painted[:, 255] == 255)                        # m = 255: white


def test_mask_network_input_takes_first_channel():
    mask = np.zeros((3, 4, 3), np.uint8)
    mask[1, 2, 0] = 255
    mask[2, 3, 1:] = 255     # only the first channel is read
    out = pre.mask_network_input(mask)
    assert out.shape == (1, 3, 4, 1) and out.dtype == np.float32
    expected = np.zeros((3, 4), np.float32)
    expected[1, 2] = 1.0
    np.testing.assert_array_equal(out[0, :, :, 0], expected)


# --- quality mode ---------------------------------------------------------------------------------

def test_quality_input_matches_fixture_size():
    data = load_case("pipeline_quality")
    origin, network_input = pre.quality_input(Image.fromarray(data["in_photo"]))
    _, channels, height, width = data["out_network"].shape
    assert origin.size == (width, height) == (152, 192)
    assert network_input.shape == (1, height, width, channels)
    np.testing.assert_array_equal(network_input, pre.to_network_input(np.asarray(origin)))


def test_quality_input_leaves_multiples_of_four_alone():
    rgb = np.random.default_rng(4).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    origin, network_input = pre.quality_input(Image.fromarray(rgb))
    np.testing.assert_array_equal(np.asarray(origin), rgb)
    np.testing.assert_array_equal(network_input, pre.to_network_input(rgb))
