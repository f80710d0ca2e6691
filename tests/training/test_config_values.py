"""The config files resolve to the values the runs had before ``configs/`` owned every number.

``data/config_dumps_before.json`` is every config of every argument as resolved at commit
6c7bc01 (the stage defaults, trainer fields and bundled recipe then lived in library modules),
dumped with :func:`dump` (paths relative to the checkout). Each field must be unchanged, except
the changes listed here, each with its reason:

* ``ADDED``: new fields (``model.name``: the network by name from the registry;
  ``loss.latent_gan``: VAE_A's latent adversarial weight, 1 as the release always had);
* ``MOVED``: ``model.query_chunk`` is an execution setting, now the top-level
  ``attention_chunk`` (never saved with a network);
* ``RENAMED``: one word per concept (issue 13): what ``train.py`` trains is a *task*
  (``stage`` -> ``task``), what the input pipeline makes for it its *records*
  (``input.stage`` -> ``input.records``); "stage" now means the restoration pipeline's stages only;
* ``MORE_DATA``: the ``small`` recipe (the bundled model's) reads ``clean_more`` beside
  ``clean`` (issue 14: more photos to train on), as one comma-separated ``data.clean``;
* ``RESOLVED``: fields that were None, meaning "the stage decides", now hold the value the stage
  decided (a config owns that number; a stage no longer has defaults of its own);
* ``dropped``: fields the stage never read (another stage's loss weights, another mapping
  variant's widths, the latent D fields of VAE_B, ...), so a config shows only what its run uses.
"""
from __future__ import annotations

import json
import pathlib

import pytest

from oldphoto_jax.testing.config_files import CONFIG_ARGS, REPO, load_config

BEFORE = pathlib.Path(__file__).parent / "data" / "config_dumps_before.json"

# model.name: the network by name from the registry; loss.latent_gan (VAE_A): the weight of the
# latent adversarial term, 1 as before (0 = the ablation without the latent discriminator).
# init_from: start from a trained network (issue 14); empty = a fresh start as before; embed off.
# model.stats_residual (mapping): keep the colour VAEs' statistics channels (issue 14); 0 = the
# release's mapping, as before; model.stats_correction its kind, "gate" as before.
INIT_FROM = {"init_from.checkpoint", "init_from.role", "init_from.embed"}
ADDED = {"vae_a": {"model.name", "loss.latent_gan"} | INIT_FROM,
         "vae_b": INIT_FROM,
         "scratch": INIT_FROM,
         "mapping": INIT_FROM | {"loss.image_l1", "model.stats_residual",
                             "model.stats_correction"}}
# param_sharding / fsdp_min_size: parameters sharded over the data axis (issue 17), off by default.
# input.paint_holes / input.hole_dilation: scratch/HR mapping crops with the mask painted white
# as inference paints it (issue 14), off as before.
PAINTED_HOLES = {"input.paint_holes", "input.hole_dilation"}
# optim.frozen: parameters held fixed while the rest trains (issue 14); empty = all trained as before.
# input.detection_zoom_range / _coverage: detection records drawn as inference's detection sees
# damage, shrunk (issue 14); off (None) as before.
DETECTION_ZOOM = {"input.detection_zoom_range", "input.detection_zoom_coverage"}
ADDED_TO_EVERY_STAGE = ({"model.name", "param_sharding", "fsdp_min_size", "optim.frozen"}
                        | PAINTED_HOLES | DETECTION_ZOOM)
MOVED = {"model.query_chunk": "attention_chunk"}
RENAMED = {"stage": "task", "input.stage": "input.records"}
MORE_DATA = ",<repo>/../shared/photos/clean_more"


def dump(config) -> dict:
    """A config as plain JSON values, paths inside the checkout written as ``<repo>``."""
    def norm(value):
        if isinstance(value, dict):
            return {k: norm(v) for k, v in sorted(value.items())}
        if isinstance(value, (list, tuple)):
            return [norm(v) for v in value]
        if isinstance(value, str):
            return value.replace(str(REPO), "<repo>").replace(str(REPO.parent) + "/",
                                                               "<repo>/../")
        return value

    return norm(config.to_dict())


def flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def resolved(old: dict, key: str):
    """The value the stage chose where the old config said None ("the stage decides")."""
    stage, variant = old["stage"], old["variant"]
    if key in ("optim.b1", "optim.b2"):
        ttur_betas, plain_betas = (0.0, 0.9), (0.5, 0.999)
        return (ttur_betas if old["optim.ttur"] else plain_betas)[key == "optim.b2"]
    if key == "disc.spectral_norm":
        return {"vae_a": False, "vae_b": False, "face": True}.get(stage, variant != "quality")
    if key == "export_role":
        return "face_512" if old["model.load_size"] == 512 else "face_256"
    return None


# Fields each stage reads (anything else in the old dump was never used by that stage's run).
MAPPING_MODEL = {"quality": {"nc", "mc", "n_up", "n_blocks"},
                 "scratch": {"nc", "mc", "n_up", "n_blocks", "nl_res_blocks", "query_chunk"},
                 "hr": {"nc", "mc", "n_up", "stage_blocks", "patch_sizes", "query_chunk"}}
USED_LOSS = {"vae_a": {"lambda_feat", "kl", "image_l1", "vgg_weights"},
             "vae_b": {"lambda_feat", "kl", "image_l1", "vgg_weights"},
             "mapping": {"lambda_feat", "latent_l1", "image_l1", "vgg_weights"},
             "scratch": {"detection", "positive_weight", "focal_gamma", "focal_alpha",
                         "detection_threshold"},
             "face": {"lambda_feat", "lambda_vgg", "vgg_weights"}}
IMAGE_D = {"num_D", "n_layers", "ndf", "spectral_norm"}
USED_DISC = {"vae_a": IMAGE_D | {"latent_ndf", "latent_n_layers", "latent_chunks"},
             "vae_b": IMAGE_D, "mapping": IMAGE_D, "scratch": set(), "face": IMAGE_D}
USED_DATA = {"vae_a": {"clean", "clean_exclude", "old"}, "vae_b": {"clean", "clean_exclude"},
             "mapping": {"clean", "clean_exclude"}, "scratch": {"clean", "clean_exclude"},
             "face": {"faces", "align_faces", "face_bank_size"}}


def used(old: dict, key: str) -> bool:
    stage = old["stage"]
    section, _, field = key.partition(".")
    if key == "variant":
        return stage == "mapping"
    if section == "model" and stage == "mapping":
        return field in MAPPING_MODEL[old["variant"]]
    return {"loss": USED_LOSS, "disc": USED_DISC, "data": USED_DATA}.get(
        section, {stage: {field}})[stage].__contains__(field)


# The configs that existed before (variants added since, such as ``colour``, have no dump).
CASES = sorted(json.loads(BEFORE.read_text()))


@pytest.mark.parametrize("case", CASES)
def test_config_resolves_to_the_values_of_before(case):
    before = json.loads(BEFORE.read_text())
    old = flatten(before[case])
    name, _, arg = case.partition(".py:")
    new = flatten(dump(load_config(name, arg)))
    expected = {}
    for key, value in old.items():
        if not used(old, key):
            continue
        key_now = MOVED.get(key, RENAMED.get(key, key))
        expected[key_now] = resolved(old, key) if value is None and resolved(old, key) is not None \
            else value
    for key in ADDED.get(name, set()) | ADDED_TO_EVERY_STAGE:
        expected[key] = new.get(key)
    if arg.startswith("small") and "data.clean" in expected:
        expected["data.clean"] += MORE_DATA
    if name in ("mapping", "vae_a", "vae_b"):
        assert new["init_from.checkpoint"] == "" and new["init_from.role"] == ""
        assert new["init_from.embed"] is False
    if name == "mapping":
        assert new["loss.image_l1"] == 0.0 and new["model.stats_residual"] == 0
        assert new["model.stats_correction"] == "gate"
    if name == "vae_a":
        assert new["loss.latent_gan"] == 1.0
    assert new["input.paint_holes"] is False and new["input.hole_dilation"] == 0
    assert new == expected


def test_every_config_of_before_still_exists():
    now = {f"{name}.py:{arg}" for name, args in CONFIG_ARGS.items() for arg in args}
    assert set(CASES) <= now
