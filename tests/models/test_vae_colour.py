"""``vae_colour``: the VAE whose latent code carries each photo's per-channel mean and std."""
import jax
import numpy as np
import pytest

from oldphoto_jax import model_files
from oldphoto_jax.models.registry import build_model
from oldphoto_jax.pipeline import stage_runner
from oldphoto_jax.testing.random_model import random_variables

WIDTHS = dict(ngf=8, max_channels=8, n_down_convs=2, n_res_blocks=1, kernel_size=4)


def _model():
    return build_model({"name": "vae_colour", **WIDTHS})


def _images(seed=0, shape=(2, 32, 32, 3)):
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:shape[1], 0:shape[2]] / shape[1]
    base = np.stack([np.sin(4 * xs), np.cos(3 * ys), xs * ys], -1)[None]
    return (0.4 * base + 0.1 * rng.standard_normal(shape)).astype(np.float32)


@pytest.fixture(scope="module")
def colour_vae():
    module = _model()
    return module, random_variables(module, [(1, 32, 32, 3)], seed=3)


def test_latent_has_six_statistics_channels_and_the_vae_parameters(colour_vae):
    module, variables = colour_vae
    plain = build_model({"name": "vae", **WIDTHS})
    assert module.latent_channels == plain.latent_channels + 6 == 14
    shapes = lambda m: jax.tree.map(np.shape, jax.eval_shape(
        m.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 32, 32, 3), np.float32)))
    assert shapes(module) == shapes(plain)  # the statistics add no parameters
    z = module.apply(variables, _images(), method="encode")
    assert z.shape == (2, 8, 8, 14)


def test_content_is_colour_free_and_statistics_are_the_photo_colour(colour_vae):
    module, variables = colour_vae
    x = _images()
    gain, offset = np.array([0.5, 1.2, 0.8], np.float32), np.array([0.2, -0.1, 0.05], np.float32)
    z = np.asarray(module.apply(variables, x, method="encode"))
    z_cast = np.asarray(module.apply(variables, x * gain + offset, method="encode"))
    # The content channels do not see a per-channel affine colour change ...
    np.testing.assert_allclose(z_cast[..., :8], z[..., :8], atol=2e-4)
    # ... the statistics channels are exactly the photo's mean and std (times stats_scale).
    mean, std = x.mean(axis=(1, 2)), x.std(axis=(1, 2))
    np.testing.assert_allclose(z[:, 0, 0, 8:11] / 4.0, mean, atol=1e-6)
    np.testing.assert_allclose(z[:, 0, 0, 11:] / 4.0, std, atol=1e-6)
    np.testing.assert_allclose(z_cast[:, 0, 0, 8:11] / 4.0, mean * gain + offset, atol=1e-6)


def test_decoder_renders_the_colour_its_latent_holds(colour_vae):
    module, variables = colour_vae
    z = np.asarray(module.apply(variables, _images(), method="encode"))
    shift = np.array([0.1, -0.05, 0.0], np.float32)
    moved = z.copy()
    moved[..., 8:11] += 4.0 * shift  # a different mean colour in the latent
    y = np.asarray(module.apply(variables, z, method="decode"))
    y_moved = np.asarray(module.apply(variables, moved, method="decode"))
    unclipped = (np.abs(y) < 0.999) & (np.abs(y_moved) < 0.999)
    diff = (y_moved - y)[unclipped.all(-1)]
    np.testing.assert_allclose(diff, np.broadcast_to(shift, diff.shape), atol=1e-5)
    assert np.all(np.abs(y) <= 1.0)


def test_restandardised_decoder_renders_exactly_the_statistics_it_holds(colour_vae):
    """restandardise: the image's per-channel mean and std are the latent's statistics
    whatever the content channels hold (here: content from another photo)."""
    module, variables = colour_vae
    restandardising = module.clone(restandardise=True)
    z = np.asarray(module.apply(variables, _images(0), method="encode"))
    other = np.asarray(module.apply(variables, _images(1), method="encode"))
    mixed = np.concatenate([other[..., :8], z[..., 8:]], axis=-1)
    stats = z[:, 0, 0, 8:] / 4.0
    stats[:, 3:] = np.maximum(stats[:, 3:], module.min_std)
    y = np.asarray(restandardising.apply(variables, mixed, method="decode"))
    assert np.abs(y).max() < 1.0  # no clipping in this example, so the statistics are exact
    np.testing.assert_allclose(y.mean(axis=(1, 2)), stats[:, :3], atol=1e-5)
    np.testing.assert_allclose(y.std(axis=(1, 2)), stats[:, 3:], atol=1e-5)
    plain = np.asarray(module.apply(variables, mixed, method="decode"))
    assert np.abs(plain.mean(axis=(1, 2)) - stats[:, :3]).max() > 1e-3  # without: not exact


def test_round_trip_through_a_model_directory(colour_vae, tmp_path):
    module, variables = colour_vae
    model_files.save_model(tmp_path / "m", {"vae_b_quality": (module, variables)})
    loaded, loaded_vars = model_files.load_model(tmp_path / "m").network("vae_b_quality")
    assert loaded == module and type(loaded).__name__ == "VAEColour"
    x = _images()
    np.testing.assert_array_equal(np.asarray(loaded.apply(loaded_vars, x)),
                                  np.asarray(module.apply(variables, x)))


def test_the_pipeline_restores_with_colour_vaes(colour_vae, tmp_path):
    """A model of vae_colour VAEs and a mapping over their 14-channel latents runs in the
    pipeline like any model (quality mode)."""
    module, variables = colour_vae
    mapping = build_model({"name": "mapping", "nc": 14, "mc": 16, "n_up": 4, "n_blocks": 1})
    mapping_vars = random_variables(mapping, [(1, 4, 4, 14)], seed=4)
    model_files.save_model(tmp_path / "m", {"vae_a": (module, variables),
                                             "vae_b_quality": (module, variables),
                                             "mapping_quality": (mapping, mapping_vars)})
    from PIL import Image

    photos = tmp_path / "in"
    photos.mkdir()
    rgb = ((_images(1, (1, 48, 40, 3))[0] + 1) * 127.5).clip(0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(photos / "p.png")
    restorer = stage_runner.StageRunner(model_files.load_model(tmp_path / "m"),
                                     stage_runner.Options(faces=False), log=lambda _: None)
    summary = restorer.run(photos, tmp_path / "out")
    assert summary.failed == [] and summary.restored == ["p.png"]
    assert (tmp_path / "out" / stage_runner.FINAL / "p.png").is_file()
