"""Loss formulas of the training tasks on hand-computed examples (reference 10.1-10.6), the
latent-discriminator group rule, the detection losses against torch, and the VGG19 loss against
a PyTorch VGG19 ``features`` built here from torch.nn with random weights saved to an .npz."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from oldphoto_jax.training import losses

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


def outputs(*scales):
    """D outputs from per-scale lists of arrays (the last one is the score map)."""
    return [[jnp.asarray(a, jnp.float32) for a in scale] for scale in scales]


# ---------------------------------------------------------------------------------------------
# GAN terms

def test_lsgan_sums_scales_of_means():
    d = outputs([np.zeros((1, 2, 2, 1)), np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 2, 2, 1)],
                [np.zeros((1, 1, 1, 1)), np.full((1, 1, 1, 1), 0.5)])
    # scale 1: mean((s-1)^2) = (0+1+4+9)/4 = 3.5; scale 2: 0.25
    assert float(losses.lsgan_loss(d, 1.0)) == pytest.approx(3.75)
    # to 0: (1+4+9+16)/4 + 0.25
    assert float(losses.lsgan_loss(d, 0.0)) == pytest.approx(7.75)
    total, real, fake = losses.lsgan_d_loss(d, d)
    assert float(total) == pytest.approx(0.5 * (3.75 + 7.75))
    assert (float(real), float(fake)) == (pytest.approx(3.75), pytest.approx(7.75))


def test_ls_per_sample_mean_is_the_batch_loss():
    rng = np.random.default_rng(0)
    d = outputs([rng.standard_normal((3, 4, 4, 1))], [rng.standard_normal((3, 2, 2, 1))])
    per = losses.ls_per_sample(d, 1.0)
    assert per.shape == (3,)
    assert float(jnp.mean(per)) == pytest.approx(float(losses.lsgan_loss(d, 1.0)), rel=1e-6)


def test_hinge_terms():
    real = outputs([np.zeros((1, 1, 1, 1)), np.array([2.0, 0.5]).reshape(1, 1, 2, 1)],
                   [np.zeros((1, 1, 1, 1)), np.array([-1.0]).reshape(1, 1, 1, 1)])
    fake = outputs([np.zeros((1, 1, 1, 1)), np.array([-2.0, 0.5]).reshape(1, 1, 2, 1)],
                   [np.zeros((1, 1, 1, 1)), np.array([1.0]).reshape(1, 1, 1, 1)])
    d_real, d_fake = losses.hinge_d_losses(real, fake)
    # real: scale 1 mean(relu(1-[2, .5])) = .25, scale 2 relu(2) = 2 -> mean over scales 1.125
    assert float(d_real) == pytest.approx(1.125)
    # fake: scale 1 mean(relu(1+[-2, .5])) = .75, scale 2 relu(2) = 2 -> 1.375
    assert float(d_fake) == pytest.approx(1.375)
    # G: -(mean(-2, .5) + 1) / 2 = -(-.75 + 1) / 2
    assert float(losses.hinge_g_loss(fake)) == pytest.approx(-0.125)


def feature_outputs(n_scales, n_layers, value):
    return outputs(*[[np.full((1, 2, 2, 1), value)] * (n_layers + 1) + [np.zeros((1, 1, 1, 1))]
                     for _ in range(n_scales)])


def test_feature_matching_weights():
    fake, real = feature_outputs(2, 3, 1.0), feature_outputs(2, 3, 0.0)
    # official: 8 terms of weight (1/2)(4/4)10 = 5, each |diff| = 1
    assert float(losses.feature_matching_loss(fake, real)) == pytest.approx(40.0)
    # SPADE: 8 terms of 10/2
    assert float(losses.feature_matching_loss(fake, real, weighting="spade")) == \
        pytest.approx(40.0)
    # n_layers 1 (2 matched blocks per scale), one scale: weight (1/1)(4/2)10 = 20
    fake, real = feature_outputs(1, 1, 0.5), feature_outputs(1, 1, 0.0)
    assert float(losses.feature_matching_loss(fake, real)) == pytest.approx(2 * 20 * 0.5)
    assert float(losses.feature_matching_loss(fake, real, weighting="spade")) == \
        pytest.approx(2 * 10 * 0.5)


def test_feature_matching_treats_real_as_constant():
    real = jnp.ones((1, 2, 2, 1))

    def fm(r):
        return losses.feature_matching_loss([[jnp.zeros((1, 2, 2, 1)), jnp.zeros((1, 1, 1, 1))]],
                                            [[r, jnp.zeros((1, 1, 1, 1))]])

    assert float(jnp.abs(jax.grad(fm)(real)).sum()) == 0.0


def test_kl_and_latent_l1():
    h = jnp.asarray([[1.0, -2.0], [0.0, 3.0]])
    assert float(losses.kl_loss(h, 1.0)) == pytest.approx(14.0 / 4)
    assert float(losses.latent_l1_loss(h, jnp.zeros_like(h), 60.0)) == pytest.approx(60 * 1.5)


# ---------------------------------------------------------------------------------------------
# VAE_A's latent discriminator: keep the first L of each group

def test_group_weights_whole_batch():
    flags = jnp.asarray([1, 0, 0, 1, 1, 0, 1, 1], jnp.float32)
    w_real, w_syn = losses.latent_group_weights(flags)
    # L = min(5, 3) = 3: real 0, 3, 4 and synthetic 1, 2, 5 are kept
    np.testing.assert_allclose(w_real, np.array([1, 0, 0, 1, 1, 0, 0, 0]) / 3, atol=1e-7)
    np.testing.assert_allclose(w_syn, np.array([0, 1, 1, 0, 0, 1, 0, 0]) / 3, atol=1e-7)


def test_group_weights_per_chunk_and_empty_chunk():
    flags = jnp.asarray([1, 0, 0, 1, 1, 0, 1, 1], jnp.float32)
    w_real, w_syn = losses.latent_group_weights(flags, chunks=2)
    # chunk [1,0,0,1]: L=2; chunk [1,0,1,1]: L=1; chunks averaged with equal weight
    np.testing.assert_allclose(w_real, [1 / 4, 0, 0, 1 / 4, 1 / 2, 0, 0, 0], atol=1e-7)
    np.testing.assert_allclose(w_syn, [0, 1 / 4, 1 / 4, 0, 0, 1 / 2, 0, 0], atol=1e-7)
    # a chunk with only real-old photos is skipped (10.5 #6): the other chunk gets all weight
    flags = jnp.asarray([1, 1, 1, 1, 0, 1, 0, 0], jnp.float32)
    w_real, w_syn = losses.latent_group_weights(flags, chunks=2)
    np.testing.assert_allclose(w_real, [0, 0, 0, 0, 0, 1, 0, 0], atol=1e-7)
    np.testing.assert_allclose(w_syn, [0, 0, 0, 0, 1, 0, 0, 0], atol=1e-7)
    with pytest.raises(ValueError):
        losses.latent_group_weights(flags, chunks=3)


def release_latent_losses(scores, flags):
    """The release's rule written directly: lists of the two groups, the first L of each,
    concatenated batches, least squares means (one scale)."""
    real = [s for s, f in zip(scores, flags) if f == 1]
    syn = [s for s, f in zip(scores, flags) if f == 0]
    n = min(len(real), len(syn))
    real, syn = np.stack(real[:n]), np.stack(syn[:n])
    feat_d = 0.5 * (np.mean((syn - 1) ** 2) + np.mean(real ** 2))
    return feat_d, np.mean((real - 1) ** 2)


def test_latent_adversarial_losses_match_the_release_rule():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((6, 3, 3, 1)).astype(np.float32)
    flags = np.array([0, 1, 1, 0, 1, 1], np.float32)
    got = losses.latent_adversarial_losses([[jnp.asarray(scores)]], jnp.asarray(flags))
    feat_d, g_latent = release_latent_losses(scores, flags)
    assert float(got["feat_d"]) == pytest.approx(feat_d, rel=1e-5)
    assert float(got["g_latent"]) == pytest.approx(g_latent, rel=1e-5)
    assert float(got["pairs"]) == 2
    # the encoder term reaches only the kept real-old samples (1 and 2)
    grad = jax.grad(lambda s: losses.latent_adversarial_losses([[s]], jnp.asarray(flags))
                    ["g_latent"])(jnp.asarray(scores))
    touched = np.abs(np.asarray(grad)).reshape(6, -1).sum(axis=1) > 0
    assert touched.tolist() == [False, True, True, False, False, False]


def test_latent_losses_vanish_without_both_groups():
    scores = jnp.ones((4, 2, 2, 1))
    got = losses.latent_adversarial_losses([[scores]], jnp.ones((4,)))
    assert float(got["feat_d"]) == 0.0 and float(got["g_latent"]) == 0.0
    assert float(got["pairs"]) == 0.0


# ---------------------------------------------------------------------------------------------
# Scratch detection

def test_balanced_bce():
    logits = jnp.asarray([[2.0, -1.0, 0.5, -3.0]])
    mask = jnp.asarray([[1.0, 0.0, 0.0, 0.0]])
    sp = lambda t: np.log1p(np.exp(t))  # softplus
    pos = sp(-2.0)
    neg = (sp(-1.0) + sp(0.5) + sp(-3.0)) / 3
    assert float(losses.balanced_bce_loss(logits, mask)) == pytest.approx(0.5 * (pos + neg),
                                                                          rel=1e-6)
    # only one class present: its mean alone
    assert float(losses.balanced_bce_loss(logits, jnp.zeros_like(mask))) == pytest.approx(
        (sp(2.0) + sp(-1.0) + sp(0.5) + sp(-3.0)) / 4, rel=1e-6)


def test_weighted_bce_and_focal_match_torch():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 5, 5, 1)).astype(np.float32) * 3
    mask = (rng.uniform(size=logits.shape) < 0.2).astype(np.float32)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.from_numpy(logits), torch.from_numpy(mask), pos_weight=torch.tensor(7.0))
    got = losses.detection_loss(jnp.asarray(logits), jnp.asarray(mask), "bce",
                                positive_weight=7.0)
    assert float(got) == pytest.approx(float(ref), rel=1e-5)
    # focal (torchvision.ops.sigmoid_focal_loss formula, mean reduction)
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    ce = -(mask * np.log(p) + (1 - mask) * np.log(1 - p))
    p_t = p * mask + (1 - p) * (1 - mask)
    alpha_t = 0.25 * mask + 0.75 * (1 - mask)
    expected = np.mean(alpha_t * ce * (1 - p_t) ** 2)
    got = losses.detection_loss(jnp.asarray(logits), jnp.asarray(mask), "focal")
    assert float(got) == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError):
        losses.detection_loss(jnp.asarray(logits), jnp.asarray(mask), "dice")


def test_detection_metrics():
    # probabilities 0.73, 0.38, 0.62, 0.05 at threshold 0.4 -> predicted 1, 0, 1, 0
    logits = jnp.asarray([1.0, -0.5, 0.5, -3.0])
    mask = jnp.asarray([1.0, 1.0, 0.0, 0.0])
    m = losses.detection_metrics(logits, mask, 0.4)
    assert float(m["precision"]) == pytest.approx(0.5)
    assert float(m["recall"]) == pytest.approx(0.5)
    assert float(m["iou"]) == pytest.approx(1 / 3)


# ---------------------------------------------------------------------------------------------
# VGG19 perceptual loss

def torch_vgg19_features():
    """torchvision's vgg19().features layout (indices 0..29), from torch.nn."""
    layers, cin = [], 3
    for index, spec in losses.VGG19_LAYERS:
        if spec == "M":
            layers.append(torch.nn.MaxPool2d(2, 2))
        else:
            layers += [torch.nn.Conv2d(cin, spec, 3, padding=1), torch.nn.ReLU()]
            cin = spec
    layers.append(torch.nn.ReLU())  # keep the length (index 29 is relu5_1)
    return torch.nn.Sequential(*layers[:30])


@pytest.fixture(scope="module")
def vgg_npz(tmp_path_factory):
    torch.manual_seed(0)
    features = torch_vgg19_features()
    path = tmp_path_factory.mktemp("vgg") / "vgg19_features.npz"
    np.savez(path, **{f"features.{k}": v.numpy() for k, v in features.state_dict().items()})
    return path, features


def test_vgg19_npz_layout(vgg_npz):
    path, features = vgg_npz
    params = losses.load_vgg19_npz(path)
    assert sorted(int(k.split("_")[1]) for k in params) == \
        [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28]
    assert params["features_0"]["kernel"].shape == (3, 3, 3, 64)
    bad = path.parent / "bad.npz"
    np.savez(bad, **{f"features.{k}": v.numpy() for k, v in features.state_dict().items()
                     if not k.startswith("28.")})
    with pytest.raises(ValueError, match="features.28"):
        losses.load_vgg19_npz(bad)


def test_vgg_loss_matches_torch(vgg_npz):
    path, features = vgg_npz
    params = losses.load_vgg19_npz(path)
    rng = np.random.default_rng(1)
    fake = rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    real = rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)

    def taps(x):
        out, h = [], torch.from_numpy(x).permute(0, 3, 1, 2)
        for i, layer in enumerate(features):
            h = layer(h)
            if i in (1, 6, 11, 20, 29):
                out.append(h)
        return out

    with torch.no_grad():
        tf, tr = taps(fake), taps(real)
    expected = 10.0 * sum(w * float(torch.mean(torch.abs(a - b)))
                          for w, a, b in zip(losses.VGG_LAYER_WEIGHTS, tf, tr))
    # value and the gradient with respect to the target (constant: zero) in one compile
    got, grad_real = jax.jit(jax.value_and_grad(
        lambda r: losses.vgg_loss(params, jnp.asarray(fake), r)))(jnp.asarray(real))
    assert float(got) == pytest.approx(expected, rel=1e-4)
    assert float(jnp.abs(grad_real).sum()) == 0.0
