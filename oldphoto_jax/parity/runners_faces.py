"""Parity runner of the face stages of the pipeline (kind ``pipeline_faces``, stages 2-4).

Each stage is checked from the fixture's own result of the stage before:

* stage 2: dlib detection + alignment of ``in_photo`` → ``out_aligned_faces`` (same number of
  faces, dlib order);
* stage 3: our SPADE generator with the weights of the fixture set's face case of the same key
  listing and seed (``face_256``) on the stored ``out_aligned_faces``, written as the face stage
  writes its PNGs → ``in_enhanced_faces`` (computed by the official code in float64);
* stage 4: ``in_photo`` + the stored ``in_enhanced_faces`` warped back and blended with the
  transforms found in stage 2 → ``out_final``. The official script re-detects the faces on the
  photo; the transforms are the same, so the result must still equal the fixture.

Tolerance (fixtures' README): uint8 values within 2 levels on at least 99% of the values.
"""
from __future__ import annotations

import jax
import numpy as np

from oldphoto_jax.convert.converters import convert_state_dict
from oldphoto_jax.models.spade import SPADEGenerator
from oldphoto_jax.parity.fixtures import Case, Comparison, list_cases, load_case, runner
from oldphoto_jax.pipeline import blend, faces, postprocess, preprocess

# ``pipeline_faces``: "within 2 levels on at least 99% of the values".
FACE_LEVELS = 2
FACE_MIN_FRACTION_WITHIN = 0.99


def compare_within_levels(case: Case, output: str, ours: np.ndarray, expected: np.ndarray,
                          levels: int = FACE_LEVELS,
                          min_fraction: float = FACE_MIN_FRACTION_WITHIN) -> Comparison:
    """uint8 images: at least ``min_fraction`` of the values within ``levels`` of the expected.

    Reports the fraction of values further than ``levels`` away (allowed ``1 - min_fraction``).
    """
    allowed = 1.0 - min_fraction
    if ours.shape != expected.shape:
        return Comparison(case.name, output, "shape", float("inf"), allowed, False,
                          f"got {ours.shape}, expected {expected.shape}")
    diff = np.abs(ours.astype(np.int32) - expected.astype(np.int32))
    if not diff.size:
        return Comparison(case.name, output, f"share >{levels} levels", 0.0, allowed, True,
                          "no values")
    beyond = float(np.mean(diff > levels))
    return Comparison(case.name, output, f"share >{levels} levels", beyond, allowed,
                      bool(beyond <= allowed + 1e-12),
                      f"max level diff {int(diff.max())}, "
                      f"{float(np.mean(diff > 0)):.3g} of values differ")


def compare_face_count(case: Case, found: int, expected: int) -> Comparison:
    return Comparison(case.name, "face_count", "faces missing/extra", abs(found - expected), 0,
                      found == expected, f"found {found}, expected {expected}")


def face_generator_case(case: Case) -> Case:
    """The fixture set's ``face`` case whose weights the pipeline case's face stage used: the
    same key listing and seed (``face_256`` for ``face_spade_256``, seed 17)."""
    keys_name, seed = case.key_listings()[0]
    for name, meta in list_cases(case.directory).items():
        if meta.get("kind") == "face" and meta.get("keys") == keys_name \
                and int(meta.get("seed", -1)) == seed:
            return load_case(name, case.directory)
    raise KeyError(f"case {case.name}: no face case with keys {keys_name!r} and seed {seed}")


def enhance_faces(case: Case, aligned: np.ndarray) -> np.ndarray:
    """Stage 3: SPADE on uint8 ``k x S x S x 3`` aligned faces → uint8 enhanced faces as written
    by the face stage (``save_image((out + 1) / 2)``)."""
    weights_case = face_generator_case(case)
    keys_name = weights_case.meta["keys"]
    module = SPADEGenerator(load_size=aligned.shape[1])
    variables, _ = convert_state_dict(module, weights_case.state_dict(keys_name),
                                      f"{weights_case.name}:{keys_name}")
    x = np.concatenate([preprocess.to_network_input(face) for face in aligned])
    return postprocess.clamped_png(np.asarray(jax.jit(module.apply)(variables, x)))


@runner("pipeline_faces")
def run_pipeline_faces(case: Case) -> list[Comparison]:
    """detect_all_dlib.py, the face generator and align_warp_back_multiple_dlib.py."""
    photo = case.arrays["in_photo"]
    expected_aligned = case.arrays["out_aligned_faces"]
    enhanced = case.arrays["in_enhanced_faces"]
    size = expected_aligned.shape[1]

    found = faces.extract_faces(photo, size)
    ours_aligned = np.stack([f.image for f in found]) if found \
        else np.zeros((0, size, size, 3), np.uint8)
    comparisons = [
        compare_face_count(case, len(found), len(expected_aligned)),
        compare_within_levels(case, "aligned_faces", ours_aligned, expected_aligned),
        compare_within_levels(case, "enhanced_faces", enhance_faces(case, expected_aligned),
                              enhanced),
    ]
    if len(found) == len(enhanced):
        final = blend.paste_faces(photo, list(enhanced), [f.transform for f in found])
        comparisons.append(compare_within_levels(case, "final", final, case.arrays["out_final"]))
    else:
        comparisons.append(Comparison(case.name, "final", "not run", float("inf"), 0, False,
                                      "face count differs from the fixture"))
    return comparisons
