"""The scratch-detection task (no released recipe; reference 10.6, network section 2.2).

Network ``"unet"``: :class:`oldphoto_jax.models.unet.ScratchUNet` (official: 1-channel luma
input, depth 4, wf 6), trained with batch statistics (synchronised over the global batch, as
the official sync-BN) and PyTorch's running-statistics update; the running statistics are the
``batch_stats`` collection of the state and go into the exported checkpoint.

``config.init_from`` (``checkpoint``: a model directory, ``role``: default ``scratch_detector``)
starts from a trained detector: every parameter and running statistic of the same place and
shape.

Loss (``config.loss.detection``): ``"balanced_bce"`` (default) — each class present in the
batch carries half of the BCE, because scratch pixels are only a few percent of a photo and plain
BCE would learn "no scratch"; ``"bce"`` with ``config.loss.positive_weight``; ``"focal"``
(``focal_gamma``, ``focal_alpha``). Logged: ``loss/bce`` (the chosen loss; the reconstruction
metric) and the pixel precision / recall / IoU at the inference threshold
(``config.loss.detection_threshold``, 0.4 as reference 2.3).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from oldphoto_jax.models.registry import build_model
from oldphoto_jax.training import losses
from oldphoto_jax.training.optim import GENERATOR, optimizer_for, schedule_for
from oldphoto_jax.training.task import Task
from oldphoto_jax.training.tasks_common import (InitSpec, Trainable, as_rgb, build_state,
                                                example_shapes, init_from_variables,
                                                init_networks, make_train_step, mask_image,
                                                prepare_batch, variables_of, warm_start,
                                                warm_start_network, with_frozen_parameters)


def unet_module(config, precision=None):
    """The detector of ``config.model`` (model ``unet``: :class:`ScratchUNet`)."""
    return build_model(config.model,
                       precision=config.precision if precision is None else precision)


def build_scratch_task(config) -> Task:
    unet = unet_module(config)
    trainables = {"unet": Trainable(optimizer_for(config.optim, GENERATOR),
                                    schedule_for(config.optim, GENERATOR))}
    trainables = with_frozen_parameters(trainables, config.optim)
    loss_cfg = config.loss
    kind = loss_cfg.detection
    if kind not in losses.DETECTION_LOSSES:
        raise ValueError(f"config.loss.detection must be one of {losses.DETECTION_LOSSES}")
    threshold = loss_cfg.detection_threshold
    # config.init_from: start from a trained detector, its parameters and running statistics.
    start_from = init_from_variables(config, ("scratch_detector",))
    reported = []

    def init_state(rng, batch):
        batch = prepare_batch(batch)
        specs = {"unet": InitSpec(unet, tuple(example_shapes(batch, "image")))}
        variables = init_networks(specs, rng)
        if start_from is not None:
            unet_variables = dict(variables["unet"])
            unet_variables["params"] = warm_start_network(
                unet_variables["params"], start_from["params"], config.task, config, reported)
            if "batch_stats" in unet_variables and "batch_stats" in start_from:
                unet_variables["batch_stats"] = warm_start(unet_variables["batch_stats"],
                                                           start_from["batch_stats"])[0]
            variables["unet"] = unet_variables
        return build_state(trainables, variables)

    def forward(params, collections, frozen, batch, rng):
        del frozen, rng
        variables = {"params": params["unet"], **collections["unet"]}
        logits, updated = unet.apply(variables, batch["image"], train=True,
                                     mutable=["batch_stats"])
        mask = batch["mask"]
        loss = losses.detection_loss(logits, mask, kind, loss_cfg.positive_weight,
                                     loss_cfg.focal_gamma, loss_cfg.focal_alpha)
        metrics = {"loss/bce": loss, "metric/scratch_fraction": jnp.mean(mask)}
        metrics.update({f"metric/{k}": v
                        for k, v in losses.detection_metrics(logits, mask, threshold).items()})
        return {"unet": loss}, (metrics, {"unet": dict(updated)})

    def samples(state, batch):
        batch = prepare_batch(batch)
        logits = unet.apply(variables_of(state, "unet"), batch["image"], train=False)
        prob = jax.nn.sigmoid(logits)
        return {"image": as_rgb(batch["image"]), "mask": mask_image(batch["mask"]),
                "probability": as_rgb(prob * 2.0 - 1.0),
                "prediction": mask_image((prob >= threshold).astype(jnp.float32))}

    def export(state):
        variables = jax.device_get(variables_of(state, "unet"))
        return {"scratch_detector": (unet_module(config, precision="highest"), variables)}

    return Task(name="scratch", init_state=init_state,
                train_step=make_train_step(trainables, forward), samples=samples,
                export=export, reconstruction_metric="loss/bce", records="detection")
