"""Aligned faces cut from photos with the stage-2 aligner, and the faces stage's records."""
from __future__ import annotations

import numpy as np
import pytest
from skimage import data as skimage_data

from oldphoto_jax.data import ArrayPhotos, TrainingPhotos, TrainingRecords, batch_iterator
from oldphoto_jax.data.face_bank import align_faces


@pytest.fixture(scope="module")
def astronaut_faces():
    pytest.importorskip("dlib", reason="face alignment needs dlib-bin")
    from oldphoto_jax.pipeline import faces

    try:
        faces.landmark_model_path()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    return align_faces([ArrayPhotos([skimage_data.astronaut()], ["astronaut"])], size=64)


def test_astronaut_gives_one_aligned_face(astronaut_faces):
    assert len(astronaut_faces) == 1 and astronaut_faces.name(0) == "astronaut#0"
    face = astronaut_faces[0]
    assert face.shape == (64, 64, 3) and face.dtype == np.uint8
    assert face.std() > 20  # a real crop, not the black outside of the photo


def test_face_pairs_are_degraded_and_clean_faces(astronaut_faces, config_for):
    photos = TrainingPhotos(faces=astronaut_faces)
    config = config_for("faces", crop_size=48)
    record = TrainingRecords(config, photos)(0)
    assert set(record) == {"degraded", "clean", "grayscale"}
    batch = next(batch_iterator(config, photos))
    assert batch["degraded"].shape == (4, 48, 48, 3) and batch["clean"].shape == (4, 48, 48, 3)
    assert batch["clean"].min() >= -1 and batch["degraded"].max() <= 1
    assert any(not np.array_equal(d, c) for d, c in zip(batch["degraded"], batch["clean"]))


def test_photos_without_faces_are_an_error():
    pytest.importorskip("dlib", reason="face alignment needs dlib-bin")
    flat = ArrayPhotos([np.full((80, 80, 3), 128, np.uint8)])
    with pytest.raises(ValueError, match="no faces"):
        align_faces([flat], size=64)
