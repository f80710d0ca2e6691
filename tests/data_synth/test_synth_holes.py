"""Hole painting (reference 11.3), generated irregular masks and mask files."""
from __future__ import annotations

import numpy as np
from PIL import Image

from data_synth import holes


def test_binary_mask_paints_white_and_keeps_the_rest(photo):
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[20:30, 5:60] = 255
    out = holes.paint_holes(photo, mask)
    np.testing.assert_array_equal(out[20:30, 5:60], 255)
    keep = mask == 0
    np.testing.assert_array_equal(out[keep], photo[keep])


def test_grey_mask_blends_with_the_official_formula_and_truncation():
    image = np.array([[[0, 100, 255], [10, 20, 30]]], np.uint8)
    mask = np.array([[128, 64]], np.uint8)
    out = holes.paint_holes(image, mask)
    m = mask.astype(np.float64)[..., None] / 255.0
    expected = (image * (1 - m) + m * 255).astype(np.uint8)  # x(1 - m/255) + m, truncated
    np.testing.assert_array_equal(out, expected)
    assert out[0, 0, 0] == 128 and out[0, 1, 0] == int(10 * (1 - 64 / 255) + 64)


def test_irregular_mask_is_binary_reproducible_and_moderate():
    a = holes.irregular_mask(np.random.default_rng(0), 256, 256)
    b = holes.irregular_mask(np.random.default_rng(0), 256, 256)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint8 and set(np.unique(a)) <= {0, 255}
    masks = [holes.irregular_mask(np.random.default_rng(s), 256, 256) for s in range(20)]
    coverage = [np.mean(m > 0) for m in masks]
    assert 0.0 < min(coverage) and max(coverage) < 0.3


def test_mask_files_are_listed_sorted_and_resized_nearest(tmp_path):
    small = np.zeros((4, 4), np.uint8)
    small[:2, :2] = 255
    Image.fromarray(small).save(tmp_path / "b.png")
    Image.fromarray(255 - small).save(tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("not a mask")
    files = holes.list_mask_files(str(tmp_path))
    assert [p.split("/")[-1] for p in files] == ["a.png", "b.png"]
    mask = holes.load_mask(files[1], 8, 12)
    assert mask.shape == (8, 12)
    assert set(np.unique(mask)) == {0, 255}  # nearest: no new grey levels
    np.testing.assert_array_equal(mask[:4, :6], 255)
    np.testing.assert_array_equal(mask[4:, 6:], 0)
