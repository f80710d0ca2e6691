"""The VAE tasks: VAE_A (old photos, latent discriminator) and VAE_B (clean photos).

Reference 10.2 (VAE_A) and 10.3 (VAE_B). Networks: the VAE of section 4 (``"vae"``, encoder and
decoder trained together), the unconditional image discriminator (``"D"``, 3-channel input, no
spectral norm) and for VAE_A the latent discriminator (``"feat_D"``, one scale, latent-channel
input, instance norm, no spectral norm).

Forward (per sample): ``h = Enc(x)``, ``x_hat = Dec(h + n)`` with n standard normal noise of h's
shape, target x. Objectives:

* vae: ``L_GAN + L_FM + L_VGG + L_KL`` (+ ``loss.latent_gan * L_G_featD`` for VAE_A: 1 in the
  release; 0 trains VAE_A without the latent discriminator, the ablation of the latent
  alignment) (+ ``image_l1 * L1``, our
  option, 0 by default as the release: the bundled CPU-trained model uses it in place of the VGG
  term, whose ImageNet weights cannot ship);
* D: ``1/2 [LS(D(x), 1) + LS(D(x_hat), 0)]``;
* feat_D (VAE_A): ``1/2 [LS(feat_D(h_syn), 1) + LS(feat_D(h_real), 0)]`` over the kept pairs
  of the "first L of each group" rule (:func:`oldphoto_jax.training.losses.latent_group_weights`).
  ``config.disc.latent_chunks`` (default 1) chooses the rule's scope: 1 = the whole global
  batch (our default: one device or many, the batch is one batch), 4 = the release's four GPU
  chunks of 25. A chunk (or batch) without both groups contributes no latent terms.

``metric/l1`` (the reconstruction metric) is ``mean|x_hat - x|`` of the training forward (with
the latent noise); it is monitored, and optimised only with ``config.loss.image_l1`` > 0 (the
release has no image L1 term).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from oldphoto_jax.models.discriminators import latent_discriminator
from oldphoto_jax.models.registry import build_model
from oldphoto_jax.roles import VAE_B_ROLES
from oldphoto_jax.training import losses
from oldphoto_jax.training.optim import DISCRIMINATOR, GENERATOR, optimizer_for, schedule_for
from oldphoto_jax.training.task import Task
from oldphoto_jax.training.tasks_common import (InitSpec, Trainable, apply_discriminator,
                                                build_state, discriminate, example_shapes,
                                                frozen_vgg, image_discriminator, init_from_params,
                                                init_networks, lsgan_terms, make_train_step,
                                                prepare_batch, vgg_term, warm_start_network,
                                                with_frozen_parameters)


def vae_module(config, precision=None):
    """The VAE of ``config.model`` (reference 4, or a registered variant with its interface:
    ``encode``, ``decode``, ``latent_channels``, ``n_down_convs``)."""
    return build_model(config.model,
                       precision=config.precision if precision is None else precision)


def export_roles(config) -> tuple[str, ...]:
    """Checkpoint roles of the trained VAE: ``vae_a``, or ``config.export_roles`` for VAE_B."""
    if config.task == "vae_a":
        return ("vae_a",)
    roles = tuple(config.export_roles)
    bad = [r for r in roles if r not in VAE_B_ROLES]
    if bad or not roles:
        raise ValueError(f"VAE_B export roles must be a non-empty subset of {VAE_B_ROLES}, "
                         f"got {roles}")
    return roles


def build_vae_task(config) -> Task:
    """``config.task`` = "vae_a" (input records ``domain_a``) or "vae_b" (``domain_b``)."""
    domain_a = config.task == "vae_a"
    # The latent discriminator (VAE_A only; ``loss.latent_gan`` 0 leaves it out: the ablation of
    # the paper's latent-space alignment).
    latent_gan = domain_a and config.loss.latent_gan > 0
    vae = vae_module(config)
    disc = image_discriminator(config, 3, spectral_norm=config.disc.spectral_norm)
    if latent_gan:
        feat_d = latent_discriminator(vae.latent_channels, config.disc.latent_ndf,
                                      config.disc.latent_n_layers, config.precision)
    trainables = {
        "vae": Trainable(optimizer_for(config.optim, GENERATOR),
                         schedule_for(config.optim, GENERATOR)),
        "D": Trainable(optimizer_for(config.optim, DISCRIMINATOR),
                       schedule_for(config.optim, DISCRIMINATOR)),
    }
    if latent_gan:
        trainables["feat_D"] = Trainable(optimizer_for(config.optim, DISCRIMINATOR),
                                         schedule_for(config.optim, DISCRIMINATOR))
    trainables = with_frozen_parameters(trainables, config.optim)
    vgg = frozen_vgg(config)
    loss_cfg = config.loss
    lambda_feat, kl_weight, image_l1 = loss_cfg.lambda_feat, loss_cfg.kl, loss_cfg.image_l1
    chunks = config.disc.latent_chunks if latent_gan else 1
    latent_weight = config.loss.latent_gan if latent_gan else 0.0
    # config.init_from: start from a trained VAE (every array of the same place and shape, e.g.
    # the colour-carrying variant from the plain one: they have the same parameters).
    own_roles = ("vae_a",) if domain_a else VAE_B_ROLES
    start_from = init_from_params(config, own_roles)
    reported = []

    def init_state(rng, batch):
        batch = prepare_batch(batch)
        (image,) = example_shapes(batch, "image")
        ratio = 2 ** vae.n_down_convs
        latent = jax.ShapeDtypeStruct((1, image.shape[1] // ratio, image.shape[2] // ratio,
                                       vae.latent_channels), jnp.float32)
        specs = {"vae": InitSpec(vae, (image,)), "D": InitSpec(disc, (image,))}
        if latent_gan:
            specs["feat_D"] = InitSpec(feat_d, (latent,))
        variables = init_networks(specs, rng)
        if start_from is not None:
            params = warm_start_network(variables["vae"]["params"], start_from, config.task,
                                        config, reported)
            variables["vae"] = {**variables["vae"], "params": params}
        return build_state(trainables, variables, {"vgg": vgg} if vgg else None)

    def forward(params, collections, frozen, batch, rng):
        x = batch["image"]
        h = vae.apply({"params": params["vae"]}, x, method="encode")
        noise = jax.random.normal(rng, h.shape, h.dtype)
        x_hat = vae.apply({"params": params["vae"]}, h + noise, method="decode")
        fake_d, real, fake_g, d_cols = discriminate(disc, params["D"],
                                                    collections.get("D", {}), x_hat, x)
        metrics, g_adv, d_objective = lsgan_terms(fake_d, real, fake_g, lambda_feat)
        vgg_metrics, g_vgg = vgg_term(frozen, x_hat, x, lambda_feat, config.precision)
        kl = losses.kl_loss(h, kl_weight)
        l1 = jnp.mean(jnp.abs(x_hat - x))
        g_objective = g_adv + g_vgg + kl
        if image_l1 > 0:
            g_objective = g_objective + image_l1 * l1
        metrics.update(vgg_metrics)
        metrics.update({"loss/kl": kl, "metric/l1": l1})
        objectives = {"vae": g_objective, "D": d_objective}
        new_cols = {"D": d_cols} if d_cols else {}
        if latent_gan:
            # One feat_D pass over every latent: its feat_D-side gradient gives the feat_D
            # objective on constant latents, its encoder-side gradient the encoder term.
            f_out, f_cols = apply_discriminator(feat_d, params["feat_D"],
                                                collections.get("feat_D", {}), h)
            latent = losses.latent_adversarial_losses(f_out, batch["real_old"], chunks)
            objectives["vae"] = g_objective + latent_weight * latent["g_latent"]
            objectives["feat_D"] = latent["feat_d"]
            metrics.update({"gan/latent_g": latent["g_latent"],
                            "gan/latent_d": latent["feat_d"],
                            "gan/latent_pairs": latent["pairs"]})
            if f_cols:
                new_cols["feat_D"] = f_cols
        return objectives, (metrics, new_cols)

    def samples(state, batch):
        batch = prepare_batch(batch)
        x = batch["image"]
        recon = vae.apply({"params": state["params"]["vae"]}, x)
        return {"input": x, "reconstruction": recon}

    def export(state):
        module = vae_module(config, precision="highest")
        variables = {"params": jax.device_get(state["params"]["vae"])}
        return {role: (module, variables) for role in export_roles(config)}

    return Task(name=config.task, init_state=init_state,
                train_step=make_train_step(trainables, forward), samples=samples,
                export=export, reconstruction_metric="metric/l1",
                records="domain_a" if domain_a else "domain_b")
