"""Discriminators of the training stages (reference 10.1, 10.2, 10.6).

Official sizes and parameter counts with ``jax.eval_shape`` only; the forward pass, the pooled
scale and spectral norm cross-checked at tiny widths against a PyTorch build of pix2pixHD's
``MultiscaleDiscriminator`` made here from torch.nn pieces and torch.nn.utils.spectral_norm.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from oldphoto_jax.models.discriminators import (MultiscaleDiscriminator, PatchDiscriminator,
                                                avg_pool_3x3_s2, fold_spectral_norm,
                                                latent_discriminator)
from oldphoto_jax.models.registry import MODELS
from oldphoto_jax.models.spectral import SpectralConv2d

torch = pytest.importorskip("torch")
tnn = torch.nn
torch.set_num_threads(1)


def count(tree) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def abstract(module, shape):
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    variables = jax.eval_shape(module.init, jax.random.PRNGKey(0), x)
    return variables, jax.eval_shape(module.apply, variables, x)


@pytest.mark.parametrize("channels, expected", [(3, 5_529_474), (6, 5_535_618)])
def test_official_image_discriminator_sizes_and_params(channels, expected):
    variables, outputs = abstract(MultiscaleDiscriminator(in_channels=channels),
                                  (1, 256, 256, channels))
    assert count(variables["params"]) == expected
    assert sorted(variables["params"]) == ["scale0", "scale1"]   # official state-dict prefixes
    sizes = [[o.shape[1] for o in scale] for scale in outputs]
    assert sizes == [[129, 65, 33, 34, 35], [65, 33, 17, 18, 19]]
    assert [[o.shape[-1] for o in scale] for scale in outputs] == [[64, 128, 256, 512, 1]] * 2


def test_official_latent_discriminator():
    variables, outputs = abstract(latent_discriminator(), (1, 64, 64, 64))
    assert count(variables["params"]) == 2_827_201
    assert [[o.shape[1] for o in scale] for scale in outputs] == [[33, 17, 9, 10, 11]]


def test_spade_style_variant_structure():
    """SPADE: spectral norm only on the normalised convs, which have no bias."""
    d = MultiscaleDiscriminator(in_channels=3, spectral_norm=True, sn_outer=False,
                                norm_bias=False)
    variables, _ = abstract(d, (1, 256, 256, 3))
    scale = variables["params"]["scale1"]
    assert "bias" in scale["model0"] and "bias" in scale["model4"]
    assert all("bias" not in scale[f"model{i}"] for i in (1, 2, 3))
    assert sorted(variables["spectral"]["scale1"]) == ["model1", "model2", "model3"]
    assert count(variables["params"]) == 5_529_474 - 2 * (128 + 256 + 512)
    # pix2pixHD --use_SN: every conv
    variables, _ = abstract(MultiscaleDiscriminator(in_channels=6, spectral_norm=True),
                            (1, 64, 64, 6))
    assert sorted(variables["spectral"]["scale0"]) == [f"model{i}" for i in range(5)]


def test_registered():
    assert MODELS["multiscale_discriminator"] is MultiscaleDiscriminator
    assert MODELS["patch_discriminator"] is PatchDiscriminator


def test_avg_pool_matches_torch_count_include_pad_false():
    x = np.random.default_rng(0).standard_normal((2, 7, 10, 3)).astype(np.float32)
    ref = torch.nn.functional.avg_pool2d(torch.from_numpy(x).permute(0, 3, 1, 2), 3, stride=2,
                                         padding=1, count_include_pad=False)
    np.testing.assert_allclose(np.asarray(avg_pool_3x3_s2(jnp.asarray(x))),
                               ref.permute(0, 2, 3, 1).numpy(), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# A PyTorch pix2pixHD MultiscaleDiscriminator(getIntermFeat=True), built from torch.nn.

def torch_multiscale(cin, ndf, n_layers, num_d, use_sn):
    sn = torch.nn.utils.spectral_norm if use_sn else (lambda m: m)

    def one_scale():
        blocks = [tnn.Sequential(sn(tnn.Conv2d(cin, ndf, 4, 2, 2)), tnn.LeakyReLU(0.2))]
        nf = ndf
        for n in range(1, n_layers + 1):
            prev, nf = nf, min(nf * 2, 512)
            blocks.append(tnn.Sequential(sn(tnn.Conv2d(prev, nf, 4, 2 if n < n_layers else 1, 2)),
                                         tnn.InstanceNorm2d(nf), tnn.LeakyReLU(0.2)))
        blocks.append(tnn.Sequential(sn(tnn.Conv2d(nf, 1, 4, 1, 2))))
        return tnn.ModuleList(blocks)

    scales = tnn.ModuleList([one_scale() for _ in range(num_d)])  # index num_d-1 = full size

    def forward(x):
        results = []
        for i in range(num_d):
            if i > 0:
                x = torch.nn.functional.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
            feats, h = [], x
            for block in scales[num_d - 1 - i]:
                h = block(h)
                feats.append(h)
            results.append(feats)
        return results

    return scales, forward


def copy_torch_weights(scales, num_d, with_spectral):
    params, spectral = {}, {}
    for s, blocks in enumerate(scales):
        name = f"scale{s}"
        params[name], spectral[name] = {}, {}
        for i, block in enumerate(blocks):
            conv = block[0]
            w = conv.weight_orig if with_spectral else conv.weight
            params[name][f"model{i}"] = {
                "kernel": jnp.asarray(w.detach().numpy().transpose(2, 3, 1, 0)),
                "bias": jnp.asarray(conv.bias.detach().numpy())}
            if with_spectral:
                spectral[name][f"model{i}"] = {"u": jnp.asarray(conv.weight_u.numpy()),
                                               "v": jnp.asarray(conv.weight_v.numpy())}
    return params, spectral


@pytest.mark.parametrize("use_sn", [False, True])
def test_forward_matches_torch(use_sn):
    """Two training-mode calls (spectral norm advances u, v each time), odd input sizes."""
    torch.manual_seed(0)
    cin, ndf, n_layers, num_d = 6, 4, 3, 2
    scales, forward = torch_multiscale(cin, ndf, n_layers, num_d, use_sn)
    scales.train()
    params, spectral = copy_torch_weights(scales, num_d, use_sn)
    module = MultiscaleDiscriminator(in_channels=cin, num_D=num_d, ndf=ndf, n_layers=n_layers,
                                     spectral_norm=use_sn)
    variables = {"params": params, **({"spectral": spectral} if use_sn else {})}
    rng = np.random.default_rng(1)
    for call in range(2):
        x = rng.standard_normal((2, 21, 26, cin)).astype(np.float32)
        with torch.no_grad():
            ref = forward(torch.from_numpy(x).permute(0, 3, 1, 2))
        if use_sn:
            out, updated = module.apply(variables, jnp.asarray(x), train=True,
                                        mutable=["spectral"])
            variables = {"params": params, **updated}
        else:
            out = module.apply(variables, jnp.asarray(x), train=True)
        assert len(out) == num_d
        for scale_out, scale_ref in zip(out, ref):
            assert len(scale_out) == n_layers + 2
            for a, b in zip(scale_out, scale_ref):
                np.testing.assert_allclose(np.asarray(a), b.permute(0, 2, 3, 1).numpy(),
                                           atol=2e-5, rtol=1e-4)
    if use_sn:  # u, v after two power iterations equal torch's buffers
        conv = scales[1][2][0]
        np.testing.assert_allclose(np.asarray(variables["spectral"]["scale1"]["model2"]["u"]),
                                   conv.weight_u.numpy(), atol=1e-6)


def test_eval_mode_does_not_iterate_and_fold_equals_live():
    torch.manual_seed(3)
    conv = torch.nn.utils.spectral_norm(tnn.Conv2d(5, 7, 4, 2, 2))
    conv.eval()
    x = np.random.default_rng(2).standard_normal((1, 9, 11, 5)).astype(np.float32)
    with torch.no_grad():
        ref = conv(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    params = {"kernel": jnp.asarray(conv.weight_orig.detach().numpy().transpose(2, 3, 1, 0)),
              "bias": jnp.asarray(conv.bias.detach().numpy())}
    spectral = {"u": jnp.asarray(conv.weight_u.numpy()), "v": jnp.asarray(conv.weight_v.numpy())}
    module = SpectralConv2d(7, 4, stride=2, padding=2, spectral_norm=True)
    out, updated = module.apply({"params": params, "spectral": spectral}, jnp.asarray(x),
                                train=False, mutable=["spectral"])
    np.testing.assert_allclose(np.asarray(out), ref, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(updated["spectral"]["u"]), np.asarray(spectral["u"]))
    folded = fold_spectral_norm({"conv": params}, {"conv": spectral})["conv"]
    plain = SpectralConv2d(7, 4, stride=2, padding=2).apply({"params": folded}, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(plain), ref, atol=1e-5)
