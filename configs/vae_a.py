"""VAE_A: the VAE of old photos, real and synthetic, with its latent discriminator (ref. 10.2).

    .venv/bin/python train.py --config configs/vae_a.py --workdir runs/vae_a
    .venv/bin/python train.py --config configs/vae_a.py:tiny --workdir runs/vae_a_tiny
    .venv/bin/python train.py --config configs/vae_a.py:small --workdir weights/runs/vae_a_small
    .venv/bin/python train.py --config configs/vae_a.py:small_colour --workdir runs/vae_a_colour
    .venv/bin/python train.py --config configs/vae_a.py:tiny --print_config

Argument: the size (``configs/common.py``): none = the official run (VAE widths ngf 64, 2-scale
PatchGAN, latent D, batch 100 of 256 px crops, Adam 2e-4 with 100 + 100 epochs of floor(N/100)
steps); ``tiny`` (8-channel networks, 32 px crops, batch 2, 300 steps: a CPU smoke run whose
reconstruction metric is ``metric/l1``); ``small`` (the bundled model: 32 latent channels,
10000 steps, image L1 instead of the VGG term, KL 0.1). A suffix ``colour`` (``colour``,
``tiny_colour``, ``small_colour``) trains the research variant ``vae_colour``
(``oldphoto_jax/models/vae_colour.py``: each photo's per-channel mean and std carried in 6 extra
latent channels) at the same size.

Photos (relative to the repository): ``../shared/photos/clean`` (synthetic old photos are made
from them) and ``../shared/photos/old`` + ``../shared/photos/old_w_scratch`` (the two real
old-photo sets, each drawn with probability 1/4). Override with e.g.
``--config.data.clean=/data/VOC/JPEGImages --config.data.old="('/data/L_old', '/data/RGB_old')"``.
The export (``<workdir>/export``) holds role ``vae_a``.
"""
import ml_collections

from configs import common

VARIANTS = ("vae", "colour")
SMALL_STEPS = 10000  # the bundled run (weights/README.md)


def model(size: str, variant: str = "vae") -> dict:
    """The VAE (``oldphoto_jax.models.vae.VAE``; latent channels min(ngf * 4, max_channels)),
    or with ``variant`` "colour" the ``vae_colour`` of the same widths (6 more channels)."""
    widths = {"": dict(ngf=64, max_channels=64, n_res_blocks=4),
              "tiny": dict(ngf=8, max_channels=8, n_res_blocks=4),
              "small": dict(ngf=16, max_channels=32, n_res_blocks=2)}[size]
    if variant == "colour":
        return dict(name="vae_colour", n_down_convs=2, kernel_size=4, **widths,
                    min_std=0.05, norm_range=4.0, stats_scale=4.0, restandardise=False)
    return dict(name="vae", n_down_convs=2, kernel_size=4, **widths)


def parse(arg: str | None, file: str) -> tuple[str, str]:
    """``[<size>_][colour]`` -> (size, variant)."""
    return common.split_arg(arg, "vae", VARIANTS, file)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    size, variant = parse(arg, "vae_a.py")
    ndf = {"": 64, "tiny": 8, "small": 16}[size]
    config = ml_collections.ConfigDict(common.trainer(size))
    config.task = "vae_a"
    config.model = model(size, variant)
    config.disc = dict(
        num_D=2, n_layers=3, ndf=ndf, spectral_norm=False,  # image PatchGAN
        latent_ndf=ndf, latent_n_layers=3,                  # latent discriminator (feat_D)
        latent_chunks=1)  # scope of the "first L of each group" rule (4: the release's GPUs)
    config.loss = dict(
        lambda_feat=10.0,  # feature matching (and the VGG term's weight)
        kl=0.1 if size == "small" else 1.0,
        # weight of an image L1 term (not in the release; the small runs use it in place of
        # the VGG term, whose ImageNet weights cannot ship)
        image_l1=20.0 if size == "small" else 0.0,
        vgg_weights="",    # a torchvision VGG19 .npz; empty = no VGG term
        # the encoder's term against the latent discriminator (VAE_A; 0 = no latent
        # discriminator: the ablation of the paper's latent-space alignment)
        latent_gan=1.0)
    config.optim = dict(lr=2e-4, ttur=False, b1=0.5, b2=0.999, eps=1e-8,
                        niter=100, niter_decay=100,
                        steps_per_epoch=0,  # 0 = floor(N / batch_size) of the clean photos
                        # held fixed: NETWORK/PATH prefixes (training/optim.py)
                        frozen="")
    batch, crop = {"": (100, 256), "tiny": (2, 32), "small": (16, 256)}[size]
    config.input = common.input_pipeline("domain_a", batch, crop, size)
    config.data = dict(**common.clean_photos(size), old=common.old_photos())
    # Start from a trained VAE (a model directory, and its role; empty = vae_a, or for VAE_B
    # the first VAE_B role it has): every array of the same place and shape is taken (e.g. the
    # ``colour`` variant from the plain VAE: the same parameters). Empty = a fresh start.
    # ``embed``: also each smaller array into the leading corner of a wider one (see mapping).
    config.init_from = dict(checkpoint="", role="", embed=False)
    if size == "small":
        common.fit_schedule(config, SMALL_STEPS)
    return config
