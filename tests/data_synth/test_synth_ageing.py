"""Global ageing effects: each op changes the image in the way its name says."""
from __future__ import annotations

import numpy as np

from data_synth import ageing


def saturation(image: np.ndarray) -> float:
    values = image.astype(np.float64)
    return float(np.mean(values.max(axis=2) - values.min(axis=2)))


def test_fade_lowers_contrast_and_saturation(photo):
    out = ageing.fade(photo, amount=0.3, desaturation=0.5, paper=(240, 230, 210))
    assert out.dtype == np.uint8 and out.shape == photo.shape
    assert out.astype(np.float64).std() < 0.8 * photo.astype(np.float64).std()
    assert saturation(out) < 0.8 * saturation(photo)
    assert out.astype(np.float64).mean() > photo.astype(np.float64).mean()  # towards light paper


def test_sepia_changes_channel_balance(grey_image):
    out = ageing.sepia(grey_image, strength=1.0, tint=(1.0, 0.97, 0.85)).astype(np.int64)
    r, g, b = out[..., 0].mean(), out[..., 1].mean(), out[..., 2].mean()
    assert r > g > b and r - b > 30
    untinted = ageing.sepia(grey_image, strength=0.0, tint=(1.0, 1.0, 1.0))
    np.testing.assert_array_equal(untinted, grey_image)


def test_contrast_loss_compresses_the_range():
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    out = ageing.contrast_loss(ramp, black=0.1, white=0.8)
    assert out.min() == round(0.1 * 255) and out.max() == round(0.8 * 255)
    assert np.all(np.diff(out[0, :, 0].astype(np.int64)) >= 0)  # monotone


def test_vignette_darkens_corners_more_than_centre(grey_image):
    out = ageing.vignette(grey_image, strength=0.4, power=2.0, centre=(0.5, 0.5)).astype(np.int64)
    assert out[32, 32, 0] >= 126
    assert out[0, 0, 0] < 0.7 * 128 and out[-1, -1, 0] < 0.7 * 128


def test_paper_texture_adds_smooth_multiplicative_variation(grey_image):
    out = ageing.paper_texture(grey_image, np.random.default_rng(0), strength=0.06, cell=32.0)
    values = out[..., 0].astype(np.float64)
    assert 2.0 < values.std() < 15.0
    assert np.all(out[..., 0] == out[..., 1])  # same factor on every channel: no colour noise
    black = np.zeros_like(grey_image)
    textured_black = ageing.paper_texture(black, np.random.default_rng(0), 0.06, 32.0)
    np.testing.assert_array_equal(textured_black, black)


def test_film_grain_std_follows_amount(grey_image):
    rng = np.random.default_rng(0)
    weak = ageing.film_grain(grey_image, rng, amount=0.01, size=0.8).astype(np.float64)
    strong = ageing.film_grain(grey_image, rng, amount=0.05, size=0.8).astype(np.float64)
    assert abs(strong.std() - 0.05 * 255) < 1.5
    assert weak.std() < 0.4 * strong.std()
    assert np.all(strong[..., 0] == strong[..., 2])  # monochrome grain


def test_halftone_creates_a_dot_screen_at_the_period(grey_image):
    image = np.tile(grey_image, (2, 2, 1))  # 128x128
    out = ageing.halftone(image, period=4.0, angle=0.0, strength=1.0, softness=0.1)
    channel = out[..., 2].astype(np.float64)  # blue layer, screen at 45 degrees
    assert channel.std() > 20
    spectrum = np.abs(np.fft.fft2(channel - channel.mean()))
    fy, fx = np.unravel_index(np.argmax(spectrum), spectrum.shape)
    freq = np.hypot(min(fy, 128 - fy), min(fx, 128 - fx)) / 128
    assert abs(freq - 0.25) < 0.05  # dominant frequency 1/period
    untouched = ageing.halftone(image, period=4.0, angle=0.0, strength=0.0)
    np.testing.assert_array_equal(untouched, image)
