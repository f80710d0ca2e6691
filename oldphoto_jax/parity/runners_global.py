"""Parity runners of the Global networks: VAE encoder/decoder and the three mapping networks.

Each runner builds the network with its official (default) configuration, converts the case's
official state dict, runs the jitted network on the case's inputs (NCHW -> NHWC) and compares
with the stored official output (tolerance 1e-4 + 20 * fp32_err of the fixture).
"""
from __future__ import annotations

import jax
import numpy as np

from oldphoto_jax.convert.converters import convert_state_dict
from oldphoto_jax.models.mapping import MappingModel, MappingModelWithMask, MappingModelWithMask2
from oldphoto_jax.models.vae import VAE
from oldphoto_jax.parity.fixtures import Case, Comparison, compare_float, runner


def _variables(case: Case, module) -> dict:
    keys_name = case.key_listings()[0][0]
    variables, _warnings = convert_state_dict(module, case.state_dict(keys_name),
                                              f"{case.name}:{keys_name}")
    return variables


def _run(module, variables, *inputs, method=None):
    fn = jax.jit(lambda v, *a: module.apply(v, *a, method=method))
    return np.asarray(fn(variables, *inputs))


@runner("vae_encoder")
def run_vae_encoder(case: Case) -> list[Comparison]:
    module = VAE(required="encoder")
    out = _run(module, _variables(case, module), case.nhwc("in_image"), method="encode")
    return [compare_float(case, "latent", out)]


@runner("vae_decoder")
def run_vae_decoder(case: Case) -> list[Comparison]:
    module = VAE(required="decoder")
    out = _run(module, _variables(case, module), case.nhwc("in_latent"), method="decode")
    return [compare_float(case, "image", out)]


@runner("mapping_quality")
def run_mapping_quality(case: Case) -> list[Comparison]:
    module = MappingModel()
    out = _run(module, _variables(case, module), case.nhwc("in_latent"))
    return [compare_float(case, "latent", out)]


@runner("mapping_scratch")
def run_mapping_scratch(case: Case) -> list[Comparison]:
    module = MappingModelWithMask()
    out = _run(module, _variables(case, module), case.nhwc("in_latent"), case.nhwc("in_mask"))
    return [compare_float(case, "latent", out)]


@runner("mapping_hr")
def run_mapping_hr(case: Case) -> list[Comparison]:
    module = MappingModelWithMask2()
    out = _run(module, _variables(case, module), case.nhwc("in_latent"), case.nhwc("in_mask"))
    return [compare_float(case, "latent", out)]
