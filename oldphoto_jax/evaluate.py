"""Evaluate a restoration model on clean photos degraded with a fixed seed.

    .venv/bin/python -m oldphoto_jax.evaluate                      # bundled model, held-out photos
    .venv/bin/python -m oldphoto_jax.evaluate --checkpoint_dir models/official --photos all \
        --clean_folder /data/clean --output_dir eval/official

Each clean photo is downscaled to ``--max_side`` and centre-cropped to sides that are multiples of
16, then degraded with the ``--preset`` recipe of ``data_synth`` and a seed that depends only on
``--seed`` and the photo's name. Three restorations are scored against the clean photo with PSNR
and SSIM (scikit-image, data range 255, colour): the degraded input itself, the classical baseline
(OpenCV non-local-means denoising, then Telea inpainting of the true damage mask) and the model,
run as ``infer.py --with_scratch --no_faces`` would (it detects scratches itself: no mask given).
``--mode quality`` scores quality mode instead: the recipe without its local damage (scratches,
dust, folds, cracks, holes, tears; the masks are empty), the baseline non-local means alone and
the model run as plain ``infer.py --no_faces`` (quality mapping).
A colour diagnosis follows the table: each method's mean PSNR once every image's global colour
offset from its clean photo (one number per channel) is removed, and what that offset costs. It
is not a score (it looks at the clean photo); it tells wrong overall colour from lost detail.

With ``--lpips_weights`` (an ``.npz`` of VGG16 and LPIPS weights the user makes once, see
:func:`oldphoto_jax.evaluation.lpips.load_lpips_vgg_npz`; nothing is downloaded) each method also
gets an LPIPS score (Zhang et al. 2018, VGG16 "lin" variant; lower is better); without it LPIPS is
not computed. With ``--fid_weights`` (an ``.npz`` of the FID Inception-v3, see
:func:`oldphoto_jax.evaluation.fid.load_fid_inception_npz`) each method also gets an FID against
the clean photos (one number per method over the whole set; lower is better). FID needs at least
2 photos, and with a handful it is dominated by estimation noise (thousands make it meaningful):
read it as a comparison of the methods on the same photos.

``--given_mask`` (scratch modes) gives the model the true damage mask instead of its own
detection (``infer.py --mask_folder``), as the classical baseline is given it: the difference to
a run without it is what the scratch detector costs. A diagnosis, not a score of the product.

``--seeds 0,1,2,3,4`` repeats the evaluation for each degradation seed and reports the mean
scores per seed and over the seeds (with five photos, one seed's draw of degradations moves the
comparison by dB).

Default photos: the clean photos held out from the bundled model's training
(``oldphoto_jax.bundled.HOLDOUT``); ``--photos all`` takes every photo of ``--clean_folder``.
The table is printed and written, with the images, under ``--output_dir``: ``results.md``,
``results.json``, ``sheet.png`` (a row per photo: clean | degraded | classical | ours),
``clean/``, ``degraded/``, ``mask/``, ``classical/`` and ``ours/`` (the ``infer.py`` layout,
``final_output/`` holding the results).
"""
from __future__ import annotations

import pathlib
import sys
import tempfile

from absl import app, flags, logging

from oldphoto_jax import bundled
from oldphoto_jax.evaluation.evaluation_run import MODES, evaluate, evaluate_seeds
from oldphoto_jax.inference_defaults import ATTENTION_CHUNK

_CLEAN = flags.DEFINE_string(
    "clean_folder", str(bundled.REPO.parent / "shared" / "photos" / "clean"),
    "Folder of clean photos.")
_PHOTOS = flags.DEFINE_list(
    "photos", list(bundled.HOLDOUT),
    "File names in --clean_folder to evaluate, or 'all'. Default: the photos held out from the "
    "bundled model's training.")
_CHECKPOINT_DIR = flags.DEFINE_string(
    "checkpoint_dir", str(bundled.DEFAULT_DIR), "Model directory (default: the bundled model).")
_OUTPUT = flags.DEFINE_string(
    "output_dir", None, "Where to write the images and the table (default: a temporary folder, "
    "removed at the end).")
_SEED = flags.DEFINE_integer("seed", 0, "Degradation seed.")
_SEEDS = flags.DEFINE_list(
    "seeds", [], "Several degradation seeds (e.g. 0,1,2,3,4): one evaluation per seed under "
    "<output_dir>/seed_<s>, then the mean scores per seed and over the seeds (seeds.md, "
    "seeds.json). Replaces --seed.")
_PRESET = flags.DEFINE_enum("preset", bundled.PRESET, ["official", "extended"],
                            "data_synth degradation preset.")
_MAX_SIDE = flags.DEFINE_integer(
    "max_side", 512, "Downscale clean photos so the longer side is at most this (0 = full size; "
    "scratch-mode restoration of large photos takes minutes each on a CPU).")
_ATTENTION_CHUNK = flags.DEFINE_integer(
    "attention_chunk", ATTENTION_CHUNK,
    "Query rows per block of the partial non-local attention (as infer.py).")
_LPIPS_WEIGHTS = flags.DEFINE_string(
    "lpips_weights", "", "LPIPS-VGG weights (.npz, see oldphoto_jax.evaluation.lpips."
    "load_lpips_vgg_npz); empty = LPIPS not computed.")
_FID_WEIGHTS = flags.DEFINE_string(
    "fid_weights", "", "FID Inception-v3 weights (.npz, see oldphoto_jax.evaluation.fid."
    "load_fid_inception_npz); empty = FID not computed.")
_MODE = flags.DEFINE_enum(
    "mode", "scratch", list(MODES),
    "scratch: the whole degradation recipe, the model as infer.py --with_scratch (it detects "
    "the damage itself); quality: the recipe without local damage (scratches, dust, folds, "
    "cracks, holes, tears), the model as plain infer.py (quality mapping), the classical "
    "baseline non-local means alone; scratch_hr: as scratch, the model as infer.py "
    "--with_scratch --HR (the HR mapping's patch attention).")
_GIVEN_MASK = flags.DEFINE_bool(
    "given_mask", False, "Scratch modes: give the model the true damage mask (as the classical "
    "baseline is given it) instead of its own detection (infer.py --mask_folder): a diagnosis "
    "of how much of the model's result its detector costs, not a score of the product.")
_VERBOSE = flags.DEFINE_bool("verbose", False, "Also print library logs.")


def main(argv):
    del argv
    if not _VERBOSE.value:
        logging.set_verbosity(logging.WARNING)
    from oldphoto_jax.model_files import CheckpointError
    from oldphoto_jax.photo_files import PhotoError
    from oldphoto_jax.pipeline.stage_runner import PipelineError

    if not (pathlib.Path(_CHECKPOINT_DIR.value) / "manifest.json").exists():
        print(f"error: no model at {_CHECKPOINT_DIR.value} (manifest.json missing)",
              file=sys.stderr)
        return 2
    if _LPIPS_WEIGHTS.value and not pathlib.Path(_LPIPS_WEIGHTS.value).is_file():
        print(f"error: no LPIPS weights at {_LPIPS_WEIGHTS.value}", file=sys.stderr)
        return 2
    if _FID_WEIGHTS.value and not pathlib.Path(_FID_WEIGHTS.value).is_file():
        print(f"error: no FID weights at {_FID_WEIGHTS.value}", file=sys.stderr)
        return 2
    names = None if _PHOTOS.value == ["all"] else list(_PHOTOS.value)
    settings = dict(preset=_PRESET.value, max_side=_MAX_SIDE.value or None,
                    attention_chunk=_ATTENTION_CHUNK.value,
                    lpips_weights=_LPIPS_WEIGHTS.value or None,
                    fid_weights=_FID_WEIGHTS.value or None, mode=_MODE.value,
                    given_mask=_GIVEN_MASK.value)
    if _GIVEN_MASK.value and _MODE.value == "quality":
        print("error: --given_mask needs a scratch mode (quality mode has no damage mask)",
              file=sys.stderr)
        return 2
    try:
        seeds = [int(s) for s in _SEEDS.value]
    except ValueError:
        print(f"error: --seeds takes integers, got {','.join(_SEEDS.value)}", file=sys.stderr)
        return 2

    def run(output):
        if seeds:
            evaluate_seeds(_CLEAN.value, names, _CHECKPOINT_DIR.value, output, seeds, **settings)
        else:
            evaluate(_CLEAN.value, names, _CHECKPOINT_DIR.value, output, seed=_SEED.value,
                     **settings)

    try:
        if _OUTPUT.value:
            run(_OUTPUT.value)
        else:
            with tempfile.TemporaryDirectory(prefix="oldphoto_eval_") as output:
                run(output)
    except (PhotoError, PipelineError, CheckpointError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    from oldphoto_jax import cpu_tuning

    cpu_tuning.apply()  # before the JAX backend starts
    app.run(main)
