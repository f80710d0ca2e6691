"""Folder listing, tolerant loading and cropping helpers."""
from __future__ import annotations

import numpy as np

from data_synth import imagefiles


def test_load_readable_skips_and_reports_bad_files_once(photo_folder):
    messages = []
    paths = imagefiles.list_images(str(photo_folder))
    assert [p.rsplit("/", 1)[1] for p in paths] == ["broken.jpg", "first.png", "second.jpg"]
    loaded = imagefiles.load_readable(paths, report=messages.append)
    assert [p.rsplit("/", 1)[1] for p, _ in loaded] == ["first.png", "second.jpg"]
    assert len(messages) == 1 and "broken.jpg" in messages[0]
    for _, image in loaded:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


def test_random_crop_is_uniform_integer_offset_and_reproducible(photo):
    a = imagefiles.random_crop(photo, 32, np.random.default_rng(0))
    b = imagefiles.random_crop(photo, 32, np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (32, 32, 3) and a.flags.c_contiguous
    offsets = set()
    for seed in range(200):
        crop = imagefiles.random_crop(photo, 95, np.random.default_rng(seed))
        offsets.add((np.array_equal(crop, photo[:95, :95]), np.array_equal(crop, photo[1:, 1:])))
    assert (True, False) in offsets and (False, True) in offsets  # both extreme offsets occur


def test_small_images_are_upscaled_before_cropping(photo):
    crop = imagefiles.random_crop(photo[:40, :60], 64, np.random.default_rng(0))
    assert crop.shape == (64, 64, 3)


def test_fit_short_side_only_downscales(photo):
    assert imagefiles.fit_short_side(photo, 48).shape == (48, 48, 3)
    assert imagefiles.fit_short_side(photo[:, :60], 30).shape == (48, 30, 3)
    assert imagefiles.fit_short_side(photo, 200) is photo
