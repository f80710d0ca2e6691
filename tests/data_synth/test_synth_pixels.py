"""Pixel helpers: exact luma, validation, and the mask contract of alpha compositing."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from data_synth import pixels


def test_luma_matches_pillow(photo):
    expected = np.asarray(Image.fromarray(photo).convert("L"))
    np.testing.assert_array_equal(pixels.luma_uint8(photo), expected)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 3), np.float32)],
)
def test_check_rgb_uint8_rejects_other_layouts(bad):
    with pytest.raises(ValueError):
        pixels.check_rgb_uint8(bad)


def test_composite_writes_and_marks_only_visible_changes():
    image = np.full((64, 64, 3), 100, np.uint8)
    image[:, 48:] = 250  # a region already close to the colour
    alpha = np.zeros((64, 64), np.float32)
    alpha[0:8, 0:8] = 1.0  # -> 255, change 155
    alpha[10:20, 0:8] = 0.5  # -> 178, change 78
    alpha[20:30, 0:8] = 0.03  # change 4.65 -> 5 levels: below min_change, not drawn
    alpha[30:40, 0:8] = 0.04  # change 6.2 -> 6 levels: drawn
    alpha[:, 48:] = 1.0  # 250 -> 255: 5 levels, not drawn
    out, mask = pixels.composite(image, alpha, (255, 255, 255), min_change=6)
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, np.any(out != image, axis=2))  # mask == changed pixels
    np.testing.assert_array_equal(out[0:8, 0:8], 255)
    np.testing.assert_array_equal(out[10:20, 0:8], 178)
    assert not mask[20:30].any() and mask[30:40, 0:8].all() and not mask[:, 48:].any()
    np.testing.assert_array_equal(out[30:40, 0:8], 106)
    # with min_change 1 every changed pixel is drawn
    out1, mask1 = pixels.composite(image, alpha, (255, 255, 255), min_change=1)
    assert mask1[20:30, 0:8].all() and mask1[:, 48:].all()
    np.testing.assert_array_equal(mask1, np.any(out1 != image, axis=2))


def test_composite_with_nothing_to_draw_returns_input(photo):
    out, mask = pixels.composite(photo, np.zeros(photo.shape[:2], np.float32), (0, 0, 0))
    assert not mask.any()
    np.testing.assert_array_equal(out, photo)


def test_composite_accepts_a_colour_image_and_leaves_input_alone(photo):
    before = photo.copy()
    alpha = np.ones(photo.shape[:2], np.float32)
    colour = np.zeros(photo.shape, np.float32)
    out, mask = pixels.composite(photo, alpha, colour)
    assert mask.all() and not out.any()
    np.testing.assert_array_equal(photo, before)


def test_truncate_and_round_conversions():
    values = np.array([-0.1, 0.0, 0.5, 254.6 / 255, 1.2], np.float32)
    truncated = pixels.unit_float_to_uint8_truncate(values)
    np.testing.assert_array_equal(truncated, [0, 0, 127, 254, 255])
    np.testing.assert_array_equal(pixels.unit_float_to_uint8_round(values), [0, 0, 128, 255, 255])
