"""Tests of the VAE (GlobalGenerator_DCDCv2) and its converter at small widths.

The official-size parity checks are the fixtures (oldphoto_jax.parity.runners_global); here:
shapes and jit, the parameter layout against the official key listing (scaled down), the
converter round trip and its errors/warnings, and the parts logic of VAE files.
"""
from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from oldphoto_jax.convert.common import ConversionError
from oldphoto_jax.convert.converters import convert_state_dict
from oldphoto_jax.models import build_network, network_args
from oldphoto_jax.models.vae import VAE, ResnetBlock, VAEDecoder, VAEEncoder
from oldphoto_jax.parity.fixtures import cases_dir

SMALL = dict(ngf=4, max_channels=4)  # official widths / 16 (ngf = mc = 64 officially)


def random_variables(module, *inputs, seed=0):
    """Random variables of the shapes ``module.init`` gives (traced with eval_shape only: a
    jitted init spends seconds compiling its random number generation on CPU)."""
    shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), *inputs)
    rng = np.random.default_rng(seed)

    def draw(path, s):
        if path[-1].key == "kernel":  # N(0, 1/fan_in) keeps activations O(1)
            return (rng.standard_normal(s.shape) / np.sqrt(np.prod(s.shape[:-1]))).astype(s.dtype)
        return (0.05 * rng.standard_normal(s.shape)).astype(s.dtype)

    return jax.tree_util.tree_map_with_path(draw, shapes)


def keys_listing(name: str) -> list[tuple[str, tuple[int, ...]]]:
    path = Path(cases_dir()).parent / "keys" / f"{name}.txt"
    if not path.exists():
        pytest.skip(f"key listing {path} not found")
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            key, shape = line.split(" ", 1)
            out.append((key, tuple(int(d) for d in shape.strip("[]").split(","))))
    return out


def scaled(shape: tuple[int, ...], factor: int = 16) -> tuple[int, ...]:
    """Official shape at widths / factor: channel dims are the multiples of 64."""
    return tuple(d // factor if d % 64 == 0 else d for d in shape)


def to_official(params: dict, module: VAE) -> dict[str, np.ndarray]:
    """Inverse of the converter, written independently: our params -> official state dict."""
    n, r = module.n_down_convs, module.n_res_blocks
    sd = {}

    def conv(key, p):
        sd[f"{key}.weight"] = np.asarray(p["kernel"]).transpose(3, 2, 0, 1)
        sd[f"{key}.bias"] = np.asarray(p["bias"])

    def conv_t(key, p):  # HWIO of the equivalent conv -> [in, out, kh, kw], unflipped
        sd[f"{key}.weight"] = np.asarray(p["kernel"]).transpose(2, 3, 0, 1)[:, :, ::-1, ::-1]
        sd[f"{key}.bias"] = np.asarray(p["bias"])

    def block(key, p):
        conv(f"{key}.conv_block.1", p["conv1"])
        conv(f"{key}.conv_block.5", p["conv2"])

    if "encoder" in params:
        enc = params["encoder"]
        conv("encoder.1", enc["conv_in"])
        for k in range(n):
            conv(f"encoder.{4 + 3 * k}", enc[f"downs_{k}"])
        for j in range(r):
            block(f"encoder.{4 + 3 * n + j}", enc["trunk"][f"blocks_{j}"])
    if "decoder" in params:
        dec = params["decoder"]
        for j in range(r):
            block(f"decoder.{j}", dec["trunk"][f"blocks_{j}"])
        for k in range(n):
            conv_t(f"decoder.{r + 3 * k}", dec[f"ups_{k}"])
        conv(f"decoder.{r + 3 * n + 1}", dec["conv_out"])
    return sd


@pytest.fixture(scope="module")
def small_vae():
    module = VAE(**SMALL)
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, 16, 24, 3), minval=-1, maxval=1)
    return module, random_variables(module, x), x


def test_shapes_jit_and_methods(small_vae):
    module, variables, x = small_vae
    z = jax.jit(lambda v, a: module.apply(v, a, method="encode"))(variables, x)
    assert z.shape == (2, 4, 6, 4)
    y = jax.jit(lambda v, a: module.apply(v, a, method="decode"))(variables, z)
    assert y.shape == x.shape
    assert float(jnp.max(jnp.abs(y))) < 1.0
    full = jax.jit(module.apply)(variables, x)
    np.testing.assert_allclose(np.asarray(full), np.asarray(y), atol=1e-6)
    # The parts run on their own with the part's params.
    enc = VAEEncoder(**SMALL)
    z2 = jax.jit(enc.apply)({"params": variables["params"]["encoder"]}, x)
    np.testing.assert_allclose(np.asarray(z2), np.asarray(z), atol=1e-6)


def test_widths_follow_level_rule():
    module = VAE(ngf=8, max_channels=16, n_down_convs=2, n_res_blocks=1)
    x = jnp.zeros((1, 8, 8, 3))
    variables = random_variables(module, x)
    shapes = jax.tree.map(lambda t: t.shape, variables)["params"]
    assert shapes["encoder"]["conv_in"]["kernel"] == (7, 7, 3, 8)
    assert shapes["encoder"]["downs_0"]["kernel"] == (4, 4, 8, 16)
    assert shapes["encoder"]["downs_1"]["kernel"] == (4, 4, 16, 16)
    assert shapes["decoder"]["ups_1"]["kernel"] == (4, 4, 16, 8)
    assert shapes["decoder"]["conv_out"]["kernel"] == (7, 7, 8, 3)
    z = jax.jit(lambda v, a: module.apply(v, a, method="encode"))(variables, x)
    assert z.shape == (1, 2, 2, 16)


def test_layout_matches_official_listing_and_round_trips(small_vae):
    module, variables, x = small_vae
    official = to_official(variables["params"], module)
    expected = {k: scaled(s) for k, s in keys_listing("vae_a")}
    assert {k: v.shape for k, v in official.items()} == expected
    converted, warnings = convert_state_dict(module, official, "small_vae.pth")
    assert warnings == []
    jax.tree.map(np.testing.assert_array_equal, converted["params"],
                 jax.tree.map(np.asarray, variables["params"]))


def test_missing_key_wrong_shape_and_unused_key(small_vae):
    module, variables, _ = small_vae
    official = to_official(variables["params"], module)
    broken = dict(official)
    del broken["decoder.7.bias"]
    with pytest.raises(ConversionError, match=r"net_G\.pth.*'decoder\.7\.bias'"):
        convert_state_dict(module, broken, "latest_net_G.pth")
    broken = dict(official)
    broken["encoder.4.weight"] = np.zeros((4, 4, 3, 3), np.float32)
    with pytest.raises(ConversionError, match=r"latest_net_G\.pth.*'encoder\.4\.weight'.*"
                                              r"\[4, 4, 3, 3\].*\[4, 4, 4, 4\]"):
        convert_state_dict(module, broken, "latest_net_G.pth")
    extra = dict(official, **{"encoder.99.weight": np.zeros(3, np.float32)})
    _, warnings = convert_state_dict(module, extra, "latest_net_G.pth")
    assert len(warnings) == 1 and "encoder.99.weight" in warnings[0]
    assert "latest_net_G.pth" in warnings[0]


def test_required_parts(small_vae):
    module, variables, x = small_vae
    official = to_official(variables["params"], module)
    enc_only = {k: v for k, v in official.items() if k.startswith("encoder.")}
    dec_only = {k: v for k, v in official.items() if k.startswith("decoder.")}

    # A VAE_A-like file used for its encoder: only the encoder is converted and it runs.
    vae_a = VAE(required="encoder", **SMALL)
    converted, warnings = convert_state_dict(vae_a, enc_only, "VAE_A.pth")
    assert set(converted["params"]) == {"encoder"} and warnings == []
    z = jax.jit(lambda v, a: vae_a.apply(v, a, method="encode"))(converted, x)
    encode = jax.jit(lambda v, a: module.apply(v, a, method="encode"))
    np.testing.assert_allclose(np.asarray(z), np.asarray(encode(variables, x)), atol=1e-6)
    # A full file converts both parts even when only one is required.
    converted, _ = convert_state_dict(vae_a, official, "VAE_A.pth")
    assert set(converted["params"]) == {"encoder", "decoder"}
    # The required part missing entirely is an error naming its first key.
    with pytest.raises(ConversionError, match=r"VAE_A\.pth.*'decoder\.0\.conv_block\.1\.weight'"):
        convert_state_dict(VAE(required="decoder", **SMALL), enc_only, "VAE_A.pth")
    with pytest.raises(ConversionError, match=r"'encoder\.1\.weight'"):
        convert_state_dict(VAE(**SMALL), dec_only, "VAE_B.pth")
    # A part that is present only in part is an error even when not required.
    partial = dict(enc_only, **{"decoder.0.conv_block.1.weight":
                                official["decoder.0.conv_block.1.weight"]})
    with pytest.raises(ConversionError, match=r"'decoder\.0\.conv_block\.1\.bias'"):
        convert_state_dict(vae_a, partial, "VAE_A.pth")


def test_standalone_part_converters(small_vae):
    module, variables, x = small_vae
    official = to_official(variables["params"], module)
    dec = VAEDecoder(**SMALL)
    converted, warnings = convert_state_dict(dec, official, "VAE_B.pth")
    assert warnings == []  # the encoder part of a VAE file is skipped silently
    jax.tree.map(np.testing.assert_array_equal, converted["params"],
                 jax.tree.map(np.asarray, variables["params"]["decoder"]))
    with pytest.raises(ConversionError, match=r"'encoder\.1\.weight'"):
        convert_state_dict(VAEEncoder(**SMALL), {k: v for k, v in official.items()
                                                 if k.startswith("decoder.")}, "VAE_B.pth")


def test_registered_and_json_args():
    module = VAE(ngf=8, max_channels=16, required="decoder")
    args = json.loads(json.dumps(network_args(module)))
    assert build_network("VAE", args) == module


def test_resnet_block_dilation_against_torch():
    """Dilation is not exercised by the fixtures (mapping_net_dilation = 1): check it here."""
    torch = pytest.importorskip("torch")
    block = ResnetBlock(6, dilation=2)
    x = np.random.default_rng(0).standard_normal((1, 9, 11, 6)).astype(np.float32)
    variables = random_variables(block, x)
    ours = np.asarray(jax.jit(block.apply)(variables, x))

    p = variables["params"]
    tx = torch.from_numpy(x.transpose(0, 3, 1, 2))
    weight = lambda c: torch.from_numpy(np.asarray(p[c]["kernel"]).transpose(3, 2, 0, 1).copy())
    bias = lambda c: torch.from_numpy(np.array(p[c]["bias"]))
    f = torch.nn.functional
    h = f.conv2d(f.pad(tx, (2, 2, 2, 2), mode="reflect"), weight("conv1"), bias("conv1"),
                 dilation=2)
    h = torch.relu(f.instance_norm(h))
    h = f.conv2d(f.pad(h, (1, 1, 1, 1), mode="reflect"), weight("conv2"), bias("conv2"))
    expected = (tx + f.instance_norm(h)).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(ours, expected, atol=2e-5)
