"""Synthetic old-photo degradation on numpy arrays (no JAX).

``degrade(image, seed, config)`` turns a clean uint8 RGB image into a ``DegradedSample``
(degraded image, local-damage mask, list of applied ops). Presets: ``official_preset()`` (the
released recipe) and ``extended_preset()`` (ageing, scratches, dust, folds, tears and more).
"""
from data_synth.config import extended_preset, get_preset, official_preset, only_steps
from data_synth.pipeline import AppliedOp, DegradedSample, degrade, degrade_with_rng

__all__ = [
    "AppliedOp",
    "DegradedSample",
    "degrade",
    "degrade_with_rng",
    "extended_preset",
    "get_preset",
    "official_preset",
    "only_steps",
]
