"""Parity runners of the pipeline-level cases (stage 1 of run.py).

Each step is checked from the fixture's own result of the step before (the reference's advice),
so that a float-noise flip at the 0.4 detection threshold cannot cascade: the UNet runs on the
stored ``out_unet_input``, the mask is made from the stored ``out_unet_prob``, and restoration
starts from the stored ``out_detection_input_rgb`` and ``out_mask_png``.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from oldphoto_jax.convert.official import OFFICIAL_FILES
from oldphoto_jax.convert.converters import convert_state_dict
from oldphoto_jax.layers import nearest_source_indices
from oldphoto_jax.models.registry import build_network
from oldphoto_jax.parity.fixtures import (Case, Comparison, compare_exact,
                                          compare_float, compare_png, runner)
from oldphoto_jax.pipeline import postprocess, preprocess, stage1

# Key listing of a fixture set -> role of the network in an oldphoto-jax model.
KEYS_TO_ROLE = {
    "vae_a": "vae_a",
    "vae_b_quality": "vae_b_quality",
    "vae_b_scratch": "vae_b_scratch",
    "mapping_quality": "mapping_quality",
    "mapping_scratch": "mapping_scratch",
    "mapping_patch_attention": "mapping_hr",
    "scratch_unet": "scratch_detector",
    "face_spade_256": "face_256",
    "face_spade_512": "face_512",
}
# Tolerance of float intermediates (fixtures' README).
INTERMEDIATE_TOLERANCE = 1e-5
# Detection probabilities this close to the threshold may flip with float noise.
THRESHOLD_MARGIN = 1e-4


def official_network(case: Case, keys_name: str) -> stage1.Network:
    """Build and convert the network of ``keys_name`` exactly as the converter does for the
    official file of the same role."""
    role = KEYS_TO_ROLE[keys_name]
    spec = next(s for s in OFFICIAL_FILES if s.role == role)
    module = build_network(spec.class_name, spec.args)
    variables, _ = convert_state_dict(module, case.state_dict(keys_name), f"{case.name}/{keys_name}")
    return module, variables


def _networks(case: Case) -> dict[str, stage1.Network]:
    return {KEYS_TO_ROLE[k]: official_network(case, k) for k, _ in case.key_listings()}


def _restoration_comparisons(case, nets, mapping_role, vae_b_role, image, mask):
    network = stage1.restore(nets["vae_a"], nets[mapping_role], nets[vae_b_role], image, mask)
    return [compare_float(case, "network", network),
            compare_png(case, "png", postprocess.minmax_png(network))]


@runner("pipeline_quality")
def run_pipeline_quality(case: Case) -> list[Comparison]:
    """test.py --test_mode Full --Quality_restore on ``in_photo``."""
    nets = _networks(case)
    _, image = preprocess.quality_input(Image.fromarray(case.arrays["in_photo"]))
    return _restoration_comparisons(case, nets, "mapping_quality", "vae_b_quality", image, None)


def _detection_comparisons(case: Case, detector: stage1.Network) -> list[Comparison]:
    rgb, unet_input = preprocess.detection_input(Image.fromarray(case.arrays["in_photo"]))
    stored_prob = case.nhwc("out_unet_prob")
    probability = stage1.scratch_probability(detector, case.nhwc("out_unet_input"))
    mask = postprocess.scratch_mask_from_probability(
        stored_prob, case.arrays["out_mask_png"].shape[:2])
    # Pixels whose probability (brought to full size as the mask is) lies at the threshold.
    height, width = case.arrays["out_mask_png"].shape[:2]
    rows = nearest_source_indices(stored_prob.shape[1], height)
    cols = nearest_source_indices(stored_prob.shape[2], width)
    distance = np.abs(stored_prob[0, :, :, 0] - postprocess.SCRATCH_THRESHOLD)[rows][:, cols]
    near = np.repeat((distance <= THRESHOLD_MARGIN)[..., None], 3, axis=-1)
    return [
        compare_exact(case, "detection_input_rgb", rgb),
        compare_float(case, "unet_input", unet_input, tolerance=INTERMEDIATE_TOLERANCE),
        compare_float(case, "unet_prob", probability, tolerance=INTERMEDIATE_TOLERANCE),
        compare_exact(case, "mask_png", postprocess.mask_png(mask), ignore=near),
    ]


def _scratch_pipeline(case: Case, mapping_role: str, dilation: int) -> list[Comparison]:
    nets = _networks(case)
    comparisons = _detection_comparisons(case, nets["scratch_detector"])
    image, mask, mask_used = preprocess.scratch_inputs(
        case.arrays["out_detection_input_rgb"], case.arrays["out_mask_png"], dilation)
    if "out_dilated_mask" in case.arrays:
        comparisons.append(compare_float(case, "dilated_mask", mask,
                                         tolerance=INTERMEDIATE_TOLERANCE))
    return comparisons + _restoration_comparisons(case, nets, mapping_role, "vae_b_scratch",
                                                  image, mask)


@runner("pipeline_scratch")
def run_pipeline_scratch(case: Case) -> list[Comparison]:
    """detection.py full_size + test.py --Scratch_and_Quality_restore."""
    return _scratch_pipeline(case, "mapping_scratch", dilation=0)


@runner("pipeline_scratch_hr")
def run_pipeline_scratch_hr(case: Case) -> list[Comparison]:
    """The same with --HR: 7x7 mask dilation and the patch-attention mapping."""
    return _scratch_pipeline(case, "mapping_hr", dilation=preprocess.HR_MASK_DILATION)
