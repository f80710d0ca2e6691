"""Winograd F(2x2, 3x3) convolutions: the direct convolution's values and gradients, and where
``layers.conv2d`` uses them."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from oldphoto_jax import layers, winograd

RNG = np.random.default_rng(0)


def _direct(x, k, padding_hw):
    return jax.lax.conv_general_dilated(x, k, (1, 1), padding_hw,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("shape,padding_hw", [
    ((1, 8, 8, 4), ((1, 1), (1, 1))),      # even output
    ((2, 7, 9, 3), ((1, 1), (1, 1))),      # odd output sides: the last tile is cropped
    ((1, 10, 6, 5), ((0, 0), (0, 0))),     # pre-padded input (the reflection-padded layers)
    ((1, 5, 12, 2), ((2, 0), (0, 1))),     # uneven padding
    ((1, 3, 3, 1), ((0, 0), (0, 0))),      # one output pixel
])
@pytest.mark.parametrize("band_tiles", [0, 5])  # all tiles at once; bands of 1-2 tile rows
def test_values_equal_the_direct_convolution(shape, padding_hw, band_tiles):
    x = RNG.standard_normal(shape).astype(np.float32)
    k = RNG.standard_normal((3, 3, shape[-1], 6)).astype(np.float32)
    with jax.enable_x64():  # both in float64: the algebra is exact up to rounding
        expected = _direct(jnp.asarray(x, jnp.float64), jnp.asarray(k, jnp.float64), padding_hw)
        ours64 = jax.jit(winograd.conv3x3, static_argnums=(2, 3, 4))(
            jnp.asarray(x, jnp.float64), jnp.asarray(k, jnp.float64), padding_hw, None,
            band_tiles)
    assert ours64.shape == expected.shape
    np.testing.assert_allclose(ours64, expected, atol=1e-12, rtol=0)
    ours32 = jax.jit(winograd.conv3x3, static_argnums=(2, 3, 4))(
        jnp.asarray(x), jnp.asarray(k), padding_hw, None, band_tiles)
    assert ours32.dtype == jnp.float32
    np.testing.assert_allclose(ours32, expected, atol=2e-5, rtol=0)


def test_a_band_larger_than_the_image_computes_only_the_image():
    # 8 x 8 tiles with bands of 256: one band of the image's 8 tile rows, not of 32 (which
    # padded the input to 66 rows and made 16-px layers 4x slower).
    x = jax.ShapeDtypeStruct((1, 16, 16, 4), jnp.float32)
    k = jax.ShapeDtypeStruct((3, 3, 4, 4), jnp.float32)
    jaxpr = jax.make_jaxpr(lambda a, b: winograd.conv3x3(a, b, ((1, 1), (1, 1)), None, 256))(x, k)
    body = jaxpr.jaxpr.eqns[0].params["call_jaxpr"].jaxpr
    barrier = next(e for e in body.eqns if e.primitive.name == "optimization_barrier")
    assert barrier.outvars[0].aval.shape == (1, 18, 18, 4)  # the padded input the tiles read


def test_float32_error_stays_near_the_direct_convolutions():
    """A wide layer (64 -> 64 channels): float32 error against float64 within 4x XLA's."""
    x = RNG.standard_normal((1, 16, 16, 64)).astype(np.float32)
    k = (RNG.standard_normal((3, 3, 64, 64)) / 24).astype(np.float32)
    pad = ((1, 1), (1, 1))
    with jax.enable_x64():
        reference = np.asarray(_direct(jnp.asarray(x, jnp.float64),
                                       jnp.asarray(k, jnp.float64), pad))
    direct_error = np.abs(np.asarray(_direct(jnp.asarray(x), jnp.asarray(k), pad)) - reference)
    ours_error = np.abs(np.asarray(winograd.conv3x3(jnp.asarray(x), jnp.asarray(k), pad))
                        - reference)
    assert ours_error.max() <= 4 * direct_error.max() + 1e-7


def test_gradients_are_the_direct_convolutions():
    x = jnp.asarray(RNG.standard_normal((1, 6, 7, 3)).astype(np.float32))
    k = jnp.asarray(RNG.standard_normal((3, 3, 3, 4)).astype(np.float32))
    pad = ((1, 1), (1, 1))
    weights = jnp.asarray(RNG.standard_normal((1, 6, 7, 4)).astype(np.float32))
    ours = jax.grad(lambda a, b: jnp.sum(weights * winograd.conv3x3(a, b, pad)), (0, 1))(x, k)
    direct = jax.grad(lambda a, b: jnp.sum(weights * _direct(a, b, pad)), (0, 1))(x, k)
    for o, d in zip(ours, direct):
        np.testing.assert_array_equal(o, d)


def _has_convolution(fn, *args) -> bool:
    return "convolution" in jax.jit(fn).lower(*args).as_text()


SIDE = int(layers.WINOGRAD_MIN_PIXELS ** 0.5)


@pytest.mark.parametrize("algorithm,features,side,kernel_size,stride,uses", [
    ("auto", layers.WINOGRAD_MIN_FEATURES, SIDE, 3, 1, True),       # the tests' CPU backend
    ("auto", layers.WINOGRAD_MIN_FEATURES // 2, SIDE, 3, 1, False),  # too narrow to gain
    ("auto", layers.WINOGRAD_MIN_FEATURES, SIDE // 2, 3, 1, False),  # too small
    ("auto", layers.WINOGRAD_MIN_FEATURES, SIDE, 3, 2, False),       # strided
    ("auto", layers.WINOGRAD_MIN_FEATURES, SIDE, 4, 1, False),       # not 3x3
    ("direct", layers.WINOGRAD_MIN_FEATURES, SIDE, 3, 1, False),
    ("winograd", 2, 8, 3, 1, True),
])
def test_conv2d_chooses_the_algorithm(algorithm, features, side, kernel_size, stride, uses):
    x = jax.ShapeDtypeStruct((1, side, side, features), jnp.float32)
    k = jax.ShapeDtypeStruct((kernel_size, kernel_size, features, features), jnp.float32)
    with layers.using_conv_algorithm(algorithm):
        convolution = _has_convolution(
            lambda a, b: layers.conv2d(a, b, stride=stride, padding=1), x, k)
    assert convolution != uses


def test_module_outputs_agree_across_algorithms():
    """A reflection-padded Conv2d (as in every ResnetBlock) gives the same output either way."""
    module = layers.Conv2d(features=8, kernel_size=3, padding=1, pad_mode="reflect")
    x = jnp.asarray(RNG.standard_normal((1, 9, 11, 8)).astype(np.float32))
    variables = module.init(jax.random.PRNGKey(0), x)
    with layers.using_conv_algorithm("direct"):
        direct = module.apply(variables, x)
    with layers.using_conv_algorithm("winograd"):
        ours = module.apply(variables, x)
    np.testing.assert_allclose(ours, direct, atol=1e-5, rtol=0)


def test_unknown_algorithm_is_refused():
    with pytest.raises(ValueError, match="conv algorithm must be one of"):
        layers.set_conv_algorithm("fft")


def test_the_environment_chooses_the_algorithm_of_a_program():
    import os
    import subprocess
    import sys

    code = "from oldphoto_jax import layers; print(layers.conv_algorithm())"

    def run(value):
        env = dict(os.environ, **{layers.CONV_ALGORITHM_VARIABLE: value})
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=120)

    assert run("direct").stdout.strip() == "direct"
    assert run("").stdout.strip() == "auto"
    refused = run("fft")
    assert refused.returncode != 0 and "must be one of auto, direct, winograd" in refused.stderr
