"""Combining task exports into one infer.py model directory."""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np

from oldphoto_jax import model_files
from oldphoto_jax.models.vae import VAE
from oldphoto_jax.models.vae_colour import VAEColour
from oldphoto_jax.training import assemble


def _export(path, role, seed):
    model = VAE(ngf=4, max_channels=4, n_down_convs=1, n_res_blocks=1)
    variables = model.init(jax.random.key(seed, impl="rbg"), jnp.zeros((1, 8, 8, 3)))
    model_files.save_model(path, {role: (model, variables)})
    return jax.device_get(variables)


def test_assemble_takes_models_renames_and_replaces(tmp_path, capsys):
    a = _export(tmp_path / "vae_a", "vae_a", 0)
    b = _export(tmp_path / "vae_b", "vae_b_quality", 1)
    newer_a = _export(tmp_path / "vae_a_newer", "vae_a", 2)
    code = assemble.main([
        str(tmp_path / "vae_a"), str(tmp_path / "vae_b"), str(tmp_path / "vae_a_newer"),
        "--network", f"vae_b_scratch={tmp_path / 'vae_b'}:vae_b_quality",
        "--output", str(tmp_path / "model")])
    assert code == 0
    assert "vae_a: " in capsys.readouterr().out  # the replacement is reported
    model = model_files.load_model(tmp_path / "model")
    assert model.roles == ["vae_a", "vae_b_quality", "vae_b_scratch"]
    for role, expected in (("vae_a", newer_a), ("vae_b_quality", b), ("vae_b_scratch", b)):
        jax.tree.map(np.testing.assert_array_equal, model.network(role)[1], expected)
    assert not np.array_equal(newer_a["params"]["encoder"]["conv_in"]["kernel"],
                              a["params"]["encoder"]["conv_in"]["kernel"])

    # An existing output needs --overwrite; a missing role is an error, not a partial model.
    assert assemble.main([str(tmp_path / "vae_a"), "--output", str(tmp_path / "model")]) == 2
    assert assemble.main(["--network", f"mapping_quality={tmp_path / 'vae_a'}",
                          "--output", str(tmp_path / "other")]) == 2
    assert not (tmp_path / "other").exists()


def test_assemble_records_the_description_and_inputs(tmp_path):
    _export(tmp_path / "vae_a", "vae_a", 0)
    assert assemble.main([str(tmp_path / "vae_a"), "--output", str(tmp_path / "model"),
                          "--description", "trained by recipe.sh at commit abc"]) == 0
    source = model_files.load_model(tmp_path / "model").source
    assert source.startswith("trained by recipe.sh at commit abc; assembled from ")
    assert str(tmp_path / "vae_a") in source


def test_parse_network():
    assert assemble.parse_network("vae_b_scratch=runs/b:vae_b_quality") == (
        "vae_b_scratch", "runs/b", "vae_b_quality")
    assert assemble.parse_network("vae_a=C:/runs/a") == ("vae_a", "C:/runs/a", None)


def test_assemble_clamps_the_output_of_colour_carrying_vaes(tmp_path, capsys):
    """``--restored_range auto``: a model whose VAE_Bs are ``vae_colour`` is written clamped
    (the official min-max stretch would re-tone the colours it keeps); otherwise the official
    stretch, recorded as the default (no key); an explicit value wins."""
    _export(tmp_path / "plain", "vae_b_quality", 0)
    colour = VAEColour(ngf=4, max_channels=4, n_down_convs=1, n_res_blocks=1)
    model_files.save_model(tmp_path / "colour", {"vae_b_quality": (
        colour, colour.init(jax.random.key(1, impl="rbg"), jnp.zeros((1, 8, 8, 3))))})
    for name, flags, expected in (("plain", [], "minmax"), ("colour", [], "clamp"),
                                  ("colour", ["--restored_range", "minmax"], "minmax")):
        out = tmp_path / f"out_{name}_{len(flags)}"
        assert assemble.main([str(tmp_path / name), "--output", str(out)] + flags) == 0
        assert model_files.load_model(out).restored_range == expected
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest.get("restored_range", "minmax") == expected
        assert ("restored_range" in manifest) == (expected != "minmax")
    assert "restored_range: clamp" in capsys.readouterr().out


def test_assemble_sets_parameter_free_fields_only(tmp_path):
    """``--set ROLE.FIELD=VALUE`` switches vae_colour's restandardise on a trained VAE_B (same
    arrays, the decoder's output now has exactly the carried statistics); a field with
    parameters, an unknown role or a malformed spec is an error and writes nothing."""
    colour = VAEColour(ngf=4, max_channels=4, n_down_convs=1, n_res_blocks=1)
    variables = colour.init(jax.random.key(1, impl="rbg"), jnp.zeros((1, 8, 8, 3)))
    model_files.save_model(tmp_path / "colour", {"vae_b_quality": (colour, variables)})
    assert assemble.main([str(tmp_path / "colour"), "--output", str(tmp_path / "on"),
                          "--set", "vae_b_quality.restandardise=true"]) == 0
    module, loaded = model_files.load_model(tmp_path / "on").network("vae_b_quality")
    assert module.restandardise is True
    jax.tree.map(np.testing.assert_array_equal, loaded, jax.device_get(variables))
    photo = jnp.sin(jnp.arange(192.0)).reshape(1, 8, 8, 3) * 0.2  # no clipping at decode
    z = module.apply(loaded, photo, method="encode")
    image = module.apply(loaded, z, method="decode")
    np.testing.assert_allclose(image.mean(axis=(1, 2)), photo.mean(axis=(1, 2)), atol=1e-5)
    np.testing.assert_allclose(image.std(axis=(1, 2)), photo.std(axis=(1, 2)), rtol=1e-4)
    for bad in ("vae_b_quality.ngf=8", "vae_a.restandardise=true", "restandardise=true"):
        assert assemble.main([str(tmp_path / "colour"), "--output", str(tmp_path / "bad"),
                              "--set", bad]) == 2
        assert not (tmp_path / "bad").exists()


def test_assembling_again_keeps_each_networks_files(tmp_path):
    """A network taken from a model keeps its parameter files byte for byte (orbax would lay
    the same arrays out in new files), so a re-assembled model, in place and with one network
    replaced, differs in git only where a network changed; a damaged source still fails."""
    _export(tmp_path / "vae_a", "vae_a", 0)
    _export(tmp_path / "vae_b", "vae_b_quality", 1)
    model = tmp_path / "model"
    assert assemble.main([str(tmp_path / "vae_a"), str(tmp_path / "vae_b"),
                          "--output", str(model)]) == 0
    before = model_files.tree_checksums(model)
    del before["manifest.json"]
    assert before == {path: digest for path, digest in
                      json.loads((model / "manifest.json").read_text())["checksums"].items()}
    _export(tmp_path / "vae_b_newer", "vae_b_quality", 2)
    assert assemble.main([str(model), str(tmp_path / "vae_b_newer"), "--output", str(model),
                          "--overwrite", "--description", "again"]) == 0
    after = model_files.tree_checksums(model)
    params = [path for path in before if "/params/" in path]
    assert {p for p in params if p.startswith("vae_a/")} and all(
        after[p] == before[p] for p in params if p.startswith("vae_a/"))
    assert model_files.tree_checksums(tmp_path / "vae_b_newer" / "vae_b_quality" / "params") \
        == {p.removeprefix("vae_b_quality/params/"): d for p, d in after.items()
            if p.startswith("vae_b_quality/params/")}
    jax.tree.map(np.testing.assert_array_equal,
                 model_files.load_model(model).network("vae_b_quality")[1],
                 model_files.load_model(tmp_path / "vae_b_newer").network("vae_b_quality")[1])

    damaged = sorted((tmp_path / "vae_a" / "vae_a" / "params").rglob("*"))
    blob = max((p for p in damaged if p.is_file()), key=lambda p: p.stat().st_size)
    blob.write_bytes(blob.read_bytes()[:-1] + bytes([blob.read_bytes()[-1] ^ 1]))
    assert assemble.main([str(tmp_path / "vae_a"), "--output", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
