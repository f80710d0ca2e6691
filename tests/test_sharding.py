"""The one sharding vocabulary of training and inference (oldphoto_jax.sharding), on four
simulated CPU devices in a subprocess (the device count is fixed when JAX starts)."""
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from oldphoto_jax import sharding

FOUR_DEVICES = r"""
import numpy as np, jax
from oldphoto_jax import sharding

mesh = sharding.make_mesh()
assert mesh.shape == {"data": 4}, mesh.shape
x = np.arange(6 * 3, dtype=np.float32).reshape(6, 3)
(placed,), n = sharding.shard_batch(mesh, x)          # 6 -> padded to 8, split over 4
assert n == 6 and placed.shape == (8, 3)
assert len(placed.addressable_shards) == 4 and placed.addressable_shards[0].data.shape == (2, 3)
np.testing.assert_array_equal(sharding.gather(placed)[:n], x)
batch = sharding.global_batch(mesh, {"image": x[:4]})
assert batch["image"].sharding == sharding.batch_sharded(mesh)
params = sharding.replicate(mesh, {"w": np.ones((2, 2), np.float32)})
assert params["w"].sharding.is_fully_replicated
doubled = jax.jit(lambda p, b: b * p["w"][0, 0] * 2)(params, batch["image"])
np.testing.assert_array_equal(sharding.gather(doubled), x[:4] * 2)
mesh2 = sharding.make_mesh((2, -1), ("replica", "data"))
assert mesh2.shape == {"replica": 2, "data": 2}
print("ok")
"""


def test_mesh_placement_and_gathering_on_four_devices():
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", FOUR_DEVICES], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_bad_mesh_shapes_are_mesh_errors():
    with pytest.raises(sharding.MeshError, match="does not fit"):
        sharding.make_mesh((jax.device_count() + 1,))
    with pytest.raises(sharding.MeshError, match="include 'data'"):
        sharding.make_mesh((-1,), ("model",))
    with pytest.raises(sharding.MeshError, match="does not fit"):
        sharding.make_mesh((-1, -1), ("replica", "data"))


def test_local_mesh_holds_this_process_devices():
    assert list(sharding.local_mesh().devices.flat) == jax.local_devices()


def test_pad_batch_repeats_the_last_element():
    padded, n = sharding.pad_batch(np.arange(5)[:, None], 4)
    assert n == 5 and padded[:, 0].tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
