"""The one registry of networks: ``config.model.name`` -> Flax module class.

A training config names its network (``config.model.name``) and gives its architecture fields
(the rest of ``config.model``); :func:`build_model` builds it. A model directory records the same
two things per network (``{"model": name, "args": architecture}``, see
:mod:`oldphoto_jax.model_files`), so everything that builds, trains, converts or loads a network
goes through this table.

Architecture fields are a module's dataclass fields except the *execution settings* in
:data:`EXECUTION_FIELDS` (matmul precision, attention chunk size): those choose how a network is
computed, not what it computes, so they are run-time options (the trainer's ``precision`` and
``attention_chunk``, ``infer.py --precision --attention_chunk``) and never saved.

Adding a network: write its module (one file in ``oldphoto_jax/models/``), add one line to
:data:`MODELS`, and write a config whose ``model.name`` is the new name (``docs/training.md``).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import flax.linen as nn

from oldphoto_jax.models.discriminators import MultiscaleDiscriminator, PatchDiscriminator
from oldphoto_jax.models.mapping import MappingModel, MappingModelWithMask, MappingModelWithMask2
from oldphoto_jax.models.spade import SPADEGenerator
from oldphoto_jax.models.unet import ScratchUNet
from oldphoto_jax.models.vae import VAE, VAEDecoder, VAEEncoder
from oldphoto_jax.models.vae_colour import VAEColour

# name -> class. The first block are the networks a model directory holds (its roles); the rest
# are parts and discriminators that tests and benchmarks build on their own.
MODELS: dict[str, type[nn.Module]] = {
    "vae": VAE,                             # GlobalGenerator_DCDCv2 (VAE_A, VAE_B)
    "vae_colour": VAEColour,                # the VAE with each photo's colour in its latent
    "mapping": MappingModel,                # quality mapping
    "mapping_mask": MappingModelWithMask,   # scratch mapping: partial non-local block
    "mapping_patch": MappingModelWithMask2,  # HR scratch mapping: multi-scale patch attention
    "unet": ScratchUNet,                    # scratch detection
    "spade": SPADEGenerator,                # face enhancement
    "vae_encoder": VAEEncoder,
    "vae_decoder": VAEDecoder,
    "patch_discriminator": PatchDiscriminator,
    "multiscale_discriminator": MultiscaleDiscriminator,
}

# Dataclass fields that say how a network is computed, not what: never part of its architecture.
EXECUTION_FIELDS = frozenset({"precision", "query_chunk"})


def _as_tuples(value):
    # JSON and ConfigDicts give lists; modules must stay hashable (static jit arguments).
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(v) for v in value)
    return value


def model_class(name: str) -> type[nn.Module]:
    if name not in MODELS:
        raise ValueError(f"unknown model name {name!r} (known: {', '.join(sorted(MODELS))})")
    return MODELS[name]


def build_model(model_config: Mapping[str, Any], **run_options) -> nn.Module:
    """The network of ``model_config`` (``name`` plus architecture fields, e.g. a training
    config's ``config.model``), with ``run_options`` (execution settings such as ``precision``,
    ``query_chunk``, or a stage's own override of an architecture field) on top."""
    fields = dict(model_config.items())
    cls = model_class(fields.pop("name"))
    args = {k: _as_tuples(v) for k, v in fields.items()}
    args.update(run_options)
    known = {f.name for f in dataclasses.fields(cls) if f.init} - {"parent", "name"}
    unknown = sorted(set(args) - known)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {unknown}; its fields: {sorted(known)}")
    return cls(**args)


def model_name(module: nn.Module) -> str:
    """The registered name of ``module``'s class."""
    for name, cls in MODELS.items():
        if type(module) is cls:
            return name
    raise ValueError(f"{type(module).__name__} is not a registered network "
                     f"(oldphoto_jax.models.registry.MODELS)")


def architecture(module: nn.Module) -> dict[str, Any]:
    """The architecture fields of a network: its dataclass fields without Flax's own and
    without :data:`EXECUTION_FIELDS`."""
    return {k: v for k, v in network_args(module).items() if k not in EXECUTION_FIELDS}


def network_args(module: nn.Module) -> dict[str, Any]:
    """All constructor arguments of a network (its dataclass fields, without Flax's own)."""
    out = {}
    for field in dataclasses.fields(module):
        if field.name in ("parent", "name") or not field.init:
            continue
        out[field.name] = getattr(module, field.name)
    return out


def build_network(class_name: str, args: Mapping[str, Any] | None = None) -> nn.Module:
    """A registered network by its *class* name (model directories of format version 1, the
    converter's table of official files)."""
    classes = {cls.__name__: cls for cls in MODELS.values()}
    if class_name not in classes:
        raise ValueError(f"unknown network class {class_name!r} (known: "
                         f"{', '.join(sorted(classes))})")
    return classes[class_name](**{k: _as_tuples(v) for k, v in (args or {}).items()})
