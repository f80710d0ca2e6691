"""How well a scratch detector finds the damage of the evaluation set, per threshold.

    .venv/bin/python -m oldphoto_jax.evaluation.detection_scores --checkpoint_dir weights/default

Degrades the held-out clean photos exactly as ``python -m oldphoto_jax.evaluate`` does (fixed
seed, ``extended`` preset, longer side 512) and compares the detector's mask (the pipeline's
detection: short side 256, bilinear back to the photo, ``probability >= threshold``) with the
recipe's true local-damage mask, pooled over all pixels: precision, recall, F1 and the share of
pixels flagged. The pipeline uses the release's threshold 0.4.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from absl import app, flags

DEFAULT_THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclasses.dataclass(frozen=True)
class DetectionScore:
    threshold: float
    precision: float
    recall: float
    f1: float
    flagged: float  # share of pixels the detector marks
    true: float     # share of pixels truly damaged


def score_masks(predicted: list[np.ndarray], true: list[np.ndarray],
                threshold: float) -> DetectionScore:
    """Pooled precision / recall / F1 of boolean masks (pairs of equal shapes)."""
    tp = fp = fn = total = positives = 0
    for p, t in zip(predicted, true, strict=True):
        p, t = p.astype(bool), t.astype(bool)
        tp += int(np.sum(p & t))
        fp += int(np.sum(p & ~t))
        fn += int(np.sum(~p & t))
        total += p.size
        positives += int(np.sum(t))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return DetectionScore(threshold, precision, recall, f1, (tp + fp) / max(total, 1),
                          positives / max(total, 1))


def detection_scores(detector, cases, thresholds=DEFAULT_THRESHOLDS) -> list[DetectionScore]:
    """Scores of ``detector`` (a ``(module, variables)`` pair) on evaluation ``cases``
    (``degraded_set.Case``; their sides are multiples of 16, so masks keep the photo's size)."""
    from PIL import Image

    from oldphoto_jax.pipeline import postprocess, preprocess, stage1

    probabilities = []
    for case in cases:
        rgb, unet_input = preprocess.detection_input(Image.fromarray(case.degraded))
        if rgb.shape[:2] != case.mask.shape:
            raise ValueError(f"{case.name}: detection resized the photo to {rgb.shape[:2]}")
        probabilities.append(stage1.scratch_probability(detector, unet_input))
    scores = []
    for threshold in thresholds:
        masks = [postprocess.scratch_mask_from_probability(p, c.mask.shape, threshold)
                 for p, c in zip(probabilities, cases)]
        scores.append(score_masks(masks, [c.mask for c in cases], threshold))
    return scores


def markdown_table(scores: list[DetectionScore]) -> str:
    lines = ["| threshold | precision | recall | F1 | flagged | true |",
             "|---:|---:|---:|---:|---:|---:|"]
    for s in scores:
        lines.append(f"| {s.threshold:g} | {s.precision:.3f} | {s.recall:.3f} | {s.f1:.3f} | "
                     f"{100 * s.flagged:.1f} % | {100 * s.true:.1f} % |")
    return "\n".join(lines)


FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command line's flags (defined only when run as a program, so the library functions
    import beside other absl programs)."""
    from oldphoto_jax.evaluation import degraded_set

    degraded_set.define_case_flags("Model directory holding a scratch_detector.")
    flags.DEFINE_list("thresholds", [str(t) for t in DEFAULT_THRESHOLDS], "Thresholds to score.")


def main(argv):
    del argv
    from oldphoto_jax import bundled
    from oldphoto_jax.evaluation import degraded_set

    model, cases, clean = degraded_set.model_and_cases_from_flags()
    detector = model.network("scratch_detector")
    scores = detection_scores(detector, cases, [float(t) for t in FLAGS.thresholds])
    print(f"{len(cases)} photo(s) of {clean}, {bundled.PRESET} preset, seed {FLAGS.seed}")
    print(markdown_table(scores))


if __name__ == "__main__":
    from oldphoto_jax import cpu_tuning

    cpu_tuning.apply()  # before the JAX backend starts
    define_flags()
    app.run(main)
