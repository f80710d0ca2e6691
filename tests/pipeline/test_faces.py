"""Tests of oldphoto_jax.pipeline.faces (stage 2: detection, landmarks, alignment)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from skimage.transform import SimilarityTransform

from oldphoto_jax.parity.fixtures import cases_dir
from oldphoto_jax.pipeline import faces

# Reference section 6: official template points (x, y) of the aligned face.
REFERENCE_TEMPLATE = {
    256: [(89.0, 108.5), (167.0, 108.5), (128.0, 147.5), (104.6, 195.86), (151.4, 195.86)],
    512: [(178.0, 217.0), (334.0, 217.0), (256.0, 295.0), (209.2, 391.72), (302.8, 391.72)],
}


def needs_dlib():
    pytest.importorskip("dlib", reason="face detection needs dlib-bin")
    try:
        faces.landmark_model_path()
    except FileNotFoundError as error:
        pytest.skip(str(error))


def fixture_arrays(name: str) -> dict[str, np.ndarray]:
    path = cases_dir() / f"{name}.npz"
    if not path.exists():
        pytest.skip(f"parity fixture {path} not found")
    with np.load(path) as npz:
        return {key: npz[key] for key in npz.files}


@pytest.mark.parametrize("size", [256, 512])
def test_template_points_match_reference(size):
    points = faces.template_points(size)
    assert points.dtype == np.float32 and points.shape == (5, 2)
    np.testing.assert_allclose(points, REFERENCE_TEMPLATE[size], rtol=0, atol=1e-4)


def test_five_points_truncates_eye_centres_toward_zero():
    landmarks = np.zeros((68, 2), np.int64)
    landmarks[36], landmarks[39] = (10, 20), (13, 23)     # centre (11.5, 21.5) -> (11, 21)
    landmarks[42], landmarks[45] = (-3, 7), (0, 8)        # centre (-1.5, 7.5) -> (-1, 7)
    landmarks[30] = (40, 41)
    landmarks[48], landmarks[54] = (50, 51), (60, 61)
    landmarks[31] = (99, 99)                              # not a key point
    points = faces.five_points(landmarks)
    assert points.dtype == np.int64
    np.testing.assert_array_equal(points, [[11, 21], [-1, 7], [40, 41], [50, 51], [60, 61]])


def test_five_points_rejects_wrong_shape():
    with pytest.raises(ValueError):
        faces.five_points(np.zeros((5, 2)))


def test_alignment_transform_recovers_a_similarity_and_equals_estimate():
    angle, scale, shift = np.deg2rad(12.0), 0.7, np.array([31.0, -4.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    template = faces.template_points(256).astype(np.float64)
    points = template @ rotation.T + shift
    transform = faces.alignment_transform(points, 256)
    np.testing.assert_allclose(transform(template), points, atol=1e-9)
    # The official call: the deprecated in-place estimate gives the very same matrix.
    official = SimilarityTransform()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        assert official.estimate(faces.template_points(256), points)
    np.testing.assert_array_equal(transform.params, official.params)


def test_alignment_transform_rejects_degenerate_points():
    with pytest.raises(ValueError):
        faces.alignment_transform(np.zeros((5, 2)), 256)


def test_align_face_crops_with_bilinear_warp_and_rounding():
    # A horizontal ramp moved by a pure translation of half a pixel: bilinear averages neighbours.
    ramp = np.tile(np.arange(0, 200, 2, dtype=np.uint8)[None, :, None], (40, 1, 3))
    transform = SimilarityTransform(translation=(10.5, 5.0))
    crop = faces.align_face(ramp, transform, 16)
    assert crop.dtype == np.uint8 and crop.shape == (16, 16, 3)
    np.testing.assert_array_equal(crop[0, :, 0], 2 * np.arange(16) + 21)


def test_image_without_faces_gives_empty_list():
    needs_dlib()
    yy, xx = np.mgrid[0:96, 0:128]
    plain = np.stack([xx * 2, yy * 2, (xx + yy)], axis=-1).astype(np.uint8)
    assert faces.detect_face_landmarks(plain) == []
    assert faces.extract_faces(plain) == []


def test_extract_faces_reproduces_official_aligned_faces():
    arrays = fixture_arrays("pipeline_faces")
    needs_dlib()
    found = faces.extract_faces(arrays["in_photo"], 256)
    expected = arrays["out_aligned_faces"]
    assert len(found) == len(expected)
    for face, official in zip(found, expected):
        assert face.landmarks.shape == (68, 2) and face.size == 256
        diff = np.abs(face.image.astype(int) - official)
        assert np.mean(diff > 2) <= 0.01, f"max level diff {diff.max()}"
