"""What every training config shares: photo folders, the trainer's settings and cadence, the
input pipeline's settings, and the bundled model's recipe (the ``small`` size).

Not a config file itself: ``configs/<task>.py`` import it. Sizes (the part of a config
argument before ``_``): ``""`` = the release's (official widths, for a GPU or TPU), ``tiny``
(a CPU smoke run of a few minutes) and ``small`` (the widths and run of the bundled model in
``weights/default``, ``weights/README.md``).
"""
import pathlib

import ml_collections
from ml_collections.config_dict import placeholder

from oldphoto_jax import bundled

REPO = pathlib.Path(__file__).resolve().parents[1]
# ../shared/photos beside the repository: clean/, old/, old_w_scratch/ (see its README).
PHOTOS = REPO.parent / "shared" / "photos"
RUNS = REPO / "runs"
SIZES = ("", "tiny", "small")

# The bundled model's recipe (``small``): photos held out for the evaluation, the degradation
# preset. The KL weight and the detector's loss of the recipe are in configs/vae_a.py and
# configs/scratch.py.
SMALL_HOLDOUT = bundled.HOLDOUT
SMALL_PRESET = "extended"


def split_arg(arg: str | None, default: str, choices: tuple[str, ...], file: str):
    """``"<size>_<variant>"`` (or either alone) -> (size, variant); the variant defaults to
    ``default``."""
    arg = arg or ""
    size = next((s for s in ("tiny", "small") if arg == s or arg.startswith(s + "_")), "")
    variant = arg.removeprefix(size).removeprefix("_") or default
    if variant not in choices:
        sizes = "'tiny_' or 'small_'"
        raise ValueError(f"configs/{file} takes one of {choices}, optionally prefixed by {sizes} "
                         f"(or 'tiny' / 'small' alone), got {arg!r}")
    return size, variant


def trainer(size: str) -> dict:
    """The trainer's fields (``oldphoto_jax.training.loop``): seed, length, mesh, cadence of
    logs / checkpoints / samples / exports, random keys and execution settings."""
    cpu_run = size in ("tiny", "small")
    return dict(
        seed=0,
        num_steps=300 if size == "tiny" else 0,   # 0 = the release's length (optim epochs)
        mesh_shape=(-1,),                         # every device on the data axis
        mesh_axes=("data",),
        # "fsdp": arrays of the state with at least fsdp_min_size elements split over the data
        # axis (parameters that do not fit one device); "replicated": all on every device.
        param_sharding="replicated",
        fsdp_min_size=2**16,
        log_every={"": 100, "tiny": 25, "small": 50}[size],
        checkpoint_every={"": 2000, "tiny": 100, "small": 1000}[size],
        keep_checkpoints=1 if size == "small" else 3,  # small runs' checkpoints are committed
        async_checkpoints=True,
        sample_every={"": 1000, "tiny": 100, "small": 500}[size],  # 0 = never
        num_samples=4,
        export_every=0,                           # 0 = at the end only
        prng_impl="rbg" if cpu_run else "threefry2x32",
        debug_nan_step=0,
        time_limit_s=0.0,                         # 0 = no limit
        conv_weight_grad="xla",                   # or "im2col"
        precision="default",                      # matmul precision of the trained networks
    )


def input_pipeline(records: str, batch_size: int, crop_size: int, size: str
                   ) -> ml_collections.ConfigDict:
    """``config.input``: the fields of ``oldphoto_jax.data.InputConfig`` (its seed is
    ``config.seed``)."""
    cpu_run = size in ("tiny", "small")
    return ml_collections.ConfigDict(dict(
        records=records,
        batch_size=batch_size,                    # global, over every device
        crop_size=crop_size,
        preset=SMALL_PRESET if size == "small" else "official",
        real_old_p=0.5,
        grayscale_p=0.1,
        flip_p=0.5,
        empty_mask_p=placeholder(float),          # None = the task's rule
        degrade_full_image=not cpu_run,           # CPU runs degrade the crop only
        scale_range=placeholder(tuple),           # e.g. (0.5, 1.0): multi-scale crops
        domain_a_local_damage=False,
        paint_holes=False,                        # mapping_mask: mask painted white, as inference
        hole_dilation=0,                          # ... after 3x3 dilations (HR inference: 3)
        detection_channels=1,
        detection_zoom_range=placeholder(tuple),  # e.g. (0.25, 1.0): damage as detection sees it
        detection_zoom_coverage=0.25,             # ... labelled where it covers this share
        output_dtype="float32",
        num_workers=0 if cpu_run else 4,          # grain worker processes
        read_threads=0 if cpu_run else 2,
        prefetch_batches=2,
        cache_mb=512,
    ))


def clean_photos(size: str) -> dict:
    """``config.data`` fields of the clean photos: the folder (or ``tfds:<dir>:<split>``; several
    separated by commas are read as one) and the file names left out (``small``: the
    evaluation's held-out photos). ``small`` reads ``clean`` and ``clean_more``."""
    if size == "small":
        return dict(clean=f"{PHOTOS / 'clean'},{PHOTOS / 'clean_more'}",
                    clean_exclude=SMALL_HOLDOUT)
    return dict(clean=str(PHOTOS / "clean"), clean_exclude=())


def old_photos() -> tuple[str, ...]:
    """The two real old-photo sets (VAE_A)."""
    return (str(PHOTOS / "old"), str(PHOTOS / "old_w_scratch"))


def fit_schedule(config: ml_collections.ConfigDict, num_steps: int) -> None:
    """Run ``num_steps`` steps with the task's epochs (``optim.niter`` at the base rate, then
    ``optim.niter_decay`` of linear decay) squeezed into them (the ``small`` runs)."""
    config.num_steps = num_steps
    config.optim.steps_per_epoch = max(1, num_steps // (config.optim.niter
                                                        + config.optim.niter_decay))
