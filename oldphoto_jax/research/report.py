"""``results.md`` of the latent-gap tool: the gap table and how it was made."""
from __future__ import annotations

import math

import numpy as np

from oldphoto_jax.research.encode import SPACE_TITLES
from oldphoto_jax.research.samples import SET_TITLES


def _interval(entry: dict, digits: int) -> str:
    low, high = entry["interval"]
    if math.isnan(low):
        return f"{entry['value']:.{digits}f}"
    return f"{entry['value']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def gap_table(spaces: dict) -> str:
    """One row per space and pair: Fréchet distance, MMD^2 and its permutation p-value, the
    linear classifier's held-out balanced accuracy; intervals are 95 % group bootstraps."""
    rows = ["| space | pair | Fréchet distance [95 % CI] | MMD² [95 % CI] | MMD p-value | "
            "classifier accuracy [95 % CI] |",
            "|---|---|---:|---:|---:|---:|"]
    for space, result in spaces.items():
        for pair, m in result["pairs"].items():
            rows.append(f"| {SPACE_TITLES.get(space, space)} | {pair.replace('-', '–')} | "
                        f"{_interval(m['frechet'], 2)} | {_interval(m['mmd2'], 3)} | "
                        f"{m['mmd2']['p_value']:.3g} | {_interval(m['accuracy'], 2)} |")
    return "\n".join(rows)


def ratio_table(spaces: dict) -> str:
    """Per space, the R–X gap relative to the X–Y gap (what degradation alone opens): below 1 the
    real photos sit closer to the synthetic ones than the synthetic ones to their clean sources."""
    rows = ["| space | Fréchet R–X / X–Y | MMD² R–X / X–Y |", "|---|---:|---:|"]
    for space, result in spaces.items():
        pairs = result["pairs"]
        if "R-X" not in pairs or "X-Y" not in pairs:
            continue
        cells = []
        for metric in ("frechet", "mmd2"):
            denominator = pairs["X-Y"][metric]["value"]
            cells.append(f"{pairs['R-X'][metric]['value'] / denominator:.2f}"
                         if denominator > 0 else "n/a")
        rows.append(f"| {SPACE_TITLES.get(space, space)} | {' | '.join(cells)} |")
    return "\n".join(rows)


def markdown(result: dict) -> str:
    settings, sets = result["settings"], result["sets"]
    lines = [f"# Latent gap of {settings['checkpoint_dir']}", ""]
    if settings.get("model_source"):
        lines += [f"Model: {settings['model_source']}", ""]
    for name, info in sets.items():
        lines.append(f"- {name}: {SET_TITLES[name]}: {info['photos']} photos, {info['crops']} "
                     f"crops ({', '.join(info['sources'])})")
    lines += ["", f"Crops of {settings['crop_size']} px, {settings['crops_per_photo']} per photo, "
              f"after fitting each photo within {settings['max_side']} px; X: the "
              f"`{settings['preset']}` preset, seed {settings['seed']}. Each space standardised "
              f"and reduced to {settings['dims']} principal components of the pooled sets; "
              f"intervals: {settings['bootstrap']} bootstrap resamples of whole photos; MMD "
              f"p-values: {settings['permutations']} permutations of whole photos; classifier: "
              f"logistic regression, held-out photos (0.5 = indistinguishable).", "",
              gap_table(result["spaces"]), "", ratio_table(result["spaces"]), ""]
    return "\n".join(lines)


def _mean_sd(values: list[float], digits: int) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def seeds_summary(per_seed: dict[int, dict]) -> dict:
    """``{space: {pair: {metric: [value per seed]}, "ratio": {...}}}`` of several runs."""
    summary: dict = {}
    for result in per_seed.values():
        for space, measured in result["spaces"].items():
            pairs = measured["pairs"]
            for pair, m in pairs.items():
                entry = summary.setdefault(space, {}).setdefault(pair, {})
                for metric in ("frechet", "mmd2", "accuracy"):
                    entry.setdefault(metric, []).append(m[metric]["value"])
                entry.setdefault("p_value", []).append(m["mmd2"]["p_value"])
            if "R-X" in pairs and "X-Y" in pairs:
                ratio = summary[space].setdefault("R-X / X-Y", {})
                for metric in ("frechet", "mmd2"):
                    denominator = pairs["X-Y"][metric]["value"]
                    ratio.setdefault(metric, []).append(
                        pairs["R-X"][metric]["value"] / denominator if denominator > 0
                        else float("nan"))
    return summary


def seeds_table(summary: dict, seeds: list[int]) -> str:
    """Mean ± standard deviation over the seeds of each statistic, and in how many seeds the MMD
    test rejected at 0.05; then the R–X / X–Y ratios."""
    n = len(seeds)
    rows = [f"Over seeds {', '.join(map(str, seeds))} (mean ± standard deviation):", "",
            "| space | pair | Fréchet distance | MMD² | MMD p < 0.05 | classifier accuracy |",
            "|---|---|---:|---:|---:|---:|"]
    for space, pairs in summary.items():
        for pair, m in pairs.items():
            if pair == "R-X / X-Y":
                continue
            rejected = sum(p < 0.05 for p in m["p_value"])
            rows.append(f"| {SPACE_TITLES.get(space, space)} | {pair.replace('-', '–')} | "
                        f"{_mean_sd(m['frechet'], 2)} | {_mean_sd(m['mmd2'], 3)} | "
                        f"{rejected}/{n} | {_mean_sd(m['accuracy'], 2)} |")
    rows += ["", "| space | Fréchet R–X / X–Y | MMD² R–X / X–Y |", "|---|---:|---:|"]
    for space, pairs in summary.items():
        if "R-X / X-Y" in pairs:
            ratio = pairs["R-X / X-Y"]
            rows.append(f"| {SPACE_TITLES.get(space, space)} | {_mean_sd(ratio['frechet'], 2)} | "
                        f"{_mean_sd(ratio['mmd2'], 2)} |")
    return "\n".join(rows)
