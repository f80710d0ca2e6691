"""Record semantics per kind: shapes and ranges, crops of the right photos, the degradation
replayed from its seed, grayscale, masks and the official mixing probabilities."""
from __future__ import annotations

import numpy as np
import pytest

import data_synth
from oldphoto_jax.data import TrainingPhotos, TrainingRecords, transforms
from oldphoto_jax.data import config as config_lib
from oldphoto_jax.data import records as records_lib


def crops_of(image: np.ndarray, size: int):
    """Every (crop, flipped crop) of ``image`` after the official small-photo upscaling."""
    image = transforms.upscale_short_side(image, size)
    height, width = image.shape[:2]
    for top in range(height - size + 1):
        for left in range(width - size + 1):
            crop = image[top : top + size, left : left + size]
            yield crop
            yield crop[:, ::-1]


def is_crop_of(crop: np.ndarray, source, size: int) -> bool:
    return any(np.array_equal(crop, c) for i in range(len(source))
               for c in crops_of(source[i], size))


def check_image(values: np.ndarray, size: int, channels: int = 3):
    assert values.dtype == np.uint8 and values.shape == (size, size, channels)


def is_grey(image: np.ndarray) -> bool:
    return bool((image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all())


def test_domain_b_records_are_flipped_crops_of_clean_photos(photos, config_for):
    config = config_for("domain_b", grayscale_p=0.0)
    make = TrainingRecords(config, photos)
    for index in range(6):
        record = make(index)
        assert set(record) == {"image", "grayscale"} and record["grayscale"] == 0
        check_image(record["image"], config.crop_size)
        assert is_crop_of(record["image"], photos.clean, config.crop_size)


def test_scale_range_crops_each_photo_at_a_drawn_scale(photos, config_for):
    size = 32
    half = TrainingRecords(config_for("domain_b", grayscale_p=0.0, scale_range=(0.5, 0.5)), photos)
    halved = [transforms.downscale(photos.clean[i], 0.5, size) for i in range(len(photos.clean))]
    for index in range(4):
        assert is_crop_of(half(index)["image"], halved, size)
    # Its own random stream: at scale 1 every record is the one of a run without scale_range.
    for records in ("domain_b", "mapping_mask"):
        plain = TrainingRecords(config_for(records), photos)
        unit = TrainingRecords(config_for(records, scale_range=(1.0, 1.0)), photos)
        for index in (0, 3):
            for key, value in plain(index).items():
                np.testing.assert_array_equal(unit(index)[key], value)
    with pytest.raises(ValueError, match="scale_range"):
        config_for("domain_b", scale_range=(0.0, 1.0))
    with pytest.raises(ValueError, match="scale_range"):
        config_for("domain_b", scale_range=(0.8, 0.5))


def test_zoomed_detection_records_shrink_damage_drawn_at_the_photos_scale(photos, config_for):
    """detection_zoom_range: the damage is drawn on a window of crop / zoom px and shrunk as the
    detection input is; at zoom 1 the record is the plain one (same draws); bad ranges fail."""
    plain = TrainingRecords(config_for("detection"), photos)
    unit = TrainingRecords(config_for("detection", detection_zoom_range=(1.0, 1.0)), photos)
    for index in (0, 1, 5):
        for key, value in plain(index).items():
            np.testing.assert_array_equal(unit(index)[key], value)
    config = config_for("detection", detection_zoom_range=(0.5, 0.5), empty_mask_p=0.0)
    zoomed = TrainingRecords(config, photos)
    again = TrainingRecords(config, photos)
    for index in range(4):
        record = zoomed(index)
        check_image(record["image"], config.crop_size, channels=1)
        assert record["mask"].dtype == np.uint8 and record["mask"].shape == (
            config.crop_size, config.crop_size, 1)
        assert set(np.unique(record["mask"])) <= {0, 1}
        for key, value in again(index).items():
            np.testing.assert_array_equal(record[key], value)
    assert any(zoomed(i)["mask"].any() for i in range(4))
    for bad in ((0.0, 1.0), (0.8, 0.5), (0.5, 1.5)):
        with pytest.raises(ValueError, match="detection_zoom_range"):
            config_for("detection", detection_zoom_range=bad)
    with pytest.raises(ValueError, match="detection_zoom_coverage"):
        config_for("detection", detection_zoom_coverage=0.0)


def test_shrink_for_detection_resizes_as_the_detection_input_and_labels_by_coverage():
    from oldphoto_jax.pipeline import preprocess

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 1), dtype=np.uint8)
    mask = np.zeros((64, 64), np.float32)
    mask[10:12, :] = 1.0   # two window rows: one full row at half size
    mask[30, :] = 1.0      # one window row: half of a row at half size
    mask[:, 50] = 1.0      # one window column: half of a column
    shrunk, label = transforms.shrink_for_detection(image, mask, 32, coverage=0.25)
    expected = preprocess.resize_bilinear_numpy(image[None].astype(np.float32), (32, 32))[0]
    np.testing.assert_array_equal(shrunk, np.clip(np.rint(expected), 0, 255).astype(np.uint8))
    assert label.shape == (32, 32, 1) and label.dtype == np.uint8
    assert label[5].all() and label[15].all() and label[:, 25].all()
    assert label.sum() == 3 * 32 - 2                      # three lines, two crossings
    _, strict = transforms.shrink_for_detection(image, mask, 32, coverage=0.75)
    assert strict[5].all() and strict[15].sum() == 1 and strict[:, 25].sum() == 2  # crossings
    same, whole = transforms.shrink_for_detection(image, mask, 64, coverage=0.25)
    assert same is image and np.array_equal(whole[..., 0], mask.astype(np.uint8))


def test_records_are_pure_functions_of_seed_and_index(photos, config_for):
    for records in ("domain_a", "mapping", "mapping_mask"):
        a = TrainingRecords(config_for(records), photos)
        b = TrainingRecords(config_for(records), photos)
        for index in (0, 5, 1234567):
            ra, rb = a(index), b(index)
            for key in ra:
                np.testing.assert_array_equal(ra[key], rb[key])
        other = TrainingRecords(config_for(records, seed=8), photos)(5)
        key = "image" if records == "domain_a" else "degraded"
        assert not np.array_equal(a(5)[key], other[key])


def test_domain_a_mixes_real_old_and_degraded_clean_photos(photos, config_for):
    make = TrainingRecords(config_for("domain_a", grayscale_p=0.0), photos)
    flags = np.array([make(i)["real_old"] for i in range(200)])
    assert 0.4 < flags.mean() < 0.6  # official: half real old photos
    real = TrainingRecords(config_for("domain_a", real_old_p=1.0, grayscale_p=0.0), photos)
    for index in range(8):
        image = real(index)["image"]
        assert any(is_crop_of(image, old, 32) for old in photos.old)
    # Both old sets are used, each with probability 1/2 whatever its size.
    grey_share = np.mean([is_grey(real(i)["image"]) for i in range(100)])
    assert 0.35 < grey_share < 0.65


def test_domain_a_synthetic_half_is_degraded_before_the_crop(photos, config_for):
    config = config_for("domain_a", real_old_p=0.0)
    make = TrainingRecords(config, photos)
    recipe = config_lib.without_local_damage(config.degradation_config())
    for index in range(4):
        record = make(index)
        assert record["real_old"] == 0
        # Replay: the record's photo is unknown, so replay every clean photo with its seed.
        seed = records_lib.record_seed(config, index, records_lib.DEGRADE_STREAM)
        candidates = [data_synth.degrade(transforms.upscale_short_side(photos.clean[k], 32), seed,
                                         recipe).degraded for k in range(len(photos.clean))]
        assert is_crop_of(record["image"], candidates, 32)


def test_mapping_pairs_share_the_crop_and_follow_grayscale(photos, config_for):
    config = config_for("mapping")
    make = TrainingRecords(config, photos)
    recipe = config_lib.without_local_damage(config.degradation_config())
    grey = []
    for index in range(40):
        record = make(index)
        assert set(record) == {"degraded", "clean", "grayscale"}
        check_image(record["degraded"], 32)
        check_image(record["clean"], 32)
        clean, degraded = record["clean"], record["degraded"]
        grey.append(bool(record["grayscale"]))
        assert is_grey(clean) == grey[-1] and (not grey[-1] or is_grey(degraded))
        if index < 3:  # the degraded side is the same window of the degraded full photo
            photo = photos.clean[records_lib.indexed_photo(config, index, len(photos.clean))]
            photo = transforms.upscale_short_side(photo, 32)
            seed = records_lib.record_seed(config, index, records_lib.DEGRADE_STREAM)
            sample = data_synth.degrade(photo, seed, recipe)
            pairs = zip(crops_of(sample.degraded, 32), crops_of(sample.target(photo), 32))
            assert any(np.array_equal(degraded, d) and np.array_equal(clean, c)
                       for d, c in pairs)
    assert any(grey) and not all(grey)


def test_indexed_records_visit_every_photo_once_per_epoch(config_for):
    config = config_for("mapping")
    count = 7
    for epoch in range(3):
        seen = [records_lib.indexed_photo(config, epoch * count + p, count) for p in range(count)]
        assert sorted(seen) == list(range(count))
    first = [records_lib.indexed_photo(config, p, count) for p in range(count)]
    second = [records_lib.indexed_photo(config, count + p, count) for p in range(count)]
    assert first != second  # each epoch has its own order


def test_official_masked_pairs_have_white_holes_and_half_empty_masks(photos, config_for):
    config = config_for("mapping_mask", preset="official")
    make = TrainingRecords(config, photos)
    empty = 0
    for index in range(120):
        record = make(index)
        assert record["mask"].shape == (32, 32, 1) and record["mask"].dtype == np.uint8
        assert set(np.unique(record["mask"])) <= {0, 1}
        holes = record["mask"][..., 0] == 1
        empty += not holes.any()
        # holes are painted after the degradation: pure white in the degraded image only
        assert (record["degraded"][holes] == 255).all()
        assert is_grey(record["clean"]) == bool(record["grayscale"])
    assert 0.35 < empty / 120 < 0.65


def test_extended_masked_pairs_drop_local_damage_with_empty_mask_p(photos, config_for):
    always = TrainingRecords(config_for("mapping_mask", preset="extended", empty_mask_p=1.0), photos)
    assert all(always(i)["mask"].max() == 0 for i in range(10))
    never = TrainingRecords(config_for("mapping_mask", preset="extended", empty_mask_p=0.0), photos)
    assert sum(never(i)["mask"].max() > 0 for i in range(20)) >= 10
    assert config_for("mapping_mask", preset="extended").resolved_empty_mask_p() == 0.5
    assert config_for("mapping_mask", preset="official").resolved_empty_mask_p() == 0.0


def test_painted_holes_are_the_dilated_mask_in_white_as_inference_gives_them(photos, config_for):
    import cv2

    plain = TrainingRecords(config_for("mapping_mask", preset="extended", empty_mask_p=0.0), photos)
    painted = TrainingRecords(config_for("mapping_mask", preset="extended", empty_mask_p=0.0,
                                         paint_holes=True, hole_dilation=3), photos)
    damaged = 0
    for index in range(12):
        before, after = plain(index), painted(index)
        expected = cv2.dilate(before["mask"][..., 0], np.ones((7, 7), np.uint8))
        np.testing.assert_array_equal(after["mask"][..., 0], expected)
        holes = expected == 1
        damaged += holes.any()
        assert (after["degraded"][holes] == 255).all()
        np.testing.assert_array_equal(after["degraded"][~holes], before["degraded"][~holes])
        np.testing.assert_array_equal(after["clean"], before["clean"])
    assert damaged >= 6
    with pytest.raises(ValueError, match="paint_holes"):
        config_for("mapping_mask", hole_dilation=3)


def test_detection_records_are_luma_or_rgb_with_a_mask(photos, config_for):
    grey = TrainingRecords(config_for("detection"), photos)(3)
    assert set(grey) == {"image", "mask", "grayscale"}
    check_image(grey["image"], 32, channels=1)
    rgb = TrainingRecords(config_for("detection", detection_channels=3), photos)(3)
    check_image(rgb["image"], 32, channels=3)
    np.testing.assert_array_equal(transforms.luma(rgb["image"]),
                                  grey["image"])
    np.testing.assert_array_equal(grey["mask"], rgb["mask"])


def test_local_damage_steps_of_the_presets():
    assert config_lib.local_damage_steps(data_synth.official_preset()) == ("holes",)
    assert config_lib.local_damage_steps(data_synth.extended_preset()) == ("local",)
    trimmed = config_lib.without_local_damage(data_synth.extended_preset())
    assert "local" not in trimmed.step_order


def test_missing_photos_are_reported_at_construction(photos, config_for):
    with pytest.raises(ValueError, match="old photos"):
        TrainingRecords(config_for("domain_a"), TrainingPhotos(clean=photos.clean))
    TrainingRecords(config_for("domain_a", real_old_p=0.0), TrainingPhotos(clean=photos.clean))
    with pytest.raises(ValueError, match="aligned faces"):
        TrainingRecords(config_for("faces"), photos)
    with pytest.raises(ValueError, match="unknown records"):
        config_for("vae")
