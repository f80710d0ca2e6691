"""Machinery shared by the training tasks: state layout, initialisation, the generic step.

State (a dict pytree of arrays; keys with nothing in them are left out)::

    {"step": int32 scalar,
     "params":      {net: params}            trainable networks
     "opt_state":   {net: optax state}
     "collections": {net: {collection: ...}} mutable variables (batch_stats, spectral)
     "frozen":      {name: variables}}       frozen networks (mapping's VAEs, VGG19)

One training step (reference 10.1 "One training step"): a single forward pass computes every
loss at the current parameters, giving one objective per trainable network; each network's
gradient is the gradient of *its own* objective with respect to *its own* parameters (one
``jax.vjp`` of the forward, pulled back once per objective), and then every network takes its
Adam step. This equals the official sequence "G step, then D step(s)", whose D updates use
predictions made before the G step. A discriminator pass on a fake therefore serves both the
generator objective (through the fake) and the D objective (through D's parameters) when the
discriminator has no spectral norm; with spectral norm the official pass order is kept where
the task asks for it (:func:`discriminate`).

Nothing here depends on the number of devices: no host callbacks, no Python control flow on
values; batch reductions are global means.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import optax

from oldphoto_jax.training import losses, optim
from oldphoto_jax.training.optim import Schedule

Array = jax.Array
PyTree = Any

IMAGE_KEYS = ("image", "degraded", "clean")
MASK_KEYS = ("mask",)


def prepare_batch(batch: Mapping[str, Array]) -> dict[str, Array]:
    """Batch from the input pipeline -> float32: uint8 images to [-1, 1] (``u8/127.5 - 1``),
    uint8 {0, 1} masks and flags to float32; float inputs pass unchanged."""
    out = {}
    for key, value in batch.items():
        value = jnp.asarray(value)
        if key in IMAGE_KEYS and value.dtype == jnp.uint8:
            value = value.astype(jnp.float32) / 127.5 - 1.0
        elif not jnp.issubdtype(value.dtype, jnp.floating):
            value = value.astype(jnp.float32)
        out[key] = value
    return out


def example_shapes(batch: Mapping[str, Array], *keys: str) -> list[jax.ShapeDtypeStruct]:
    """Shapes of one example (batch size 1) of the given batch entries, as float32."""
    return [jax.ShapeDtypeStruct((1,) + tuple(batch[k].shape[1:]), jnp.float32) for k in keys]


def init_key(rng: Array) -> Array:
    """A key of the "rbg" implementation derived from ``rng`` (raw uint32 or typed key).

    Parameter initialisation draws many arrays; XLA:CPU compiles the default threefry
    generator for them several times slower than the RngBitGenerator of "rbg" (measured ~20 s
    vs ~4 s for a small VAE). Only initialisation uses it; training randomness keeps ``rng``.
    """
    data = jax.random.key_data(rng) if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key) else rng
    data = jnp.asarray(data, jnp.uint32).reshape(-1)
    mixed = jnp.concatenate([data, data ^ jnp.uint32(0x9E3779B9), data + jnp.uint32(0x7F4A7C15)])
    return jax.random.wrap_key_data(mixed[:4], impl="rbg")


@dataclasses.dataclass(frozen=True)
class InitSpec:
    """How to initialise one network: ``module.init(key, *zeros(shapes), **kwargs)``."""

    module: nn.Module
    shapes: tuple
    kwargs: tuple = ()          # ((name, value), ...) static keyword arguments
    method: str | None = None


def init_networks(specs: Mapping[str, InitSpec], rng: Array) -> dict[str, dict]:
    """Variables of every network, drawn in one jitted computation (network i uses
    ``fold_in(init_key(rng), i)``)."""

    def run(key):
        out = {}
        for i, (name, spec) in enumerate(specs.items()):
            args = [jnp.zeros(s.shape, s.dtype) for s in spec.shapes]
            kwargs = dict(spec.kwargs)
            if spec.method is not None:
                kwargs["method"] = spec.method
            variables = spec.module.init({"params": jax.random.fold_in(key, i)}, *args, **kwargs)
            out[name] = dict(variables)
        return out

    return jax.jit(run)(init_key(rng))


def _embeds(source_shape: tuple, shape: tuple) -> bool:
    """Whether an array of ``source_shape`` fits in the leading corner of one of ``shape``."""
    return len(source_shape) == len(shape) and all(s <= t for s, t in zip(source_shape, shape))


def embed_array(initialised, source):
    """``source`` in the leading corner of an array shaped like ``initialised`` (a wider layer of
    the same kind). Around it the initialised values stay, except in a convolution kernel
    (H x W x in x out) whose extra *input* channels read zeros: the wider layer computes the
    source's outputs exactly on the source's channels, and its new channels, read by nothing
    yet, still receive gradients."""
    out = jnp.array(initialised, copy=True)
    source = jnp.asarray(source, out.dtype)
    if out.ndim == 4:
        out = out.at[:, :, source.shape[2]:, :].set(0.0)
    return out.at[tuple(slice(0, n) for n in source.shape)].set(source)


def warm_start(params: Mapping, source: Mapping, embed: bool = False
               ) -> tuple[dict, list[str], list[str], list[str]]:
    """``params`` with every array that ``source`` has at the same path and shape taken from
    ``source`` (a trained network of another variant, e.g. the scratch mapping for the quality
    one); with ``embed``, also every smaller array of the same path and rank embedded into a
    wider one (:func:`embed_array`: e.g. a mapping between 38-channel latents from one between
    32-channel latents). Returns (params, paths taken or embedded, paths left as initialised,
    the embedded ones among those taken), paths as ``a/b/c``."""
    flat = traverse_util.flatten_dict(dict(params), sep="/")
    flat_source = traverse_util.flatten_dict(dict(source), sep="/")
    taken, fresh, embedded = [], [], []
    for key, value in flat.items():
        if key in flat_source and tuple(flat_source[key].shape) == tuple(value.shape):
            # a copy, never the source's buffer (the trainer donates the state)
            flat[key] = jnp.array(flat_source[key], value.dtype, copy=True)
            taken.append(key)
        elif embed and key in flat_source and _embeds(tuple(flat_source[key].shape),
                                                      tuple(value.shape)):
            flat[key] = embed_array(value, flat_source[key])
            taken.append(key)
            embedded.append(key)
        else:
            fresh.append(key)
    return traverse_util.unflatten_dict(flat, sep="/"), taken, fresh, embedded


def init_from_variables(config, default_roles: tuple[str, ...]) -> dict | None:
    """The trained variables (``params`` and any other collection, e.g. batch-norm statistics)
    that ``config.init_from`` names (``checkpoint``: a model directory; ``role``: one of its
    roles, empty = the first of ``default_roles`` it has), or None when the config has no
    ``init_from`` or its ``checkpoint`` is empty (a fresh start)."""
    from oldphoto_jax import model_files

    init_from = config.get("init_from")
    if init_from is None or not init_from.checkpoint:
        return None
    roles = (init_from.role,) if init_from.role else tuple(default_roles)
    model = model_files.load_model(init_from.checkpoint)
    for role in roles:
        if model.has(role):
            return dict(model.network(role)[1])
    raise model_files.CheckpointError(f"model {init_from.checkpoint} has none of the roles "
                                      f"{roles}; it has {model.roles}")


def init_from_params(config, default_roles: tuple[str, ...]) -> dict | None:
    """The ``params`` of :func:`init_from_variables` (None for a fresh start)."""
    variables = init_from_variables(config, default_roles)
    return None if variables is None else dict(variables["params"])


def warm_start_network(params: Mapping, source: Mapping, what: str, config,
                       reported: list) -> dict:
    """:func:`warm_start` of one network's ``params`` from ``source`` (:func:`init_from_params`),
    an error if no array fits, and one line saying what was taken (once per run: ``reported``
    is the caller's list, init_state may be traced twice)."""
    params, taken, fresh, embedded = warm_start(
        params, source, embed=bool(config.init_from.get("embed", False)))
    if not taken:
        raise ValueError(f"config.init_from ({config.init_from.checkpoint}) has no array of "
                         f"the {what}'s shapes")
    if jax.process_index() == 0 and not reported:
        reported.append(True)
        fresh_parts = sorted({f.rsplit("/", 1)[0] for f in fresh})
        embedded_parts = sorted({k.rsplit("/", 1)[0] for k in embedded})
        widened = (f" (embedded into wider arrays: {', '.join(embedded_parts)})"
                   if embedded_parts else "")
        print(f"{what} starts from {config.init_from.checkpoint}: {len(taken)} arrays taken"
              f"{widened}, {len(fresh)} initialised ({', '.join(fresh_parts) or 'none'})",
              flush=True)
    return params


@dataclasses.dataclass(frozen=True)
class Trainable:
    """A trained network: its optimiser and learning-rate schedule (for logging)."""

    optimizer: optax.GradientTransformation
    schedule: Schedule


def with_frozen_parameters(trainables: Mapping[str, Trainable], optim_config
                           ) -> dict[str, Trainable]:
    """``trainables`` with the parameters ``optim_config.frozen`` names held fixed."""
    prefixes = optim.frozen_prefixes(optim_config)
    unknown = sorted(set(prefixes) - set(trainables))
    if unknown:
        raise ValueError(f"optim.frozen names {', '.join(unknown)}; this task trains "
                         f"{', '.join(sorted(trainables))}")
    for name in sorted(prefixes):
        print(f"{name}: parameters under {', '.join(prefixes[name])} held fixed (optim.frozen)",
              flush=True)
    return {name: dataclasses.replace(
                trainable, optimizer=optim.freeze(trainable.optimizer, prefixes[name], name))
            if name in prefixes else trainable
            for name, trainable in trainables.items()}


def split_variables(variables: Mapping) -> tuple[dict, dict]:
    """Flax variables -> (params, the other collections)."""
    variables = dict(variables)
    params = variables.pop("params")
    return params, variables


def build_state(trainables: Mapping[str, Trainable], variables: Mapping[str, Mapping],
                frozen: Mapping[str, Mapping] | None = None) -> dict:
    """The initial state from freshly initialised variables of the trainable networks."""
    state = {"step": jnp.zeros((), jnp.int32), "params": {}, "opt_state": {}}
    collections = {}
    for name, trainable in trainables.items():
        params, others = split_variables(variables[name])
        state["params"][name] = params
        state["opt_state"][name] = trainable.optimizer.init(params)
        if others:
            collections[name] = others
    if collections:
        state["collections"] = collections
    if frozen:
        # Copies: the trainer donates the state to each step, which deletes its buffers, and
        # loaded networks (``model_files``) are device arrays the task keeps for later calls.
        state["frozen"] = jax.tree.map(lambda x: jnp.array(x, copy=True), dict(frozen))
    return state


def variables_of(state: Mapping, name: str) -> dict:
    """Flax variables of a trainable network: its params plus its mutable collections."""
    return {"params": state["params"][name], **state.get("collections", {}).get(name, {})}


# Forward: (params, collections, frozen, batch, rng) -> (objectives {net: scalar},
#                                                       (metrics {name: scalar}, new collections))
Forward = Callable[[dict, dict, dict, dict, Array], tuple[dict, tuple[dict, dict]]]


def make_train_step(trainables: Mapping[str, Trainable], forward: Forward):
    """The pure step ``(state, batch, rng) -> (state, metrics)`` of a task.

    ``forward`` returns one objective per trainable network; each network is updated with the
    gradient of its own objective with respect to its own params, all from the same forward
    pass (one ``jax.vjp``, pulled back once per objective). Metrics get ``loss/<net>`` (the
    objectives), ``grad_norm/<net>`` and ``lr/<net>`` added.
    """
    names = tuple(trainables)

    def train_step(state, batch, rng):
        batch = prepare_batch(batch)
        collections = state.get("collections", {})
        frozen = state.get("frozen", {})

        def objectives_of(params):
            return forward(params, collections, frozen, batch, rng)

        objectives, pullback, (metrics, new_collections) = jax.vjp(
            objectives_of, state["params"], has_aux=True)
        metrics = dict(metrics)
        new_params, new_opt = {}, {}
        for name in names:
            cotangent = {n: jnp.ones_like(v) if n == name else jnp.zeros_like(v)
                         for n, v in objectives.items()}
            (grads,) = pullback(cotangent)
            grads = grads[name]
            trainable = trainables[name]
            updates, new_opt[name] = trainable.optimizer.update(
                grads, state["opt_state"][name], state["params"][name])
            new_params[name] = optax.apply_updates(state["params"][name], updates)
            metrics[f"loss/{name}"] = objectives[name]
            metrics[f"grad_norm/{name}"] = optax.tree.norm(grads)
            metrics[f"lr/{name}"] = jnp.asarray(trainable.schedule(state["step"]), jnp.float32)
        new_state = dict(state)
        new_state.update(step=state["step"] + 1, params=new_params, opt_state=new_opt)
        if collections:
            merged = {n: {**collections[n], **new_collections.get(n, {})} for n in collections}
            new_state["collections"] = merged
        metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
        return new_state, metrics

    return train_step


# ----------------------------------------------------------------------------------------------
# Discriminator passes


def apply_discriminator(module: nn.Module, params: dict, collections: dict, x: Array):
    """One training-mode pass; returns (outputs, new collections) (spectral u, v advanced)."""
    variables = {"params": params, **collections}
    if "spectral" in collections:
        outputs, updated = module.apply(variables, x, train=True, mutable=["spectral"])
        return outputs, {**collections, **dict(updated)}
    return module.apply(variables, x, train=True), collections


def split_outputs(outputs, b: int):
    """D outputs of a concatenated batch -> (first b samples, the rest)."""
    first = [[f[:b] for f in scale] for scale in outputs]
    rest = [[f[b:] for f in scale] for scale in outputs]
    return first, rest


def discriminate(module: nn.Module, params: dict, collections: dict, fake: Array, real: Array,
                 official_sn_order: bool = True):
    """Discriminator outputs for the D objective and the G objective.

    Returns ``(fake_for_d, real, fake_for_g, new_collections)``.

    * Without spectral norm (or ``official_sn_order=False``): one pass over the concatenated
      batch [fake, real] (instance norm is per sample, so this equals separate passes); the
      fake outputs serve both objectives. With spectral norm that is one power iteration per
      step (the SPADE trainer's concatenated D call).
    * With spectral norm and ``official_sn_order``: the release's three passes in its order,
      each advancing u, v once (reference 10.1): D(fake, stop-gradient) for the D loss,
      D(real), then D(fake) for the G loss.
    """
    if "spectral" not in collections or not official_sn_order:
        b = fake.shape[0]
        outputs, collections = apply_discriminator(module, params, collections,
                                                   jnp.concatenate([fake, real], axis=0))
        fake_out, real_out = split_outputs(outputs, b)
        return fake_out, real_out, fake_out, collections
    fake_d, collections = apply_discriminator(module, params, collections,
                                              jax.lax.stop_gradient(fake))
    real_out, collections = apply_discriminator(module, params, collections, real)
    fake_g, collections = apply_discriminator(module, params, collections, fake)
    return fake_d, real_out, fake_g, collections


def lsgan_terms(fake_d, real, fake_g, lambda_feat: float) -> tuple[dict, Array, Array]:
    """pix2pixHD's adversarial terms: metrics, the G-side sum (LS + FM) and the D objective."""
    g_gan = losses.lsgan_loss(fake_g, 1.0)
    g_fm = losses.feature_matching_loss(fake_g, real, lambda_feat, "pix2pixhd")
    d_loss, d_real, d_fake = losses.lsgan_d_loss(real, fake_d)
    metrics = {"gan/g": g_gan, "gan/feat_match": g_fm, "gan/d_real": d_real,
               "gan/d_fake": d_fake}
    return metrics, g_gan + g_fm, d_loss


def vgg_term(frozen: Mapping, fake: Array, real: Array, weight: float,
             precision) -> tuple[dict, Array]:
    """The VGG19 perceptual loss when VGG weights are in the frozen state, else 0."""
    if "vgg" not in frozen:
        return {}, jnp.zeros((), jnp.float32)
    value = losses.vgg_loss(frozen["vgg"]["params"], fake, real, weight, precision=precision)
    return {"loss/vgg": value}, value


def as_rgb(x: Array) -> Array:
    """B x H x W x {1,3} image in [-1, 1] -> 3 channels (for sample grids)."""
    return jnp.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


def mask_image(mask: Array) -> Array:
    """{0,1} mask -> a [-1, 1] RGB image (white = 1)."""
    return as_rgb(mask * 2.0 - 1.0)


# ----------------------------------------------------------------------------------------------
# Builders shared by the tasks (config layout: see oldphoto_jax.training.tasks)


def image_discriminator(config, in_channels: int, spectral_norm: bool,
                        spade_style: bool = False):
    """The multi-scale PatchGAN of ``config.disc`` (reference 10.1; SPADE variant for faces)."""
    from oldphoto_jax.models.discriminators import MultiscaleDiscriminator

    disc = config.disc
    return MultiscaleDiscriminator(
        in_channels=in_channels, num_D=disc.num_D, ndf=disc.ndf,
        n_layers=disc.n_layers, spectral_norm=spectral_norm,
        sn_outer=not spade_style, norm_bias=not spade_style, precision=config.precision)


def frozen_vgg(config) -> dict | None:
    """``{"params": ...}`` of VGG19 from ``config.loss.vgg_weights`` (an .npz), or None."""
    path = config.loss.vgg_weights
    if not path:
        return None
    return {"params": losses.load_vgg19_npz(path)}
