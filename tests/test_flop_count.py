"""FLOPs counted on the jaxpr: products and convolutions, loops times their length."""
import jax
import jax.numpy as jnp
import pytest

from oldphoto_jax import flop_count, winograd


def _conv(x, w, padding="SAME"):
    return jax.lax.conv_general_dilated(x, w, (1, 1), padding,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def test_a_convolution_counts_every_tap_of_every_output():
    x, w = jnp.zeros((2, 12, 10, 6)), jnp.zeros((3, 3, 6, 5))
    assert flop_count.function_flops(_conv, x, w) == 2 * (2 * 12 * 10 * 5) * 6 * 9
    assert flop_count.function_flops(lambda x, w: _conv(x, w, "VALID"), x, w) == (
        2 * (2 * 10 * 8 * 5) * 6 * 9)


def test_a_grouped_convolution_counts_its_groups_input_channels():
    def depthwise(x, w):
        return jax.lax.conv_general_dilated(x, w, (2, 2), "SAME", feature_group_count=4,
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))
    assert flop_count.function_flops(depthwise, jnp.zeros((1, 8, 8, 4)),
                                     jnp.zeros((3, 3, 1, 4))) == 2 * (4 * 4 * 4) * 1 * 9


def test_products_inside_loops_count_once_per_iteration():
    a = jnp.ones((4, 6))

    def mapped(a):
        return jax.lax.map(lambda r: r @ a, jnp.ones((5, 3, 4)))

    assert flop_count.function_flops(mapped, a) == 5 * (2 * 3 * 6 * 4)
    assert flop_count.function_flops(jax.jit(mapped), a) == 5 * (2 * 3 * 6 * 4)  # inside pjit

    def branches(p, a):
        return jax.lax.cond(p, lambda: a @ a.T, lambda: jnp.zeros((4, 4)))

    assert flop_count.function_flops(branches, True, a) == 2 * 4 * 4 * 6


@pytest.mark.parametrize("band_tiles", [0, 4])
def test_winograd_layers_count_their_sixteen_transformed_products(band_tiles):
    x, w = jnp.zeros((1, 16, 16, 8)), jnp.zeros((3, 3, 8, 4))
    flops = flop_count.function_flops(
        lambda x, w: winograd.conv3x3(x, w, ((1, 1), (1, 1)), None, band_tiles), x, w)
    assert flops == 16 * (8 * 8) * 2 * 8 * 4  # 16 products over the 8x8 tiles, 8 -> 4 channels
