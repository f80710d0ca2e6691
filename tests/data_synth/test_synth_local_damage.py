"""Local damage (scratches, cracks, dust, folds, tears): each writes a mask that covers every
changed pixel, and has the look its name promises."""
from __future__ import annotations

import numpy as np
import pytest

from data_synth import folds, scratches, spots, tears

LOCAL_OPS = {
    "scratches": lambda image, rng: scratches.add_scratches(image, rng, count=5),
    "cracks": lambda image, rng: scratches.add_cracks(image, rng, count=2),
    "dust": lambda image, rng: spots.add_dust(image, rng, specks=20, blobs=2, hairs=2, stains=1),
    "folds": lambda image, rng: folds.add_folds(image, rng, count=2),
    "tears": lambda image, rng: tears.add_tears(image, rng, count=2),
}


@pytest.mark.parametrize("name", sorted(LOCAL_OPS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pixels_outside_the_mask_are_unchanged(name, seed, photo):
    before = photo.copy()
    out, mask = LOCAL_OPS[name](photo, np.random.default_rng(seed))
    np.testing.assert_array_equal(photo, before)  # input untouched
    assert out.dtype == np.uint8 and out.shape == photo.shape
    assert mask.dtype == bool and mask.shape == photo.shape[:2]
    assert mask.any()
    np.testing.assert_array_equal(out[~mask], photo[~mask])
    changed = np.any(out != photo, axis=2)
    assert changed[mask].mean() > 0.95  # and marks (almost only) changed pixels


@pytest.mark.parametrize("name", sorted(LOCAL_OPS))
def test_same_generator_state_gives_same_bytes(name, photo):
    a = LOCAL_OPS[name](photo, np.random.default_rng(5))
    b = LOCAL_OPS[name](photo, np.random.default_rng(5))
    c = LOCAL_OPS[name](photo, np.random.default_rng(6))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_bright_scratches_brighten_and_dark_scratches_darken(grey_image):
    rng = np.random.default_rng(0)
    bright, mask_b = scratches.add_scratches(grey_image, rng, count=6, dark_fraction=0.0)
    dark, mask_d = scratches.add_scratches(grey_image, rng, count=6, dark_fraction=1.0)
    assert bright[mask_b].astype(np.int64).min() >= 128
    assert dark[mask_d].astype(np.int64).max() <= 128
    # thin lines: a small part of the image
    assert mask_b.mean() < 0.35


def test_scratches_are_thin_and_long(grey_image):
    image = np.tile(grey_image, (3, 3, 1))  # 192x192
    extents = []
    for seed in range(8):
        _, mask = scratches.add_scratches(image, np.random.default_rng(seed), count=1,
                                          length_range=(0.9, 1.0), opacity_range=(1.0, 1.0),
                                          max_blur_sigma=0.0)
        rows, cols = np.nonzero(mask)
        extent = max(np.ptp(rows), np.ptp(cols))
        assert mask.sum() < 8 * extent  # only a few px wide
        extents.append(extent)
    # typically they span much of the image (one may run along the border and bend out)
    assert np.median(extents) > 100


def test_folds_cross_the_image_with_light_and_dark_sides(grey_image):
    image = np.tile(grey_image, (2, 2, 1))
    out, mask = folds.add_folds(image, np.random.default_rng(4), count=1, core_probability=0.0)
    rows, cols = np.nonzero(mask)
    assert max(np.ptp(rows), np.ptp(cols)) >= 120  # border to border of a 128 px image
    values = out[mask].astype(np.int64)
    assert values.max() > 140 and values.min() < 116


def test_tears_touch_the_border(photo):
    for seed in range(4):
        _, mask = tears.add_tears(photo, np.random.default_rng(seed), count=1)
        border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
        assert border.any()
        assert 0.005 < mask.mean() < 0.5


def test_dust_covers_a_small_area(photo):
    _, mask = spots.add_dust(photo, np.random.default_rng(0), specks=30, blobs=2, hairs=1, stains=0)
    assert 0.001 < mask.mean() < 0.1


def test_zero_count_changes_nothing(photo):
    rng = np.random.default_rng(0)
    for out, mask in (
        scratches.add_scratches(photo, rng, count=0),
        folds.add_folds(photo, rng, count=0),
        tears.add_tears(photo, rng, count=0),
        spots.add_dust(photo, rng, specks=0, blobs=0, hairs=0, stains=0),
    ):
        assert not mask.any()
        np.testing.assert_array_equal(out, photo)
