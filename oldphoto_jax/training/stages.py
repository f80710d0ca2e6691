"""``build_stage(config) -> Stage``: the training stages of oldphoto-jax (reference section 10).

Stages (``config.stage``): trained networks (names in the state) -> data stage -> export roles.

* ``vae_a``: vae, D, feat_D -> ``domain_a`` -> ``vae_a``;
* ``vae_b``: vae, D -> ``domain_b`` -> ``vae_b_quality`` and/or ``vae_b_scratch``;
* ``mapping``: mapping, D (+ frozen VAE_A encoder, VAE_B) -> ``mapping`` (quality) or
  ``mapping_mask`` (scratch, hr) -> ``mapping_quality`` | ``mapping_scratch`` | ``mapping_hr``;
* ``scratch``: unet -> ``detection`` -> ``scratch_detector``;
* ``face``: generator, D -> ``faces`` -> ``face_256`` | ``face_512``.

The modules ``stages_vae``, ``stages_mapping``, ``stages_scratch`` and ``stages_face`` describe
each stage's forward pass, objectives and deviations; ``stages_common`` the state layout and the
step (one forward at the current parameters, then every network's Adam step from the gradient
of its own objective, reference 10.1).

Using a stage (the trainer's side, see :mod:`oldphoto_jax.training.stage`):

* ``init_state(rng, batch)`` draws the parameters in one internally jitted computation (with an
  "rbg" key derived from ``rng``; fast to compile on CPU) and adds frozen arrays (the mapping
  stage's VAEs, VGG19) from the host. Call it directly rather than under ``jax.jit`` (that would
  embed the frozen arrays as constants); ``jax.eval_shape(stage.init_state, rng, batch)`` gives
  the abstract state for restoring a checkpoint. Only the shapes of ``batch`` are used.
* ``train_step``, ``samples`` are pure: jit them with the state replicated and the batch split
  over the "data" axis of a mesh with ``AxisType.Auto`` (GSPMD propagation, as the trainer's
  mesh; under ``Explicit`` axes the batch-axis cumsum of VAE_A's group rule is rejected).
  Batches may be float32 (images in [-1, 1]) or uint8 (the pipeline's ``output_dtype="uint8"``;
  converted inside the step).
* ``export(state)`` returns host (numpy) variables; the exported modules use
  ``precision="highest"`` whatever ``config.precision`` was used for training.

Config (an ``ml_collections.ConfigDict``; :func:`default_config` builds the official one and
``default_config(stage, variant, tiny=True)`` a tiny one for tests and smoke runs):

* ``stage``: "vae_a" | "vae_b" | "mapping" | "scratch" | "face".
* ``variant``: mapping only: "quality" | "scratch" | "hr".
* ``precision``: matmul/conv precision of the training networks ("default": the accelerator's
  fast float32 modes; "highest" for exact float32).
* ``input``: what the trainer passes to the data pipeline (``oldphoto_jax.data.InputConfig``
  fields): ``stage`` (the data stage above), ``batch_size`` (global), ``crop_size``; the trainer
  may add more InputConfig fields. Official: vae_a 100, vae_b 120, mapping quality 80,
  scratch/hr 36, all 256 px crops; faces ``crop_size`` = ``model.load_size``.
* ``model``: widths of the trained network.

  - vae_a / vae_b: ``ngf`` 64, ``max_channels`` 64, ``n_down_convs`` 2, ``n_res_blocks`` 4,
    ``kernel_size`` 4 (fields of :class:`oldphoto_jax.models.vae.VAE`).
  - mapping: ``nc`` 64 (must equal the VAEs' latent channels), ``mc`` 512, ``n_up`` 4,
    ``n_blocks`` 6 (quality/scratch), ``nl_res_blocks`` 3 (scratch), ``query_chunk`` 0
    (scratch and hr; > 0 = query rows per block of the non-local / patch attention, same
    result, memory linear in h*w),
    ``stage_blocks`` 2 and ``patch_sizes`` (8, 4, 2) (hr).
  - scratch: ``in_channels`` 1 (must match ``input.detection_channels``), ``depth`` 4, ``wf`` 6,
    ``conv_num`` 2.
  - face: ``ngf`` 64, ``load_size`` 256 (or 512), ``num_up_blocks`` 4, ``nhidden`` 128.

* ``disc``: ``num_D`` 2, ``n_layers`` 3, ``ndf`` 64 (image discriminator, reference 10.1);
  ``spectral_norm`` None = the stage's default (mapping scratch/hr and face: True; others:
  False); ``latent_ndf`` 64, ``latent_n_layers`` 3 (VAE_A's ``feat_D``); ``latent_chunks`` 1
  (VAE_A's "first L of each group" rule over the whole global batch; 4 = the release's per-GPU
  chunks of a batch of 100).
* ``loss``: ``lambda_feat`` 10 (feature matching; also the Global VGG weight), ``kl`` 1.0,
  ``latent_l1`` 60 (mapping), ``image_l1`` 0 (VAEs: weight of an image L1 term, not in the
  release; the ``small`` variant uses 20), ``vgg_weights`` "" (path of a torchvision VGG19 ``.npz``, see
  :func:`oldphoto_jax.training.losses.load_vgg19_npz`; empty = no VGG term: no ImageNet weights
  ship with this project), ``lambda_vgg`` 10 (face), ``detection`` "balanced_bce" | "bce" |
  "focal", ``positive_weight`` 1.0 ("bce"), ``focal_gamma`` 2.0, ``focal_alpha`` 0.25,
  ``detection_threshold`` 0.4 (scratch metrics).
* ``optim``: ``lr``, ``ttur``, ``b1``, ``b2``, ``eps``, ``niter``, ``niter_decay``,
  ``steps_per_epoch`` (see :mod:`oldphoto_jax.training.optim`). Official: VAEs lr 2e-4, no
  TTUR, 100 + 100 epochs; mapping quality TTUR (mapping 1e-4, D 4e-4, betas (0, 0.9)),
  scratch/hr no TTUR, 150 + 100 epochs; faces (SPADE) TTUR, 50 + 0 epochs; scratch detection
  (our choice) lr 2e-4, betas (0.9, 0.999), 100 + 100 epochs. ``steps_per_epoch`` must be set
  by the trainer from the dataset size (default 1000).
* ``vae_a_checkpoint``, ``vae_b_checkpoint`` (mapping): model directories in our checkpoint
  format holding role ``vae_a`` and ``vae_b_quality`` / ``vae_b_scratch``.
* ``export_roles`` (vae_b): subset of ("vae_b_quality", "vae_b_scratch"), default both;
  ``export_role`` (face): "face_256" | "face_512", default from ``model.load_size``.
"""
from __future__ import annotations

import ml_collections

from oldphoto_jax.training.stage import Stage

STAGE_NAMES = ("vae_a", "vae_b", "mapping", "scratch", "face")
DATA_STAGE = {"vae_a": "domain_a", "vae_b": "domain_b", "scratch": "detection", "face": "faces"}


def build_stage(config, pretrained: dict | None = None) -> Stage:
    """The :class:`Stage` of ``config.stage``.

    ``pretrained`` (mapping only) replaces loading the frozen VAEs from
    ``config.vae_a_checkpoint`` / ``config.vae_b_checkpoint``: ``{"vae_a": (module, variables),
    "vae_b": (module, variables)}``.
    """
    stage = config.stage
    if stage in ("vae_a", "vae_b"):
        from oldphoto_jax.training.stages_vae import build_vae_stage
        return build_vae_stage(config)
    if stage == "mapping":
        from oldphoto_jax.training.stages_mapping import build_mapping_stage
        return build_mapping_stage(config, pretrained)
    if stage == "scratch":
        from oldphoto_jax.training.stages_scratch import build_scratch_stage
        return build_scratch_stage(config)
    if stage == "face":
        from oldphoto_jax.training.stages_face import build_face_stage
        return build_face_stage(config)
    raise ValueError(f"unknown training stage {stage!r}; choose from {STAGE_NAMES}")


def data_stage(config) -> str:
    """The ``oldphoto_jax.data`` stage that feeds ``config.stage``."""
    if config.stage == "mapping":
        return "mapping" if config.get("variant", "quality") == "quality" else "mapping_mask"
    return DATA_STAGE[config.stage]


def _optim(lr=2e-4, ttur=False, b1=None, b2=None, niter=100, niter_decay=100):
    return ml_collections.ConfigDict(dict(lr=lr, ttur=ttur, b1=b1, b2=b2, eps=1e-8, niter=niter,
                                          niter_decay=niter_decay, steps_per_epoch=1000))


def default_config(stage: str, variant: str | None = None, tiny: bool = False,
                   small: bool = False) -> ml_collections.ConfigDict:
    """The official configuration of a stage (``tiny=True``: small widths, 32 px crops, batch 2;
    ``small=True``: the widths of the bundled CPU-trained model, 128 px crops, batch 8).

    ``variant`` selects the mapping variant ("quality" by default).
    """
    if tiny and small:
        raise ValueError("choose tiny or small, not both")
    if stage not in STAGE_NAMES:
        raise ValueError(f"unknown training stage {stage!r}; choose from {STAGE_NAMES}")
    c = ml_collections.ConfigDict()
    c.stage = stage
    c.variant = (variant or "quality") if stage == "mapping" else ""
    c.precision = "default"
    c.disc = ml_collections.ConfigDict(dict(
        num_D=2, n_layers=3, ndf=64, spectral_norm=None, latent_ndf=64, latent_n_layers=3,
        latent_chunks=1))
    c.loss = ml_collections.ConfigDict(dict(
        lambda_feat=10.0, kl=1.0, latent_l1=60.0, image_l1=0.0, vgg_weights="", lambda_vgg=10.0,
        detection="balanced_bce", positive_weight=1.0, focal_gamma=2.0, focal_alpha=0.25,
        detection_threshold=0.4))
    crop = 256
    if stage in ("vae_a", "vae_b"):
        c.model = ml_collections.ConfigDict(dict(ngf=64, max_channels=64, n_down_convs=2,
                                                 n_res_blocks=4, kernel_size=4))
        c.optim = _optim()
        batch = 100 if stage == "vae_a" else 120
        if stage == "vae_b":
            c.export_roles = ("vae_b_quality", "vae_b_scratch")
    elif stage == "mapping":
        c.model = ml_collections.ConfigDict(dict(nc=64, mc=512, n_up=4, n_blocks=6,
                                                 nl_res_blocks=3, query_chunk=0, stage_blocks=2,
                                                 patch_sizes=(8, 4, 2)))
        quality = c.variant == "quality"
        c.optim = _optim(ttur=quality, niter=150, niter_decay=100)
        batch = 80 if quality else 36
        c.vae_a_checkpoint = ""
        c.vae_b_checkpoint = ""
    elif stage == "scratch":
        c.model = ml_collections.ConfigDict(dict(in_channels=1, depth=4, wf=6, conv_num=2))
        c.optim = _optim(b1=0.9, b2=0.999)
        batch = 16
    else:
        c.model = ml_collections.ConfigDict(dict(ngf=64, load_size=256, num_up_blocks=4,
                                                 nhidden=128))
        c.optim = _optim(ttur=True, niter=50, niter_decay=0)
        c.export_role = None
        batch = 16
    if tiny:
        _make_tiny(c)
        crop, batch = TINY_CROP, 2
    if small:
        _make_small(c)
        crop, batch = SMALL_CROP, SMALL_BATCH
    # scale_range: None (the release) or (low, high), set on the command line as
    # --config.input.scale_range="(0.5, 1.0)" (oldphoto_jax.data.InputConfig).
    c.input = ml_collections.ConfigDict(dict(
        stage=data_stage(c), batch_size=batch, crop_size=crop,
        scale_range=ml_collections.config_dict.placeholder(tuple)))
    if stage == "face":
        c.input.crop_size = int(c.model.load_size)
    return c


TINY_CROP = 32


def _make_tiny(c: ml_collections.ConfigDict) -> None:
    """Tiny widths (a fraction of a second per step on a CPU) for ``TINY_CROP`` px crops."""
    c.disc.ndf = 8
    c.disc.latent_ndf = 8
    if c.stage in ("vae_a", "vae_b"):
        c.model.ngf = 8
        c.model.max_channels = 8
    elif c.stage == "mapping":
        c.model.update(dict(nc=8, mc=16, n_blocks=1, nl_res_blocks=1, stage_blocks=1))
    elif c.stage == "scratch":
        c.model.wf = 2
    else:
        c.model.update(dict(ngf=2, load_size=TINY_CROP, nhidden=4))


SMALL_CROP = 256
SMALL_BATCH = 16


def _make_small(c: ml_collections.ConfigDict) -> None:
    """The widths of the bundled model (``weights/default``): small enough to restore photos on a
    2-core CPU in seconds and to ship in git. VAE latents have 32 channels (official: 64)."""
    c.disc.ndf = 16
    c.disc.latent_ndf = 16
    if c.stage in ("vae_a", "vae_b"):
        c.model.update(dict(ngf=16, max_channels=32, n_res_blocks=2))
        # No VGG term without ImageNet weights: a direct reconstruction term instead, so a short
        # CPU run reconstructs well (GAN + feature matching alone learn slowly).
        c.loss.image_l1 = 20.0
    elif c.stage == "mapping":
        c.model.update(dict(nc=32, mc=128, n_blocks=2, nl_res_blocks=1, stage_blocks=1))
    elif c.stage == "scratch":
        c.model.wf = 3
    else:
        c.model.update(dict(ngf=16, nhidden=32))
