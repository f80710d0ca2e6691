"""The torch-compatible primitives against PyTorch itself (installed for the tests)."""
import jax.numpy as jnp
import numpy as np
import pytest

from oldphoto_jax import layers

torch = pytest.importorskip("torch")
F = torch.nn.functional

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 5, 13, 17)).astype(np.float32)  # NCHW, as torch sees it
XJ = jnp.asarray(X.transpose(0, 2, 3, 1))


def _nhwc(t):
    return t.detach().numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize("size", [(6, 9), (26, 34), (7, 17), (32, 40), (3, 4), (13, 17), (1, 1)])
def test_bilinear_matches_interpolate_without_antialias(size):
    expected = _nhwc(F.interpolate(torch.tensor(X), size, mode="bilinear"))
    np.testing.assert_allclose(layers.resize_bilinear(XJ, size), expected, atol=1e-6, rtol=0)


def test_bilinear_scale_factor_matches_upsample():
    expected = _nhwc(torch.nn.Upsample(scale_factor=2, mode="bilinear")(torch.tensor(X)))
    np.testing.assert_allclose(layers.resize_bilinear(XJ, (26, 34), scale_factor=2), expected,
                               atol=1e-6, rtol=0)


def test_bilinear_downsampling_does_not_antialias():
    # An exact 2x down-factor is plain 2x2 average pooling (reference section 0).
    x = RNG.standard_normal((1, 8, 8, 3)).astype(np.float32)
    pooled = x.reshape(1, 4, 2, 4, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(layers.resize_bilinear(jnp.asarray(x), (4, 4)), pooled, atol=1e-6)


@pytest.mark.parametrize("size", [(6, 9), (26, 34), (7, 17), (32, 40), (3, 4), (13, 17)])
def test_nearest_matches_legacy_nearest(size):
    expected = _nhwc(F.interpolate(torch.tensor(X), size, mode="nearest"))
    np.testing.assert_array_equal(layers.resize_nearest(XJ, size), expected)


def test_upsample_nearest2x():
    expected = _nhwc(torch.nn.Upsample(scale_factor=2)(torch.tensor(X)))
    np.testing.assert_array_equal(layers.upsample_nearest2x(XJ), expected)


def test_instance_norm_and_reflect_pad():
    np.testing.assert_allclose(layers.instance_norm(XJ),
                               _nhwc(torch.nn.InstanceNorm2d(5)(torch.tensor(X))), atol=2e-6)
    np.testing.assert_array_equal(layers.reflect_pad(XJ, 3),
                                  _nhwc(torch.nn.ReflectionPad2d(3)(torch.tensor(X))))
    np.testing.assert_array_equal(layers.reflect_pad(XJ, (1, 2, 3, 0)),
                                  _nhwc(torch.nn.ReflectionPad2d((3, 0, 1, 2))(torch.tensor(X))))


@pytest.mark.parametrize("stride,padding,output_padding", [(2, 1, 0), (2, 1, 1), (1, 0, 0)])
def test_conv_transpose_matches_torch(stride, padding, output_padding):
    torch.manual_seed(0)
    ct = torch.nn.ConvTranspose2d(5, 4, 4, stride, padding, output_padding=output_padding)
    w = ct.weight.detach().numpy()
    params = {"kernel": jnp.asarray(w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1).copy()),
              "bias": jnp.asarray(ct.bias.detach().numpy())}
    module = layers.ConvTranspose2d(4, 4, stride, padding, output_padding)
    ours = module.apply({"params": params}, XJ)
    np.testing.assert_allclose(ours, _nhwc(ct(torch.tensor(X))), atol=2e-6)


@pytest.mark.parametrize("kernel,stride,padding,mode", [(4, 2, 1, "zeros"), (3, 1, 1, "reflect"),
                                                        (7, 1, 3, "reflect"), (1, 1, 0, "zeros")])
def test_conv_matches_torch(kernel, stride, padding, mode):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(5, 4, kernel, stride, padding, padding_mode=mode)
    params = {"kernel": jnp.asarray(conv.weight.detach().numpy().transpose(2, 3, 1, 0)),
              "bias": jnp.asarray(conv.bias.detach().numpy())}
    module = layers.Conv2d(4, kernel, stride, padding, pad_mode=mode)
    ours = module.apply({"params": params}, XJ)
    np.testing.assert_allclose(ours, _nhwc(conv(torch.tensor(X))), atol=2e-6)


def test_normalize_helpers():
    t = torch.tensor(X)
    np.testing.assert_allclose(layers.l1_normalize(XJ, axis=-1),
                               _nhwc(F.normalize(t, p=1, dim=1)), atol=1e-7)
    np.testing.assert_allclose(layers.l2_normalize(XJ, axis=-1),
                               _nhwc(F.normalize(t, p=2, dim=1)), atol=1e-7)
    zeros = jnp.zeros((1, 2, 2, 3))
    assert not np.any(np.isnan(layers.l1_normalize(zeros, axis=-1)))


@pytest.mark.parametrize("kwargs, k", [
    (dict(), 3), (dict(padding=1), 3), (dict(stride=2, padding=1), 4),
    (dict(padding=2, dilation=2), 3), (dict(lhs_dilation=2, padding_hw=((2, 3), (2, 3))), 4)])
def test_im2col_kernel_gradient_equals_xla(kwargs, k):
    import jax

    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((2, 9, 11, 3)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((k, k, 3, 5)), jnp.float32)

    def loss(x, w):
        return jnp.sum(jnp.sin(layers.conv2d(x, w, **kwargs)))

    assert layers.conv_weight_gradient() == "xla"
    y0, (gx0, gw0) = layers.conv2d(x, w, **kwargs), jax.grad(loss, argnums=(0, 1))(x, w)
    with layers.using_conv_weight_gradient("im2col"):
        y1, (gx1, gw1) = layers.conv2d(x, w, **kwargs), jax.grad(loss, argnums=(0, 1))(x, w)
    assert layers.conv_weight_gradient() == "xla"
    np.testing.assert_allclose(y1, y0, atol=1e-5)
    np.testing.assert_allclose(gx1, gx0, atol=1e-5)
    np.testing.assert_allclose(gw1, gw0, rtol=1e-5, atol=1e-4 * float(jnp.max(jnp.abs(gw0))))


def test_unknown_weight_gradient_mode_is_refused():
    with pytest.raises(ValueError, match="im2col"):
        layers.set_conv_weight_gradient("fft")


@pytest.mark.parametrize("k,stride,lo,hi,size,phases", [
    (4, 2, 2, 2, (13, 17), True),   # the VAE decoder's ConvTranspose2d(k=4, s=2, p=1)
    (3, 2, 1, 2, (13, 17), True),   # k=3, p=1, output_padding=1
    (4, 2, 1, 1, (6, 9), True),     # p=2: phases with a crop
    (2, 2, 1, 1, (5, 4), True),     # k=2: one tap per phase
    (5, 3, 3, 3, (7, 5), True),     # stride 3
    (4, 2, 2, 3, (13, 17), False),  # odd output size: the dilated fallback
    (3, 1, 1, 1, (13, 17), False),  # stride 1: a plain convolution
])
def test_conv_transpose_phases_equal_the_dilated_convolution(k, stride, lo, hi, size, phases):
    """The phase decomposition multiplies the same pairs as the lhs-dilated convolution, summed
    in another order: the difference is bounded by float32 summation error,
    2 * gamma_n * (|x| conv |w|) with gamma_n = n eps / (1 - n eps), n = the number of terms."""
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((2, *size, 6)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((k, k, 6, 5)), jnp.float32)
    padding = ((lo, hi), (lo, hi))

    def dilated(a, b):
        return layers.conv2d(a, b, lhs_dilation=stride, padding_hw=padding)

    ours, reference = layers.conv_transpose(x, w, stride, padding), dilated(x, w)
    assert ours.shape == reference.shape
    import jax

    traced = str(jax.make_jaxpr(lambda a: layers.conv_transpose(a, w, stride, padding))(x))
    assert (f"lhs_dilation=({stride}, {stride})" not in traced) == phases
    n = k * k * 6
    gamma = n * np.finfo(np.float32).eps / (1 - n * np.finfo(np.float32).eps)
    bound = 2 * gamma * np.asarray(dilated(jnp.abs(x), jnp.abs(w)))
    assert np.all(np.abs(np.asarray(ours) - np.asarray(reference)) <= bound)
