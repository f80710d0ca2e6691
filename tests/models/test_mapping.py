"""Tests of the mapping networks, their attention functions and converters at small widths.

Official-size parity is checked by the fixtures (oldphoto_jax.parity.runners_global). Here:
shapes and jit, the parameter layout against the official key listings (widths / 16), the
converter round trip and errors, the mask -> valid-map rule, the partial non-local attention
(against a float64 numpy reference, chunked == dense), and the patch attention (numpy reference of
the official inference algorithm, the no-query / all-query branches, first-index ties, the
training path, and chunked == dense key choice).
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from oldphoto_jax.convert.common import ConversionError
from oldphoto_jax.convert.converters import convert_state_dict
from oldphoto_jax.models import build_network, network_args
from oldphoto_jax.models import mapping as mapping_module
from oldphoto_jax.models.mapping import (MappingModel, MappingModelWithMask,
                                         MappingModelWithMask2, best_key_indices,
                                         nonlocal_valid_map, partial_nonlocal_attention,
                                         partial_nonlocal_attention_chunked,
                                         patch_attention_inference, patch_attention_training,
                                         select_best_keys, StatsResidual)
from oldphoto_jax.parity.fixtures import cases_dir

# Official widths / 16: levels 4, 8, 16, 32, 32 instead of 64, 128, 256, 512, 512.
SMALL = dict(nc=4, mc=32)
LISTINGS = {MappingModel: "mapping_quality", MappingModelWithMask: "mapping_scratch",
            MappingModelWithMask2: "mapping_patch_attention"}


def random_variables(module, *inputs, seed=0):
    """Random variables of the shapes ``module.init`` gives (eval_shape only: a jitted init
    spends seconds compiling its random number generation on CPU)."""
    shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), *inputs)
    rng = np.random.default_rng(seed)

    def draw(path, s):
        if path[-1].key == "kernel":
            return (rng.standard_normal(s.shape) / np.sqrt(np.prod(s.shape[:-1]))).astype(s.dtype)
        return (0.05 * rng.standard_normal(s.shape)).astype(s.dtype)

    return jax.tree_util.tree_map_with_path(draw, shapes)


def keys_listing(name: str) -> dict[str, tuple[int, ...]]:
    path = Path(cases_dir()).parent / "keys" / f"{name}.txt"
    if not path.exists():
        pytest.skip(f"key listing {path} not found")
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            key, shape = line.split(" ", 1)
            out[key] = tuple(int(d) for d in shape.strip("[]").split(","))
    return out


def scaled(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Official shape at widths / 16 (F_Combine's 1025 = 2 * 512 + 1 becomes 2 * 32 + 1)."""
    return tuple(65 if d == 1025 else d // 16 if d % 64 == 0 else d for d in shape)


def to_official(params: dict, module) -> dict[str, np.ndarray]:
    """Inverse of the converters, written independently: our params -> official state dict."""
    sd = {}

    def conv(key, p):
        sd[f"{key}.weight"] = np.asarray(p["kernel"]).transpose(3, 2, 0, 1)
        sd[f"{key}.bias"] = np.asarray(p["bias"])

    def stack(prefix, first, p):
        for name, block in p.items():
            j = first + int(name.split("_")[1])
            conv(f"{prefix}{j}.conv_block.1", block["conv1"])
            conv(f"{prefix}{j}.conv_block.5", block["conv2"])

    def chain(prefix, first, p):
        for name, c in p.items():
            conv(f"{prefix}{first + 3 * int(name.split('_')[1])}", c)

    u = module.n_up
    if isinstance(module, MappingModel):
        chain("model.", 0, params["head"])
        stack("model.", 3 * u, params["trunk"])
        chain("model.", 3 * u + module.n_blocks, params["tail"])
    elif isinstance(module, MappingModelWithMask):
        chain("before_NL.", 0, params["head"])
        for name in ("theta", "phi", "g", "W"):
            conv(f"NL.{name}", params["nl"][name])
        stack("NL.res_block.", 0, params["nl"]["res"])
        stack("after_NL.", 0, params["trunk"])
        chain("after_NL.", module.n_blocks, params["tail"])
    else:
        chain("before_NL.", 0, params["head"])
        stack("before_NL.", 3 * u, params["pre"])
        for s in range(len(module.patch_sizes)):
            attn = params[f"attn_{s}"]
            conv(f"NL_scale_{s + 1}.F_Combine", attn["combine"])
            conv(f"NL_scale_{s + 1}.res_block.0.conv_block.1", attn["res_block"]["conv1"])
            conv(f"NL_scale_{s + 1}.res_block.0.conv_block.5", attn["res_block"]["conv2"])
            if f"between_{s}" in params:
                stack(f"res_block_{s + 1}.", 0, params[f"between_{s}"])
        stack("after_NL.", 0, params["post"])
        chain("after_NL.", module.stage_blocks, params["tail"])
    return sd


@functools.cache
def jitted(cls, method=None, **fields):
    """One compiled apply per (class, method, fields), shared by the tests (compiles dominate)."""
    module = cls(**SMALL, **fields)
    return module, jax.jit(lambda v, *a: module.apply(v, *a, method=method))


def block_mask(batch=1, size=64, corner=32) -> np.ndarray:
    """Full-resolution mask with a scratched top-left square: on a 16 x 16 latent this makes
    patch queries at every scale (1 of 4 at patch 8, 4 of 16 at 4, 16 of 64 at 2)."""
    mask = np.zeros((batch, size, size, 1), np.float32)
    mask[:, :corner, :corner] = 1
    return mask


def inputs_for(cls, batch=1):
    rng = np.random.default_rng(1)
    side = 16 if cls is MappingModelWithMask2 else 8
    z = rng.standard_normal((batch, side, side, 4)).astype(np.float32)
    return (z,) if cls is MappingModel else (z, block_mask(batch, 4 * side, 2 * side))


# ----------------------------------------------------------------------------------------------
# Networks and converters


@pytest.mark.parametrize("cls", [MappingModel, MappingModelWithMask, MappingModelWithMask2])
def test_jit_shapes_layout_and_round_trip(cls):
    module, apply = jitted(cls)
    inputs = inputs_for(cls, batch=1 if cls is MappingModelWithMask2 else 2)
    variables = random_variables(module, *inputs)
    out = apply(variables, *inputs)
    assert out.shape == inputs[0].shape and bool(jnp.all(jnp.isfinite(out)))

    official = to_official(variables["params"], module)
    expected = {k: scaled(s) for k, s in keys_listing(LISTINGS[cls]).items()}
    assert {k: v.shape for k, v in official.items()} == expected
    converted, warnings = convert_state_dict(module, official, "net.pth")
    assert warnings == []
    jax.tree.map(np.testing.assert_array_equal, converted["params"],
                 jax.tree.map(np.asarray, variables["params"]))

    args = json.loads(json.dumps(network_args(module)))
    # JSON turns tuples into lists; the rebuilt module has tuples again (it must stay hashable).
    rebuilt = build_network(cls.__name__, args)
    assert network_args(rebuilt) == network_args(module) and hash(rebuilt) == hash(module)


@pytest.mark.parametrize("cls", [MappingModel, MappingModelWithMask, MappingModelWithMask2])
def test_stats_residual_starts_by_keeping_the_colour_statistics(cls):
    """``stats_residual`` (issue 14, colour VAEs): at the start the last k output channels are
    the input's (the gate is zero), the others the plain mapping's with the same arrays; the
    gate gets a gradient, so training can learn the correction."""
    k = 2
    _, apply_plain = jitted(cls)
    module, apply = jitted(cls, stats_residual=k)
    inputs = inputs_for(cls)
    z = inputs[0]
    initial = StatsResidual(k).init(jax.random.PRNGKey(0), z, z)["params"]["gate"]
    np.testing.assert_array_equal(initial, np.zeros(k, np.float32))
    variables = random_variables(module, *inputs)
    variables["params"]["stats"]["gate"] = initial
    out = apply(variables, *inputs)
    np.testing.assert_array_equal(out[..., -k:], inputs[0][..., -k:])
    without = {"params": {n: v for n, v in variables["params"].items() if n != "stats"}}
    np.testing.assert_array_equal(out[..., :-k], apply_plain(without, *inputs)[..., :-k])

    def stats_loss(gate):
        params = dict(variables["params"], stats={"gate": gate})
        return jnp.sum(module.apply({"params": params}, *inputs)[..., -k:] ** 2)

    assert float(jnp.abs(jax.grad(stats_loss)(jnp.zeros(k))).sum()) > 0


@pytest.mark.parametrize("cls", [MappingModel, MappingModelWithMask])
def test_pooled_stats_correction_starts_by_keeping_the_statistics_and_learns(cls):
    """``stats_correction="pooled"``: zero correction at the start (statistics kept, other
    channels the plain mapping's), one correction per photo (spatially constant), and its kernel
    gets a gradient from the first step (the gate's does not, when the tail's channels are
    uncorrelated with the loss: the reason for this variant)."""
    k = 2
    _, apply_plain = jitted(cls)
    module, apply = jitted(cls, stats_residual=k, stats_correction="pooled")
    inputs = inputs_for(cls, batch=2)
    variables = random_variables(module, *inputs)
    kernel = variables["params"]["stats"]["correction"]["kernel"]
    assert kernel.shape == (2 * SMALL["nc"] + k, k)
    variables["params"]["stats"]["correction"] = {"kernel": jnp.zeros_like(kernel),
                                                  "bias": jnp.zeros(k)}
    out = apply(variables, *inputs)
    np.testing.assert_array_equal(out[..., -k:], inputs[0][..., -k:])
    without = {"params": {n: v for n, v in variables["params"].items() if n != "stats"}}
    np.testing.assert_array_equal(out[..., :-k], apply_plain(without, *inputs)[..., :-k])

    def corrected(kernel):
        params = dict(variables["params"], stats={"correction": {"kernel": kernel,
                                                                 "bias": jnp.zeros(k)}})
        return module.apply({"params": params}, *inputs)[..., -k:] - inputs[0][..., -k:]

    delta = corrected(jnp.ones_like(kernel))
    np.testing.assert_allclose(delta, jnp.broadcast_to(delta[:, :1, :1], delta.shape), atol=1e-5)
    assert float(jnp.abs(delta[0, 0, 0] - delta[1, 0, 0]).max()) > 0  # per photo
    grad = jax.grad(lambda w: jnp.sum((corrected(w) - 1.0) ** 2))(jnp.zeros_like(kernel))
    assert bool(jnp.all(jnp.abs(grad).sum(axis=0) > 0))  # every statistic can be corrected


def test_stats_correction_must_be_known():
    module = MappingModel(**SMALL, stats_residual=2, stats_correction="mlp")
    with pytest.raises(ValueError, match="stats_correction must be one of"):
        module.init(jax.random.PRNGKey(0), inputs_for(MappingModel)[0])


def test_stats_residual_wider_than_the_latent_is_an_error():
    module = MappingModel(**SMALL, stats_residual=SMALL["nc"] + 1)
    with pytest.raises(ValueError, match="stats_residual must be in 1..4"):
        module.init(jax.random.PRNGKey(0), inputs_for(MappingModel)[0])


def test_converter_errors_and_warnings():
    module = MappingModelWithMask2(**SMALL)
    variables = random_variables(module, *inputs_for(MappingModelWithMask2))
    official = to_official(variables["params"], module)
    source = "mapping_Patch_Attention/latest_net_mapping_net.pth"
    broken = {k: v for k, v in official.items() if k != "res_block_2.1.conv_block.5.bias"}
    with pytest.raises(ConversionError, match=r"latest_net_mapping_net\.pth: missing key "
                                              r"'res_block_2\.1\.conv_block\.5\.bias'"):
        convert_state_dict(module, broken, source)
    broken = dict(official, **{"NL_scale_2.F_Combine.weight": np.zeros((32, 64, 3, 3))})
    with pytest.raises(ConversionError, match=r"net\.pth: key 'NL_scale_2\.F_Combine\.weight' "
                                              r"has shape \[32, 64, 3, 3\], expected "
                                              r"\[32, 65, 3, 3\]"):
        convert_state_dict(module, broken, source)
    extra = dict(official, **{"NL.g.weight": np.zeros((1,)), "mystery": np.zeros(2)})
    _, warnings = convert_state_dict(module, extra, source)
    assert sorted(warnings) == [f"{source}: ignoring unused key 'NL.g.weight'",
                                f"{source}: ignoring unused key 'mystery'"]


def test_width_rule_for_other_configurations():
    module = MappingModel(nc=8, mc=32, n_up=3, n_blocks=1)
    z = jnp.zeros((1, 4, 4, 8))
    shapes = jax.tree.map(lambda s: s.shape, jax.eval_shape(module.init, jax.random.PRNGKey(0),
                                                            z))["params"]
    assert [shapes["head"][f"convs_{i}"]["kernel"][2:] for i in range(3)] == \
        [(8, 16), (16, 32), (32, 32)]
    assert [shapes["tail"][f"convs_{i}"]["kernel"][2:] for i in range(3)] == \
        [(32, 32), (32, 16), (16, 8)]
    assert shapes["trunk"]["blocks_0"]["conv1"]["kernel"] == (3, 3, 32, 32)
    with pytest.raises(ValueError, match="8 channels"):
        jax.eval_shape(module.init, jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 3)))


# ----------------------------------------------------------------------------------------------
# Partial non-local block


def test_valid_map_rule_for_exact_x4():
    """Cell (i, j) is valid iff none of pixels (4i+1..4i+2, 4j+1..4j+2) nor (4i, 4j) is scratch."""
    rng = np.random.default_rng(2)
    mask = (rng.random((2, 32, 40, 1)) < 0.08).astype(np.float32)
    valid_map = jax.jit(nonlocal_valid_map, static_argnums=1)
    valid = np.asarray(valid_map(mask, (8, 10)))
    expected = np.zeros((2, 8, 10, 1), np.float32)
    for b in range(2):
        for i in range(8):
            for j in range(10):
                hit = mask[b, 4 * i + 1:4 * i + 3, 4 * j + 1:4 * j + 3].any() or \
                    mask[b, 4 * i, 4 * j] > 0
                expected[b, i, j] = 0.0 if hit else 1.0
    np.testing.assert_array_equal(valid, expected)
    assert 0 < expected.mean() < 1
    # Single pixels: only the five pixels above invalidate cell (1, 1).
    for (y, x), hit in {(4, 4): True, (5, 6): True, (6, 5): True, (4, 5): False,
                        (7, 7): False, (5, 7): False, (3, 4): False}.items():
        one = np.zeros((1, 12, 12, 1), np.float32)
        one[0, y, x] = 1
        assert valid_map(one, (3, 3))[0, 1, 1, 0] == (0.0 if hit else 1.0), (y, x)


def test_valid_map_against_torch_for_other_ratios():
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    rng = np.random.default_rng(3)
    mask = np.where(rng.random((1, 1, 27, 35)) < 0.1, rng.random((1, 1, 27, 35)), 0)
    mask = mask.astype(np.float32)
    t = torch.from_numpy(mask)
    mb = f.interpolate(t, (7, 9), mode="bilinear")
    mb[mb > 0] = 1.0
    expected = ((1 - mb) * f.interpolate(1 - t, (7, 9))).numpy().transpose(0, 2, 3, 1)
    ours = jax.jit(nonlocal_valid_map, static_argnums=1)(mask.transpose(0, 2, 3, 1), (7, 9))
    np.testing.assert_allclose(np.asarray(ours), expected, atol=1e-6)


def attention_reference(theta, phi, g, valid):
    """Reference 5.2 in float64 numpy: softmax over all keys, zero invalid keys, L1 renorm."""
    f = np.einsum("bqc,bkc->bqk", theta, phi)
    p = np.exp(f - f.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    p = p * valid[:, None, :]
    p /= np.maximum(np.abs(p).sum(-1, keepdims=True), 1e-12)
    return np.einsum("bqk,bkc->bqc", p, g)


def attention_inputs(b=2, n=30, c=5, seed=4):
    rng = np.random.default_rng(seed)
    theta, phi, g = (rng.standard_normal((b, n, c)).astype(np.float32) for _ in range(3))
    valid = (rng.random((b, n)) < 0.6).astype(np.float32)
    valid[1] = 0  # a batch element without any valid key: all rows are zero
    return theta, phi, g, valid


def test_partial_attention_matches_reference():
    theta, phi, g, valid = attention_inputs()
    ours = np.asarray(jax.jit(partial_nonlocal_attention)(theta, phi, g, valid))
    expected = attention_reference(*(a.astype(np.float64) for a in (theta, phi, g, valid)))
    np.testing.assert_allclose(ours, expected, atol=2e-6)
    assert np.all(ours[1] == 0)
    # Masking happens after the softmax: re-normalising the softmax over valid keys only.
    sub = attention_reference(theta[:1], phi[:1], g[:1], valid[:1])
    np.testing.assert_allclose(ours[:1], sub, atol=2e-6)


def test_partial_attention_keeps_the_l1_eps_of_a_row_without_softmax_mass():
    # Query 0: its usable keys hold ~1e-17 of the softmax (< F.normalize's eps 1e-12), so
    # the official row is scaled down (to ~4e-5) instead of renormalised;
    # query 1: fractional and usable keys, renormalised as usual.
    theta = np.array([[[1.0], [0.1]]], np.float32)
    phi = np.array([[[40.0], [0.0], [1.0]]], np.float32)
    g = np.array([[[2.0], [3.0], [5.0]]], np.float32)
    valid = np.array([[0.0, 1.0, 0.5]], np.float32)
    ours = np.asarray(jax.jit(partial_nonlocal_attention)(theta, phi, g, valid))
    expected = attention_reference(*(a.astype(np.float64) for a in (theta, phi, g, valid)))
    assert 1e-6 < abs(expected[0, 0, 0]) < 1e-4  # renormalised it would be ~4.4
    np.testing.assert_allclose(ours, expected, rtol=1e-5)


def test_chunked_attention_equals_dense_values_and_gradients():
    theta, phi, g, valid = attention_inputs()
    dense = jax.jit(partial_nonlocal_attention)
    chunked = jax.jit(partial_nonlocal_attention_chunked, static_argnums=4)
    for chunk in (7, 30, 64):
        np.testing.assert_allclose(np.asarray(chunked(theta, phi, g, valid, chunk)),
                                   np.asarray(dense(theta, phi, g, valid)), atol=1e-6)
    loss = lambda fn: lambda t, p, v: jnp.sum(jnp.sin(fn(t, p, v)))
    grads_dense = jax.jit(jax.grad(loss(lambda t, p, v: partial_nonlocal_attention(
        t, p, v, valid)), argnums=(0, 1, 2)))(theta, phi, g)
    grads_chunk = jax.jit(jax.grad(loss(lambda t, p, v: partial_nonlocal_attention_chunked(
        t, p, v, valid, 7)), argnums=(0, 1, 2)))(theta, phi, g)
    for a, b in zip(grads_dense, grads_chunk):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def test_block_rows_caps_large_blocks_but_not_below_1024_rows():
    block_rows = mapping_module.block_rows
    assert block_rows(2048, 16384, 16384) == 2048          # 512 px: 2**25 weights, as asked
    assert block_rows(2048, 4096, 4096) == 2048
    assert block_rows(2048, 1000, 1000) == 1000            # no padded rows
    assert block_rows(2048, 65536, 65536) == 1024          # 1024 px: the budget, 1024 rows
    assert block_rows(2048, 262144, 262144) == 1024        # 2048 px: never below 1024 rows
    assert block_rows(4096, 20000, 20000) == 1677          # between: 2**25 // 20000
    assert block_rows(256, 262144, 262144) == 256          # a small chunk is used as given
    assert block_rows(7, 64, 64) == 7


def test_chunked_attention_with_the_block_budget_equals_dense(monkeypatch):
    # A budget smaller than the asked rows: blocks of max(BLOCK_MIN_ROWS, budget // keys) rows.
    monkeypatch.setattr(mapping_module, "BLOCK_WEIGHTS", 64 * 9)
    monkeypatch.setattr(mapping_module, "BLOCK_MIN_ROWS", 5)
    theta, phi, g, valid = attention_inputs()
    assert mapping_module.block_rows(30, theta.shape[1], phi.shape[1]) < 30
    np.testing.assert_allclose(
        np.asarray(partial_nonlocal_attention_chunked(theta, phi, g, valid, 30)),
        np.asarray(partial_nonlocal_attention(theta, phi, g, valid)), atol=1e-6)


def test_mapping_with_mask_chunked_equals_dense():
    inputs = inputs_for(MappingModelWithMask, batch=2)
    dense, apply_dense = jitted(MappingModelWithMask)
    _, apply_chunked = jitted(MappingModelWithMask, query_chunk=5)
    variables = random_variables(dense, *inputs)
    np.testing.assert_allclose(np.asarray(apply_chunked(variables, *inputs)),
                               np.asarray(apply_dense(variables, *inputs)), atol=1e-5)


# ----------------------------------------------------------------------------------------------
# Patch attention


def unfold_channel_major(a: np.ndarray, p: int) -> np.ndarray:
    """F.unfold(kernel p, stride p) of an NHWC array: B x (C*p*p) x L, vector (c, ky, kx)."""
    b, h, w, c = a.shape
    hp, wp = h // p, w // p
    out = np.zeros((b, c * p * p, hp * wp), a.dtype)
    for i in range(hp):
        for j in range(wp):
            out[:, :, i * wp + j] = a[:, i * p:(i + 1) * p, j * p:(j + 1) * p].transpose(
                0, 3, 1, 2).reshape(b, -1)
    return out


def fold_channel_major(u: np.ndarray, p: int, h: int, w: int, c: int) -> np.ndarray:
    b = u.shape[0]
    hp, wp = h // p, w // p
    out = np.zeros((b, h, w, c), u.dtype)
    for i in range(hp):
        for j in range(wp):
            out[:, i * p:(i + 1) * p, j * p:(j + 1) * p] = u[:, :, i * wp + j].reshape(
                b, c, p, p).transpose(0, 2, 3, 1)
    return out


def compose_reference(x: np.ndarray, mb: np.ndarray, p: int) -> np.ndarray:
    """The official inference_forward's ``composed`` (reference 5.3), float64 numpy."""
    b, h, w, c = x.shape
    query = unfold_channel_major(mb, p)[0].mean(axis=0) > 0.6
    if not query.any():
        return x
    xu = unfold_channel_major(x, p)
    keys = xu[:, :, ~query]
    qn = xu[:, :, query] / np.maximum(np.linalg.norm(xu[:, :, query], axis=1, keepdims=True),
                                      1e-12)
    kn = keys / np.maximum(np.linalg.norm(keys, axis=1, keepdims=True), 1e-12)
    best = np.einsum("bdq,bdk->bqk", qn, kn).argmax(-1)
    for e in range(b):
        xu[e][:, query] = keys[e][:, best[e]]
    return fold_channel_major(xu, p, h, w, c)


def latent_mask(b, h, w, cells, seed=5):
    mb = np.zeros((b, h, w, 1), np.float32)
    for (y0, y1, x0, x1) in cells:
        mb[:, y0:y1, x0:x1] = 1
    rng = np.random.default_rng(seed)
    mb[1:] = (rng.random(mb[1:].shape) < 0.5)  # other batch elements must not matter
    return mb


def test_patch_attention_matches_reference_with_remainder_and_batch0_selection():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 10, 13, 3)).astype(np.float32)  # remainder rows/cols at p=4
    mb = latent_mask(2, 10, 13, [(0, 4, 4, 8), (4, 7, 0, 4)])  # queries: patches 1 and 3 (75%)
    compose = jax.jit(patch_attention_inference, static_argnums=2)
    ours = np.asarray(compose(x, mb, 4))
    expected = compose_reference(x.astype(np.float64), mb, 4)
    np.testing.assert_allclose(ours, expected, atol=1e-6)
    assert np.all(ours[:, 8:] == 0) and np.all(ours[:, :, 12:] == 0)
    # Patch 1 (rows 0-3, cols 4-7) was replaced in every batch element.
    assert not np.allclose(ours[:, :4, 4:8], x[:, :4, 4:8])
    np.testing.assert_array_equal(ours[:, 4:8, 8:12], x[:, 4:8, 8:12])


def test_patch_attention_no_query_and_all_query_leave_x_unchanged():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 10, 13, 3)).astype(np.float32)
    compose = jax.jit(patch_attention_inference, static_argnums=2)
    sparse = np.zeros((1, 10, 13, 1), np.float32)
    sparse[0, ::3, ::3] = 1  # at most 25% of any 2x2 patch: no query
    for mb in (np.zeros_like(sparse), sparse, np.ones_like(sparse)):
        out = np.asarray(compose(x, mb, 2))
        np.testing.assert_array_equal(out, x)  # no copy and no zeroed remainder
    # Through the whole network: no NaN and the same output as without any query.
    module, apply = jitted(MappingModelWithMask2)
    z, mask = inputs_for(MappingModelWithMask2)
    variables = random_variables(module, z, mask)
    full = apply(variables, z, np.ones((1, 64, 64, 1), np.float32))
    assert bool(jnp.all(jnp.isfinite(full)))


def test_ties_take_the_first_key_and_softmax_keeps_the_order():
    base = np.random.default_rng(8).standard_normal((1, 6, 4)).astype(np.float32)
    patches = base.copy()
    patches[0, 4] = patches[0, 2]          # two identical keys
    patches[0, 0] = patches[0, 2] * 3.0    # a query pointing exactly at them
    is_key = np.array([[False, True, True, False, True, True]])
    best = jax.jit(best_key_indices)
    index = np.asarray(best(patches, is_key))
    assert index[0, 0] == 2
    # Masked columns never win when a key exists; without keys the answer is patch 0.
    assert all(is_key[0, i] for i in index[0])
    assert np.all(np.asarray(best(patches, np.zeros_like(is_key))) == 0)


def test_chunked_best_key_indices_equal_dense():
    """Blocks of query rows choose exactly the dense keys: chunk sizes 1, non-divisors, L - 1,
    L and > L (one block), random key masks, a batch element without keys, exact ties."""
    rng = np.random.default_rng(12)
    b, n, d = 3, 23, 6
    patches = rng.standard_normal((b, n, d)).astype(np.float32)
    patches[:, 17] = patches[:, 4]                # identical keys: the first index must win
    patches[:, 9] = 2.0 * patches[:, 4]           # a query pointing exactly at them
    is_key = rng.random((b, n)) < 0.5
    is_key[:, [4, 17]] = True
    is_key[:, 9] = False
    is_key[2] = False                             # no key at all: every row picks patch 0
    best = jax.jit(best_key_indices, static_argnums=(2, 3))
    dense = np.asarray(best(patches, is_key, "highest", 0))
    assert np.all(dense[2] == 0) and np.all(dense[:2, 9] == 4)
    for chunk in (1, 3, 5, 7, n - 1, n, n + 4):
        np.testing.assert_array_equal(np.asarray(best(patches, is_key, "highest", chunk)),
                                      dense, err_msg=f"query_chunk={chunk}")
    with pytest.raises(ValueError, match="query_chunk"):
        best_key_indices(patches, is_key, query_chunk=-1)


@pytest.mark.parametrize("method", [None, "train_forward"])
def test_mapping_with_mask2_chunked_equals_dense(method):
    """query_chunk 5 at the 16 x 16 latent: one block at patch 8 (L = 4), non-divisor blocks at
    patch 4 and 2 (L = 16, 64); batch 2 (inference selects queries from element 0)."""
    inputs = inputs_for(MappingModelWithMask2, batch=2)
    dense, apply_dense = jitted(MappingModelWithMask2, method)
    _, apply_chunked = jitted(MappingModelWithMask2, method, query_chunk=5)
    variables = random_variables(dense, *inputs)
    np.testing.assert_allclose(np.asarray(apply_chunked(variables, *inputs)),
                               np.asarray(apply_dense(variables, *inputs)), atol=1e-6, rtol=0)


def test_config_without_query_chunk_loads_dense():
    """config.json files written before the field existed rebuild with query_chunk 0."""
    args = json.loads(json.dumps(network_args(MappingModelWithMask2(**SMALL))))
    del args["query_chunk"]
    assert build_network("MappingModelWithMask2", args).query_chunk == 0


def test_softmax_rounding_ties_follow_torch_not_logit_argmax():
    """Two best keys 1 ulp apart tie after the float32 softmax when the best similarity is
    below 0.5 (exp(-ulp) rounds to 1); torch.max then takes the first index.

    Our selection (softmax first) must follow torch there, which the argmax of the logits would
    not. The exp of XLA and torch could in principle round differently on other CPUs, hence the
    margin; here they agree on every row.
    """
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    rows, n = 300, 24
    sim = rng.uniform(-1, 0.2, (1, rows, n)).astype(np.float32)
    top = rng.uniform(0.25, 0.5, rows).astype(np.float32)
    sim[0, :, 3] = top
    sim[0, :, 9] = np.nextafter(top, np.float32(2))
    is_key = np.ones((1, n), bool)
    is_key[0, 20:] = False
    is_key[0, 0] = False
    sim[0, :, 0] = 2.0  # a non-key with the highest similarity must never be chosen
    ours = np.asarray(jax.jit(select_best_keys)(sim, is_key))[0]
    keys = np.flatnonzero(is_key[0])
    probs = torch.softmax(torch.from_numpy(sim[0][:, keys]), dim=1)
    theirs = keys[torch.max(probs, dim=1)[1].numpy()]
    logit_argmax = np.where(is_key[0], sim[0], -np.inf).argmax(-1)
    assert np.mean(ours == theirs) >= 0.95
    assert set(ours) <= {3, 9} and np.mean(ours == 3) >= 0.95  # rounding ties: first index
    assert np.all(logit_argmax == 9)


def test_training_path_matches_inference_where_they_must_agree():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 8, 12, 3)).astype(np.float32)
    mb = np.zeros((1, 8, 12, 1), np.float32)
    mb[0, :4, 4:8] = 1
    mb[0, 4:, :2] = 1  # 50%: not a query
    train = np.asarray(jax.jit(patch_attention_training, static_argnums=2)(x, mb, 4))
    infer = np.asarray(jax.jit(patch_attention_inference, static_argnums=2)(x, mb, 4))
    np.testing.assert_array_equal(train, infer)
    assert not np.array_equal(infer, x)

    module, apply = jitted(MappingModelWithMask2)
    z, mask = inputs_for(MappingModelWithMask2)
    variables = random_variables(module, z, mask)
    out = apply(variables, z, mask)
    out_train = jitted(MappingModelWithMask2, "train_forward")[1](variables, z, mask)
    np.testing.assert_allclose(np.asarray(out_train), np.asarray(out), atol=1e-5)


def test_training_path_batched_no_key_and_gradient():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((3, 8, 8, 2)).astype(np.float32)
    mb = (rng.random((3, 8, 8, 1)) < 0.5).astype(np.float32)
    mb[2] = 1  # no key at all: every patch becomes a copy of patch 0
    train = jax.jit(patch_attention_training, static_argnums=2)
    out = np.asarray(train(x, mb, 2))
    for e in range(3):  # per-element masks, independent elements
        np.testing.assert_array_equal(out[e:e + 1], np.asarray(train(x[e:e + 1], mb[e:e + 1], 2)))
    np.testing.assert_array_equal(out[2], np.tile(x[2, :2, :2], (4, 4, 1)))
    # With no scratch at all every patch matches itself, but the fold zeroes the remainder.
    x_odd = rng.standard_normal((1, 9, 8, 2)).astype(np.float32)
    plain = np.asarray(train(x_odd, np.zeros((1, 9, 8, 1), np.float32), 2))
    np.testing.assert_array_equal(plain[:, :8], x_odd[:, :8])
    assert np.all(plain[:, 8] == 0)
    # Gradients reach x through the copied values.
    grad = jax.jit(jax.grad(lambda a: jnp.sum(patch_attention_training(a, mb, 2) ** 2)))(x)
    assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad).sum()) > 0
