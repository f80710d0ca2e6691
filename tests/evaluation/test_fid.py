"""FID: the Inception-v3 features against an independent torch module of the pytorch-fid layout
(random weights of the real shapes; its state-dict keys are the ones the loader reads), the
Fréchet distance against closed forms, the loader's errors, and the evaluation run with FID."""
import json

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from oldphoto_jax.evaluation import fid, report
from oldphoto_jax.evaluation.evaluation_run import evaluate

from oldphoto_jax.testing.synthetic_photos import smooth_photo as make_smooth_photo


# ---- a torch reference, torchvision's Inception3 names with pytorch-fid's pools ----

class Unit(nn.Module):
    def __init__(self, cin, cout, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def avg_excl(x):
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class A(nn.Module):
    def __init__(self, cin, pool):
        super().__init__()
        self.branch1x1 = Unit(cin, 64, 1)
        self.branch5x5_1, self.branch5x5_2 = Unit(cin, 48, 1), Unit(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = Unit(cin, 64, 1)
        self.branch3x3dbl_2 = Unit(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = Unit(96, 96, 3, padding=1)
        self.branch_pool = Unit(cin, pool, 1)

    def forward(self, x):
        return torch.cat([
            self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(avg_excl(x))], 1)


class B(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3 = Unit(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = Unit(cin, 64, 1)
        self.branch3x3dbl_2 = Unit(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = Unit(96, 96, 3, stride=2)

    def forward(self, x):
        return torch.cat([
            self.branch3x3(x), self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, 3, stride=2)], 1)


class C(nn.Module):
    def __init__(self, cin, c7):
        super().__init__()
        self.branch1x1 = Unit(cin, 192, 1)
        self.branch7x7_1 = Unit(cin, c7, 1)
        self.branch7x7_2 = Unit(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = Unit(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = Unit(cin, c7, 1)
        self.branch7x7dbl_2 = Unit(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = Unit(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = Unit(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = Unit(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = Unit(cin, 192, 1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for k in range(1, 6):
            bd = getattr(self, f"branch7x7dbl_{k}")(bd)
        return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(avg_excl(x))], 1)


class D(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3_1, self.branch3x3_2 = Unit(cin, 192, 1), Unit(192, 320, 3, stride=2)
        self.branch7x7x3_1 = Unit(cin, 192, 1)
        self.branch7x7x3_2 = Unit(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = Unit(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = Unit(192, 192, 3, stride=2)

    def forward(self, x):
        b7 = x
        for k in range(1, 5):
            b7 = getattr(self, f"branch7x7x3_{k}")(b7)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7,
                          F.max_pool2d(x, 3, stride=2)], 1)


class E(nn.Module):
    def __init__(self, cin, last):
        super().__init__()
        self.last = last
        self.branch1x1 = Unit(cin, 320, 1)
        self.branch3x3_1 = Unit(cin, 384, 1)
        self.branch3x3_2a = Unit(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = Unit(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = Unit(cin, 448, 1)
        self.branch3x3dbl_2 = Unit(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = Unit(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = Unit(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = Unit(cin, 192, 1)

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.last else avg_excl(x)
        return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(pooled)], 1)


class FIDInception(nn.Module):
    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = Unit(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = Unit(32, 32, 3)
        self.Conv2d_2b_3x3 = Unit(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = Unit(64, 80, 1)
        self.Conv2d_4a_3x3 = Unit(80, 192, 3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = A(192, 32), A(256, 64), A(288, 64)
        self.Mixed_6a = B(288)
        self.Mixed_6b, self.Mixed_6c = C(768, 128), C(768, 160)
        self.Mixed_6d, self.Mixed_6e = C(768, 160), C(768, 192)
        self.Mixed_7a = D(768)
        self.Mixed_7b, self.Mixed_7c = E(1280, last=False), E(2048, last=True)
        self.fc = nn.Linear(2048, 1008)  # in the real file, unused by FID

    def forward(self, images_uint8):
        return torch.cat([self.one(image) for image in images_uint8])

    def one(self, image_uint8):
        x = torch.from_numpy(image_uint8[None]).permute(0, 3, 1, 2).double() / 255.0
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return x.mean(dim=(2, 3))


@pytest.fixture(scope="module")
def torch_net():
    torch.manual_seed(0)
    net = FIDInception().double().eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):  # non-trivial statistics to fold
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.8, 1.2)
                module.bias.uniform_(-0.1, 0.1)
    return net


def _state_arrays(net):
    return {k: v.numpy().astype(np.float32) for k, v in net.state_dict().items()}


@pytest.fixture(scope="module")
def weights_file(torch_net, tmp_path_factory):
    path = tmp_path_factory.mktemp("fid") / "fid_inception.npz"
    np.savez(path, **_state_arrays(torch_net))
    return path


@pytest.fixture(scope="module")
def weights(weights_file):
    return fid.load_fid_inception_npz(weights_file)


def _photo(height, width, seed):
    return make_smooth_photo(height, width, seed=seed, phase=float(seed))


def test_loader_reads_exactly_the_units_of_the_pytorch_fid_layout(torch_net, weights):
    units = {k.rsplit(".", 2)[0] for k in torch_net.state_dict() if ".conv." in k}
    assert units == set(fid.conv_shapes()) and len(units) == 94
    assert set(weights) == {f"{u}.{part}" for u in units for part in ("kernel", "shift")}


def test_features_match_the_torch_reference(torch_net, weights):
    images = [_photo(60, 84, seed=1), _photo(120, 90, seed=2)]
    with torch.no_grad():
        expected = torch_net(images).numpy()
    ours = fid.inception_features(weights, images)
    assert ours.shape == (2, fid.FEATURES)
    assert np.abs(expected).max() > 1e-3
    np.testing.assert_allclose(ours, expected, rtol=2e-3, atol=2e-4 * np.abs(expected).max())


def test_average_pool_leaves_padding_out_of_the_count():
    x = np.random.default_rng(0).normal(size=(1, 5, 6, 2)).astype(np.float32)
    expected = F.avg_pool2d(torch.from_numpy(x).permute(0, 3, 1, 2), 3, stride=1, padding=1,
                            count_include_pad=False).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(fid.avg_pool_3x3_excluding_padding(x), expected, rtol=1e-6)


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 4))
    mu, sigma = fid.gaussian(a)
    assert fid.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-6)
    # diagonal covariances: |dmu|^2 + sum (sqrt(v_a) - sqrt(v_b))^2
    va, vb = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    ma, mb = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = 1.0 + 4.0 + ((1 - 3) ** 2 + (2 - 1) ** 2 + 0.0)
    assert fid.frechet_distance(ma, np.diag(va), mb, np.diag(vb)) == pytest.approx(expected)
    # rank-deficient (fewer samples than dimensions) still gives a finite, non-negative number
    few = fid.gaussian(rng.normal(size=(3, 8)))
    other = fid.gaussian(rng.normal(size=(3, 8)) + 1.0)
    assert np.isfinite(fid.frechet_distance(*few, *other))
    assert fid.frechet_distance(*few, *other) > 0
    with pytest.raises(ValueError, match="at least 2"):
        fid.gaussian(np.zeros((1, 8)))


@pytest.mark.parametrize("n_a, n_b", [(5, 7), (30, 40)])
def test_distance_of_features_equals_the_frechet_distance_of_their_gaussians(n_a, n_b):
    rng = np.random.default_rng(n_a)
    a = rng.normal(size=(n_a, 12)) @ rng.normal(size=(12, 12))
    b = rng.normal(size=(n_b, 12)) * 0.5 + 0.3
    expected = fid.frechet_distance(*fid.gaussian(a), *fid.gaussian(b))
    assert fid.features_distance(a, b) == pytest.approx(expected, rel=1e-6, abs=1e-8)
    assert fid.features_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="at least 2"):
        fid.features_distance(a[:1], b)


def test_loader_names_a_missing_key_or_a_wrong_shape(torch_net, tmp_path):
    arrays = _state_arrays(torch_net)
    del arrays["Mixed_6c.branch7x7dbl_4.bn.running_var"]
    np.savez(tmp_path / "missing.npz", **arrays)
    with pytest.raises(ValueError, match=r"missing Mixed_6c\.branch7x7dbl_4\.bn\.running_var"):
        fid.load_fid_inception_npz(tmp_path / "missing.npz")
    arrays = _state_arrays(torch_net)
    arrays["Mixed_7b.branch3x3_2a.conv.weight"] = arrays["Mixed_7b.branch3x3_2a.conv.weight"][
        :, :, :, :1]
    np.savez(tmp_path / "shape.npz", **arrays)
    with pytest.raises(ValueError, match=r"Mixed_7b\.branch3x3_2a\.conv\.weight has shape"):
        fid.load_fid_inception_npz(tmp_path / "shape.npz")


def test_evaluate_reports_fid_per_method(tmp_path, weights_file, weights, eval_inputs):
    model_dir, clean = eval_inputs({f"p{k}.png": _photo(64, 80, seed=10 + k) for k in range(3)})
    output = tmp_path / "eval"
    lines = []
    result = evaluate(clean, None, model_dir, output, seed=0, fid_weights=str(weights_file),
                      log=lines.append)
    assert not any("FID not computed" in line for line in lines)
    assert set(result["fid"]) == set(report.METHODS)
    names = sorted(result["scores"])
    cleans = [np.asarray(Image.open(output / "clean" / n)) for n in names]
    degraded = [np.asarray(Image.open(output / "degraded" / n)) for n in names]
    assert result["fid"]["input"] == pytest.approx(fid.fid(weights, cleans, degraded), rel=1e-6)
    assert all(np.isfinite(v) and v >= -1e-6 for v in result["fid"].values())
    written = json.loads((output / "results.json").read_text())
    assert written["fid"] == pytest.approx(result["fid"])
    assert written["settings"]["fid_weights"] == str(weights_file)
    table = (output / "results.md").read_text()
    assert "| FID against the clean photos (3 photos; lower is better) |" in table


def test_evaluate_without_fid_weights_says_so(tmp_path, eval_inputs):
    model_dir, clean = eval_inputs({"one.png": _photo(48, 48, seed=3)})
    lines = []
    result = evaluate(clean, None, model_dir, tmp_path / "eval", seed=0, log=lines.append)
    assert "fid" not in result and any("FID not computed" in line for line in lines)
