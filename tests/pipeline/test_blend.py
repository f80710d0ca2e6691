"""Tests of oldphoto_jax.pipeline.blend (stage 4: colour matching, warp back, blending)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.transform import SimilarityTransform

from oldphoto_jax.parity.fixtures import cases_dir
from oldphoto_jax.pipeline import blend, faces


def loop_lookup(source_cdf, reference_cdf):
    """Section 8 step 4 spelled out value by value, as the official double loop reads."""
    table, value = [], 0
    for target in source_cdf:
        r = 0
        while r < len(reference_cdf):
            if reference_cdf[r] >= target:
                value = r
                break
            r += 1
        table.append(value)
    return np.array(table, np.float64)


def direct_match(source, reference):
    """Per channel: histogram with np.histogram, cdf / max, loop lookup, indexing."""
    out = np.empty_like(source)
    for c in range(source.shape[-1]):
        cdfs = []
        for image in (source, reference):
            histogram, _ = np.histogram(image[..., c].ravel(), 256, [0, 256])
            cdf = histogram.cumsum()
            cdfs.append(cdf / float(cdf.max()))
        out[..., c] = loop_lookup(*cdfs).astype(np.uint8)[source[..., c]]
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_histogram_matching_equals_direct_rule(seed):
    rng = np.random.default_rng(seed)
    source = rng.integers(0, 256, (12, 9, 3), dtype=np.uint8)
    reference = np.stack([rng.integers(50, 61, (7, 11)),             # narrow range
                          rng.binomial(255, 0.2, (7, 11)),           # skewed
                          rng.integers(0, 256, (7, 11))], -1).astype(np.uint8)
    matched = blend.match_histograms_official(source, reference)
    assert matched.dtype == np.uint8 and matched.shape == source.shape
    np.testing.assert_array_equal(matched, direct_match(source, reference))
    assert matched[..., 0].min() >= 50 and matched[..., 0].max() <= 60


def test_lookup_carries_previous_value_when_reference_never_reaches():
    source_cdf = np.array([0.1, 0.5, 0.9, 1.0])
    reference_cdf = np.array([0.2, 0.3, 0.6, 0.85])   # never reaches 0.9 or 1.0
    table = blend.official_lookup_table(source_cdf, reference_cdf)
    np.testing.assert_array_equal(table, [0, 2, 2, 2])
    np.testing.assert_array_equal(table, loop_lookup(source_cdf, reference_cdf))


def test_blur_blend_with_zero_mask_keeps_background():
    rng = np.random.default_rng(3)
    background = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    face = rng.uniform(0, 255, (40, 50, 3))
    out = blend.blur_blend(face, background, np.zeros((40, 50, 3)))
    np.testing.assert_allclose(out, background, atol=1e-9)
    np.testing.assert_array_equal(np.rint(out).astype(np.uint8), background)


def test_blur_blend_uses_face_deep_inside_the_mask_and_background_far_outside():
    background = np.full((120, 120, 3), 40, np.uint8)
    face = np.full((120, 120, 3), 200.0)
    mask = np.zeros((120, 120, 3))
    mask[20:100, 20:100] = 1.0
    out = blend.blur_blend(face, background, mask)
    # Erosion (3 x 9x9) shrinks the square by 12 pixels a side, the 25x25 blur spreads 12 more.
    np.testing.assert_allclose(out[55:65, 55:65], 200.0, atol=1e-9)
    np.testing.assert_allclose(out[:8], 40.0, atol=1e-9)
    assert 40.0 < out[60, 32, 0] < 200.0
    np.testing.assert_allclose(out, out[::-1, ::-1], atol=1e-9)   # symmetric square


def test_paste_faces_without_faces_returns_photo():
    photo = np.random.default_rng(4).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    out = blend.paste_faces(photo, [], [])
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, photo)


def test_masks_are_float64_zero_one():
    transform = SimilarityTransform(scale=0.5, translation=(10.0, 8.0))
    forward = blend.forward_mask((60, 70), transform, 64)
    assert forward.dtype == np.float64 and set(np.unique(forward)) <= {0.0, 1.0}
    backward = blend.backward_mask(forward, transform, (60, 70))
    assert backward.dtype == np.float64 and backward.shape == (60, 70, 3)
    assert backward[10:40, 12:40].min() == 1.0 and backward[50:, 50:].max() == 0.0


def test_align_and_warp_back_round_trip_reproduces_face_region():
    yy, xx = np.mgrid[0:160, 0:200].astype(np.float64)
    photo = np.stack([128 + 100 * np.sin(xx / 17.0), 128 + 100 * np.cos(yy / 13.0),
                      (xx + yy) * 0.7], -1).round().astype(np.uint8)
    angle, scale = np.deg2rad(-8.0), 0.35
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = faces.template_points(256).astype(np.float64) @ rotation.T + [60.0, 30.0]
    transform = faces.alignment_transform(points, 256)
    aligned = faces.align_face(photo, transform, 256)
    back = blend.warp_back(aligned, transform, photo.shape[:2])
    assert back.dtype == np.float64 and back.shape == photo.shape
    inside = blend.backward_mask(blend.forward_mask(photo.shape, transform, 256), transform,
                                 photo.shape[:2])[..., 0] > 0
    core = ndimage.binary_erosion(inside, iterations=3)
    assert core.sum() > 5000
    error = np.abs(back[core] - photo[core])
    assert error.mean() < 0.5 and error.max() < 3
    # Bicubic reaches a pixel or two past the mask; further out the constant 0 fills.
    assert np.all(back[~ndimage.binary_dilation(inside, iterations=3)] == 0)


def test_paste_faces_reproduces_official_final_image():
    path = cases_dir() / "pipeline_faces.npz"
    if not path.exists():
        pytest.skip(f"parity fixture {path} not found")
    pytest.importorskip("dlib", reason="face detection needs dlib-bin")
    with np.load(path) as npz:
        photo, enhanced, final = npz["in_photo"], npz["in_enhanced_faces"], npz["out_final"]
    found = faces.extract_faces(photo, 256)
    assert len(found) == len(enhanced)
    out = blend.paste_faces(photo, list(enhanced), [f.transform for f in found])
    diff = np.abs(out.astype(int) - final)
    assert np.mean(diff > 2) <= 0.01, f"max level diff {diff.max()}"
