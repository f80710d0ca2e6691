"""The parameter cache: networks read from orbax once, then from one plain file per network."""
import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from oldphoto_jax import model_files, params_cache
from oldphoto_jax.testing.random_model import random_network, write_random_model

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("value,expected", [
    ("", "XDG/oldphoto_jax/params"), ("1", "XDG/oldphoto_jax/params"), ("0", None),
    ("off", None), ("/some/folder", "/some/folder"),
])
def test_folder_from_the_environment(value, expected):
    chosen = params_cache.chosen_directory({params_cache.SWITCH: value, "XDG_CACHE_HOME": "XDG"})
    assert chosen == (None if expected is None else pathlib.Path(expected))


VARIABLES = {"params": {"conv": {"kernel": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
                                 "bias": np.float32([1.5, -2])},
                        "step": np.int32(7)},
             "batch_stats": {"norm": {"mean": np.zeros((0,), np.float32),
                                      "var": np.float16([1, 2, 3]),
                                      "scale": np.ones((2, 2), jax.numpy.bfloat16)}}}


def _same(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_an_entry_reads_back_what_was_written(tmp_path):
    path = params_cache.write("k", VARIABLES, folder=tmp_path)
    assert path == tmp_path / "k.params"
    read = params_cache.read("k", folder=tmp_path)
    _same(read, VARIABLES)
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(read))
    assert params_cache.read("other", folder=tmp_path) is None
    assert [p.name for p in tmp_path.iterdir()] == ["k.params"]  # no temporary file left


@pytest.mark.parametrize("damage", ["flip", "truncate", "rename"])
def test_a_damaged_entry_is_ignored(tmp_path, damage, caplog):
    path = params_cache.write("k", VARIABLES, folder=tmp_path)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[5] ^= 0xFF  # inside the first array
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[:40]))
    else:  # an entry made for another network, under this name
        os.replace(path, tmp_path / "other.params")
    assert params_cache.read("other" if damage == "rename" else "k", folder=tmp_path) is None
    assert "ignored" in caplog.text


def test_an_unwritable_folder_is_reported_once_and_skipped(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert params_cache.write("k", VARIABLES, folder=blocker / "cache") is None
    assert params_cache.write("k", VARIABLES, folder=blocker / "cache") is None
    assert caplog.text.count("parameter cache") == 1


def test_the_entries_used_longest_ago_go_first_when_the_folder_is_full(tmp_path):
    one = np.zeros(1000, np.uint8)
    for age, key in enumerate(["new", "mid", "old"]):
        path = params_cache.write(key, {"a": one}, folder=tmp_path)
        os.utime(path, (1e9 - age * 100, 1e9 - age * 100))
    params_cache.read("old", folder=tmp_path)  # a read makes it the most recent
    size = (tmp_path / "old.params").stat().st_size
    assert params_cache.evict(tmp_path, 2 * size) == ["mid.params"]
    assert params_cache.evict(tmp_path, 0, keep=tmp_path / "old.params") == ["new.params"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.params"]
    fresh, stale = tmp_path / ".k.1.tmp", tmp_path / ".k.2.tmp"  # writes in progress / killed
    fresh.write_bytes(b"x")
    stale.write_bytes(b"x")
    os.utime(stale, (1e9, 1e9))
    params_cache.evict(tmp_path, 10 ** 9)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".k.1.tmp", "old.params"]


def test_the_limit_from_the_environment():
    assert params_cache.limit_bytes({}) == 3_000_000_000
    assert params_cache.limit_bytes({params_cache.LIMIT: "0.5"}) == 500_000_000
    with pytest.raises(ValueError, match="gigabytes"):
        params_cache.limit_bytes({params_cache.LIMIT: "lots"})


@pytest.fixture
def cache_in(tmp_path):
    folder = tmp_path / "cache"
    params_cache.enable({params_cache.SWITCH: str(folder)})
    yield folder
    params_cache.disable()


def test_a_model_network_is_cached_and_read_back_equal(tmp_path, cache_in):
    write_random_model(tmp_path / "m", roles=["vae_a", "scratch_detector"])
    first = model_files.load_model(tmp_path / "m").network("scratch_detector")
    entries = sorted(cache_in.iterdir())
    assert len(entries) == 1
    again = model_files.load_model(tmp_path / "m").network("scratch_detector")
    _same(again[1], first[1])
    assert "batch_stats" in again[1]
    assert sorted(cache_in.iterdir()) == entries


def test_a_write_past_the_limit_deletes_older_entries(tmp_path, caplog):
    write_random_model(tmp_path / "m", roles=["vae_a", "scratch_detector"])
    folder = tmp_path / "cache"
    params_cache.enable({params_cache.SWITCH: str(folder), params_cache.LIMIT: "1e-9"})
    try:
        model = model_files.load_model(tmp_path / "m")
        model.network("vae_a")
        first = sorted(folder.iterdir())
        model.network("scratch_detector")
        left = sorted(folder.iterdir())
        assert len(first) == len(left) == 1 and first != left  # only the newest entry stays
        params_cache.enable({params_cache.SWITCH: str(folder), params_cache.LIMIT: "lots"})
        assert "default limit" in caplog.text and params_cache._limit == 3_000_000_000
    finally:
        params_cache.disable()


def test_a_cached_network_still_has_its_config_verified(tmp_path, cache_in):
    write_random_model(tmp_path / "m", roles=["vae_a"])
    model_files.load_model(tmp_path / "m").network("vae_a")
    config = tmp_path / "m" / "vae_a" / "config.json"
    config.write_text(config.read_text().replace("\n", " \n", 1))
    with pytest.raises(model_files.CheckpointError, match="checksum mismatch"):
        model_files.load_model(tmp_path / "m").network("vae_a")


def test_other_weights_make_another_entry(tmp_path, cache_in):
    write_random_model(tmp_path / "a", roles=["vae_a"], seed=0)
    write_random_model(tmp_path / "b", roles=["vae_a"], seed=1)
    a = model_files.load_model(tmp_path / "a").network("vae_a")[1]
    b = model_files.load_model(tmp_path / "b").network("vae_a")[1]
    assert len(list(cache_in.iterdir())) == 2
    assert not np.array_equal(np.asarray(jax.tree.leaves(a)[0]), np.asarray(jax.tree.leaves(b)[0]))


def test_a_network_saved_alone_is_cached_by_its_own_checksums(tmp_path, cache_in):
    module, variables = random_network("vae_a")
    model_files.save_network(tmp_path / "net", module, variables)
    model_files.load_network(tmp_path / "net")
    assert len(list(cache_in.iterdir())) == 1
    _same(model_files.load_network(tmp_path / "net")[1], variables)


def test_a_model_without_checksums_is_not_cached(tmp_path, cache_in):
    write_random_model(tmp_path / "m", roles=["vae_a"])
    manifest = tmp_path / "m" / "manifest.json"
    data = json.loads(manifest.read_text())
    del data["checksums"]
    manifest.write_text(json.dumps(data))
    model_files.load_model(tmp_path / "m").network("vae_a")
    assert not cache_in.exists()


LOAD = ("import sys; from oldphoto_jax import model_files, params_cache; params_cache.enable(); "
        "model_files.load_model(sys.argv[1]).network('vae_a'); "
        "print('orbax' in sys.modules, 'tensorstore' in sys.modules)")


def test_a_cached_load_imports_neither_orbax_nor_tensorstore(tmp_path):
    """What the cache is for: their imports and buffers stay out of inference's memory."""
    write_random_model(tmp_path / "m", roles=["vae_a"])
    env = dict(os.environ, **{params_cache.SWITCH: str(tmp_path / "cache")})

    def load():
        result = subprocess.run([sys.executable, "-c", LOAD, str(tmp_path / "m")], cwd=REPO,
                                env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout.strip()

    assert load() == "True True"    # the first load reads orbax and writes the entry
    assert load() == "False False"  # later loads read the entry only
