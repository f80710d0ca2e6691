"""The evaluation run (``python -m oldphoto_jax.evaluate`` is its command line; see there)."""
from __future__ import annotations

import json
import pathlib
import time

from oldphoto_jax.inference_defaults import ATTENTION_CHUNK

MODES = ("scratch", "quality", "scratch_hr")


def evaluate(clean_folder, names, checkpoint_dir, output_dir, *, seed: int = 0,
             preset: str = "extended", max_side: int | None = 512,
             attention_chunk: int = ATTENTION_CHUNK,
             lpips_weights: str | None = None, fid_weights: str | None = None,
             mode: str = "scratch", given_mask: bool = False, log=print) -> dict:
    """Runs the evaluation described in ``oldphoto_jax.evaluate``'s docstring; returns
    ``{"scores": scores[photo][method][metric], "mean": ..., "settings": ...}`` (and, when
    ``fid_weights`` is given, ``"fid": {method: FID against the clean photos}``) and writes it
    under ``output_dir``. Metrics: "psnr", "ssim", the diagnosis "psnr_offset_removed" (PSNR once
    the image's global colour offset from the clean photo is removed: not a score, it looks at
    the clean photo) and, when ``lpips_weights`` (an ``.npz`` path) is given, "lpips".
    ``mode`` "scratch": the whole recipe, the model as ``infer.py --with_scratch``; "quality":
    the recipe without its local damage (empty masks), the model as plain ``infer.py``;
    "scratch_hr": the whole recipe, the model as ``infer.py --with_scratch --HR``.
    ``given_mask`` (scratch modes): the model is given the true mask (``infer.py
    --mask_folder``) instead of detecting the damage."""
    from oldphoto_jax import model_files, photo_files
    from oldphoto_jax.evaluation import (classical, contact_sheet, degraded_set, fid,
                                         image_scores, lpips, report)
    from oldphoto_jax.pipeline.stage_runner import (FINAL, Options, PipelineError, StageRunner,
                                                    mode_options)

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    with_scratch = mode_options(mode)["with_scratch"]
    if given_mask and not with_scratch:
        raise ValueError("given_mask needs a scratch mode (quality mode has no damage mask)")
    output = pathlib.Path(output_dir)
    began = time.perf_counter()
    lpips_params = lpips.load_lpips_vgg_npz(lpips_weights) if lpips_weights else None
    if lpips_params is None:
        log("LPIPS not computed (no --lpips_weights given)")
    fid_params = fid.load_fid_inception_npz(fid_weights) if fid_weights else None
    if fid_params is None:
        log("FID not computed (no --fid_weights given)")
    cases = degraded_set.load_cases(clean_folder, names, seed, preset, max_side, log=log,
                                    local_damage=with_scratch)
    if fid_params is not None and len(cases) < 2:
        raise ValueError(f"FID needs at least 2 photos, got {len(cases)}")
    log(f"{len(cases)} photo(s) from {clean_folder}, degraded with the {preset} preset"
        f"{'' if with_scratch else ' without local damage'}, seed {seed}; {mode} mode")
    for case in cases:
        photo_files.write_png_atomic(output / "clean" / f"{case.stem}.png", case.clean)
        photo_files.write_png_atomic(output / "degraded" / f"{case.stem}.png", case.degraded)
        mask_rgb = (case.mask[..., None] * 255).astype("uint8").repeat(3, axis=2)
        photo_files.write_png_atomic(output / "mask" / f"{case.stem}.png", mask_rgb)

    log("classical baseline (non-local means" +
        (" + Telea inpainting of the true mask)" if with_scratch else ")"))
    baseline = {}
    for case in cases:
        baseline[case.name] = classical.classical_restore(case.degraded, case.mask)
        photo_files.write_png_atomic(output / "classical" / f"{case.stem}.png", baseline[case.name])

    model = model_files.load_model(checkpoint_dir)
    log(f"model: {model.directory} ({model.source or 'no source recorded'})")
    options = Options(**mode_options(mode), faces=False, overwrite=True,
                      attention_chunk=attention_chunk,
                      mask_folder=str(output / "mask") if given_mask else None)
    if given_mask:
        log("the model is given the true damage mask (no detection)")
    summary = StageRunner(model, options, log=log).run(output / "degraded", output / "ours")
    if summary.failed:
        raise PipelineError("restoration failed for " + ", ".join(
            f"{name} ({reason})" for name, reason in summary.failed))

    scores, restored = {}, {method: [] for method in report.METHODS}
    for case in cases:
        ours = photo_files.read_photo(output / "ours" / FINAL / f"{case.stem}.png").rgb
        images = {"input": case.degraded, "classical": baseline[case.name], "ours": ours}
        for method, image in images.items():
            restored[method].append(image)
        scores[case.name] = {
            method: {"psnr": image_scores.psnr(case.clean, image),
                     "ssim": image_scores.ssim(case.clean, image),
                     "psnr_offset_removed": image_scores.psnr_offset_removed(case.clean, image)}
            for method, image in images.items()}
        if lpips_params is not None:
            distances = lpips.lpips_distances(lpips_params, case.clean, list(images.values()))
            for method, distance in zip(images, distances):
                scores[case.name][method]["lpips"] = distance
    fids = None
    if fid_params is not None:
        log(f"FID against the {len(cases)} clean photo(s) (few photos: a noisy comparison)")
        clean_features = fid.inception_features(fid_params, [c.clean for c in cases])
        fids = {method: fid.features_distance(
                    clean_features, fid.inception_features(fid_params, images))
                for method, images in restored.items()}
    result = {
        "scores": scores,
        "mean": report.mean_scores(scores),
        "settings": {"clean_folder": str(clean_folder), "photos": [c.name for c in cases],
                     "seed": seed, "preset": preset, "max_side": max_side, "mode": mode,
                     "given_mask": given_mask,
                     "checkpoint_dir": str(model.directory), "model_source": model.source,
                     "lpips_weights": str(lpips_weights) if lpips_weights else None,
                     "fid_weights": str(fid_weights) if fid_weights else None,
                     "sizes": {c.name: list(c.clean.shape[:2]) for c in cases}},
    }
    if fids is not None:
        result["fid"] = fids
    table = report.markdown_table(scores)
    if fids is not None:
        table += "\n\n" + report.fid_table(fids, len(cases))
    table += "\n\n" + report.colour_table(result["mean"])
    _write_text(output / "results.json", json.dumps(result, indent=2) + "\n")
    _write_text(output / "results.md", table + "\n")
    rows = [[case.clean, case.degraded, baseline[case.name],
             photo_files.read_photo(output / "ours" / FINAL / f"{case.stem}.png").rgb]
            for case in cases]
    photo_files.write_png_atomic(output / "sheet.png", contact_sheet.sheet(rows, 192))
    log(f"\n{table}\n")
    log(f"evaluated {len(cases)} photo(s) in {time.perf_counter() - began:.1f} s; "
        f"images and tables in {output}")
    return result


def evaluate_seeds(clean_folder, names, checkpoint_dir, output_dir, seeds, log=print,
                   **settings) -> dict:
    """:func:`evaluate` once per degradation seed (into ``output_dir/seed_<s>``), then the mean
    scores of every seed and their mean over the seeds, written as ``seeds.md`` and
    ``seeds.json``: with five photos one seed's draw of degradations moves the comparison by
    dB, so a claim should hold over several. Returns ``{"per_seed": {seed: means},
    "mean": means over seeds, "std": their standard deviation}`` (``means[method][metric]``)."""
    from oldphoto_jax.evaluation import report

    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"expected distinct seeds, got {seeds}")
    output = pathlib.Path(output_dir)
    per_seed = {}
    for seed in seeds:
        log(f"== seed {seed}")
        result = evaluate(clean_folder, names, checkpoint_dir, output / f"seed_{seed}",
                          seed=seed, log=log, **settings)
        per_seed[seed] = result["mean"]
    summary = report.summarise_seeds(per_seed)
    table = report.seeds_table(per_seed) + "\n\n" + report.colour_table(summary["mean"])
    _write_text(output / "seeds.json", json.dumps(
        {"per_seed": {str(k): v for k, v in per_seed.items()}, **summary}, indent=2) + "\n")
    _write_text(output / "seeds.md", table + "\n")
    log(f"\nmean over seeds {', '.join(map(str, seeds))}:\n{table}\n")
    return {"per_seed": per_seed, **summary}


def _write_text(path: pathlib.Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text)
    temp.replace(path)
