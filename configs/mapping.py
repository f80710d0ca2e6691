"""Mapping: translation from VAE_A's latent space to VAE_B's (reference 10.4), three variants.

    .venv/bin/python train.py --config configs/mapping.py:quality --workdir runs/mapping_quality
    .venv/bin/python train.py --config configs/mapping.py:scratch --workdir runs/mapping_scratch
    .venv/bin/python train.py --config configs/mapping.py:hr --workdir runs/mapping_hr
    .venv/bin/python train.py --config configs/mapping.py:tiny_scratch --workdir runs/mapping_tiny
    .venv/bin/python train.py --config configs/mapping.py:small_scratch --print_config

Argument: ``[<size>_]<variant>``. Variants: ``quality`` (default; model ``mapping``, TTUR,
batch 80), ``scratch`` (model ``mapping_mask`` with the partial non-local block, spectral-norm
D, batch 36, synthetic scratches and holes) or ``hr`` (model ``mapping_patch``: multi-scale
patch attention). Sizes (``configs/common.py``): none = the release's widths; ``tiny``
(``tiny`` alone = ``tiny_quality``): 8-channel latents, 32 px crops, batch 2, 300 steps
(reconstruction metric ``loss/latent_l1``); ``small``: the bundled model's widths, 8000 steps.

The frozen VAEs come from the exports of the VAE runs of the same size: ``runs/vae_a/export``
and ``runs/vae_b/export`` relative to the repository (``runs/vae_{a,b}_tiny/export`` for tiny,
``weights/runs/vae_{a,b}_small/export`` for small); override with
``--config.vae_a_checkpoint=... --config.vae_b_checkpoint=...``. ``model.nc`` must equal their
latent channels.

Photos: ``../shared/photos/clean`` relative to the repository (degraded on the fly); override
with ``--config.data.clean=/data/VOC/JPEGImages``. The export holds ``mapping_quality``,
``mapping_scratch`` or ``mapping_hr``.
"""
import ml_collections

from configs import common
from oldphoto_jax import bundled

VARIANTS = ("quality", "scratch", "hr")
SMALL_STEPS = 8000  # the bundled run (weights/README.md)


def model(size: str, variant: str) -> dict:
    """The mapping network of ``variant`` (``oldphoto_jax.models.mapping``)."""
    nc, mc, n_blocks, nl_res_blocks, stage_blocks = {
        "": (64, 512, 6, 3, 2), "tiny": (8, 16, 1, 1, 1), "small": (32, 128, 2, 1, 1)}[size]
    # stats_residual: for the colour VAEs' latents (vae_colour, 6 statistics channels for RGB),
    # the mapping keeps the input's colour statistics plus a learned correction; 0 = the release.
    # stats_correction: that correction, "gate" (per channel, from the tail) or "pooled" (one per
    # photo, a linear map of pooled tail features; oldphoto_jax/models/mapping.py).
    if variant == "quality":
        return dict(name="mapping", nc=nc, mc=mc, n_up=4, n_blocks=n_blocks, stats_residual=0,
                    stats_correction="gate")
    if variant == "scratch":
        return dict(name="mapping_mask", nc=nc, mc=mc, n_up=4, n_blocks=n_blocks,
                    nl_res_blocks=nl_res_blocks, stats_residual=0, stats_correction="gate")
    return dict(name="mapping_patch", nc=nc, mc=mc, n_up=4, stage_blocks=stage_blocks,
                patch_sizes=(8, 4, 2), stats_residual=0, stats_correction="gate")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    size, variant = common.split_arg(arg, "quality", VARIANTS, "mapping.py")
    quality = variant == "quality"
    config = ml_collections.ConfigDict(common.trainer(size))
    config.task = "mapping"
    config.variant = variant
    config.model = model(size, variant)
    if not quality:
        # Query rows per block of the (patch) attention: same result, memory linear in h * w;
        # 0 = dense. An execution setting, not part of the saved network.
        config.attention_chunk = 0
    config.disc = dict(num_D=2, n_layers=3, ndf={"": 64, "tiny": 8, "small": 16}[size],
                       spectral_norm=not quality)  # conditional D on (degraded, clean) pairs
    config.loss = dict(
        lambda_feat=10.0,  # feature matching (and the VGG term's weight)
        latent_l1=60.0,    # L1 between the mapped latent and VAE_B's latent of the clean photo
        image_l1=0.0,      # L1 between the restoration and the clean photo (not in the release;
                           # a stand-in for the VGG term, as image_l1 is for the small VAEs)
        vgg_weights="")    # a torchvision VGG19 .npz; empty = no VGG term
    # TTUR (quality): generator lr/2, discriminator 2 lr, betas (0, 0.9).
    config.optim = dict(lr=2e-4, ttur=quality, b1=0.0 if quality else 0.5,
                        b2=0.9 if quality else 0.999, eps=1e-8, niter=150, niter_decay=100,
                        steps_per_epoch=0,  # 0 = floor(N / batch_size) of the clean photos
                        # held fixed: NETWORK/PATH prefixes (training/optim.py)
                        frozen="")
    batch, crop = {"": (80 if quality else 36, 256), "tiny": (2, 32), "small": (16, 256)}[size]
    config.input = common.input_pipeline("mapping" if quality else "mapping_mask", batch, crop,
                                         size)
    config.data = common.clean_photos(size)
    # Start from a trained mapping (a model directory, and its role; empty = the first mapping
    # it has): every array of the same place and shape is taken (e.g. the quality or HR mapping
    # from the scratch one: head, trunk, tail). Empty checkpoint = a fresh start. ``embed``:
    # also put each smaller array of the same place into the leading corner of a wider one,
    # new input channels reading zeros (a mapping between colour VAEs, nc 38, from one between
    # plain VAEs, nc 32: it starts computing the same content channels).
    config.init_from = dict(checkpoint="", role="", embed=False)
    runs = {"": common.RUNS, "tiny": common.RUNS, "small": bundled.RUNS_DIR}[size]
    suffix = f"_{size}" if size else ""
    config.vae_a_checkpoint = str(runs / f"vae_a{suffix}" / "export")
    config.vae_b_checkpoint = str(runs / f"vae_b{suffix}" / "export")
    if size == "small":
        common.fit_schedule(config, SMALL_STEPS)
    return config
