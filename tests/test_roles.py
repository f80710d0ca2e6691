"""The one role table: everything that names network roles derives from ``oldphoto_jax.roles``."""
from __future__ import annotations

from oldphoto_jax import roles
from oldphoto_jax.convert.official import OFFICIAL_FILES
from oldphoto_jax.models.registry import MODELS
from oldphoto_jax.testing.random_model import OFFICIAL_NETWORKS, TINY_NETWORKS


def test_modes_and_training_exports():
    assert dict(roles.MODE_ROLES) == {
        "quality": ("vae_a", "mapping_quality", "vae_b_quality"),
        "scratch": ("vae_a", "mapping_scratch", "vae_b_scratch"),
        "scratch_hr": ("vae_a", "mapping_hr", "vae_b_scratch"),
    }
    assert roles.VAE_B_ROLES == ("vae_b_quality", "vae_b_scratch")
    assert dict(roles.MAPPING_ROLES) == {"quality": "mapping_quality",
                                         "scratch": "mapping_scratch", "hr": "mapping_hr"}
    assert dict(roles.MAPPING_VAE_B) == {"quality": "vae_b_quality", "scratch": "vae_b_scratch",
                                         "hr": "vae_b_scratch"}


def test_every_table_covers_every_role():
    classes = {cls.__name__ for cls in MODELS.values()}
    assert all(role.network in classes for role in roles.ROLES.values())
    assert [spec.role for spec in OFFICIAL_FILES] == list(roles.ROLES)
    assert list(TINY_NETWORKS) == list(OFFICIAL_NETWORKS) == list(roles.ROLES)
    assert all(TINY_NETWORKS[name][0] == role.network for name, role in roles.ROLES.items())
