"""The checkpoint format: atomic writes, manifests, and reloading in a fresh process."""
import json
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from oldphoto_jax import model_files
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
    model_files.save_network(tmp_path / "net", net, variables, source="test")
    config = json.loads((tmp_path / "net" / "config.json").read_text())
    # The model name and the architecture only: precision is a run-time option.
    assert config["model"] == "tiny_test_net" and config["args"] == {"features": 5}
    module, loaded = model_files.load_network(tmp_path / "net")
    assert module == net
    jax.tree.map(np.testing.assert_array_equal, loaded, variables)


def test_model_round_trip_and_missing_role(tmp_path):
    net, variables = _init()
    model_files.save_model(tmp_path / "model", {"vae_a": (net, variables)}, source="unit test")
    model = model_files.load_model(tmp_path / "model")
    assert model.roles == ["vae_a"] and model.source == "unit test"
    module, loaded = model.network("vae_a")
    jax.tree.map(np.testing.assert_array_equal, loaded, variables)
    with pytest.raises(model_files.CheckpointError, match="no 'mapping_scratch' network"):
        model.network("mapping_scratch")


def test_unknown_role_is_rejected(tmp_path):
    net, variables = _init()
    with pytest.raises(ValueError, match="unknown network roles"):
        model_files.save_model(tmp_path / "model", {"vea_a": (net, variables)})
    assert not (tmp_path / "model").exists()


def test_failed_write_leaves_nothing(tmp_path):
    net, variables = _init()
    bad = {"params": {"x": object()}}  # cannot be serialised
    with pytest.raises(Exception):
        model_files.save_model(tmp_path / "model", {"vae_a": (net, variables),
                                                    "vae_b_quality": (net, bad)})
    assert list(tmp_path.iterdir()) == []


def test_existing_directory_needs_overwrite(tmp_path):
    net, variables = _init()
    model_files.save_model(tmp_path / "model", {"vae_a": (net, variables)})
    with pytest.raises(model_files.CheckpointError, match="already exists"):
        model_files.save_model(tmp_path / "model", {"vae_a": (net, variables)})
    net2, variables2 = _init(3)
    model_files.save_model(tmp_path / "model", {"vae_a": (net2, variables2)}, overwrite=True)
    assert model_files.load_model(tmp_path / "model").network("vae_a")[0].features == 3
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_not_a_model_directory(tmp_path):
    with pytest.raises(model_files.CheckpointError, match="does not exist"):
        model_files.load_model(tmp_path / "nothing")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "manifest.json").write_text("{}")
    with pytest.raises(model_files.CheckpointError, match="not an oldphoto-jax manifest"):
        model_files.load_model(tmp_path / "m")


def test_reload_in_fresh_process_gives_same_output(tmp_path):
    net, variables = _init()
    model_files.save_network(tmp_path / "net", net, variables)
    x = np.random.default_rng(0).standard_normal((1, 8, 8, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    expected = np.asarray(jax.jit(net.apply)(variables, x))
    script = f"""
import numpy as np, jax, sys
sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent)!r})
import test_model_files  # registers TinyTestNet
from oldphoto_jax import model_files
module, variables = model_files.load_network({str(tmp_path / 'net')!r})
x = np.load({str(tmp_path / 'x.npy')!r})
np.save({str(tmp_path / 'y.npy')!r}, np.asarray(jax.jit(module.apply)(variables, x)))
"""
    subprocess.run([sys.executable, "-c", script], check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)


# -- damaged models: checksums and one-line errors ------------------------------------------------

def _saved_model(tmp_path):
    net, variables = _init()
    return model_files.save_model(tmp_path / "model", {"vae_a": (net, variables)}), variables


def _largest_params_file(model_dir):
    files = [p for p in (model_dir / "vae_a" / "params").rglob("*") if p.is_file()]
    return max(files, key=lambda p: p.stat().st_size)


def test_manifest_records_a_checksum_per_file(tmp_path):
    model_dir, _ = _saved_model(tmp_path)
    recorded = json.loads((model_dir / "manifest.json").read_text())["checksums"]
    on_disk = {p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*")
               if p.is_file() and p.name != "manifest.json"}
    assert set(recorded) == on_disk
    assert model_files.load_model(model_dir).notes == []


def test_saved_network_records_checksums_of_its_params(tmp_path):
    net, variables = _init()
    model_files.save_network(tmp_path / "net", net, variables)
    _flip_a_byte(_largest_params_file_of(tmp_path / "net"))
    with pytest.raises(model_files.CheckpointError, match="checksum"):
        model_files.load_network(tmp_path / "net")


def _largest_params_file_of(network_dir):
    files = [p for p in (network_dir / "params").rglob("*") if p.is_file()]
    return max(files, key=lambda p: p.stat().st_size)


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_flipped_byte_in_params_is_detected(tmp_path):
    model_dir, _ = _saved_model(tmp_path)
    damaged = _largest_params_file(model_dir)
    _flip_a_byte(damaged)
    model = model_files.load_model(model_dir)
    with pytest.raises(model_files.CheckpointError,
                       match=f"{damaged.name}.*checksum mismatch") as info:
        model.network("vae_a")
    assert "\n" not in str(info.value)


def test_model_without_checksums_loads_with_a_note(tmp_path):
    model_dir, variables = _saved_model(tmp_path)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    del manifest["checksums"]
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    model = model_files.load_model(model_dir)
    assert len(model.notes) == 1 and "no checksums" in model.notes[0]
    jax.tree.map(np.testing.assert_array_equal, model.network("vae_a")[1], variables)


def _damage_cases():
    def delete_network_folder(m):
        import shutil
        shutil.rmtree(m / "vae_a")
        return "vae_a"

    def truncate_params(m):
        path = _largest_params_file(m)
        path.write_bytes(path.read_bytes()[:10])
        return path.name

    def delete_params_file(m):
        path = _largest_params_file(m)
        path.unlink()
        return path.name

    def truncate_params_unchecked(m):
        manifest = json.loads((m / "manifest.json").read_text())
        del manifest["checksums"]
        (m / "manifest.json").write_text(json.dumps(manifest))
        return "params" if truncate_params(m) else ""

    def manifest_not_json(m):
        (m / "manifest.json").write_text("{not json")
        return "manifest.json"

    def manifest_without_networks(m):
        manifest = json.loads((m / "manifest.json").read_text())
        del manifest["networks"]
        (m / "manifest.json").write_text(json.dumps(manifest))
        return "manifest.json"

    def unknown_restored_range(m):
        manifest = json.loads((m / "manifest.json").read_text())
        manifest["restored_range"] = "stretch"
        (m / "manifest.json").write_text(json.dumps(manifest))
        return "manifest.json"

    def unknown_class(m):
        config = json.loads((m / "vae_a" / "config.json").read_text())
        config["model"] = "no_such_net"
        (m / "vae_a" / "config.json").write_text(json.dumps(config))
        manifest = json.loads((m / "manifest.json").read_text())
        del manifest["checksums"]
        (m / "manifest.json").write_text(json.dumps(manifest))
        return "config.json"

    return [delete_network_folder, truncate_params, delete_params_file,
            truncate_params_unchecked, manifest_not_json, manifest_without_networks,
            unknown_restored_range, unknown_class]


@pytest.mark.parametrize("damage", _damage_cases(), ids=lambda f: f.__name__)
def test_damaged_model_is_one_line_naming_the_file(tmp_path, damage):
    model_dir, _ = _saved_model(tmp_path)
    named = damage(model_dir)
    with pytest.raises(model_files.CheckpointError) as info:
        model_files.load_model(model_dir).network("vae_a")
    message = str(info.value)
    assert "\n" not in message and named in message and str(model_dir) in message
