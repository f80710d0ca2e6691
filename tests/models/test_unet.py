"""ScratchUNet and its converter on a small configuration, cross-checked against a PyTorch build
of the official structure (reference section 2.2) made here from torch.nn pieces."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from oldphoto_jax.convert.common import ConversionError
from oldphoto_jax.convert.converters import convert_state_dict
from oldphoto_jax.models.registry import build_network, network_args
from oldphoto_jax.layers import reflect_pad
from oldphoto_jax.models.unet import BatchNorm2d, ScratchUNet, blur_downsample, blur_filter_3x3

torch = pytest.importorskip("torch")
tnn = torch.nn
F = torch.nn.functional
torch.set_num_threads(1)

SMALL = dict(in_channels=1, out_channels=1, depth=2, wf=2, conv_num=2)


# ---------------------------------------------------------------------------------------------
# A PyTorch UNet with the official structure and state-dict names, at any width/depth.

class _BlurDown(tnn.Module):
    def __init__(self, c):
        super().__init__()
        a = torch.tensor([1.0, 2.0, 1.0])
        filt = (a[:, None] * a[None, :] / 16.0)[None, None]
        self.register_buffer("filt", filt.repeat(c, 1, 1, 1))
        self.pad = tnn.ReflectionPad2d(1)

    def forward(self, x):
        return F.conv2d(self.pad(x), self.filt, stride=2, groups=x.shape[1])


class _ConvBlock(tnn.Module):
    def __init__(self, conv_num, cin, cout):
        super().__init__()
        layers = []
        for k in range(conv_num):
            layers += [tnn.ReflectionPad2d(1), tnn.Conv2d(cin if k == 0 else cout, cout, 3),
                       tnn.BatchNorm2d(cout), tnn.LeakyReLU(0.2)]
        self.block = tnn.Sequential(*layers)

    def forward(self, x):
        return self.block(x)


class _Up(tnn.Module):
    def __init__(self, conv_num, cin, cout):
        super().__init__()
        self.up = tnn.Sequential(tnn.Upsample(mode="bilinear", scale_factor=2, align_corners=False),
                                 tnn.ReflectionPad2d(1), tnn.Conv2d(cin, cout, 3))
        self.conv_block = _ConvBlock(conv_num, cin, cout)

    def forward(self, x, skip):
        return self.conv_block(torch.cat([self.up(x), skip], 1))


class TorchUNet(tnn.Module):
    def __init__(self, in_channels, out_channels, depth, wf, conv_num):
        super().__init__()
        c = 2 ** wf
        self.first = tnn.Sequential(tnn.ReflectionPad2d(3), tnn.Conv2d(in_channels, c, 7),
                                    tnn.LeakyReLU(0.2))
        self.down_sample = tnn.ModuleList()
        self.down_path = tnn.ModuleList()
        for i in range(depth):
            c = 2 ** (wf + i)
            self.down_sample.append(tnn.Sequential(
                tnn.ReflectionPad2d(1), tnn.Conv2d(c, c, 3), tnn.BatchNorm2d(c),
                tnn.LeakyReLU(0.2), _BlurDown(c)))
            self.down_path.append(_ConvBlock(conv_num, c, 2 * c))
        self.up_path = tnn.ModuleList(
            [_Up(conv_num, 2 ** (wf + i + 1), 2 ** (wf + i)) for i in reversed(range(depth))])
        self.last = tnn.Sequential(tnn.ReflectionPad2d(1), tnn.Conv2d(2 ** wf, out_channels, 3))

    def forward(self, x):
        x = self.first(x)
        skips = []
        for down_sample, down in zip(self.down_sample, self.down_path):
            skips.append(x)
            x = down(down_sample(x))
        for up, skip in zip(self.up_path, reversed(skips)):
            x = up(x, skip)
        return self.last(x)


def _randomised_torch_unet(seed=0, **config):
    torch.manual_seed(seed)
    net = TorchUNet(**config)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("running_mean") or name.endswith(".bias"):
                t.copy_(torch.from_numpy(rng.normal(0, 0.1, t.shape).astype(np.float32)))
            elif name.endswith("running_var"):
                t.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, t.shape).astype(np.float32)))
            elif t.ndim == 1 and name.endswith("weight"):
                t.copy_(torch.from_numpy(rng.uniform(0.8, 1.2, t.shape).astype(np.float32)))
    return net.eval()


def _numpy_state_dict(net):
    return {k: v.numpy() for k, v in net.state_dict().items()}


@pytest.fixture(scope="module")
def small():
    net = _randomised_torch_unet(**SMALL)
    model = ScratchUNet(**SMALL)
    variables, warnings = convert_state_dict(model, _numpy_state_dict(net), "small_unet.pt")
    return net, model, variables, warnings


# ---------------------------------------------------------------------------------------------

def test_matches_torch_build_of_official_structure(small):
    net, model, variables, warnings = small
    assert warnings == []
    x = np.random.default_rng(1).uniform(-1, 1, (2, 1, 8, 12)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy().transpose(0, 2, 3, 1)
    ours = jax.jit(model.apply)(variables, x.transpose(0, 2, 3, 1))
    assert ours.shape == (2, 8, 12, 1)
    np.testing.assert_allclose(np.asarray(ours), expected, atol=2e-5, rtol=0)


def test_converted_tree_matches_init_tree(small):
    _, model, variables, _ = small
    # eval_shape: random initialisation compiles slowly on XLA:CPU and only shapes matter here.
    init = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
    assert jax.tree.map(np.shape, variables) == jax.tree.map(np.shape, init)
    # Layout: first.1.weight [out, in, kh, kw] -> kernel [kh, kw, in, out]
    net = small[0]
    w = net.state_dict()["first.1.weight"].numpy()
    np.testing.assert_array_equal(variables["params"]["first"]["kernel"][2, 5, 0, 3], w[3, 0, 2, 5])
    rv = net.state_dict()["up_path.1.conv_block.block.6.running_var"].numpy()
    np.testing.assert_array_equal(
        variables["batch_stats"]["up_path_1"]["conv_block"]["norm_1"]["var"], rv)


def test_registered_and_rebuildable():
    model = build_network("ScratchUNet", network_args(ScratchUNet(**SMALL)))
    assert model == ScratchUNet(**SMALL)
    assert network_args(ScratchUNet())["wf"] == 6


def test_refuses_sides_not_multiple_of_2_pow_depth():
    model = ScratchUNet(wf=1, depth=4)
    with pytest.raises(ValueError, match="multiples of 16, got 24x32"):
        jax.eval_shape(lambda x: model.init(jax.random.key(0), x), jnp.zeros((1, 24, 32, 1)))
    # 32x48 is fine
    jax.eval_shape(lambda x: model.init(jax.random.key(0), x), jnp.zeros((1, 32, 48, 1)))


def test_batch_norm_eval_formula_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    variables = {"params": {"scale": rng.uniform(0.5, 2, 5).astype(np.float32),
                            "bias": rng.normal(size=5).astype(np.float32)},
                 "batch_stats": {"mean": rng.normal(size=5).astype(np.float32),
                                 "var": rng.uniform(0.5, 2, 5).astype(np.float32)}}
    ours = jax.jit(BatchNorm2d().apply)(variables, x)
    p, s = variables["params"], variables["batch_stats"]
    expected = (x.astype(np.float64) - s["mean"]) / np.sqrt(s["var"].astype(np.float64) + 1e-5) \
        * p["scale"] + p["bias"]
    np.testing.assert_allclose(np.asarray(ours), expected, atol=1e-6, rtol=0)


def test_batch_norm_training_step_matches_torch():
    """Batch statistics for the output; running stats updated with momentum 0.1 and the
    unbiased variance, as nn.BatchNorm2d does (and unlike Flax's nn.BatchNorm)."""
    rng = np.random.default_rng(1)
    x = rng.normal(1.0, 2.0, (2, 5, 3, 4)).astype(np.float32)  # NCHW, n = 2*5*3 per channel
    bn = tnn.BatchNorm2d(4).train()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5, 1.5]))
        bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
        bn.running_mean.copy_(torch.tensor([0.5, -0.5, 0.0, 1.0]))
        bn.running_var.copy_(torch.tensor([2.0, 1.0, 0.5, 1.5]))
        variables = {"params": {"scale": bn.weight.numpy().copy(), "bias": bn.bias.numpy().copy()},
                     "batch_stats": {"mean": bn.running_mean.numpy().copy(),
                                     "var": bn.running_var.numpy().copy()}}
        expected = bn(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
    ours, updated = jax.jit(lambda v, x: BatchNorm2d().apply(v, x, train=True,
                                                             mutable=["batch_stats"]))(variables, x)
    np.testing.assert_allclose(np.asarray(ours), expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(updated["batch_stats"]["mean"], bn.running_mean.numpy(), atol=1e-6)
    np.testing.assert_allclose(updated["batch_stats"]["var"], bn.running_var.numpy(), atol=1e-6)


@pytest.mark.parametrize("h,w", [(6, 8), (7, 5), (3, 2)])
def test_blur_downsample_matches_average_of_binomial_window(h, w):
    # Odd sides included: the official output side is (side - 1) // 2 + 1.
    x = np.arange(2 * h * w * 3, dtype=np.float32).reshape(2, h, w, 3) ** 1.5
    ours = np.asarray(blur_downsample(jnp.asarray(x)))
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect").astype(np.float64)
    k = np.outer([1, 2, 1], [1, 2, 1]) / 16.0
    out_h, out_w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    expected = np.zeros((2, out_h, out_w, 3))
    for i in range(out_h):
        for j in range(out_w):
            win = padded[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3, :]
            expected[:, i, j, :] = np.einsum("nhwc,hw->nc", win, k)
    np.testing.assert_allclose(ours, expected, rtol=1e-6)


def test_blur_downsample_equals_the_official_depthwise_convolution_and_its_gradient():
    # The official layer is a depthwise stride-2 convolution; ours sums strided rows/columns.
    x = jax.random.normal(jax.random.PRNGKey(0), (1, 9, 12, 4))
    kernel = jnp.broadcast_to(jnp.asarray(blur_filter_3x3())[:, :, None, None], (3, 3, 1, 4))

    def depthwise(v):
        return jax.lax.conv_general_dilated(
            reflect_pad(v, 1), kernel, (2, 2), "VALID", feature_group_count=4,
            dimension_numbers=("NHWC", "HWIO", "NHWC"), precision="highest")

    np.testing.assert_allclose(blur_downsample(x), depthwise(x), atol=1e-6)

    def weighted_sum(f):  # every output pixel weighted differently
        def loss(v):
            y = f(v)
            return jnp.sum(y * jnp.arange(y.size).reshape(y.shape))
        return loss

    np.testing.assert_allclose(jax.grad(weighted_sum(blur_downsample))(x),
                               jax.grad(weighted_sum(depthwise))(x), rtol=1e-5, atol=1e-4)


def test_converter_errors_name_file_and_key(small):
    net, model, _, _ = small
    sd = _numpy_state_dict(net)

    bad = dict(sd)
    bad["down_sample.1.4.filt"] = bad["down_sample.1.4.filt"] * 1.01
    with pytest.raises(ConversionError, match=r"FT_Epoch_latest\.pt.*'down_sample\.1\.4\.filt'"):
        convert_state_dict(model, bad, "FT_Epoch_latest.pt")

    missing = {k: v for k, v in sd.items() if k != "up_path.0.up.2.bias"}
    with pytest.raises(ConversionError, match=r"FT_Epoch_latest\.pt.*'up_path\.0\.up\.2\.bias'"):
        convert_state_dict(model, missing, "FT_Epoch_latest.pt")

    misshapen = dict(sd)
    misshapen["last.1.weight"] = np.zeros((1, 4, 5, 5), np.float32)
    with pytest.raises(ConversionError, match=r"'last\.1\.weight' has shape \[1, 4, 5, 5\]"):
        convert_state_dict(model, misshapen, "FT_Epoch_latest.pt")

    extra = dict(sd)
    extra["module.something_else"] = np.zeros(3, np.float32)
    _, warnings = convert_state_dict(model, extra, "FT_Epoch_latest.pt")
    assert warnings == ["FT_Epoch_latest.pt: ignoring unused key 'module.something_else'"]


def test_training_mode_matches_torch(small):
    """train=True: batch statistics everywhere, running stats updated like PyTorch's."""
    _, model, variables, _ = small
    net = _randomised_torch_unet(**SMALL).train()  # same weights as the fixture's, train mode
    x = np.random.default_rng(2).uniform(-1, 1, (2, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy().transpose(0, 2, 3, 1)
    step = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))
    ours, updated = step(variables, x.transpose(0, 2, 3, 1))
    np.testing.assert_allclose(np.asarray(ours), expected, atol=5e-5, rtol=0)
    sd = net.state_dict()
    stats = updated["batch_stats"]
    np.testing.assert_allclose(stats["down_path_1"]["norm_1"]["var"],
                               sd["down_path.1.block.6.running_var"].numpy(), atol=1e-5)
    np.testing.assert_allclose(stats["up_path_0"]["conv_block"]["norm_0"]["mean"],
                               sd["up_path.0.conv_block.block.2.running_mean"].numpy(), atol=1e-5)
