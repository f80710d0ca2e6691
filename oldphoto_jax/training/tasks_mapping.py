"""The mapping task: latent translation VAE_A -> VAE_B, variants quality / scratch / hr.

Reference 10.4 (and 10.5 #1-#4 for the intended behaviour). Networks:

* ``"mapping"``: the network of ``config.model`` (``build_model``): model ``mapping``
  (``MappingModel``, quality), ``mapping_mask`` (``MappingModelWithMask``, scratch) or
  ``mapping_patch`` (``MappingModelWithMask2``, hr, trained with its batched ``train_forward``:
  every patch is rebuilt from its best key, keys that are mostly hole excluded); section 5.
  Variants other than quality pass the damage mask as a second input;
* ``"D"``: the conditional image discriminator (6-channel input: degraded image and candidate
  clean image), spectral norm for scratch and hr (the release's pass order, one power
  iteration per pass), none for quality;
* frozen: VAE_A's encoder and VAE_B (encoder and decoder), loaded from model directories
  (``config.vae_a_checkpoint`` role ``vae_a``; ``config.vae_b_checkpoint`` role
  ``vae_b_quality`` for quality, ``vae_b_scratch`` for scratch/hr, else whichever VAE_B the
  directory has) or passed to :func:`build_mapping_task` directly (tests).

Forward: ``z_A = Enc_A(x)`` and ``z_B = Enc_B(y)`` (constants, no noise), ``z_hat = M(z_A
[, mask])``, ``y_hat = Dec_B(z_hat)`` (no noise; gradients reach M through the frozen Dec_B).
Objectives: mapping ``L_GAN + L_FM + L_VGG + L_lat`` with ``L_lat = 60 mean|z_hat - z_B|``
(``config.loss.latent_l1``), plus ``config.loss.image_l1 * mean|y_hat - y|`` where that weight
is above 0 (not in the release: a stand-in for the VGG term where its weights are absent), D
``1/2 [LS(D(x, y), 1) + LS(D(x, y_hat), 0)]``. Nothing is masked.
``loss/latent_l1`` is the reconstruction metric; ``metric/l1`` is ``mean|y_hat - y|``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from oldphoto_jax import model_files
from oldphoto_jax.models.registry import build_model
from oldphoto_jax.roles import MAPPING_ROLES, MAPPING_VAE_B, VAE_B_ROLES
from oldphoto_jax.training import losses
from oldphoto_jax.training.optim import DISCRIMINATOR, GENERATOR, optimizer_for, schedule_for
from oldphoto_jax.training.task import Task
from oldphoto_jax.training.tasks_common import (InitSpec, Trainable, build_state, discriminate,
                                                example_shapes, frozen_vgg, image_discriminator,
                                                init_from_params, init_networks, lsgan_terms,
                                                make_train_step, mask_image, prepare_batch,
                                                vgg_term, warm_start_network,
                                                with_frozen_parameters)

VARIANTS = tuple(MAPPING_ROLES)  # quality, scratch, hr


def variant_of(config) -> str:
    variant = config.variant
    if variant not in VARIANTS:
        raise ValueError(f"mapping variant must be one of {VARIANTS}, got {variant!r}")
    return variant


def mapping_module(config, precision=None):
    """The mapping network of ``config.model``, computed at ``precision`` (default
    ``config.precision``) with the attention in blocks of ``config.attention_chunk`` query rows
    where it has attention."""
    options = {"precision": config.precision if precision is None else precision}
    if variant_of(config) != "quality":
        options["query_chunk"] = config.attention_chunk
    return build_model(config.model, **options)


def _load_role(directory, roles: tuple[str, ...]):
    model = model_files.load_model(directory)
    for role in roles:
        if model.has(role):
            return model.network(role)
    raise model_files.CheckpointError(f"model {directory} has none of the roles {roles}; "
                                      f"it has {model.roles}")


def load_pretrained_vaes(config) -> dict:
    """``{"vae_a": (module, variables), "vae_b": (module, variables)}`` from the configured
    model directories."""
    variant = variant_of(config)
    if not config.vae_a_checkpoint or not config.vae_b_checkpoint:
        raise ValueError("the mapping task needs config.vae_a_checkpoint and "
                         "config.vae_b_checkpoint (model directories with trained VAEs)")
    wanted = MAPPING_VAE_B[variant]
    other = next(role for role in VAE_B_ROLES if role != wanted)
    return {"vae_a": _load_role(config.vae_a_checkpoint, ("vae_a",)),
            "vae_b": _load_role(config.vae_b_checkpoint, (wanted, other))}


def warm_start_params(config) -> dict | None:
    """The trained mapping parameters ``config.init_from`` names (``checkpoint``: a model
    directory; ``role``: one of its mapping roles, empty = the first it has of quality,
    scratch, hr), or None when ``checkpoint`` is empty. The new run starts from every array of
    it that its own network has at the same place and shape (:func:`tasks_common.warm_start`)."""
    return init_from_params(config, tuple(MAPPING_ROLES.values()))


def _frozen_vae(name: str, module, variables, parts: tuple[str, ...], nc: int, precision):
    if not all(hasattr(module, a) for a in ("encode", "decode", "latent_channels")):
        raise ValueError(f"{name} must be a VAE network (encode, decode, latent_channels), "
                         f"got {type(module).__name__}")
    latent = module.latent_channels
    if latent != nc:
        raise ValueError(f"{name} has {latent} latent channels but the mapping network "
                         f"expects nc = {nc}")
    params = variables["params"]
    missing = [p for p in parts if p not in params]
    if missing:
        raise ValueError(f"{name} has no {', '.join(missing)} params")
    return module.clone(precision=precision), {"params": {p: params[p] for p in parts}}


def build_mapping_task(config, pretrained: dict | None = None) -> Task:
    """The mapping task; ``pretrained`` overrides the checkpoints (``{"vae_a": (module,
    variables), "vae_b": (module, variables)}``)."""
    variant = variant_of(config)
    pretrained = pretrained if pretrained is not None else load_pretrained_vaes(config)
    nc = config.model.nc
    vae_a, vae_a_vars = _frozen_vae("VAE_A", *pretrained["vae_a"], ("encoder",), nc,
                                    config.precision)
    vae_b, vae_b_vars = _frozen_vae("VAE_B", *pretrained["vae_b"], ("encoder", "decoder"), nc,
                                    config.precision)
    mapping = mapping_module(config)
    disc = image_discriminator(config, 6, spectral_norm=config.disc.spectral_norm)
    trainables = {
        "mapping": Trainable(optimizer_for(config.optim, GENERATOR),
                             schedule_for(config.optim, GENERATOR)),
        "D": Trainable(optimizer_for(config.optim, DISCRIMINATOR),
                       schedule_for(config.optim, DISCRIMINATOR)),
    }
    trainables = with_frozen_parameters(trainables, config.optim)
    frozen = {"vae_a": vae_a_vars, "vae_b": vae_b_vars}
    vgg = frozen_vgg(config)
    if vgg:
        frozen["vgg"] = vgg
    lambda_feat, latent_weight = config.loss.lambda_feat, config.loss.latent_l1
    image_weight = config.loss.get("image_l1", 0.0)  # configs older than the term have none
    with_mask = variant != "quality"
    ratio = 2 ** vae_a.n_down_convs
    start_from = warm_start_params(config)
    reported = []

    def init_state(rng, batch):
        batch = prepare_batch(batch)
        (image,) = example_shapes(batch, "degraded")
        latent = jax.ShapeDtypeStruct((1, image.shape[1] // ratio, image.shape[2] // ratio, nc),
                                      jnp.float32)
        pair = jax.ShapeDtypeStruct(image.shape[:3] + (6,), jnp.float32)
        m_shapes = (latent,) + (tuple(example_shapes(batch, "mask")) if with_mask else ())
        specs = {"mapping": InitSpec(mapping, m_shapes), "D": InitSpec(disc, (pair,))}
        variables = init_networks(specs, rng)
        if start_from is not None:
            params = warm_start_network(variables["mapping"]["params"], start_from,
                                        f"{variant} mapping", config, reported)
            variables["mapping"] = {**variables["mapping"], "params": params}
        return build_state(trainables, variables, frozen)

    def translate(params, z_a, mask, training):
        variables = {"params": params}
        if variant == "quality":
            return mapping.apply(variables, z_a)
        if variant == "scratch":
            return mapping.apply(variables, z_a, mask)
        if training:
            return mapping.apply(variables, z_a, mask, method="train_forward")
        # Inference path one photo at a time (its query selection reads batch element 0).
        one = lambda z, m: mapping.apply(variables, z[None], m[None])[0]
        return jax.vmap(one)(z_a, mask)

    def latents(frozen_vars, x, y):
        z_a = vae_a.apply(frozen_vars["vae_a"], x, method="encode")
        z_b = vae_b.apply(frozen_vars["vae_b"], y, method="encode")
        return jax.lax.stop_gradient(z_a), jax.lax.stop_gradient(z_b)

    def forward(params, collections, frozen_vars, batch, rng):
        del rng  # deterministic forward
        x, y = batch["degraded"], batch["clean"]
        z_a, z_b = latents(frozen_vars, x, y)
        z_hat = translate(params["mapping"], z_a, batch.get("mask"), training=True)
        y_hat = vae_b.apply(frozen_vars["vae_b"], z_hat, method="decode")
        fake = jnp.concatenate([x, y_hat], axis=-1)
        real = jnp.concatenate([x, y], axis=-1)
        fake_d, real_out, fake_g, d_cols = discriminate(disc, params["D"],
                                                        collections.get("D", {}), fake, real)
        metrics, g_adv, d_objective = lsgan_terms(fake_d, real_out, fake_g, lambda_feat)
        vgg_metrics, g_vgg = vgg_term(frozen_vars, y_hat, y, lambda_feat, config.precision)
        lat = losses.latent_l1_loss(z_hat, z_b, latent_weight)
        l1 = jnp.mean(jnp.abs(y_hat - y))
        metrics.update(vgg_metrics)
        metrics.update({"loss/latent_l1": lat, "metric/l1": l1})
        objectives = {"mapping": g_adv + g_vgg + lat + image_weight * l1, "D": d_objective}
        return objectives, (metrics, {"D": d_cols} if d_cols else {})

    def samples(state, batch):
        batch = prepare_batch(batch)
        frozen_vars = state["frozen"]
        x, y = batch["degraded"], batch["clean"]
        z_a, z_b = latents(frozen_vars, x, y)
        z_hat = translate(state["params"]["mapping"], z_a, batch.get("mask"), training=False)
        out = {"degraded": x,
               "restored": vae_b.apply(frozen_vars["vae_b"], z_hat, method="decode"),
               "clean": y,
               "vae_b_reconstruction": vae_b.apply(frozen_vars["vae_b"], z_b,
                                                   method="decode")}
        if with_mask:
            out["mask"] = mask_image(batch["mask"])
        return out

    def export(state):
        module = mapping_module(config, precision="highest")
        variables = {"params": jax.device_get(state["params"]["mapping"])}
        return {MAPPING_ROLES[variant]: (module, variables)}

    return Task(name=f"mapping_{variant}", init_state=init_state,
                train_step=make_train_step(trainables, forward), samples=samples,
                export=export, reconstruction_metric="loss/latent_l1",
                records="mapping_mask" if with_mask else "mapping")
