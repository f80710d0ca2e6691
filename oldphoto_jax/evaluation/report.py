"""The evaluation table: PSNR / SSIM per photo and method, and their means."""
from __future__ import annotations

import math

import numpy as np

METHODS = ("input", "classical", "ours")
METHOD_TITLES = {"input": "degraded input", "classical": "NLM + Telea (true mask)",
                 "ours": "oldphoto-jax"}


def mean_scores(scores: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """``scores[photo][method][metric]`` -> ``means[method][metric]`` (finite values only)."""
    means: dict[str, dict[str, float]] = {}
    for method in METHODS:
        for metric in ("psnr", "ssim"):
            values = [s[method][metric] for s in scores.values() if method in s]
            finite = [v for v in values if math.isfinite(v)]
            means.setdefault(method, {})[metric] = float(np.mean(finite)) if finite else math.nan
    return means


def markdown_table(scores: dict[str, dict[str, dict[str, float]]]) -> str:
    """One row per photo and a mean row; columns PSNR (dB) and SSIM per method."""
    methods = [m for m in METHODS if any(m in s for s in scores.values())]
    header = "| photo | " + " | ".join(
        f"{METHOD_TITLES[m]} PSNR | {METHOD_TITLES[m]} SSIM" for m in methods) + " |"
    rule = "|---|" + "---:|---:|" * len(methods)
    rows = [header, rule]

    def cells(values):
        return " | ".join(f"{values[m]['psnr']:.2f} | {values[m]['ssim']:.4f}" for m in methods)

    for name, values in scores.items():
        rows.append(f"| {name} | {cells(values)} |")
    rows.append(f"| **mean** | {cells(mean_scores(scores))} |")
    return "\n".join(rows)
