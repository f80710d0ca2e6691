"""Shared pieces of the trainer tests (test_trainer_*.py): a small real task independent of
``training.tasks``, small generated photo folders, a trainer config for that task and a reader
of TensorBoard event files."""
from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from PIL import Image

from oldphoto_jax.models.vae import VAE
from oldphoto_jax.training.task import Task

def l1_vae_task(lr: float = 2e-3) -> Task:
    """A tiny VAE trained to reconstruct its input with an L1 loss and Adam: a real, trainable
    task built from the project's VAE, independent of ``training.tasks``."""
    model = VAE(ngf=8, max_channels=8, n_down_convs=2, n_res_blocks=1)
    tx = optax.adam(lr, b1=0.5)

    @jax.jit
    def init_state(rng, batch):
        params = model.init(rng, jnp.zeros((1,) + batch["image"].shape[1:]))["params"]
        return {"params": params, "opt": tx.init(params), "step": jnp.zeros((), jnp.int32)}

    def train_step(state, batch, rng):
        noise = 0.01 * jax.random.normal(rng, batch["image"].shape)

        def loss_fn(params):
            out = model.apply({"params": params}, batch["image"] + noise)
            return jnp.mean(jnp.abs(out - batch["image"]))

        loss, grads = jax.value_and_grad(loss_fn)(state["params"])
        updates, opt = tx.update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        return ({"params": params, "opt": opt, "step": state["step"] + 1},
                {"loss/l1": loss, "grad_norm": optax.tree.norm(grads)})

    def samples(state, batch):
        return {"input": batch["image"],
                "output": model.apply({"params": state["params"]}, batch["image"])}

    def export(state):
        return {"vae_b_quality": (model, {"params": state["params"]})}

    return Task(name="test_vae", init_state=init_state, train_step=train_step,
                 samples=samples, export=export, reconstruction_metric="loss/l1",
                 records="domain_b")


def make_photo(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 200, size=3)
    image = base + 60 * np.stack([np.sin(xs / 7 + seed), ys / height, (xs + ys) / (width + height)],
                                 -1)
    image += rng.normal(0, 6, size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def photo_dirs(tmp_path_factory) -> dict[str, str]:
    """clean/ (four 64 x 80 photos) and old/ (two): enough for every task, quick to read."""
    root = tmp_path_factory.mktemp("photos")
    dirs = {}
    for name, count, seed0 in (("clean", 4, 1), ("old", 2, 20)):
        folder = root / name
        folder.mkdir()
        for k in range(count):
            Image.fromarray(make_photo(64, 80, seed0 + k)).save(folder / f"p{k}.png")
        dirs[name] = str(folder)
    return dirs


def base_config(photo_dirs, **overrides) -> ml_collections.ConfigDict:
    """A trainer config for ``l1_vae_task`` (no ``optim``: the task has its own)."""
    config = ml_collections.ConfigDict({
        "task": "test_vae",
        "seed": 3,
        "num_steps": 8,
        "input": {"records": "domain_b", "batch_size": 2, "crop_size": 32,
                  "degrade_full_image": False, "read_threads": 0, "cache_mb": 64},
        "data": {"clean": photo_dirs["clean"], "clean_exclude": (), "old": (photo_dirs["old"],)},
        "mesh_shape": (-1,),
        "mesh_axes": ("data",),
        "param_sharding": "replicated",
        "fsdp_min_size": 2**16,
        "log_every": 4,
        "checkpoint_every": 4,
        "keep_checkpoints": 3,
        "async_checkpoints": True,
        "sample_every": 0,
        "num_samples": 2,
        "export_every": 0,
        "debug_nan_step": 0,
        "prng_impl": "rbg",
        "time_limit_s": 0.0,
        "conv_weight_grad": "xla",
    })
    config.update(overrides)
    return config


def event_tags(logdir) -> dict[str, list[int]]:
    """{tag: [steps]} of the TensorBoard event files in ``logdir`` (read without TensorFlow)."""
    from tensorboardX.proto import event_pb2

    tags: dict[str, list[int]] = {}
    for path in sorted(pathlib.Path(logdir).glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):  # TFRecord: length (8), crc (4), payload, crc (4)
            length = int.from_bytes(data[offset:offset + 8], "little")
            event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
    return tags


@pytest.fixture(scope="session")
def read_event_tags():
    """``read_event_tags(logdir)``: see ``event_tags``."""
    return event_tags


@pytest.fixture(scope="session")
def test_task() -> Task:
    """One ``l1_vae_task`` object for the session (its compiled steps are reused)."""
    return l1_vae_task()


@pytest.fixture(scope="session")
def make_config(photo_dirs):
    """``make_config(**overrides)``: ``base_config`` over the session's photo folders."""
    return lambda **overrides: base_config(photo_dirs, **overrides)
