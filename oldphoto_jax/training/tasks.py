"""``build_task(config) -> Task``: the training tasks of oldphoto-jax (reference section 10).

Tasks (``config.task``): trained networks (names in the state) -> input records -> export roles.

* ``vae_a``: vae, D, feat_D -> ``domain_a`` -> ``vae_a``;
* ``vae_b``: vae, D -> ``domain_b`` -> ``vae_b_quality`` and/or ``vae_b_scratch``;
* ``mapping``: mapping, D (+ frozen VAE_A encoder, VAE_B) -> ``mapping`` (quality) or
  ``mapping_mask`` (scratch, hr) -> ``mapping_quality`` | ``mapping_scratch`` | ``mapping_hr``;
* ``scratch``: unet -> ``detection`` -> ``scratch_detector``;
* ``face``: generator, D -> ``faces`` -> ``face_256`` | ``face_512``.

The modules ``tasks_vae``, ``tasks_mapping``, ``tasks_scratch`` and ``tasks_face`` describe
each task's forward pass, objectives and deviations; ``tasks_common`` the state layout and the
step (one forward at the current parameters, then every network's Adam step from the gradient
of its own objective, reference 10.1).

Using a task (the trainer's side, see :mod:`oldphoto_jax.training.task`):

* ``init_state(rng, batch)`` draws the parameters in one internally jitted computation (with an
  "rbg" key derived from ``rng``; fast to compile on CPU) and adds frozen arrays (the mapping
  task's VAEs, VGG19) from the host. Call it directly rather than under ``jax.jit`` (that would
  embed the frozen arrays as constants); ``jax.eval_shape(task.init_state, rng, batch)`` gives
  the abstract state for restoring a checkpoint. Only the shapes of ``batch`` are used.
* ``train_step``, ``samples`` are pure: jit them with the state replicated and the batch split
  over the "data" axis of a mesh with ``AxisType.Auto`` (GSPMD propagation, as the trainer's
  mesh; under ``Explicit`` axes the batch-axis cumsum of VAE_A's group rule is rejected).
  Batches may be float32 (images in [-1, 1]) or uint8 (the pipeline's ``output_dtype="uint8"``;
  converted inside the step).
* ``export(state)`` returns host (numpy) variables; the exported modules use
  ``precision="highest"`` whatever ``config.precision`` was used for training.

Config: an ``ml_collections.ConfigDict`` from ``configs/<task>.py``, which hold every number of
a run (the task builders read typed values and add none of their own):

* ``task``: "vae_a" | "vae_b" | "mapping" | "scratch" | "face"; ``variant`` (mapping):
  "quality" | "scratch" | "hr" (data, export role).
* ``model``: ``name`` (a key of :data:`oldphoto_jax.models.registry.MODELS`) and the network's
  architecture fields; the task builds it with ``build_model(config.model, ...)``, so a new
  network is a new registry entry and a config, with no change here as long as it keeps the
  interface of its task (a VAE: ``encode``, ``decode``, ``latent_channels``, ``n_down_convs``).
* ``precision`` (all) and ``attention_chunk`` (mapping scratch / hr): execution settings of the
  trained networks, never saved with them.
* ``disc``: the image discriminator (``num_D``, ``n_layers``, ``ndf``, ``spectral_norm``) and
  for VAE_A the latent one (``latent_ndf``, ``latent_n_layers``, ``latent_chunks``).
* ``loss``: the weights of the task's terms (each task module lists the ones it reads).
* ``optim``: ``lr``, ``ttur``, ``b1``, ``b2``, ``eps``, ``niter``, ``niter_decay``,
  ``steps_per_epoch`` (:mod:`oldphoto_jax.training.optim`).
* ``input``: the data pipeline's fields (``oldphoto_jax.data.InputConfig``); ``data``: the photo
  sources (:mod:`oldphoto_jax.training.loop`).
* ``vae_a_checkpoint``, ``vae_b_checkpoint`` (mapping): model directories in our checkpoint
  format holding role ``vae_a`` and ``vae_b_quality`` / ``vae_b_scratch``.
* ``export_roles`` (vae_b): subset of ("vae_b_quality", "vae_b_scratch"); ``export_role``
  (face): "face_256" | "face_512".
"""
from __future__ import annotations

from oldphoto_jax.training.task import Task

TASK_NAMES = ("vae_a", "vae_b", "mapping", "scratch", "face")


def build_task(config, pretrained: dict | None = None) -> Task:
    """The :class:`Task` of ``config.task``.

    ``pretrained`` (mapping only) replaces loading the frozen VAEs from
    ``config.vae_a_checkpoint`` / ``config.vae_b_checkpoint``: ``{"vae_a": (module, variables),
    "vae_b": (module, variables)}``.
    """
    from oldphoto_jax.training.inputs import with_current_names

    config = with_current_names(config)
    task = config.task
    if task in ("vae_a", "vae_b"):
        from oldphoto_jax.training.tasks_vae import build_vae_task
        return build_vae_task(config)
    if task == "mapping":
        from oldphoto_jax.training.tasks_mapping import build_mapping_task
        return build_mapping_task(config, pretrained)
    if task == "scratch":
        from oldphoto_jax.training.tasks_scratch import build_scratch_task
        return build_scratch_task(config)
    if task == "face":
        from oldphoto_jax.training.tasks_face import build_face_task
        return build_face_task(config)
    raise ValueError(f"unknown training task {task!r}; choose from {TASK_NAMES}")
