"""How far apart are real old photos, synthetic old photos and clean photos, as images and in the
VAEs' latent spaces? (the claim the method rests on; ``docs/research.md``)

    .venv/bin/python -m oldphoto_jax.research.latent_gap --checkpoint_dir weights/default \
        --real ../shared/photos/old,../shared/photos/old_w_scratch \
        --clean ../shared/photos/clean_more --output_dir outputs/latent_gap

Three sets of crops (:mod:`oldphoto_jax.research.samples`): R, the real old photos of ``--real``;
X, the clean photos of ``--clean`` degraded with ``data_synth`` (``--preset``, ``--seed``); Y, the
clean photos. Each crop is described in four spaces (:mod:`oldphoto_jax.research.encode`): two
weight-free image spaces (8x8 thumbnails; colour, tone and texture statistics) and the latent
spaces of VAE_A's and VAE_B's encoders. For each space and each pair R-X, X-Y, R-Y it reports a
Fréchet distance, a kernel MMD^2 with a permutation p-value and the held-out accuracy of a linear
domain classifier, each with a bootstrap interval (:mod:`oldphoto_jax.research.stats`), and draws
the sets in 2-D (PCA and t-SNE).

``--real`` and ``--clean`` take folders or single photos, comma-separated or repeated. Written
to ``--output_dir``: ``results.md``, ``results.json``, ``embedding.png`` and ``features.npz``
(every set's features per space, and the crops' photo groups, to analyse further). ``--seeds
0,1,2`` repeats the run per seed (new degradations and crops) and adds ``seeds.md`` /
``seeds.json``, each statistic's mean and deviation over the seeds.
"""
from __future__ import annotations

import json
import pathlib
import sys
import time

import numpy as np
from absl import app, flags, logging

from oldphoto_jax import bundled

_CHECKPOINT_DIR = flags.DEFINE_string(
    "checkpoint_dir", str(bundled.DEFAULT_DIR), "Model directory with vae_a (and a VAE_B for "
    "the vae_b space); default: the bundled model.")
_REAL = flags.DEFINE_multi_string(
    "real", [], "Real old photos: folders or files, comma-separated or repeated.")
_CLEAN = flags.DEFINE_multi_string(
    "clean", [], "Clean photos: folders or files, comma-separated or repeated.")
_OUTPUT = flags.DEFINE_string("output_dir", "outputs/latent_gap", "Where to write the results.")
_PRESET = flags.DEFINE_enum("preset", bundled.PRESET, ["official", "extended"],
                            "data_synth degradation preset for X.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the degradations, crops and statistics.")
_SEEDS = flags.DEFINE_list(
    "seeds", [], "Several seeds (e.g. 0,1,2,3,4): one run per seed under <output_dir>/seed_<s> "
    "(the embedding only for the first), then the mean and deviation of every statistic over "
    "the seeds (seeds.md, seeds.json). Replaces --seed.")
_CROPS = flags.DEFINE_integer("crops_per_photo", 8, "Crops cut from each photo.")
_CROP_SIZE = flags.DEFINE_integer("crop_size", 128, "Side of the square crops (pixels, a "
                                  "multiple of 4).")
_MAX_SIDE = flags.DEFINE_integer("max_side", 512, "Fit every photo within this side first "
                                 "(0 = full size).")
_DIMS = flags.DEFINE_integer("dims", 16, "Principal components kept per space.")
_BOOTSTRAP = flags.DEFINE_integer("bootstrap", 200, "Bootstrap resamples per interval.")
_PERMUTATIONS = flags.DEFINE_integer("permutations", 1000, "Permutations of the MMD test.")
_BATCH = flags.DEFINE_integer("batch_size", 16, "Crops per encoder call.")
_EMBEDDING = flags.DEFINE_bool("embedding", True, "Draw embedding.png (PCA and t-SNE).")


def split_entries(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def latent_gap(checkpoint_dir, real, clean, output_dir, *, seed: int = 0,
               preset: str = "extended", max_side: int | None = 512, crop_size: int = 128,
               crops_per_photo: int = 8, dims: int = 16, n_bootstrap: int = 200,
               n_permutations: int = 1000, batch_size: int = 16, draw_embedding: bool = True,
               log=print) -> dict:
    """Runs the measurement (see the module docstring) and writes its files; returns the
    content of ``results.json``."""
    from oldphoto_jax import model_files
    from oldphoto_jax.research import embedding, encode, gap, report, samples

    if crop_size < 16 or crop_size % 4:
        raise samples.InputError(f"--crop_size must be a multiple of 4 and at least 16, got "
                                 f"{crop_size}")
    if crops_per_photo < 1:
        raise samples.InputError(f"--crops_per_photo must be positive, got {crops_per_photo}")
    real_paths = samples.photo_paths(real, "--real", log)
    clean_paths = samples.photo_paths(clean, "--clean", log)
    for what, paths in (("--real", real_paths), ("--clean", clean_paths)):
        if len(paths) < 2:
            raise samples.InputError(f"{what}: at least 2 photos are needed, got {len(paths)}")
    began = time.perf_counter()
    model = model_files.load_model(checkpoint_dir)
    if not model.has("vae_a"):
        raise model_files.CheckpointError(f"model {model.directory} has no vae_a")
    log(f"model: {model.directory} ({model.source or 'no source recorded'})")
    crop_sets = samples.build_sets(real_paths, clean_paths, seed=seed, preset=preset,
                                   max_side=max_side, crop_size=crop_size,
                                   crops_per_photo=crops_per_photo, log=log)
    features = encode.space_features(model, crop_sets, log, batch_size)
    groups = {name: s.groups for name, s in crop_sets.items()}

    spaces = {}
    for space, per_set in features.items():
        log(f"{space}: statistics ({n_bootstrap} bootstrap resamples, {n_permutations} "
            f"permutations per pair)")
        spaces[space] = gap.measure_space(per_set, groups, dims=dims, n_bootstrap=n_bootstrap,
                                          n_permutations=n_permutations, seed=seed, log=log,
                                          space=space)
    result = {
        "settings": {"checkpoint_dir": str(model.directory), "model_source": model.source,
                     "vae_b_role": encode.vae_b_role(model), "real": list(real),
                     "clean": list(clean), "seed": seed, "preset": preset,
                     "max_side": max_side, "crop_size": crop_size,
                     "crops_per_photo": crops_per_photo, "dims": dims,
                     "bootstrap": n_bootstrap, "permutations": n_permutations},
        "sets": {name: {"photos": len(s.photos), "crops": int(len(s.crops)),
                        "sources": sorted({p.split("/")[0] for p in s.photos}),
                        "photo_names": list(s.photos)}
                 for name, s in crop_sets.items()},
        "spaces": spaces,
    }
    output = pathlib.Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    arrays = {f"{space}/{name}": x for space, per_set in features.items()
              for name, x in per_set.items()}
    arrays.update({f"groups/{name}": g for name, g in groups.items()})
    np.savez(output / "features.npz", **arrays)
    if draw_embedding:
        log("embedding: PCA and t-SNE")
        picture, _ = embedding.embedding_picture(
            {space: (np.concatenate(list(per_set.values())),
                     np.concatenate([[n] * len(x) for n, x in per_set.items()]))
             for space, per_set in features.items()},
            encode.SPACE_TITLES, {"R": "real old", "X": "synthetic old", "Y": "clean"},
            seed=seed)
        picture.save(output / "embedding.png")
    text = report.markdown(result)
    (output / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (output / "results.md").write_text(text)
    log(f"\n{text}")
    log(f"done in {time.perf_counter() - began:.0f} s; results in {output}")
    return result


def latent_gap_seeds(checkpoint_dir, real, clean, output_dir, seeds, *, log=print,
                     draw_embedding: bool = True, **settings) -> dict:
    """:func:`latent_gap` once per seed (into ``output_dir/seed_<s>``; only the first draws the
    embedding), then ``seeds.md`` / ``seeds.json``: each statistic's mean and deviation over the
    seeds. One degradation and one set of crops per photo is one draw; the seeds show how much
    the numbers move with that draw. Returns ``{"seeds": [...], "summary": ...}``."""
    from oldphoto_jax.research import report
    from oldphoto_jax.research.samples import InputError

    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise InputError(f"--seeds: expected distinct seeds, got {seeds}")
    output = pathlib.Path(output_dir)
    per_seed = {}
    for i, seed in enumerate(seeds):
        log(f"== seed {seed}")
        per_seed[seed] = latent_gap(checkpoint_dir, real, clean, output / f"seed_{seed}",
                                    seed=seed, log=log, draw_embedding=draw_embedding and i == 0,
                                    **settings)
    summary = report.seeds_summary(per_seed)
    text = report.seeds_table(summary, seeds)
    (output / "seeds.json").write_text(json.dumps({"seeds": seeds, "summary": summary},
                                                  indent=2) + "\n")
    (output / "seeds.md").write_text(text + "\n")
    log(f"\n{text}")
    return {"seeds": seeds, "summary": summary}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)
    from oldphoto_jax.model_files import CheckpointError
    from oldphoto_jax.research.samples import InputError

    real, clean = split_entries(_REAL.value), split_entries(_CLEAN.value)
    if not real or not clean:
        print("error: --real and --clean are required", file=sys.stderr)
        return 2
    if not (pathlib.Path(_CHECKPOINT_DIR.value) / "manifest.json").is_file():
        print(f"error: no model at {_CHECKPOINT_DIR.value} (manifest.json missing)",
              file=sys.stderr)
        return 2
    try:
        seeds = [int(s) for s in _SEEDS.value]
    except ValueError:
        print(f"error: --seeds takes integers, got {','.join(_SEEDS.value)}", file=sys.stderr)
        return 2
    settings = dict(preset=_PRESET.value, max_side=_MAX_SIDE.value or None,
                    crop_size=_CROP_SIZE.value, crops_per_photo=_CROPS.value, dims=_DIMS.value,
                    n_bootstrap=_BOOTSTRAP.value, n_permutations=_PERMUTATIONS.value,
                    batch_size=_BATCH.value, draw_embedding=_EMBEDDING.value)
    try:
        if seeds:
            latent_gap_seeds(_CHECKPOINT_DIR.value, real, clean, _OUTPUT.value, seeds,
                             **settings)
        else:
            latent_gap(_CHECKPOINT_DIR.value, real, clean, _OUTPUT.value, seed=_SEED.value,
                       **settings)
    except (InputError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    app.run(main)
