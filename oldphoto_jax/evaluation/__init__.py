"""Evaluation of a restoration model on clean photos degraded with a fixed seed.

``python -m oldphoto_jax.evaluate`` is the command; this package holds its parts: the degraded
test set (:mod:`.degraded_set`), the classical baseline (:mod:`.classical`), the metrics
(:mod:`.metrics`; LPIPS, optional, in :mod:`.lpips`) and the report (:mod:`.report`).
"""
