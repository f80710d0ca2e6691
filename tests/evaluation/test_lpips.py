"""LPIPS-VGG (lin) with random weights of the real shapes: our JAX forward against an independent
torch reference written here, its basic properties, the loader's errors, and the evaluation run
with LPIPS on."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from oldphoto_jax.evaluation import lpips, report
from oldphoto_jax.evaluation.evaluation_run import evaluate


def lpips_distance(weights: dict, reference_uint8: np.ndarray, image_uint8: np.ndarray) -> float:
    """LPIPS-VGG (lin) between two uint8 HxWx3 RGB images."""
    return lpips.lpips_distances(weights, reference_uint8, [image_uint8])[0]


# torchvision vgg16().features conv indices, block by block (2x2 max pool between blocks).
BLOCKS = ((0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28))
WIDTHS = (64, 128, 256, 512, 512)


def _random_arrays(seed=0):
    """A state dict of the lpips.LPIPS(net='vgg') layout (features.* + lin*), random values."""
    rng = np.random.default_rng(seed)
    arrays, channels = {}, 3
    for block, width in zip(BLOCKS, WIDTHS):
        for index in block:
            fan_in = channels * 9
            arrays[f"features.{index}.weight"] = (
                rng.standard_normal((width, channels, 3, 3), np.float32) * np.sqrt(2.0 / fan_in))
            arrays[f"features.{index}.bias"] = rng.normal(0, 0.01, width).astype(np.float32)
            channels = width
    for k, width in enumerate(WIDTHS):
        arrays[f"lin{k}.model.1.weight"] = np.abs(
            rng.normal(0, 0.1, (1, width, 1, 1))).astype(np.float32)
    arrays["scaling_layer.shift"] = np.array([-0.030, -0.088, -0.188], np.float32)  # ignored
    return arrays


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("lpips") / "lpips_vgg.npz"
    np.savez(path, **_random_arrays())
    return path


@pytest.fixture(scope="module")
def weights(weights_file):
    return lpips.load_lpips_vgg_npz(weights_file)


def _images(height=32, width=48, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
            rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _torch_lpips(arrays, reference, image):
    """The LPIPS-VGG lin forward in torch (float64, NCHW) from the raw state-dict arrays."""
    def t(a):
        return torch.from_numpy(np.asarray(a, np.float64))

    x = t(np.stack([reference, image])).permute(0, 3, 1, 2) / 127.5 - 1.0
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).view(1, 3, 1, 1)
    x = (x - shift) / scale
    total = torch.zeros((), dtype=torch.float64)
    for k, block in enumerate(BLOCKS):
        if k:
            x = F.max_pool2d(x, kernel_size=2, stride=2)
        for index in block:
            x = F.relu(F.conv2d(x, t(arrays[f"features.{index}.weight"]),
                                t(arrays[f"features.{index}.bias"]), padding=1))
        norm = torch.sqrt(torch.sum(x ** 2, dim=1, keepdim=True))
        unit = x / (norm + 1e-10)
        diff = (unit[0:1] - unit[1:2]) ** 2
        weighted = F.conv2d(diff, t(arrays[f"lin{k}.model.1.weight"]))  # 1x1, no bias
        total = total + weighted.mean(dim=(2, 3)).sum()
    return float(total)


def test_lpips_matches_a_torch_reference(weights_file, weights):
    reference, image = _images()
    with np.load(weights_file) as data:
        arrays = {k: data[k] for k in data.files}
    expected = _torch_lpips(arrays, reference, image)
    assert expected > 0
    np.testing.assert_allclose(lpips_distance(weights, reference, image), expected,
                               rtol=1e-4)
    # the batched form gives the same numbers
    close = np.clip(reference.astype(int) + 3, 0, 255).astype(np.uint8)
    batched = lpips.lpips_distances(weights, reference, [image, close])
    np.testing.assert_allclose(batched, [expected, _torch_lpips(arrays, reference, close)],
                               rtol=1e-4)


def test_lpips_is_zero_on_identical_images_and_symmetric(weights):
    a, b = _images(seed=2)
    assert lpips_distance(weights, a, a) == 0.0
    assert lpips_distance(weights, a, b) == lpips_distance(weights, b, a) > 0
    with pytest.raises(ValueError, match="shapes differ"):
        lpips_distance(weights, a, b[:-1])


def test_loader_names_a_missing_key_or_a_wrong_shape(tmp_path):
    arrays = _random_arrays(seed=3)
    del arrays["lin3.model.1.weight"]
    np.savez(tmp_path / "missing.npz", **arrays)
    with pytest.raises(ValueError, match=r"missing lin3\.model\.1\.weight"):
        lpips.load_lpips_vgg_npz(tmp_path / "missing.npz")
    arrays = _random_arrays(seed=3)
    del arrays["features.17.bias"]
    np.savez(tmp_path / "missing_bias.npz", **arrays)
    with pytest.raises(ValueError, match=r"missing features\.17\.bias"):
        lpips.load_lpips_vgg_npz(tmp_path / "missing_bias.npz")
    arrays = _random_arrays(seed=3)
    arrays["features.5.weight"] = arrays["features.5.weight"][:, :32]
    np.savez(tmp_path / "shape.npz", **arrays)
    with pytest.raises(ValueError, match=r"features\.5\.weight has shape"):
        lpips.load_lpips_vgg_npz(tmp_path / "shape.npz")


def test_table_has_lpips_columns_only_when_scored():
    scores = {"x.png": {m: {"psnr": 20.0, "ssim": 0.5, "lpips": 0.25 + i / 10}
                        for i, m in enumerate(report.METHODS)}}
    lines = report.markdown_table(scores).splitlines()
    assert lines[0].count("LPIPS") == 3 and lines[1].count("---:") == 9
    assert lines[-1] == ("| **mean** | 20.00 | 0.5000 | 0.2500 | 20.00 | 0.5000 | 0.3500 | "
                         "20.00 | 0.5000 | 0.4500 |")
    assert report.mean_scores(scores)["ours"]["lpips"] == pytest.approx(0.45)
    for values in scores["x.png"].values():
        del values["lpips"]
    assert "LPIPS" not in report.markdown_table(scores)
    assert "lpips" not in report.mean_scores(scores)["ours"]


def test_evaluate_scores_lpips_for_every_method(tmp_path, weights_file, weights, eval_inputs,
                                               smooth_photo):
    model_dir, clean = eval_inputs({"one.png": smooth_photo(64, 80, seed=1)})
    output = tmp_path / "eval"
    lines = []
    result = evaluate(clean, None, model_dir, output, seed=0, lpips_weights=str(weights_file),
                      log=lines.append)
    assert not any("LPIPS not computed" in line for line in lines)
    scores = result["scores"]["one.png"]
    assert set(scores) == set(report.METHODS)
    clean_img = np.asarray(Image.open(output / "clean" / "one.png"))
    degraded = np.asarray(Image.open(output / "degraded" / "one.png"))
    for method in report.METHODS:
        assert np.isfinite(scores[method]["lpips"]) and scores[method]["lpips"] >= 0
        assert result["mean"][method]["lpips"] == pytest.approx(scores[method]["lpips"])
    assert scores["input"]["lpips"] == pytest.approx(
        lpips_distance(weights, clean_img, degraded), rel=1e-5)
    written = json.loads((output / "results.json").read_text())
    assert written["settings"]["lpips_weights"] == str(weights_file)
    assert "LPIPS" in (output / "results.md").read_text()
