"""Shared inputs of the evaluation tests: smooth synthetic photos, and a random-weight scratch
model beside a folder of clean photos (the evaluation's two inputs)."""
import pytest
from PIL import Image

from oldphoto_jax.testing.random_model import write_random_model
from oldphoto_jax.testing.synthetic_photos import smooth_photo as make_smooth_photo

SCRATCH_ROLES = ("vae_a", "mapping_scratch", "vae_b_scratch", "scratch_detector")


@pytest.fixture
def smooth_photo():
    return make_smooth_photo


@pytest.fixture
def eval_inputs(tmp_path):
    """``eval_inputs({name: rgb}[, roles])`` -> (model directory, clean folder) under
    ``tmp_path``; the model holds the scratch-mode roles unless ``roles`` says otherwise."""
    def make(photos, roles=SCRATCH_ROLES):
        model_dir = tmp_path / "model"
        write_random_model(model_dir, roles=roles)
        clean = tmp_path / "clean"
        clean.mkdir()
        for name, rgb in photos.items():
            Image.fromarray(rgb).save(clean / name)
        return model_dir, clean
    return make
