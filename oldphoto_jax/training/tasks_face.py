"""The face-enhancement task (not released; reference 10.6 with the NVlabs/SPADE defaults).

Networks:

* ``"generator"``: :class:`oldphoto_jax.models.spade.SPADEGenerator` with
  ``spectral_norm=True`` (``weight_orig`` params, ``spectral`` u/v, one power iteration per
  training forward) and batch statistics in its SPADE norms (synchronised over the global
  batch, running statistics updated PyTorch's way);
* ``"D"``: SPADE's multi-scale discriminator on the image only (no parsing maps): 2 scales,
  SPADE ``n_layers_D`` 4 (``n_layers=3`` here), spectral norm and instance norm on the inner
  convs (no bias there), plain first and last convs.

Input: ``faces`` batches (degraded, clean) of ``load_size`` x ``load_size`` faces.
Objectives: generator ``hinge_G + L_FM (lambda_feat / num_D per term, no 4/(n+1)) +
lambda_vgg L_VGG`` (VGG only when ``config.loss.vgg_weights`` is set); D ``D_real + D_fake``
(hinge, no 1/2), from one D pass over [fake, real] (one power iteration per step).

Deviation from the SPADE trainer, which takes the D step on a fake regenerated after the G step
(a second generator forward per step): here both updates use the single forward at the current
parameters (reference 10.1 "One training step"); the generator's spectral vectors and running
statistics therefore advance once per step instead of twice.

Export: ``face_256`` / ``face_512`` (``config.export_role``, default by ``load_size``) as the
inference :class:`SPADEGenerator` (``spectral_norm=False``) with the spectral norm folded into
plain kernels (PyTorch's eval-mode ``weight_orig / sigma`` with the stored u, v) and the
running statistics.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from oldphoto_jax.models.discriminators import fold_spectral_norm
from oldphoto_jax.models.registry import build_model
from oldphoto_jax.training import losses
from oldphoto_jax.training.optim import DISCRIMINATOR, GENERATOR, optimizer_for, schedule_for
from oldphoto_jax.training.task import Task
from oldphoto_jax.training.tasks_common import (InitSpec, Trainable, build_state, discriminate,
                                                example_shapes, frozen_vgg, image_discriminator,
                                                init_networks, make_train_step, prepare_batch,
                                                variables_of, vgg_term, with_frozen_parameters)


def generator_module(config, spectral_norm: bool = True, precision=None):
    """The generator of ``config.model`` (model ``spade``: :class:`SPADEGenerator`), in its
    training form (``spectral_norm``) or its inference form."""
    return build_model(config.model, spectral_norm=spectral_norm,
                       precision=config.precision if precision is None else precision)


def export_role(config) -> str:
    role = config.export_role
    if role not in ("face_256", "face_512"):
        raise ValueError(f"face export role must be face_256 or face_512, got {role!r}")
    return role


def fold_generator(variables: dict, precision="highest") -> dict:
    """Training variables of the spectral-norm generator -> inference variables (folded
    kernels, running statistics, no ``spectral`` collection)."""
    folded = fold_spectral_norm(variables["params"], variables.get("spectral", {}), precision)
    out = {"params": folded}
    if "batch_stats" in variables:
        out["batch_stats"] = variables["batch_stats"]
    return out


def build_face_task(config) -> Task:
    generator = generator_module(config)
    disc = image_discriminator(config, 3, spectral_norm=config.disc.spectral_norm,
                               spade_style=True)
    trainables = {
        "generator": Trainable(optimizer_for(config.optim, GENERATOR),
                               schedule_for(config.optim, GENERATOR)),
        "D": Trainable(optimizer_for(config.optim, DISCRIMINATOR),
                       schedule_for(config.optim, DISCRIMINATOR)),
    }
    trainables = with_frozen_parameters(trainables, config.optim)
    vgg = frozen_vgg(config)
    lambda_feat, lambda_vgg = config.loss.lambda_feat, config.loss.lambda_vgg

    def init_state(rng, batch):
        batch = prepare_batch(batch)
        (face,) = example_shapes(batch, "degraded")
        size = config.model.load_size
        if face.shape[1:3] != (size, size):
            raise ValueError(f"face batches must be {size}x{size} (config.model.load_size), "
                             f"got {face.shape[1:3]}")
        specs = {"generator": InitSpec(generator, (face,)), "D": InitSpec(disc, (face,))}
        return build_state(trainables, init_networks(specs, rng), {"vgg": vgg} if vgg else None)

    def forward(params, collections, frozen, batch, rng):
        del rng
        x, y = batch["degraded"], batch["clean"]
        g_vars = {"params": params["generator"], **collections["generator"]}
        fake, g_cols = generator.apply(g_vars, x, train=True,
                                       mutable=["batch_stats", "spectral"])
        fake_d, real_out, fake_g, d_cols = discriminate(disc, params["D"],
                                                        collections.get("D", {}), fake, y,
                                                        official_sn_order=False)
        g_gan = losses.hinge_g_loss(fake_g)
        g_fm = losses.feature_matching_loss(fake_g, real_out, lambda_feat, "spade")
        d_real, d_fake = losses.hinge_d_losses(real_out, fake_d)
        vgg_metrics, g_vgg = vgg_term(frozen, fake, y, lambda_vgg, config.precision)
        metrics = {"gan/g": g_gan, "gan/feat_match": g_fm, "gan/d_real": d_real,
                   "gan/d_fake": d_fake, "metric/l1": jnp.mean(jnp.abs(fake - y)),
                   **vgg_metrics}
        objectives = {"generator": g_gan + g_fm + g_vgg, "D": d_real + d_fake}
        new_cols = {"generator": dict(g_cols)}
        if d_cols:
            new_cols["D"] = d_cols
        return objectives, (metrics, new_cols)

    def samples(state, batch):
        batch = prepare_batch(batch)
        restored = generator.apply(variables_of(state, "generator"), batch["degraded"],
                                   train=False)
        return {"degraded": batch["degraded"], "restored": restored, "clean": batch["clean"]}

    def export(state):
        variables = fold_generator(jax.device_get(variables_of(state, "generator")))
        module = generator_module(config, spectral_norm=False, precision="highest")
        return {export_role(config): (module, jax.device_get(variables))}

    return Task(name="face", init_state=init_state,
                train_step=make_train_step(trainables, forward), samples=samples,
                export=export, reconstruction_metric="metric/l1", records="faces")
