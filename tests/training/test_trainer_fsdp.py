"""``param_sharding="fsdp"``: the state's large arrays split over the data axis give the same
training steps as a replicated state, up to float summation order (two simulated CPU devices, in
a subprocess: the device count is fixed when JAX starts). The trainer's loop with FSDP over two
processes (checkpoints, samples, export) is ``tests/test_multiprocess.py``'s slow test."""
from __future__ import annotations

import subprocess
import sys

from jax.sharding import PartitionSpec

from oldphoto_jax import sharding
from oldphoto_jax.testing import multiprocess

SCRIPT = r"""
import sys
import jax, numpy as np
from PIL import Image
from oldphoto_jax import data as data_lib, sharding
from oldphoto_jax.testing.config_files import load_config
from oldphoto_jax.testing.synthetic_photos import smooth_photo
from oldphoto_jax.training import inputs, keys, loop, tasks

root = sys.argv[1]
import os
os.makedirs(f"{root}/clean", exist_ok=True)
for k in range(4):
    Image.fromarray(smooth_photo(64, 80, seed=k, phase=k)).save(f"{root}/clean/p{k}.png")
config = load_config("scratch", "tiny")
config.unlock()
config.data.clean = f"{root}/clean"
config.model.depth, config.model.conv_num = 1, 1
# Adam's first steps move every parameter by ~lr * sign(gradient): a bias followed by batch
# norm has a gradient of pure rounding noise, whose sign the summation order decides. A
# larger epsilon leaves such noise without effect and real gradients as they are.
config.optim.eps = 1e-3
photos = inputs.training_photos(config.data, "detection")
config = inputs.resolve_lengths(config, photos)
task = tasks.build_task(config)
batches = data_lib.batch_dataset(inputs.input_config(config, task.records), photos)
mesh = sharding.make_mesh()
key = keys.init_key(config.seed, config.prng_impl)
host_state = jax.device_get(task.init_state(key, batches[0]))
shapes = jax.eval_shape(task.init_state, key, batches[0])
results = {}
for mode in ("replicated", "fsdp"):
    placement = sharding.state_shardings(mesh, shapes, mode, min_size=8)
    state = sharding.place(host_state, placement)
    step_fn = loop.jit_train_step(task, mesh, config.seed, config.prng_impl, "xla",
                                  loop.StatePlacement(placement))
    for step in range(2):
        state, metrics = step_fn(state, sharding.global_batch(mesh, batches[step]), step)
    specs = [leaf.sharding.spec for leaf in jax.tree.leaves(state["params"])]
    split = sum(any(axis == "data" for axis in spec) for spec in specs)
    print(mode, "split leaves", split, "of", len(specs))
    assert (split > 0) == (mode == "fsdp"), specs
    results[mode] = jax.device_get(state["params"]), jax.device_get(metrics)
(replicated, metrics_r), (fsdp, metrics_f) = results["replicated"], results["fsdp"]
for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(replicated)[0],
                        jax.tree.leaves(fsdp)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=jax.tree_util.keystr(path))
for name in metrics_r:
    np.testing.assert_allclose(metrics_r[name], metrics_f[name], rtol=1e-5, err_msg=name)
print("ok")
"""


def test_fsdp_and_replicated_training_take_the_same_steps(tmp_path):
    env = multiprocess.cpu_environment(2)
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), (
        done.stdout[-2000:] + done.stderr[-4000:])


def test_fsdp_rule():
    assert sharding.fsdp_spec((3, 3, 64, 128), 4, 1000) == PartitionSpec(None, None, None, "data")
    assert sharding.fsdp_spec((3, 3, 64, 6), 4, 1000) == PartitionSpec(None, None, "data", None)
    assert sharding.fsdp_spec((128,), 4, 1000) == PartitionSpec()      # small: replicated
    assert sharding.fsdp_spec((3, 5, 7, 9), 2, 1) == PartitionSpec()    # nothing divides
    assert sharding.fsdp_spec((), 2, 0) == PartitionSpec()              # a scalar
    assert sharding.fsdp_spec((64, 64), 1, 1) == PartitionSpec()        # one device
