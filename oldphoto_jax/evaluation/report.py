"""The evaluation table: PSNR / SSIM (and LPIPS, when computed) per photo and method, and their
means; and the colour diagnosis (PSNR once each image's global colour offset is removed)."""
from __future__ import annotations

import math

import numpy as np

METHODS = ("input", "classical", "ours")
METHOD_TITLES = {"input": "degraded input", "classical": "NLM + Telea (true mask)",
                 "ours": "oldphoto-jax"}
# metric -> (column title, number format); "lpips" is optional (only with LPIPS weights).
METRICS = ("psnr", "ssim", "lpips", "psnr_offset_removed")
METRIC_COLUMNS = {"psnr": ("PSNR", ".2f"), "ssim": ("SSIM", ".4f"),
                  "lpips": ("LPIPS (lower is better)", ".4f"),
                  "psnr_offset_removed": ("PSNR, global colour offset removed", ".2f")}
# Diagnoses, not scores (they look at the clean photo): kept out of the score tables and shown
# by colour_table.
DIAGNOSTIC_METRICS = ("psnr_offset_removed",)


def present_metrics(scores: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """PSNR and SSIM, then any optional metric that some photo and method has."""
    found = {metric for s in scores.values() for values in s.values() for metric in values}
    return [m for m in METRICS if m in ("psnr", "ssim") or m in found]


def mean_scores(scores: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """``scores[photo][method][metric]`` -> ``means[method][metric]`` (finite values only)."""
    means: dict[str, dict[str, float]] = {}
    for method in METHODS:
        for metric in present_metrics(scores):
            values = [s[method][metric] for s in scores.values()
                      if method in s and metric in s[method]]
            finite = [v for v in values if math.isfinite(v)]
            means.setdefault(method, {})[metric] = float(np.mean(finite)) if finite else math.nan
    return means


def markdown_table(scores: dict[str, dict[str, dict[str, float]]]) -> str:
    """One row per photo and a mean row; columns PSNR (dB), SSIM and, when present, LPIPS per
    method."""
    methods = [m for m in METHODS if any(m in s for s in scores.values())]
    metrics = [m for m in present_metrics(scores) if m not in DIAGNOSTIC_METRICS]
    rows = _header("photo", methods, metrics)
    for name, values in scores.items():
        rows.append(f"| {name} | {_cells(values, methods, metrics)} |")
    rows.append(f"| **mean** | {_cells(mean_scores(scores), methods, metrics)} |")
    return "\n".join(rows)


def _header(first: str, methods, metrics) -> list[str]:
    """The title row (``first``, then "<method> <metric>" per column) and the alignment rule."""
    titles = " | ".join(f"{METHOD_TITLES[m]} {METRIC_COLUMNS[metric][0]}"
                        for m in methods for metric in metrics)
    return [f"| {first} | {titles} |", "|---|" + "---:|" * (len(methods) * len(metrics))]


def _number(value: float, metric: str) -> str:
    return format(value, METRIC_COLUMNS[metric][1])


def _cells(values: dict[str, dict[str, float]], methods, metrics) -> str:
    """``values[method][metric]`` as table cells, method-major (missing values: nan)."""
    return " | ".join(_number(values[m].get(metric, math.nan), metric)
                      for m in methods for metric in metrics)


def fid_table(fids: dict[str, float], count: int) -> str:
    """One row of FID per method (against the clean photos; lower is better)."""
    methods = [m for m in METHODS if m in fids]
    return "\n".join([
        f"| FID against the clean photos ({count} photos; lower is better) | "
        + " | ".join(METHOD_TITLES[m] for m in methods) + " |",
        "|---|" + "---:|" * len(methods),
        "| FID | " + " | ".join(f"{fids[m]:.2f}" for m in methods) + " |"])


def summarise_seeds(per_seed: dict[int, dict[str, dict[str, float]]]) -> dict:
    """``{"mean": means[method][metric], "std": ...}`` over the seeds' mean scores."""
    summary: dict[str, dict[str, dict[str, float]]] = {"mean": {}, "std": {}}
    for method in METHODS:
        metrics = sorted({m for means in per_seed.values() for m in means.get(method, {})})
        for metric in metrics:
            values = [means[method][metric] for means in per_seed.values()
                      if metric in means.get(method, {})]
            summary["mean"].setdefault(method, {})[metric] = float(np.mean(values))
            summary["std"].setdefault(method, {})[metric] = float(np.std(values))
    return summary


def seeds_table(per_seed: dict[int, dict[str, dict[str, float]]]) -> str:
    """One row of mean scores per seed, then the mean (± standard deviation) over the seeds."""
    methods = [m for m in METHODS if any(m in means for means in per_seed.values())]
    metrics = [m for m in METRICS if m not in DIAGNOSTIC_METRICS
               and any(m in means.get(method, {}) for means in per_seed.values()
                       for method in methods)]
    rows = _header("seed", methods, metrics)
    for seed, means in per_seed.items():
        rows.append(f"| {seed} | {_cells(means, methods, metrics)} |")
    summary = summarise_seeds(per_seed)
    rows.append("| **mean ± sd** | " + " | ".join(
        f"{_number(summary['mean'][m][metric], metric)} ± "
        f"{_number(summary['std'][m][metric], metric)}"
        for m in methods for metric in metrics) + " |")
    return "\n".join(rows)


def colour_table(means: dict[str, dict[str, float]]) -> str:
    """The colour diagnosis of mean scores (``means[method][metric]``): each method's PSNR, the
    same with every image's global colour offset (one number per channel) removed, and the
    difference, which is what wrong overall colour costs; "" when not computed."""
    methods = [m for m in METHODS if "psnr_offset_removed" in means.get(m, {})]
    if not methods:
        return ""

    def row(title, values):
        return f"| {title} | " + " | ".join(_number(v, "psnr") for v in values) + " |"

    plain = [means[m]["psnr"] for m in methods]
    aligned = [means[m]["psnr_offset_removed"] for m in methods]
    return "\n".join([
        "| colour diagnosis (mean) | " + " | ".join(METHOD_TITLES[m] for m in methods) + " |",
        "|---|" + "---:|" * len(methods),
        row("PSNR", plain),
        row(METRIC_COLUMNS["psnr_offset_removed"][0], aligned),
        row("cost of the colour offset (dB)", [a - p for a, p in zip(aligned, plain)])])
