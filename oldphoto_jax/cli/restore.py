"""Restore a folder of old photos (the official run.py, in JAX): ``infer.py``,
``oldphoto-restore``.

    python infer.py --input_folder photos/ --output_folder restored/ [--with_scratch] [--HR]
        [--checkpoint_dir models/official] [--no_faces] [--max_side 2048] [--overwrite]
        [--mask_folder masks/]   # with --with_scratch: hand-drawn damage masks

Stages and the output layout follow the official code (stage_1_restore_output/...,
stage_2_detection_output/, stage_3_face_output/, final_output/). Every photo ends as a file in
final_output/ or as an error line naming it; the run ends with a summary and exits non-zero if any
photo failed. Inputs are never modified; outputs are written atomically; a re-run skips photos
already in final_output/ unless --overwrite.

Several processes (hosts, or processes on one machine): start the same command in each with
``--coordinator_address HOST:PORT --num_processes N --process_id I`` (or on a TPU pod slice,
SLURM, Open MPI, without them; ``oldphoto_jax.distributed``); each restores every N-th photo of
the sorted folder on its own devices and prints its own summary.
"""
import sys

from absl import app, flags, logging

from oldphoto_jax import bundled, distributed
from oldphoto_jax.inference_defaults import ATTENTION_CHUNK

DEFAULT_CHECKPOINT_DIR = bundled.DEFAULT_DIR

_INPUT = flags.DEFINE_string("input_folder", None, "Folder of photos to restore.", required=True)
_OUTPUT = flags.DEFINE_string("output_folder", None, "Folder for the results.", required=True)
_WITH_SCRATCH = flags.DEFINE_bool(
    "with_scratch", False, "Detect scratches and restore them (partial non-local mapping).")
_HR = flags.DEFINE_bool(
    "HR", False, "High-resolution mode: with --with_scratch the patch-attention mapping and a "
    "7x7 mask dilation; faces at 512x512.")
_CHECKPOINT_DIR = flags.DEFINE_string(
    "checkpoint_dir", str(DEFAULT_CHECKPOINT_DIR),
    "Model directory in the oldphoto-jax checkpoint format (the bundled model by default, or the "
    "output of `python -m oldphoto_jax.convert` for the official weights).")
_NO_FACES = flags.DEFINE_bool("no_faces", False, "Skip face detection and enhancement.")
_MAX_SIDE = flags.DEFINE_integer(
    "max_side", None, "Downscale photos whose longer side exceeds this many pixels (default: "
    "restore at full size).", lower_bound=32)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Redo photos that are already restored.")
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", 4, "Photos (and faces) of equal size run together in batches of this size, "
    "split over all devices.", lower_bound=1)
_ATTENTION_CHUNK = flags.DEFINE_integer(
    "attention_chunk", ATTENTION_CHUNK, "Query rows per block of the partial non-local attention "
    "(--with_scratch) and of the HR patch attention (--with_scratch --HR, rows of latent "
    "patches), at most: a block over 2**25 weights (128 MiB) gets fewer rows, down to 1024 "
    "(photos above ~512x512 px). Memory grows linearly with the photo's area, same result up "
    "to float rounding. "
    "0 = the official dense N x N form (needs ~5 GiB at 512x512, quadratic in the area).",
    lower_bound=0)
_PRECISION = flags.DEFINE_enum(
    "precision", "highest", ["highest", "high", "default"],
    "Matmul/convolution precision on GPU/TPU ('highest' = float32, as the official results; "
    "'default' is faster on accelerators). No effect on CPU.")

_MASK_FOLDER = flags.DEFINE_string(
    "mask_folder", None, "With --with_scratch: a folder of damage masks drawn by hand, each "
    "named like its photo (portrait.png for portrait.jpg), white where the photo is damaged, at "
    "any size with the photo's aspect ratio. A photo with a mask is restored with it instead of "
    "the detected one; photos without one are detected as usual.")

_VERBOSE = flags.DEFINE_bool("verbose", False, "Also print library logs (checkpoint loading...).")
distributed.define_flags()


def main(argv):
    del argv
    # A file name that the terminal's encoding cannot show is printed escaped, never fatal.
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(errors="backslashreplace")
    if not _VERBOSE.value:
        logging.set_verbosity(logging.WARNING)  # orbax logs every restore at INFO
    try:
        distributed.initialize_from_flags()  # before the JAX backend starts
    except distributed.DistributedError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    from oldphoto_jax.pipeline.command import restore_folder
    from oldphoto_jax.pipeline.stage_runner import Options

    options = Options(with_scratch=_WITH_SCRATCH.value, hr=_HR.value,
                      faces=not _NO_FACES.value, max_side=_MAX_SIDE.value,
                      overwrite=_OVERWRITE.value, batch_size=_BATCH_SIZE.value,
                      attention_chunk=_ATTENTION_CHUNK.value, precision=_PRECISION.value,
                      mask_folder=_MASK_FOLDER.value)
    return restore_folder(_INPUT.value, _OUTPUT.value, _CHECKPOINT_DIR.value, options,
                          out=sys.stdout, err=sys.stderr)



def run() -> None:
    """The console script's entry point (and ``infer.py``'s)."""
    from oldphoto_jax import compile_cache, cpu_tuning, params_cache

    cpu_tuning.apply()  # before the JAX backend starts
    compile_cache.enable()
    params_cache.enable()
    app.run(main)


if __name__ == "__main__":
    run()
