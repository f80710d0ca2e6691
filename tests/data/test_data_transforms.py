"""Crop, resize, flip and conversion helpers of the input pipeline."""
from __future__ import annotations

import numpy as np
import pytest

from oldphoto_jax.data import transforms


def ramp(height, width):
    values = np.arange(height * width * 3) % 256
    return values.reshape(height, width, 3).astype(np.uint8)


@pytest.mark.parametrize("shape, expected", [
    ((20, 40), (32, 64)), ((40, 20), (64, 32)), ((21, 50), (32, 76)), ((30, 30), (32, 32)),
])
def test_upscale_short_side_matches_the_official_rule(shape, expected):
    out = transforms.upscale_short_side(ramp(*shape), 32)
    assert out.shape == (*expected, 3) and out.dtype == np.uint8


def test_upscale_short_side_never_downscales():
    image = ramp(40, 90)
    assert transforms.upscale_short_side(image, 32) is image


def test_crop_offsets_cover_every_position_and_are_reproducible():
    offsets = {transforms.crop_offset(34, 35, 32, np.random.default_rng(s)) for s in range(200)}
    assert offsets == {(t, l) for t in range(3) for l in range(4)}
    a = transforms.crop_offset(100, 100, 32, np.random.default_rng(3))
    assert a == transforms.crop_offset(100, 100, 32, np.random.default_rng(3))
    with pytest.raises(ValueError):
        transforms.crop_offset(31, 100, 32, np.random.default_rng(0))


def test_crop_and_flip():
    image = ramp(10, 12)
    out = transforms.crop(image, 2, 3, 4)
    np.testing.assert_array_equal(out, image[2:6, 3:7])
    np.testing.assert_array_equal(transforms.hflip(out)[:, 0], out[:, -1])
    mask = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(transforms.hflip(mask), [[2, 1, 0], [5, 4, 3]])


def test_signed_unit_range_and_masks():
    values = np.array([[[0, 127, 255]]], np.uint8)
    out = transforms.to_signed_unit(values)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[[-1.0, 127 / 127.5 - 1, 1.0]]], atol=1e-7)
    mask = transforms.binary_mask(np.array([[0.0, 0.49], [0.5, 1.0]], np.float32))
    assert mask.shape == (2, 2, 1) and mask.dtype == np.uint8
    np.testing.assert_array_equal(mask[..., 0], [[0, 0], [1, 1]])


def test_grey_helpers_use_pillow_luma():
    image = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    expected = [76, 150, 29]  # Pillow "L": (19595 R + 38470 G + 7471 B + 2**15) >> 16
    np.testing.assert_array_equal(transforms.luma(image)[0, :, 0], expected)
    grey = transforms.grayscale(image)
    assert grey.shape == image.shape and (grey == np.array(expected)[None, :, None]).all()


def test_resize_square():
    image = ramp(40, 30)
    assert transforms.resize_square(image, 32).shape == (32, 32, 3)
    same = ramp(32, 32)
    assert transforms.resize_square(same, 32) is same


def test_model_inputs_convert_images_and_masks_only():
    batch = {
        "degraded": np.array([[[[0, 255, 51]]]], np.uint8),
        "mask": np.array([[[[1]]]], np.uint8),
        "grayscale": np.array([1.0], np.float32),
    }
    out = transforms.model_inputs(batch)
    assert out["degraded"].dtype == np.float32 and out["mask"].dtype == np.float32
    np.testing.assert_allclose(out["degraded"][0, 0, 0], [-1.0, 1.0, 51 / 127.5 - 1], atol=1e-7)
    assert out["mask"][0, 0, 0, 0] == 1.0 and out["grayscale"][0] == 1.0
    raw = transforms.model_inputs(batch, "uint8")
    assert raw["degraded"].dtype == np.uint8 and raw["degraded"] is not batch["degraded"]
    with pytest.raises(ValueError):
        transforms.model_inputs(batch, "float16")


def test_downscale_keeps_the_short_side_at_least_the_minimum():
    image = np.random.default_rng(0).integers(0, 256, (100, 60, 3), dtype=np.uint8)
    assert transforms.downscale(image, 0.5, 16).shape == (50, 30, 3)
    assert transforms.downscale(image, 0.1, 32).shape == (53, 32, 3)  # factor raised to 32/60
    assert transforms.downscale(image, 1.0, 16) is image
    assert transforms.downscale(image, 0.5, 80) is image  # short side 60 already under 80
