"""Presets: the official one carries the released numbers, every named op exists."""
from __future__ import annotations

import numpy as np
import pytest

from data_synth import config, ops


def test_official_preset_has_the_released_recipe():
    c = config.official_preset()
    assert c.step_order == ("unstructured", "grayscale", "holes")
    assert c.steps.unstructured.shuffle is True
    assert set(c.steps.unstructured.ops) == {"gaussian_blur", "noise", "low_resolution", "jpeg"}
    for name in c.steps.unstructured.ops:
        assert c.ops[name].p == 0.7
    assert c.ops.gaussian_blur.kernel_sizes == (3, 5, 7) and c.ops.gaussian_blur.sigma == (1.0, 5.0)
    assert c.ops.noise.kinds == ("gaussian", "speckle", "salt_pepper")
    assert c.ops.noise.sigma == pytest.approx((5 / 255, 50 / 255))
    assert c.ops.noise.salt_pepper_amount == (0.0, 0.01) and c.ops.noise.salt_fraction == (0.3, 0.8)
    assert c.ops.low_resolution.min_scale == 0.5
    assert c.ops.low_resolution.upsample == ("nearest", "bilinear")
    assert c.ops.jpeg.quality == (40, 100)
    assert c.ops.grayscale.p == 0.1 and c.ops.holes.p == 0.5


@pytest.mark.parametrize("preset", sorted(config.PRESETS))
def test_every_staged_op_is_registered_and_configured(preset):
    c = config.get_preset(preset)
    for step in c.step_order:
        for name in c.steps[step].ops:
            assert name in ops.REGISTRY
            assert 0.0 <= c.ops[name].p <= 1.0


def test_extended_preset_uses_every_registered_op():
    c = config.extended_preset()
    staged = {name for step in c.step_order for name in c.steps[step].ops}
    assert staged == set(ops.REGISTRY)


def test_only_steps_and_unknown_names():
    c = config.only_steps(config.extended_preset(), "local", "ageing")
    assert c.step_order == ("ageing", "local")
    with pytest.raises(ValueError):
        config.only_steps(c, "nope")
    with pytest.raises(ValueError):
        config.get_preset("nope")
    with pytest.raises(ValueError):
        ops.get_op("nope")


def test_low_resolution_sizes_cover_half_to_full_inclusive():
    c = config.official_preset().ops.low_resolution
    rng = np.random.default_rng(0)
    draws = [ops.get_op("low_resolution").sample(rng, c, (5, 7, 3)) for _ in range(400)]
    assert {d["new_width"] for d in draws} == set(range(3, 8))
    assert {d["new_height"] for d in draws} == set(range(2, 6))
    assert {d["upsample"] for d in draws} == {"nearest", "bilinear"}


def test_unstructured_samplers_stay_in_the_released_ranges():
    c = config.official_preset().ops
    rng = np.random.default_rng(0)
    blur = [ops.get_op("gaussian_blur").sample(rng, c.gaussian_blur, (8, 8, 3)) for _ in range(200)]
    assert {d["kernel_size"] for d in blur} == {3, 5, 7}
    assert all(1.0 <= d["sigma"] <= 5.0 for d in blur)
    jpeg = [ops.get_op("jpeg").sample(rng, c.jpeg, (8, 8, 3))["quality"] for _ in range(2000)]
    assert min(jpeg) == 40 and max(jpeg) == 100
    kinds = [ops.get_op("noise").sample(rng, c.noise, (8, 8, 3))["kind"] for _ in range(900)]
    for kind in ("gaussian", "speckle", "salt_pepper"):
        assert abs(kinds.count(kind) / 900 - 1 / 3) < 0.06


def test_registry_local_flags_match_the_local_step():
    local = {name for name, op in ops.REGISTRY.items() if op.local}
    assert local == set(config.LOCAL_OPS)
