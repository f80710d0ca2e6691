"""The checkpoint format: atomic writes, manifests, and reloading in a fresh process."""
import json
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from oldphoto_jax import checkpoints
from oldphoto_jax.layers import Conv2d
from oldphoto_jax.models import registry


class TinyTestNet(nn.Module):
    """A two-conv network used only by these tests."""

    features: int = 4
    precision: str = "highest"

    @nn.compact
    def __call__(self, x):
        x = Conv2d(self.features, 3, padding=1, pad_mode="reflect", precision=self.precision)(x)
        return Conv2d(2, 1, precision=self.precision)(jax.nn.relu(x))


# A test-only registry entry (importing this module adds it, also in the subprocess below).
registry.MODELS.setdefault("tiny_test_net", TinyTestNet)


def _init(features=4):
    net = TinyTestNet(features=features)
    variables = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)))
    return net, jax.tree.map(np.asarray, variables)


def test_network_round_trip(tmp_path):
    net, variables = _init(5)
    checkpoints.save_network(tmp_path / "net", net, variables, source="test")
    config = json.loads((tmp_path / "net" / "config.json").read_text())
    # The model name and the architecture only: precision is a run-time option.
    assert config["model"] == "tiny_test_net" and config["args"] == {"features": 5}
    module, loaded = checkpoints.load_network(tmp_path / "net")
    assert module == net
    jax.tree.map(np.testing.assert_array_equal, loaded, variables)


def test_model_round_trip_and_missing_role(tmp_path):
    net, variables = _init()
    checkpoints.save_model(tmp_path / "model", {"vae_a": (net, variables)}, source="unit test")
    model = checkpoints.load_model(tmp_path / "model")
    assert model.roles == ["vae_a"] and model.source == "unit test"
    module, loaded = model.network("vae_a")
    jax.tree.map(np.testing.assert_array_equal, loaded, variables)
    with pytest.raises(checkpoints.CheckpointError, match="no 'mapping_scratch' network"):
        model.network("mapping_scratch")


def test_unknown_role_is_rejected(tmp_path):
    net, variables = _init()
    with pytest.raises(ValueError, match="unknown network roles"):
        checkpoints.save_model(tmp_path / "model", {"vea_a": (net, variables)})
    assert not (tmp_path / "model").exists()


def test_failed_write_leaves_nothing(tmp_path):
    net, variables = _init()
    bad = {"params": {"x": object()}}  # cannot be serialised
    with pytest.raises(Exception):
        checkpoints.save_model(tmp_path / "model", {"vae_a": (net, variables),
                                                    "vae_b_quality": (net, bad)})
    assert list(tmp_path.iterdir()) == []


def test_existing_directory_needs_overwrite(tmp_path):
    net, variables = _init()
    checkpoints.save_model(tmp_path / "model", {"vae_a": (net, variables)})
    with pytest.raises(checkpoints.CheckpointError, match="already exists"):
        checkpoints.save_model(tmp_path / "model", {"vae_a": (net, variables)})
    net2, variables2 = _init(3)
    checkpoints.save_model(tmp_path / "model", {"vae_a": (net2, variables2)}, overwrite=True)
    assert checkpoints.load_model(tmp_path / "model").network("vae_a")[0].features == 3
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_not_a_model_directory(tmp_path):
    with pytest.raises(checkpoints.CheckpointError, match="does not exist"):
        checkpoints.load_model(tmp_path / "nothing")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "manifest.json").write_text("{}")
    with pytest.raises(checkpoints.CheckpointError, match="not an oldphoto-jax manifest"):
        checkpoints.load_model(tmp_path / "m")


def test_reload_in_fresh_process_gives_same_output(tmp_path):
    net, variables = _init()
    checkpoints.save_network(tmp_path / "net", net, variables)
    x = np.random.default_rng(0).standard_normal((1, 8, 8, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    expected = np.asarray(jax.jit(net.apply)(variables, x))
    script = f"""
import numpy as np, jax, sys
sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent)!r})
import test_checkpoints  # registers TinyTestNet
from oldphoto_jax import checkpoints
module, variables = checkpoints.load_network({str(tmp_path / 'net')!r})
x = np.load({str(tmp_path / 'x.npy')!r})
np.save({str(tmp_path / 'y.npy')!r}, np.asarray(jax.jit(module.apply)(variables, x)))
"""
    subprocess.run([sys.executable, "-c", script], check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)
