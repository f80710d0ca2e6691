"""Parity runners of the scratch-detection UNet (kind ``scratch_unet``) and the face generator
(kind ``face``; ``load_size`` is taken from the case's input size, 256 or 512)."""
from __future__ import annotations

import jax
import numpy as np

from oldphoto_jax.convert.converters import convert_state_dict
from oldphoto_jax.models.spade import SPADEGenerator
from oldphoto_jax.models.unet import ScratchUNet
from oldphoto_jax.parity.fixtures import Case, Comparison, compare_float, runner


def _run(module, case: Case, keys_name: str, input_name: str) -> np.ndarray:
    variables, _ = convert_state_dict(module, case.state_dict(keys_name),
                                      f"{case.name}:{keys_name}")
    x = case.nhwc(input_name)
    return np.asarray(jax.jit(module.apply)(variables, x))


@runner("scratch_unet")
def run_scratch_unet(case: Case) -> list[Comparison]:
    logits = _run(ScratchUNet(), case, case.meta["keys"], "in_gray")
    return [compare_float(case, "logits", logits)]


@runner("face")
def run_face(case: Case) -> list[Comparison]:
    size = case.arrays["in_face"].shape[2]
    face = _run(SPADEGenerator(load_size=size), case, case.meta["keys"], "in_face")
    return [compare_float(case, "face", face)]
