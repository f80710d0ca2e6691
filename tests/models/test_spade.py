"""SPADEGenerator and its converter on a small configuration (ngf 4, load_size 64, nhidden 8),
cross-checked against a PyTorch build of the official structure (reference section 7.3) made here
from torch.nn pieces and torch.nn.utils.spectral_norm."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from oldphoto_jax.convert.common import ConversionError
from oldphoto_jax.convert.converters import convert_state_dict
from oldphoto_jax.models.registry import build_network, network_args
from oldphoto_jax.models.spade import SPADEGenerator
from oldphoto_jax.models.spectral import SpectralConv2d

torch = pytest.importorskip("torch")
tnn = torch.nn
F = torch.nn.functional
sn = torch.nn.utils.spectral_norm
torch.set_num_threads(1)

NGF, LOAD, NHIDDEN = 4, 64, 8


# ---------------------------------------------------------------------------------------------
# A PyTorch generator with the official structure and state-dict names.

class _Spade(tnn.Module):
    def __init__(self, c, nhidden):
        super().__init__()
        self.param_free_norm = tnn.BatchNorm2d(c, affine=False)
        self.mlp_shared = tnn.Sequential(tnn.Conv2d(3, nhidden, 3, padding=1), tnn.ReLU())
        self.mlp_gamma = tnn.Conv2d(nhidden, c, 3, padding=1)
        self.mlp_beta = tnn.Conv2d(nhidden, c, 3, padding=1)

    def forward(self, x, face):
        d = F.interpolate(face, size=x.shape[2:], mode="bilinear")
        actv = self.mlp_shared(d)
        return self.param_free_norm(x) * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class _Block(tnn.Module):
    def __init__(self, fin, fout, nhidden):
        super().__init__()
        fmiddle = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.conv_0 = sn(tnn.Conv2d(fin, fmiddle, 3, padding=1))
        self.conv_1 = sn(tnn.Conv2d(fmiddle, fout, 3, padding=1))
        if self.learned_shortcut:
            self.conv_s = sn(tnn.Conv2d(fin, fout, 1, bias=False))
            self.norm_s = _Spade(fin, nhidden)
        self.norm_0 = _Spade(fin, nhidden)
        self.norm_1 = _Spade(fmiddle, nhidden)

    def forward(self, x, face):
        x_s = self.conv_s(self.norm_s(x, face)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, face), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, face), 0.2))
        return x_s + dx


class TorchSpadeGenerator(tnn.Module):
    """Official layout for num_up_blocks=4 (head_0, G_middle_0/1, up_0..up_3); n_up generalises
    the number of up blocks the way SPADEGenerator.num_up_blocks does."""

    def __init__(self, ngf, load_size, nhidden, n_up=4):
        super().__init__()
        self.size = load_size // 2 ** (n_up + 1)
        self.n_up = n_up
        top = ngf * 2 ** n_up
        self.fc = tnn.Conv2d(3, top, 3, padding=1)
        self.head_0 = _Block(top, top, nhidden)
        self.G_middle_0 = _Block(top, top, nhidden)
        self.G_middle_1 = _Block(top, top, nhidden)
        for i in range(n_up):
            setattr(self, f"up_{i}", _Block(ngf * 2 ** (n_up - i), ngf * 2 ** (n_up - 1 - i),
                                            nhidden))
        self.conv_img = tnn.Conv2d(ngf, 3, 3, padding=1)
        self.up = tnn.Upsample(scale_factor=2)

    def forward(self, face):
        x = self.fc(F.interpolate(face, size=(self.size, self.size), mode="bilinear"))
        x = self.head_0(x, face)
        x = self.up(x)
        x = self.G_middle_0(x, face)
        x = self.G_middle_1(x, face)
        for i in range(self.n_up):
            x = getattr(self, f"up_{i}")(self.up(x), face)
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))


def _faces(n, size, seed):
    """Smooth random 'faces' in [-1, 1] (NCHW)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(-1, 1, (n, 3, 8, 8)).astype(np.float32)
    return F.interpolate(torch.from_numpy(small), size=(size, size), mode="bilinear").numpy()


def _calibrated_torch_gen(load_size, n_up):
    """Random weights, then a few no-grad training passes so that the BN running statistics
    and the spectral vectors are calibrated (as in the parity fixtures); then eval mode."""
    torch.manual_seed(0)
    net = TorchSpadeGenerator(NGF, load_size, NHIDDEN, n_up)
    net.train()
    with torch.no_grad():
        for seed in range(3):
            net(torch.from_numpy(_faces(2, load_size, seed)))
    return net.eval()


@pytest.fixture(scope="module")
def torch_gen():
    """The official structure (4 up blocks) at ngf 4, load_size 64, nhidden 8."""
    return _calibrated_torch_gen(LOAD, 4)


# A shallower generator (2 up blocks, 16 px) for the slower-to-compile checks.
SMALL_LOAD, SMALL_UP = 16, 2


@pytest.fixture(scope="module")
def torch_gen_small():
    return _calibrated_torch_gen(SMALL_LOAD, SMALL_UP)


def _state_dict(net):
    return {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}


def _nhwc(x):
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def _model(**kw):
    kw = {"load_size": LOAD, **kw}
    return SPADEGenerator(ngf=NGF, nhidden=NHIDDEN, **kw)


def _small_model(**kw):
    return _model(load_size=SMALL_LOAD, num_up_blocks=SMALL_UP, **kw)


# ---------------------------------------------------------------------------------------------

def test_folded_generator_matches_torch_eval(torch_gen):
    model = _model()
    variables, warnings = convert_state_dict(model, _state_dict(torch_gen), "latest_net_G.pth")
    assert warnings == []
    assert "spectral" not in variables
    faces = _faces(2, LOAD, 10)
    with torch.no_grad():
        expected = _nhwc(torch_gen(torch.from_numpy(faces)).numpy())
    # neither flat nor saturated, so that the comparison means something
    assert expected.std() > 0.02 and np.mean(np.abs(expected) > 0.99) < 0.5
    apply = jax.jit(model.apply)
    ours = np.asarray(apply(variables, _nhwc(faces)))
    assert ours.shape == (2, LOAD, LOAD, 3)
    np.testing.assert_allclose(ours, expected, atol=2e-5, rtol=0)
    # Any input size: the output is always load_size (the fc input is resized to load_size/32).
    other = _faces(1, 48, 11)
    with torch.no_grad():
        expected48 = _nhwc(torch_gen(torch.from_numpy(other)).numpy())
    ours48 = np.asarray(apply(variables, _nhwc(other)))
    assert ours48.shape == (1, LOAD, LOAD, 3)
    np.testing.assert_allclose(ours48, expected48, atol=2e-5, rtol=0)


def test_converted_tree_matches_init_tree(torch_gen):
    for spectral in (False, True):
        model = _model(spectral_norm=spectral)
        variables, _ = convert_state_dict(model, _state_dict(torch_gen), "latest_net_G.pth")
        init = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, LOAD, LOAD, 3)))
        assert jax.tree.map(np.shape, variables) == jax.tree.map(np.shape, init)
    assert set(variables) == {"params", "batch_stats", "spectral"}
    assert "bias" not in variables["params"]["up_0"]["conv_s"]
    assert variables["params"]["up_0"]["conv_s"]["kernel"].shape == (1, 1, 16 * NGF, 8 * NGF)


def test_live_spectral_norm_matches_torch_eval_and_training(torch_gen_small):
    """spectral_norm=True: eval equals the folded path; train=True does PyTorch's power
    iteration (u, v updated) and batch-statistics normalisation."""
    import copy
    model = _small_model(spectral_norm=True)
    variables, _ = convert_state_dict(model, _state_dict(torch_gen_small), "latest_net_G.pth")
    faces = _faces(2, SMALL_LOAD, 20)
    with torch.no_grad():
        expected_eval = _nhwc(torch_gen_small(torch.from_numpy(faces)).numpy())
        trainee = copy.deepcopy(torch_gen_small).train()
        expected_train = _nhwc(trainee(torch.from_numpy(faces)).numpy())
    ours_eval = jax.jit(model.apply)(variables, _nhwc(faces))
    np.testing.assert_allclose(np.asarray(ours_eval), expected_eval, atol=2e-5, rtol=0)
    step = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats", "spectral"]))
    ours_train, updated = step(variables, _nhwc(faces))
    np.testing.assert_allclose(np.asarray(ours_train), expected_train, atol=5e-5, rtol=0)
    sd = trainee.state_dict()
    np.testing.assert_allclose(updated["spectral"]["up_1"]["conv_0"]["u"],
                               sd["up_1.conv_0.weight_u"].numpy(), atol=1e-5)
    np.testing.assert_allclose(updated["spectral"]["head_0"]["conv_1"]["v"],
                               sd["head_0.conv_1.weight_v"].numpy(), atol=1e-5)
    np.testing.assert_allclose(updated["batch_stats"]["up_1"]["norm_s"]["param_free_norm"]["var"],
                               sd["up_1.norm_s.param_free_norm.running_var"].numpy(), atol=1e-5)


def test_spectral_conv_fold_matches_torch_spectral_norm():
    """A single conv: the converter's folding vs torch's eval-mode spectral_norm (random u, v,
    so sigma is not the top singular value: the formula itself is checked)."""
    from oldphoto_jax.convert.common import conv_kernel, fold_spectral_norm
    torch.manual_seed(3)
    conv = sn(tnn.Conv2d(5, 6, 3, padding=1)).eval()
    x = np.random.default_rng(3).normal(size=(1, 5, 7, 9)).astype(np.float32)
    with torch.no_grad():
        expected = _nhwc(conv(torch.from_numpy(x)).numpy())
    sd = _state_dict(conv)
    kernel = conv_kernel(fold_spectral_norm(sd["weight_orig"], sd["weight_u"], sd["weight_v"]))
    folded = {"params": {"kernel": kernel, "bias": sd["bias"]}}
    ours = SpectralConv2d(6, 3, padding=1).apply(folded, _nhwc(x))
    np.testing.assert_allclose(np.asarray(ours), expected, atol=1e-5, rtol=0)
    live = {"params": {"kernel": conv_kernel(sd["weight_orig"]), "bias": sd["bias"]},
            "spectral": {"u": sd["weight_u"], "v": sd["weight_v"]}}
    ours = SpectralConv2d(6, 3, padding=1, spectral_norm=True).apply(live, _nhwc(x))
    np.testing.assert_allclose(np.asarray(ours), expected, atol=1e-5, rtol=0)


def test_legacy_spectral_checkpoint_is_upgraded_like_torch(torch_gen_small):
    """Pre-1.0 checkpoints carry `weight` instead of `weight_v`; torch's load hook upgrades them."""
    sd = _state_dict(torch_gen_small)
    legacy = dict(sd)
    for conv in ("head_0.conv_0", "up_0.conv_s"):
        w = sd[f"{conv}.weight_orig"].astype(np.float64)
        sigma = sd[f"{conv}.weight_u"] @ (w.reshape(w.shape[0], -1) @ sd[f"{conv}.weight_v"])
        legacy[f"{conv}.weight"] = (w / sigma).astype(np.float32)
        del legacy[f"{conv}.weight_v"]
    reloaded = TorchSpadeGenerator(NGF, SMALL_LOAD, NHIDDEN, SMALL_UP)
    reloaded.load_state_dict({k: torch.from_numpy(v) for k, v in legacy.items()})
    reloaded.eval()
    faces = _faces(1, SMALL_LOAD, 30)
    with torch.no_grad():
        expected = _nhwc(reloaded(torch.from_numpy(faces)).numpy())
    for spectral in (False, True):
        model = _small_model(spectral_norm=spectral)
        variables, warnings = convert_state_dict(model, legacy, "old_net_G.pth")
        assert warnings == []
        ours = np.asarray(jax.jit(model.apply)(variables, _nhwc(faces)))
        np.testing.assert_allclose(ours, expected, atol=5e-5, rtol=0)


def test_converter_errors_and_warnings(torch_gen):
    model = _model()
    sd = _state_dict(torch_gen)
    no_v = {k: v for k, v in sd.items() if k != "G_middle_1.conv_1.weight_v"}
    with pytest.raises(ConversionError,
                       match=r"latest_net_G\.pth: missing key 'G_middle_1\.conv_1\.weight_v'"):
        convert_state_dict(model, no_v, "latest_net_G.pth")
    no_stats = {k: v for k, v in sd.items() if k != "up_3.norm_1.param_free_norm.running_var"}
    with pytest.raises(ConversionError, match=r"'up_3\.norm_1\.param_free_norm\.running_var'"):
        convert_state_dict(model, no_stats, "latest_net_G.pth")
    wrong = dict(sd)
    wrong["fc.weight"] = np.zeros((16 * NGF, 18, 3, 3), np.float32)
    with pytest.raises(ConversionError, match=r"latest_net_G\.pth: key 'fc\.weight' has shape"):
        convert_state_dict(model, wrong, "latest_net_G.pth")
    extra = dict(sd)
    extra["up_0.conv_s.bias"] = np.zeros(8 * NGF, np.float32)
    _, warnings = convert_state_dict(model, extra, "latest_net_G.pth")
    assert warnings == ["latest_net_G.pth: ignoring unused key 'up_0.conv_s.bias'"]


def test_registered_with_official_defaults():
    args = network_args(SPADEGenerator())
    assert args == {"ngf": 64, "load_size": 256, "num_up_blocks": 4, "nhidden": 128,
                    "semantic_nc": 18, "spectral_norm": False, "precision": "highest"}
    assert SPADEGenerator(load_size=512).start_size == 16
    assert build_network("SPADEGenerator", network_args(_model())) == _model()
