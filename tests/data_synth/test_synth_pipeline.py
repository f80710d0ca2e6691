"""degrade(): reproducibility, output contract, mask agreement and the official op statistics."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from data_synth import config, ops, pipeline
from data_synth.pipeline import degrade


@pytest.mark.parametrize("preset", sorted(config.PRESETS))
def test_same_seed_same_bytes_and_different_seed_different(preset, photo):
    c = config.get_preset(preset)
    outputs = [degrade(photo, seed, c) for seed in range(6)]
    for seed, first in enumerate(outputs):
        again = degrade(photo, seed, c)
        assert again.degraded.tobytes() == first.degraded.tobytes()
        assert again.mask.tobytes() == first.mask.tobytes()
        assert again.applied == first.applied
    assert len({o.degraded.tobytes() for o in outputs}) == len(outputs)


def test_seed_sequences_are_accepted_and_distinct(photo):
    a = degrade(photo, (3, 7))
    assert a.degraded.tobytes() == degrade(photo, np.random.SeedSequence((3, 7))).degraded.tobytes()
    assert a.degraded.tobytes() != degrade(photo, (3, 8)).degraded.tobytes()


@pytest.mark.parametrize("preset", sorted(config.PRESETS))
def test_output_types_and_ranges(preset, photo):
    before = photo.copy()
    for seed in range(5):
        sample = degrade(photo, seed, config.get_preset(preset))
        assert sample.degraded.dtype == np.uint8 and sample.degraded.shape == photo.shape
        assert sample.degraded.flags.writeable
        assert sample.mask.dtype == np.float32 and sample.mask.shape == photo.shape[:2]
        assert sample.mask.min() >= 0.0 and sample.mask.max() <= 1.0
        for op in sample.applied:
            assert op.name in ops.REGISTRY
            for value in op.params.values():
                assert type(value) in (int, float, str, tuple, type(None))
        assert isinstance(sample.describe(), str)
    np.testing.assert_array_equal(photo, before)


def test_with_only_local_damage_pixels_outside_the_mask_are_unchanged(photo):
    c = config.only_steps(config.extended_preset(), "local")
    for name in c.steps.local.ops:
        c.ops[name].p = 1.0
    for seed in range(4):
        sample = degrade(photo, seed, c)
        outside = sample.mask == 0
        assert not outside.all()
        np.testing.assert_array_equal(sample.degraded[outside], photo[outside])
        changed = np.any(sample.degraded != photo, axis=2)
        assert np.all(sample.mask[changed] > 0)


def test_nothing_enabled_returns_an_unaliased_copy(photo):
    c = config.extended_preset()
    for name in c.ops:
        c.ops[name].p = 0.0
    sample = degrade(photo, 0, c)
    assert sample.applied == () and not sample.mask.any()
    np.testing.assert_array_equal(sample.degraded, photo)
    assert not np.shares_memory(sample.degraded, photo)


def test_official_op_frequencies_and_random_order():
    small = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    c = config.official_preset()
    samples = [degrade(small, seed, c) for seed in range(400)]
    for name in config.OFFICIAL_UNSTRUCTURED:
        rate = np.mean([name in s.op_names for s in samples])
        assert abs(rate - 0.7) < 0.07, (name, rate)
    assert abs(np.mean([s.grayscale for s in samples]) - 0.1) < 0.04
    assert abs(np.mean(["holes" in s.op_names for s in samples]) - 0.5) < 0.08
    firsts = {s.op_names[0] for s in samples if s.op_names}
    firsts &= set(config.OFFICIAL_UNSTRUCTURED)
    assert firsts == set(config.OFFICIAL_UNSTRUCTURED)
    for s in samples:  # grayscale follows the unstructured ops and precedes the holes
        names = [n for n in s.op_names]
        if "grayscale" in names:
            later = names[names.index("grayscale") + 1 :]
            assert set(later) <= {"holes"}


def test_official_holes_are_white_and_grayscale_target_matches(photo):
    c = config.official_preset()
    c.ops.holes.p = 1.0
    c.ops.grayscale.p = 1.0
    sample = degrade(photo, 1, c)
    hole = sample.mask > 0
    assert hole.any()
    np.testing.assert_array_equal(sample.degraded[hole], 255)
    assert sample.grayscale
    assert np.all(sample.degraded[..., 0] == sample.degraded[..., 2])
    target = sample.target(photo)
    np.testing.assert_array_equal(target[..., 0], np.asarray(Image.fromarray(photo).convert("L")))
    c.ops.grayscale.p = 0.0
    assert degrade(photo, 1, c).target(photo) is photo


def test_official_holes_from_a_mask_folder(tmp_path, photo):
    mask = np.zeros((16, 16), np.uint8)
    mask[4:8, :] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    c = config.official_preset()
    c.ops.holes.p = 1.0
    c.ops.holes.mask_dir = str(tmp_path)
    sample = degrade(photo, 0, c)
    assert sample.applied[-1].name == "holes"
    assert sample.applied[-1].params["mask_file"].endswith("m.png")
    expected = np.zeros(photo.shape[:2], np.float32)
    expected[24:48, :] = 1.0  # 16 -> 96 px, nearest
    np.testing.assert_array_equal(sample.mask, expected)


def test_rejects_seeds_that_are_not_reproducible(photo):
    with pytest.raises(TypeError):
        degrade(photo, None)
    with pytest.raises(TypeError):
        degrade(photo, np.random.default_rng(0))


def test_rejects_non_rgb_uint8(photo):
    with pytest.raises(ValueError):
        degrade(photo.astype(np.float32), 0)
    with pytest.raises(ValueError):
        degrade(photo[..., 0], 0)


def test_degrade_with_rng_matches_degrade(photo):
    c = config.official_preset()
    a = degrade(photo, 11, c)
    b = pipeline.degrade_with_rng(photo, np.random.default_rng(11), c)
    assert a.degraded.tobytes() == b.degraded.tobytes() and a.applied == b.applied
