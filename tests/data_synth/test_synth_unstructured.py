"""Effects and exact semantics of the official unstructured degradations (reference 11.1-11.2)."""
from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from data_synth import unstructured


def high_frequency_energy(image: np.ndarray) -> float:
    """Mean squared Laplacian of the luminance."""
    grey = image.astype(np.float64).mean(axis=2)
    return float(np.mean(cv2.Laplacian(grey, cv2.CV_64F) ** 2))


def test_gaussian_blur_is_opencv_blur_and_lowers_high_frequencies(photo):
    out = unstructured.gaussian_blur(photo, 5, 2.0)
    assert out.dtype == np.uint8 and out.shape == photo.shape
    expected = cv2.GaussianBlur(photo, (5, 5), 2.0, borderType=cv2.BORDER_REFLECT_101)
    np.testing.assert_array_equal(out, expected)
    assert high_frequency_energy(out) < 0.5 * high_frequency_energy(photo)
    stronger = unstructured.gaussian_blur(photo, 7, 5.0)
    assert high_frequency_energy(stronger) < high_frequency_energy(out)


def test_gaussian_noise_has_requested_std_and_truncation_bias(grey_image):
    rng = np.random.default_rng(0)
    out = unstructured.gaussian_noise(grey_image, rng, sigma=20 / 255)
    diff = out.astype(np.float64) - 128
    assert abs(diff.std() - 20) < 1.0
    # truncation of 255*v biases the noisy values by about half a level downwards
    assert -0.8 < diff.mean() < -0.2
    assert out.dtype == np.uint8


def test_noise_clips_instead_of_wrapping():
    white = np.full((32, 32, 3), 255, dtype=np.uint8)
    out = unstructured.gaussian_noise(white, np.random.default_rng(1), sigma=50 / 255)
    # the positive half of the noise pushes values above 1, which clip to exactly 255
    assert abs((out == 255).mean() - 0.5) < 0.05


def test_speckle_noise_scales_with_brightness():
    rng = np.random.default_rng(0)
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    image[:, 32:] = 200
    out = unstructured.speckle_noise(image, rng, sigma=0.1)
    np.testing.assert_array_equal(out[:, :32], 0)  # v + v*n = 0 on black
    assert abs(out[:, 32:].astype(np.float64).std() - 20) < 1.5


def test_salt_and_pepper_hits_fraction_per_pixel_and_channel(grey_image):
    image = np.tile(grey_image, (4, 4, 1))  # 256x256x3
    rng = np.random.default_rng(0)
    out = unstructured.salt_and_pepper(image, rng, amount=0.05, salt_fraction=0.7)
    changed = out != image
    assert abs(changed.mean() - 0.05) < 0.004
    assert abs((out == 255).sum() / changed.sum() - 0.7) < 0.03
    assert set(np.unique(out)) == {0, 128, 255}
    # hits are per channel: most hit pixels have exactly one channel changed
    per_pixel = changed.sum(axis=2)
    assert (per_pixel == 1).sum() > 10 * (per_pixel == 3).sum()


def test_untouched_values_round_trip_exactly():
    levels = np.arange(256, dtype=np.uint8)
    image = np.stack([levels, levels[::-1], levels], axis=-1)[None]
    out = unstructured.salt_and_pepper(image, np.random.default_rng(0), 0.0, salt_fraction=0.5)
    np.testing.assert_array_equal(out, image)
    out = unstructured.gaussian_noise(image, np.random.default_rng(0), sigma=0.0)
    np.testing.assert_array_equal(out, image)


def test_low_resolution_matches_pillow_and_loses_detail(photo):
    out = unstructured.low_resolution(photo, 50, 60, "bilinear")
    small = Image.fromarray(photo).resize((50, 60), Image.Resampling.BICUBIC)
    expected = np.asarray(small.resize((96, 96), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(out, expected)
    assert high_frequency_energy(out) < 0.7 * high_frequency_energy(photo)
    nearest = unstructured.low_resolution(photo, 50, 60, "nearest")
    assert not np.array_equal(nearest, out)


def test_low_resolution_at_full_size_is_identity(photo):
    np.testing.assert_array_equal(unstructured.low_resolution(photo, 96, 96, "nearest"), photo)


def test_jpeg_quality_changes_bytes_and_error(photo):
    low = unstructured.jpeg_compress(photo, 40)
    high = unstructured.jpeg_compress(photo, 100)
    assert low.dtype == np.uint8 and low.shape == photo.shape
    assert not np.array_equal(low, high)
    err_low = np.mean((low.astype(np.float64) - photo) ** 2)
    err_high = np.mean((high.astype(np.float64) - photo) ** 2)
    assert err_high < err_low
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="JPEG", quality=40)
    np.testing.assert_array_equal(low, np.asarray(Image.open(buffer).convert("RGB")))


def test_grayscale_is_pillow_L_on_three_channels(photo):
    out = unstructured.to_grayscale(photo)
    expected = np.asarray(Image.fromarray(photo).convert("L"))
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], expected)


@pytest.mark.parametrize("function", [unstructured.gaussian_noise, unstructured.speckle_noise])
def test_noise_does_not_modify_input(function, photo):
    before = photo.copy()
    function(photo, np.random.default_rng(0), 0.1)
    np.testing.assert_array_equal(photo, before)
