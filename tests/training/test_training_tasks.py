"""The training tasks at tiny widths: steps run, the reconstruction term falls on a fixed batch,
exports load back into the inference networks, spectral norm advances as in the release, the step
is the same sharded over 4 devices; plus the optimiser schedules (reference 10.1-10.6).

States come from ``jax.eval_shape(task.init_state)`` filled on the host
(``oldphoto_jax.testing.random_model.random_state``): compiling the random initialisers costs
seconds per network on this CPU. ``init_state`` itself runs once, on the smallest task. Steps are compiled without
backend optimisation (faster to compile, slower to run; the networks are tiny).
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from oldphoto_jax import model_files
from oldphoto_jax.models.spectral import kernel_matrix, power_iteration
from oldphoto_jax.testing.config_files import load_config
from oldphoto_jax.testing.random_model import random_network, random_state, write_random_model
from oldphoto_jax.training import optim
from oldphoto_jax.training.tasks import build_task
from oldphoto_jax.training.tasks_common import Trainable, make_train_step, prepare_batch

FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
B = 2


def _set_present(section, **values):
    """Sets the fields of ``values`` that ``section`` has (configs hold only what they use)."""
    section.update({k: v for k, v in values.items() if k in section})


def small_config(task: str, variant: str | None = None, lr: float = 2e-4):
    """Official structure at minimal widths and depths (compile time is what costs here)."""
    c = load_config(task, f"tiny_{variant}" if variant else ("tiny"))
    if "disc" in c:
        _set_present(c.disc, ndf=4, n_layers=1, latent_ndf=4, latent_n_layers=1)
    c.optim.lr = lr
    c.optim.steps_per_epoch = 1000  # the trainer sets it from the data; these tests use no data
    if task in ("vae_a", "vae_b"):
        c.model.n_res_blocks = 1
    elif task == "mapping":
        _set_present(c.model, mc=16, n_up=1, n_blocks=1, nl_res_blocks=1, stage_blocks=1,
                     patch_sizes=(4, 2))
    elif task == "scratch":
        c.model.update(dict(depth=2, wf=2))
    else:
        c.model.update(dict(num_up_blocks=1, load_size=16))
        c.input.crop_size = 16
    return c


def make_batch(config, seed: int = 0) -> dict[str, np.ndarray]:
    """A fixed smooth batch of the task's input (images in [-1, 1], {0,1} masks)."""
    size = int(config.input.crop_size)
    yy, xx = np.mgrid[0:size, 0:size] / size
    rng = np.random.default_rng(seed)

    def images(channels=3):
        base = np.stack([np.sin(6 * xx + k) * np.cos(4 * yy - k) for k in range(channels)], -1)
        return np.stack([base, -base[::-1]] * (B // 2)).astype(np.float32)

    def mask():
        m = np.zeros((B, size, size, 1), np.float32)
        m[:, size // 8: size // 3, size // 8: 2 * size // 3] = 1.0
        m[0, :, size - 4: size - 2] = 1.0
        return m

    records = config.input.records
    if records in ("domain_a", "domain_b"):
        batch = {"image": images(), "grayscale": np.zeros(B, np.float32)}
        if records == "domain_a":
            batch["real_old"] = np.array([1, 0] * (B // 2), np.float32)
        return batch
    if records == "detection":
        m = mask()
        return {"image": np.where(m > 0, 1.0, images(1)).astype(np.float32), "mask": m,
                "grayscale": np.ones(B, np.float32)}
    clean = images()
    degraded = np.clip(0.6 * clean + 0.2 * rng.standard_normal(clean.shape), -1, 1)
    batch = {"degraded": degraded.astype(np.float32), "clean": clean}
    if records == "mapping_mask":
        batch["mask"] = mask()
        batch["degraded"] = np.where(batch["mask"] > 0, 1.0, batch["degraded"]).astype(np.float32)
    return batch


def pretrained_vaes() -> dict:
    return {"vae_a": random_network("vae_a", seed=1),
            "vae_b": random_network("vae_b_quality", seed=2)}


def start(task, batch, seed: int = 0):
    abstract = jax.eval_shape(task.init_state, jax.random.PRNGKey(0), batch)
    return jax.tree.map(jnp.asarray, random_state(abstract, seed))


class Run:
    """A task with its compiled step, the initial state and the state after each step."""

    def __init__(self, config, pretrained=None):
        self.config = config
        self.task = build_task(config, pretrained)
        self.batch = make_batch(config)
        self.initial = start(self.task, self.batch)
        self.step = jax.jit(self.task.train_step, compiler_options=FAST_COMPILE)
        self.states, self.metrics = [self.initial], []

    def advance(self, n: int):
        for _ in range(n):
            key = jax.random.PRNGKey(len(self.metrics))
            state, metrics = self.step(self.states[-1], self.batch, key)
            self.states.append(state)
            self.metrics.append({k: float(v) for k, v in metrics.items()})
        return self


CASES = {
    "vae_a": ("vae_a", None),
    "vae_b": ("vae_b", None),
    "vae_a_colour": ("vae_a", "colour"),  # the research variant: latent D on 8 + 6 channels
    "mapping_quality": ("mapping", "quality"),
    "mapping_scratch": ("mapping", "scratch"),
    "mapping_hr": ("mapping", "hr"),
    "scratch": ("scratch", None),
    "face": ("face", None),
}
RUNS: dict[str, Run] = {}


@pytest.fixture(scope="module")
def vae_dirs(tmp_path_factory):
    """Model directories with tiny random VAEs, as the mapping task loads them."""
    root = tmp_path_factory.mktemp("vaes")
    write_random_model(root / "a", roles=["vae_a"], seed=1)
    write_random_model(root / "b", roles=["vae_b_quality"], seed=2)
    return root / "a", root / "b"


def get_run(name: str, vae_dirs=None) -> Run:
    """One Run per case for the module (3 steps done), so compiled steps are shared."""
    if name not in RUNS:
        task, variant = CASES[name]
        lr = 1e-3 if name in ("vae_b", "mapping_quality") else 2e-4
        config = small_config(task, variant, lr)
        pretrained = None
        if task == "mapping":
            if name == "mapping_quality" and vae_dirs is not None:
                config.vae_a_checkpoint, config.vae_b_checkpoint = map(str, vae_dirs)
            else:
                pretrained = pretrained_vaes()
        RUNS[name] = Run(config, pretrained).advance(3)
    return RUNS[name]


# ---------------------------------------------------------------------------------------------
# Every task: three jitted steps, finite metrics, samples, export round trip

@pytest.mark.parametrize("name", list(CASES))
def test_three_steps_and_export_round_trip(name, vae_dirs, tmp_path):
    run = get_run(name, vae_dirs)
    task, last = run.task, run.metrics[-1]
    assert task.reconstruction_metric in last
    for metrics in run.metrics:
        bad = {k: v for k, v in metrics.items() if not np.isfinite(v)}
        assert not bad, bad
    assert int(run.states[-1]["step"]) == 3
    for net in run.initial["params"]:
        assert f"loss/{net}" in last and last[f"lr/{net}"] > 0
        before = jax.tree.leaves(run.initial["params"][net])
        after = jax.tree.leaves(run.states[-1]["params"][net])
        assert any(not np.allclose(a, b) for a, b in zip(before, after)), f"{net} did not move"
    if "frozen" in run.initial:
        for a, b in zip(jax.tree.leaves(run.initial["frozen"]),
                        jax.tree.leaves(run.states[-1]["frozen"])):
            np.testing.assert_array_equal(a, b)

    samples = jax.jit(task.samples, compiler_options=FAST_COMPILE)(run.states[-1], run.batch)
    size = int(run.config.input.crop_size)
    for key, image in samples.items():
        assert image.shape == (B, size, size, 3), key
        assert np.all(np.isfinite(image))

    exported = task.export(run.states[-1])
    directory = model_files.save_model(tmp_path / "model", exported)
    model = model_files.load_model(directory)
    assert model.roles == sorted(exported)
    for role, (module, variables) in exported.items():
        loaded_module, loaded_vars = model.network(role)
        assert loaded_module == module
        args = inference_inputs(name, run.batch, run)
        apply = jax.jit(lambda v, *a: module.apply(v, *a), compiler_options=FAST_COMPILE)
        assert jax.tree.structure(loaded_vars) == jax.tree.structure(variables)
        np.testing.assert_array_equal(np.asarray(apply(loaded_vars, *args)),
                                      np.asarray(apply(variables, *args)))
    if name == "face":
        check_face_export(run, exported)


def inference_inputs(name, batch, run):
    if name.startswith("vae"):
        return (batch["image"],)
    if name == "scratch":
        return (batch["image"],)
    if name == "face":
        return (batch["degraded"],)
    z = np.random.default_rng(0).standard_normal((1, 8, 8, int(run.config.model.nc)))
    z = z.astype(np.float32)
    return (z,) if name == "mapping_quality" else (z, batch["mask"][:1])


def check_face_export(run, exported):
    """The folded inference generator equals the live spectral-norm generator in eval mode."""
    from oldphoto_jax.training.tasks_face import generator_module

    (module, folded), = exported.values()
    assert module.spectral_norm is False and "spectral" not in folded
    state = run.states[-1]
    live = generator_module(run.config, spectral_norm=True, precision="highest")
    variables = {"params": state["params"]["generator"], **state["collections"]["generator"]}
    x = run.batch["degraded"]
    np.testing.assert_allclose(np.asarray(module.apply(folded, x)),
                               np.asarray(live.apply(variables, x, train=False)), atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Overfitting a fixed batch: the reconstruction term falls

@pytest.mark.parametrize("name", ["vae_b", "mapping_quality"])
def test_reconstruction_falls_on_a_fixed_batch(name, vae_dirs):
    run = get_run(name, vae_dirs)
    n = 33 - len(run.metrics)
    run.advance(max(n, 0))
    history = [m[run.task.reconstruction_metric] for m in run.metrics[:33]]
    first, last = history[0], np.mean(history[-5:])
    assert last < 0.85 * first, history


# ---------------------------------------------------------------------------------------------
# Task-specific behaviour

def test_vae_a_without_both_groups_has_no_latent_terms(vae_dirs):
    run = get_run("vae_a", vae_dirs)
    batch = dict(run.batch, real_old=np.ones(B, np.float32))
    state, metrics = run.step(run.initial, batch, jax.random.PRNGKey(0))
    assert float(metrics["gan/latent_pairs"]) == 0.0 and float(metrics["loss/feat_D"]) == 0.0
    assert float(metrics["grad_norm/feat_D"]) == 0.0
    for a, b in zip(jax.tree.leaves(run.initial["params"]["feat_D"]),
                    jax.tree.leaves(state["params"]["feat_D"])):
        np.testing.assert_array_equal(a, b)
    assert run.metrics[0]["gan/latent_pairs"] == 1.0


def test_vae_a_without_the_latent_discriminator(vae_dirs):
    """``loss.latent_gan = 0`` (the ablation of the latent alignment): no feat_D at all; the VAE
    and its image discriminator train as before."""
    assert "feat_D" in get_run("vae_a", vae_dirs).initial["params"]
    config = small_config("vae_a")
    config.loss.latent_gan = 0.0
    run = Run(config).advance(1)
    assert sorted(run.initial["params"]) == ["D", "vae"]
    assert not any("latent" in k or "feat_D" in k for k in run.metrics[0])
    assert np.isfinite(run.metrics[0]["loss/vae"]) and run.metrics[0]["grad_norm/vae"] > 0


def test_vae_a_noise_comes_from_the_step_key(vae_dirs):
    run = get_run("vae_a", vae_dirs)
    _, m1 = run.step(run.initial, run.batch, jax.random.PRNGKey(5))
    _, m2 = run.step(run.initial, run.batch, jax.random.PRNGKey(6))
    assert float(m1["metric/l1"]) != float(m2["metric/l1"])
    assert float(m1["loss/kl"]) == float(m2["loss/kl"])


def test_vae_image_l1_adds_its_weighted_term(vae_dirs):
    base = get_run("vae_b", vae_dirs)
    config = small_config("vae_b", None, 1e-3)
    config.loss.image_l1 = 5.0
    weighted = Run(config)
    key = jax.random.PRNGKey(3)
    _, m0 = base.step(base.initial, base.batch, key)
    _, m1 = weighted.step(base.initial, base.batch, key)
    assert float(m1["metric/l1"]) == pytest.approx(float(m0["metric/l1"]), rel=1e-6)
    assert float(m1["loss/vae"]) - float(m0["loss/vae"]) == pytest.approx(
        5.0 * float(m0["metric/l1"]), rel=1e-4)


def test_im2col_kernel_gradients_give_the_same_step(vae_dirs):
    from oldphoto_jax import layers

    base = get_run("vae_b", vae_dirs)
    with layers.using_conv_weight_gradient("im2col"):
        step = jax.jit(base.task.train_step, compiler_options=FAST_COMPILE)
        _, m1 = step(base.initial, base.batch, jax.random.PRNGKey(0))
    _, m0 = base.step(base.initial, base.batch, jax.random.PRNGKey(0))
    for name in m0:
        assert float(m1[name]) == pytest.approx(float(m0[name]), rel=1e-4, abs=1e-6), name
    assert float(m0["grad_norm/vae"]) > 0


def spectral_after(u, kernel, iterations):
    w = kernel_matrix(jnp.asarray(kernel))
    u = jnp.asarray(u)
    for _ in range(iterations):
        u, _ = power_iteration(w, u)
    return np.asarray(u)


@pytest.mark.parametrize("name, iterations", [("mapping_scratch", 3), ("mapping_hr", 3),
                                              ("face", 1)])
def test_discriminator_power_iterations_per_step(name, iterations, vae_dirs):
    """Release order for the mapping D (3 passes per step), one concatenated pass for faces."""
    run = get_run(name, vae_dirs)
    before, after = run.states[0], run.states[1]
    convs = sorted(before["collections"]["D"]["spectral"]["scale1"])
    assert convs == (["model1"] if name == "face" else ["model0", "model1", "model2"])
    for conv in convs:
        u0 = before["collections"]["D"]["spectral"]["scale1"][conv]["u"]
        kernel = before["params"]["D"]["scale1"][conv]["kernel"]
        np.testing.assert_allclose(after["collections"]["D"]["spectral"]["scale1"][conv]["u"],
                                   spectral_after(u0, kernel, iterations), atol=1e-5)
    if name == "face":
        bs0 = jax.tree.leaves(before["collections"]["generator"]["batch_stats"])
        bs1 = jax.tree.leaves(after["collections"]["generator"]["batch_stats"])
        assert any(not np.allclose(a, b) for a, b in zip(bs0, bs1))


def test_scratch_updates_batch_statistics(vae_dirs):
    run = get_run("scratch", vae_dirs)
    stats0 = jax.tree.leaves(run.states[0]["collections"]["unet"]["batch_stats"])
    stats1 = jax.tree.leaves(run.states[1]["collections"]["unet"]["batch_stats"])
    assert any(not np.allclose(a, b) for a, b in zip(stats0, stats1))
    for key in ("metric/iou", "metric/precision", "metric/recall"):
        assert 0.0 <= run.metrics[-1][key] <= 1.0


def test_uint8_batches_are_converted():
    clean = np.array([[[[0, 255, 128]]]], np.uint8)
    out = prepare_batch({"clean": clean, "mask": np.array([[[[1]]]], np.uint8),
                         "real_old": np.array([1], np.int32), "image": np.zeros((1, 1, 1, 3))})
    np.testing.assert_allclose(out["clean"], [[[[-1.0, 1.0, 128 / 127.5 - 1]]]], atol=1e-7)
    assert out["clean"].dtype == out["mask"].dtype == out["real_old"].dtype == jnp.float32
    assert float(out["mask"][0, 0, 0, 0]) == 1.0 and out["image"].dtype == jnp.float32


def test_mapping_checks_the_vae_latent_width():
    config = small_config("mapping")
    config.model.nc = 16
    with pytest.raises(ValueError, match="latent channels"):
        build_task(config, pretrained_vaes())
    config = small_config("mapping")
    config.vae_a_checkpoint = ""
    with pytest.raises(ValueError, match="vae_a_checkpoint"):
        build_task(config)


def test_init_state_follows_the_official_init():
    """The real initialisation (once, on a minimal VAE_B task): reference 10.1's rule."""
    config = small_config("vae_b")
    config.disc.num_D = 1
    task = build_task(config)
    batch = make_batch(config)
    state = task.init_state(jax.random.PRNGKey(0), batch)
    abstract = jax.eval_shape(task.init_state, jax.random.PRNGKey(0), batch)
    assert jax.tree.structure(state) == jax.tree.structure(abstract)
    assert int(state["step"]) == 0
    assert all(float(jnp.abs(x).max()) == 0 for x in jax.tree.leaves(state["opt_state"])
               if jnp.issubdtype(x.dtype, jnp.floating))
    kernels = [np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(state["params"])
               if p[-1].key == "kernel"]
    assert np.std(np.concatenate([k.ravel() for k in kernels])) == pytest.approx(0.02, rel=0.1)
    conv_in = state["params"]["vae"]["encoder"]["conv_in"]
    bound = 1 / np.sqrt(7 * 7 * 3)
    assert np.abs(conv_in["bias"]).max() <= bound and np.abs(conv_in["bias"]).max() > bound / 2


# ---------------------------------------------------------------------------------------------
# The generic step: each network follows the gradient of its own objective

def test_each_network_gets_the_gradient_of_its_own_objective():
    def forward(params, collections, frozen, batch, rng):
        a, b = params["a"]["w"], params["b"]["w"]
        return ({"a": jnp.sum(a * a * b), "b": jnp.sum(a * b * b * b)},
                ({"metric/x": jnp.sum(a)}, {}))

    sgd = Trainable(optax.sgd(1.0), lambda step: 1.0)
    step = make_train_step({"a": sgd, "b": sgd}, forward)
    a, b = jnp.asarray([1.0, 2.0]), jnp.asarray([3.0, -1.0])
    state = {"step": jnp.zeros((), jnp.int32), "params": {"a": {"w": a}, "b": {"w": b}},
             "opt_state": {"a": sgd.optimizer.init({"w": a}), "b": sgd.optimizer.init({"w": b})}}
    new, metrics = step(state, {}, jax.random.PRNGKey(0))
    np.testing.assert_allclose(new["params"]["a"]["w"], a - 2 * a * b)     # d(a^2 b)/da
    np.testing.assert_allclose(new["params"]["b"]["w"], b - 3 * a * b * b)  # d(a b^3)/db
    assert int(new["step"]) == 1 and float(metrics["loss/a"]) == pytest.approx(-1.0)


# ---------------------------------------------------------------------------------------------
# Optimisers and schedules

def test_linear_decay_schedule_in_steps():
    schedule = optim.linear_decay_schedule(1.0, niter=2, niter_decay=3, steps_per_epoch=4)
    lrs = [float(schedule(s)) for s in range(0, 24, 4)]   # first step of epochs 1..6
    np.testing.assert_allclose(lrs, [1, 1, 1, 2 / 3, 1 / 3, 0], atol=1e-7)
    assert float(schedule(15)) == pytest.approx(2 / 3) and float(schedule(16)) == \
        pytest.approx(1 / 3)
    assert float(optim.linear_decay_schedule(1.0, 5, 0, 10)(1000)) == 1.0


def test_ttur_rates_and_betas():
    config = load_config("mapping", "quality").optim
    assert optim.base_learning_rate(config, "g") == pytest.approx(1e-4)
    assert optim.base_learning_rate(config, "d") == pytest.approx(4e-4)
    assert (config.b1, config.b2) == (0.0, 0.9)
    config = load_config("mapping", "scratch").optim
    assert optim.base_learning_rate(config, "g") == optim.base_learning_rate(config, "d") == 2e-4
    assert (config.b1, config.b2) == (0.5, 0.999)
    scratch = load_config("scratch").optim
    assert (scratch.b1, scratch.b2) == (0.9, 0.999)


def test_adam_matches_torch():
    torch = pytest.importorskip("torch")
    config = load_config("vae_b").optim
    config.steps_per_epoch = 1
    tx = optim.optimizer_for(config, "g")
    w0 = np.array([0.5, -1.5, 2.0], np.float32)
    wt = torch.tensor(w0, requires_grad=True)
    topt = torch.optim.Adam([wt], lr=2e-4, betas=(0.5, 0.999), eps=1e-8)
    w, opt_state = jnp.asarray(w0), tx.init(jnp.asarray(w0))
    for _ in range(5):
        topt.zero_grad()
        (wt ** 3).sum().backward()
        topt.step()
        updates, opt_state = tx.update(3 * w ** 2, opt_state, w)
        w = optax.apply_updates(w, updates)
    np.testing.assert_allclose(np.asarray(w), wt.detach().numpy(), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Data parallel: a step sharded over 4 devices equals the single-device step

SHARDED_SCRIPT = r"""
import importlib.util, json, sys
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
spec = importlib.util.spec_from_file_location("task_tests", sys.argv[1])
t = importlib.util.module_from_spec(spec); spec.loader.exec_module(t)
t.B = 4
assert jax.device_count() == 4
from jax.sharding import AxisType
mesh = jax.make_mesh((4,), ("data",), axis_types=(AxisType.Auto,))  # as the trainer
report = {}
for name in sys.argv[2:]:
    task_name, variant = t.CASES[name]
    config = t.small_config(task_name, variant)
    config.input.batch_size = 4
    # Biases in front of a norm have an analytic gradient of 0; Adam's first step turns their
    # float noise (~1e-9, different summation orders) into +-lr. A larger eps keeps such noise
    # noise-sized; real gradients (1e-3 .. 1) are still followed.
    config.optim.eps = 1e-3
    task = t.build_task(config)
    batch = t.make_batch(config)
    if "real_old" in batch:
        batch["real_old"] = np.array([1, 1, 0, 1], np.float32)   # groups split across devices
    state = t.start(task, batch)
    key = jax.random.PRNGKey(7)
    one = jax.devices()[0]
    single = jax.jit(task.train_step, compiler_options=t.FAST_COMPILE)
    s1, m1 = single(jax.device_put(state, one), jax.device_put(batch, one), key)
    rep, split = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    sharded = jax.jit(task.train_step, in_shardings=(rep, split, rep),
                      out_shardings=(rep, rep), compiler_options=t.FAST_COMPILE)
    s4, m4 = sharded(jax.device_put(state, rep), jax.device_put(batch, split), key)
    # Each leaf's largest difference against what float summation order allows there: 1e-5
    # plus 1e-2 of the leaf's largest magnitude (see run_sharded).
    ratios = [float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
              / (1e-5 + 1e-2 * float(np.max(np.abs(np.asarray(a)))))
              for a, b in zip(jax.tree.leaves((s1, m1)), jax.tree.leaves((s4, m4))) if np.size(a)]
    report[name] = {"max_ratio": max(ratios), "loss": float(m1[task.reconstruction_metric])}
print("REPORT" + json.dumps(report))
"""


def run_sharded(*names):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT, __file__, *names],
                            env=env, capture_output=True, text=True, timeout=600,
                            cwd=pathlib.Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr[-4000:]
    line = [l for l in result.stdout.splitlines() if l.startswith("REPORT")][-1]
    report = json.loads(line[len("REPORT"):])
    # Every leaf of the new state and every metric within 1e-5 + 1e-2 * (its largest magnitude).
    # On the AMD EPYC the two steps agreed to 1e-5 outright; on an Intel Xeon with AVX-512 they
    # differ by up to 2e-3 of a leaf's magnitude (Adam's moments; the parameters 2.4e-4, the
    # gradient norm 2.2e-4), from YNNPACK's reductions (instance norms, sums), which add in
    # another order there: with XLA's own reductions (--xla_cpu_experimental_ynn_fusion_type=
    # -individual_convolution,-reduce) the largest difference is 2.3e-5. A step that shards
    # wrongly (a statistic or the real/synthetic group rule per device instead of over the
    # global batch) moves leaves by a large part of their size.
    for name, entry in report.items():
        assert np.isfinite(entry["loss"]), name
        assert entry["max_ratio"] <= 1.0, (name, entry)


def test_sharded_step_equals_single_device_step():
    """VAE_A: latent noise, the group rule across devices (flags 1, 1, 0, 1), two Ds."""
    run_sharded("vae_a")


@pytest.mark.slow
def test_sharded_step_equals_single_device_step_with_batch_norm():
    """Scratch detection: batch statistics over the global batch (sync BN)."""
    run_sharded("scratch")


# ---------------------------------------------------------------------------------------------
# Starting a mapping from another trained mapping (config.init_from)

def test_warm_start_takes_arrays_of_the_same_place_and_shape_only():
    from oldphoto_jax.training.tasks_common import warm_start

    params = {"head": {"kernel": np.zeros((3, 3, 2, 4), np.float32), "bias": np.zeros(4, np.float32)},
              "new": {"kernel": np.zeros(2, np.float32)}}
    source = {"head": {"kernel": np.ones((3, 3, 2, 4), np.float32), "bias": np.ones(5, np.float32)},
              "other": {"kernel": np.ones(2)}}
    out, taken, fresh, _ = warm_start(params, source)
    assert taken == ["head/kernel"] and sorted(fresh) == ["head/bias", "new/kernel"]
    np.testing.assert_array_equal(out["head"]["kernel"], 1.0)
    np.testing.assert_array_equal(out["head"]["bias"], 0.0)
    np.testing.assert_array_equal(out["new"]["kernel"], 0.0)


def test_warm_start_embeds_narrower_arrays_so_the_wider_layer_computes_the_same_channels():
    """embed: a 2 -> 3 channel conv from a 1 -> 2 one: the source in the leading corner, the new
    input channel reading zeros, so the first two outputs are the source's on any input."""
    from oldphoto_jax.layers import conv2d
    from oldphoto_jax.training.tasks_common import warm_start

    rng = np.random.default_rng(0)
    params = {"conv": {"kernel": rng.normal(size=(3, 3, 2, 3)).astype(np.float32),
                       "bias": rng.normal(size=3).astype(np.float32)},
              "gate": np.zeros((2, 2), np.float32)}
    source = {"conv": {"kernel": rng.normal(size=(3, 3, 1, 2)).astype(np.float32),
                       "bias": rng.normal(size=2).astype(np.float32)},
              "gate": np.ones((3, 1), np.float32)}  # not embeddable: wider on one axis only
    out, taken, fresh, embedded = warm_start(params, source, embed=True)
    assert sorted(taken) == ["conv/bias", "conv/kernel"] and fresh == ["gate"]
    assert sorted(embedded) == ["conv/bias", "conv/kernel"]
    kernel, bias = np.asarray(out["conv"]["kernel"]), np.asarray(out["conv"]["bias"])
    np.testing.assert_array_equal(kernel[:, :, :1, :2], source["conv"]["kernel"])
    np.testing.assert_array_equal(kernel[:, :, 1:, :], 0.0)
    np.testing.assert_array_equal(kernel[:, :, :1, 2:], params["conv"]["kernel"][:, :, :1, 2:])
    np.testing.assert_array_equal(bias, [*source["conv"]["bias"], params["conv"]["bias"][2]])
    x = jnp.asarray(rng.normal(size=(1, 5, 5, 2)), jnp.float32)
    wide = conv2d(x, out["conv"]["kernel"], padding=1) + out["conv"]["bias"]
    narrow = conv2d(x[..., :1], source["conv"]["kernel"], padding=1) + source["conv"]["bias"]
    np.testing.assert_allclose(wide[..., :2], narrow, atol=1e-5)
    _, taken_plain, _, _ = warm_start(params, source)
    assert taken_plain == []  # without embed only equal shapes are taken


def test_quality_mapping_starts_from_a_trained_scratch_mapping(tmp_path, capsys):
    """Head, trunk and tail come from the scratch mapping; D and the optimiser start fresh."""
    from oldphoto_jax.models.registry import build_model

    scratch = small_config("mapping", "scratch")
    module = build_model(scratch.model)
    z = jnp.zeros((1, 8, 8, scratch.model.nc))
    variables = module.init(jax.random.PRNGKey(7), z, jnp.zeros((1, 32, 32, 1)))
    source_dir = model_files.save_model(tmp_path / "scratch",
                                        {"mapping_scratch": (module, variables)})

    config = small_config("mapping", "quality")
    config.init_from.checkpoint = str(source_dir)
    batch = make_batch(config)
    state = build_task(config, pretrained_vaes()).init_state(jax.random.PRNGKey(0), batch)
    params = state["params"]["mapping"]
    for part in ("head", "trunk", "tail"):
        for a, b in zip(jax.tree.leaves(params[part]),
                        jax.tree.leaves(variables["params"][part])):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert "nl" not in params
    assert "mapping starts from" in capsys.readouterr().out

    config.init_from.role = "mapping_hr"
    with pytest.raises(model_files.CheckpointError, match="none of the roles"):
        build_task(config, pretrained_vaes())


def test_colour_vae_b_starts_from_a_trained_plain_vae_b(tmp_path, capsys):
    """vae_colour has the plain VAE's parameters: all of them are taken; D starts fresh."""
    from oldphoto_jax.models.registry import build_model

    plain = small_config("vae_b")
    module = build_model(plain.model)
    image = jnp.zeros((1, plain.input.crop_size, plain.input.crop_size, 3))
    variables = module.init(jax.random.PRNGKey(3), image)
    source_dir = model_files.save_model(tmp_path / "plain", {"vae_b_scratch": (module, variables)})

    config = small_config("vae_b", "colour")
    config.init_from.checkpoint = str(source_dir)
    state = build_task(config).init_state(jax.random.PRNGKey(0), make_batch(config))
    ours = jax.tree.leaves(state["params"]["vae"])
    assert len(ours) == len(jax.tree.leaves(variables["params"]))
    for a, b in zip(ours, jax.tree.leaves(variables["params"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    printed = capsys.readouterr().out
    assert "vae_b starts from" in printed and "0 initialised (none)" in printed

    config.init_from.role = "vae_a"
    with pytest.raises(model_files.CheckpointError, match="none of the roles"):
        build_task(config)


def test_scratch_detector_starts_from_a_trained_one(tmp_path, capsys):
    """config.init_from: every parameter and running statistic of the trained detector."""
    from oldphoto_jax.models.registry import build_model

    config = small_config("scratch")
    module = build_model(config.model)
    size = config.input.crop_size
    variables = module.init(jax.random.PRNGKey(5), jnp.zeros((1, size, size, 1)))
    variables = jax.tree.map(lambda x: x + 0.25, variables)  # running stats unlike a fresh init
    source_dir = model_files.save_model(tmp_path / "trained",
                                        {"scratch_detector": (module, variables)})
    config.init_from.checkpoint = str(source_dir)
    state = build_task(config).init_state(jax.random.PRNGKey(0), make_batch(config))
    for collection, ours in (("params", state["params"]["unet"]),
                             ("batch_stats", state["collections"]["unet"]["batch_stats"])):
        theirs = jax.tree.leaves(variables[collection])
        assert len(jax.tree.leaves(ours)) == len(theirs) > 0
        for a, b in zip(jax.tree.leaves(ours), theirs):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert "scratch starts from" in capsys.readouterr().out


def test_mapping_image_l1_adds_its_weight_times_the_image_l1_to_the_objective():
    runs = {}
    for weight in (0.0, 5.0):
        config = small_config("mapping", "quality")
        config.loss.image_l1 = weight
        runs[weight] = Run(config, pretrained_vaes()).advance(1).metrics[0]
    plain, weighted = runs[0.0], runs[5.0]
    assert weighted["metric/l1"] == pytest.approx(plain["metric/l1"], rel=1e-6)
    assert weighted["loss/mapping"] - plain["loss/mapping"] == pytest.approx(
        5.0 * plain["metric/l1"], rel=1e-4)


def test_frozen_parameters_keep_their_values_while_the_rest_trains():
    config = small_config("mapping", "quality")
    config.optim.frozen = "mapping/head, mapping/trunk/blocks_0"
    run = Run(config, pretrained_vaes()).advance(1)
    before, after = run.states[0]["params"], run.states[1]["params"]

    def moved(tree_a, tree_b):
        return any(not np.array_equal(np.asarray(a), np.asarray(b))
                   for a, b in zip(jax.tree.leaves(tree_a), jax.tree.leaves(tree_b)))

    assert not moved(before["mapping"]["head"], after["mapping"]["head"])
    assert not moved(before["mapping"]["trunk"], after["mapping"]["trunk"])  # its one block
    assert moved(before["mapping"]["tail"], after["mapping"]["tail"])
    assert moved(before["D"], after["D"])


@pytest.mark.parametrize("frozen, message", [
    ("mapping/no_such_layer", "mapping has no parameters under no_such_layer"),
    ("vae/encoder", "optim.frozen names vae; this task trains D, mapping"),
    ("mapping", "NETWORK/PATH"),
])
def test_frozen_prefixes_that_name_nothing_are_errors(frozen, message):
    config = small_config("mapping", "quality")
    config.optim.frozen = frozen
    with pytest.raises(ValueError, match=message):
        task = build_task(config, pretrained_vaes())
        task.init_state(jax.random.PRNGKey(0), make_batch(config))
