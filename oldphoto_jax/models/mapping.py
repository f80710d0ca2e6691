"""The latent mapping networks of the global restoration stage (reference section 5).

All three map a VAE_A latent (B x h x w x nc, official nc = 64) to a VAE_B latent of the same
shape through a 512-channel trunk at the same resolution:

* :class:`MappingModel` — ``Mapping_Model`` (quality restoration, no mask);
* :class:`MappingModelWithMask` — ``Mapping_Model_with_mask`` (scratch restoration): a partial
  non-local block that fills scratched latent cells from unscratched ones;
* :class:`MappingModelWithMask2` — ``Mapping_Model_with_mask_2`` (``--HR``): multi-scale patch
  attention that copies whole unscratched patches into mostly-scratched ones.

Masks are full-resolution NHWC scratch masks (B x H x W x 1, 1 = scratch); the networks resize
them to the latent grid themselves, exactly as the official code does.

Width rule (fields ``nc``, ``mc``, ``n_up``): channels at level ``i`` are ``min(nc * 2**i, mc)``.
The *head* is ``n_up`` x [Conv 3x3 (zero pad) + IN + ReLU] from level 0 to level ``n_up``; the
*tail* is ``n_up - 1`` x [Conv 3x3 + IN + ReLU] from level ``n_up`` back to level 1 and a final
Conv 3x3 to level 0 without norm or activation. Official: 64 -> 128 -> 256 -> 512 -> 512 and
512 -> 512 -> 256 -> 128 -> 64. (The official code hard-codes 64 where ``nc`` stands here; with
the official nc = 64 that is the same.) ResnetBlocks have ``min(nc * 2**n_up, mc)`` channels.

``stats_residual`` (not in the release; 0 there): for latents of the ``vae_colour`` VAEs, whose
last channels hold each photo's colour statistics, the last ``stats_residual`` output channels
are the input's plus a gated correction, ``z[..., -k:] + gate * tail[..., -k:]`` with ``gate``
(one per channel) starting at zero: the mapping starts by keeping the photo's colours and learns
only their correction (fading), instead of learning to carry them through its trunk.
``stats_correction`` chooses that correction: ``"gate"`` (above; the first colour mappings) or
``"pooled"``, one correction per photo, a linear map (zero at the start) of the tail output's
spatial mean and standard deviation per channel and of the input's statistics. The gate learns
slowly: its gradient is the correlation of the tail's raw statistics channels (which get no
gradient while the gate is zero) with the needed correction, and in 1,600 steps the gates stayed
within +-0.02 (weights/README.md); the pooled map's kernel gets the pooled features' gradient
from the first step, and a photo's colour statistics are one number per channel anyway.

Param trees: MappingHead/MappingTail = {convs_0, ...}; ResnetStack = {blocks_0, ...}; with
``stats_residual`` > 0 also ``stats: {gate}`` (``stats: {correction: {kernel, bias}}`` with
``stats_correction="pooled"``).
* MappingModel: {head, trunk, tail}.
* MappingModelWithMask: {head, nl: {theta, phi, g, W, res}, trunk, tail}.
* MappingModelWithMask2: {head, pre, attn_0, between_0, attn_1, between_1, attn_2, post, tail}
  with attn_s = {res_block, combine}.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from oldphoto_jax.layers import (Conv2d, Precision, conv2d, instance_norm,
                                 l2_normalize, official_kernel_init, resize_bilinear,
                                 resize_nearest)
from oldphoto_jax.models.vae import ResnetBlock, ResnetStack, level_channels

Array = jax.Array

# Logit given to excluded keys in the patch attention (the official training path's value).
MASKED_LOGIT = -1e9


# ----------------------------------------------------------------------------------------------
# Shared pieces


class MappingHead(nn.Module):
    """``n_up`` x [Conv 3x3 zero-pad + IN + ReLU], level 0 -> level n_up."""

    nc: int = 64
    mc: int = 512
    n_up: int = 4
    precision: Precision = "highest"

    def setup(self):
        self.convs = [Conv2d(level_channels(self.nc, i + 1, self.mc), 3, padding=1,
                             precision=self.precision) for i in range(self.n_up)]

    def __call__(self, x: Array) -> Array:
        for conv in self.convs:
            x = nn.relu(instance_norm(conv(x)))
        return x


class MappingTail(nn.Module):
    """``n_up - 1`` x [Conv 3x3 + IN + ReLU] level n_up -> 1, then Conv 3x3 to level 0 (no norm)."""

    nc: int = 64
    mc: int = 512
    n_up: int = 4
    precision: Precision = "highest"

    def setup(self):
        self.convs = [Conv2d(level_channels(self.nc, self.n_up - 1 - i, self.mc), 3, padding=1,
                             precision=self.precision) for i in range(self.n_up)]

    def __call__(self, x: Array) -> Array:
        for conv in self.convs[:-1]:
            x = nn.relu(instance_norm(conv(x)))
        return self.convs[-1](x)


def binarized_bilinear_mask(mask: Array, size: tuple[int, int]) -> Array:
    """``Mb = interpolate(mask, size, bilinear); Mb[Mb > 0] = 1`` (1 = touched by scratch).

    NHWC in and out; values <= 0 are kept as they are (the official in-place assignment).
    """
    mb = resize_bilinear(mask, size)
    return jnp.where(mb > 0, jnp.ones_like(mb), mb)


def nonlocal_valid_map(mask: Array, size: tuple[int, int]) -> Array:
    """Scratch mask (B x H x W x 1, 1 = scratch) -> valid map V (B x h x w x 1, 1 = usable).

    Official rule (reference 5.2): ``V = (1 - Mb) * nearest(1 - mask)`` with ``Mb`` the
    binarized bilinear mask (:func:`binarized_bilinear_mask`) and PyTorch's legacy nearest
    resizing. For an exact x4 ratio and a {0, 1} mask, cell (i, j) is valid iff none of the
    pixels (4i+1..4i+2, 4j+1..4j+2) nor the pixel (4i, 4j) is scratch.
    """
    mb = binarized_bilinear_mask(mask, size)
    return (1.0 - mb) * resize_nearest(1.0 - mask, size)


# ----------------------------------------------------------------------------------------------
# Partial non-local attention (Mapping_Model_with_mask)


def partial_nonlocal_attention(theta: Array, phi: Array, g: Array, valid: Array,
                               precision: Precision = "highest") -> Array:
    """Dense partial non-local attention of ``NonLocalBlock2D_with_mask_Res`` (reference 5.2).

    Args:
      theta: queries, B x Nq x C.
      phi: keys, B x N x C.
      g: values, B x N x C.
      valid: B x N key weights (1 = usable key, 0 = scratched; the official V may be fractional
        for fractional masks and is applied as a multiplier).
    Returns B x Nq x C: ``normalize_L1(softmax(theta phi^T, over keys) * valid) @ g`` with
    F.normalize's eps 1e-12 — the softmax runs over *all* keys before the invalid columns are
    zeroed; a query whose keys are all invalid gets a zero row. No temperature (1.0), no scaling.

    Computed without forming the softmax: with ``e = exp(l - max l)`` per query row, the softmax
    is ``e / sum(e)`` and its L1 renormalisation after the key weights cancels that sum, so the
    result is ``e @ (valid * g) / max(e @ |valid|, 1e-12 * sum(e))`` — the same value, eps
    included (a row whose usable keys hold less than 1e-12 of the softmax is scaled down as the
    official code scales it), with the key weights folded into the values once instead of
    weighting every row of the softmax: the official-width attention at 512 px (16,384
    positions, 512 channels, chunks of 1,024 queries) took 4.66 s against 4.88 s, 7.7 CPU
    seconds against 8.2 (issue 18).

    Each query row is independent of the others, so any subset of query rows can be computed
    with this same function (see :func:`partial_nonlocal_attention_chunked`).
    """
    return _attention_rows(theta, phi, valid[..., None] * g, jnp.abs(valid), precision)


def _attention_rows(theta: Array, phi: Array, weighted_g: Array, key_weights: Array,
                    precision: Precision) -> Array:
    """The rows of :func:`partial_nonlocal_attention` for these queries, from the values with
    the key weights folded in (``valid * g``) and the weights' magnitudes (``|valid|``)."""
    logits = jnp.einsum("bqc,bkc->bqk", theta, phi, precision=precision)
    # The row maximum only keeps exp() in range; it cancels in the ratio below.
    e = jnp.exp(logits - jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True)))
    numerator = jnp.einsum("bqk,bkc->bqc", e, weighted_g, precision=precision)
    valid_sum = jnp.einsum("bqk,bk->bq", e, key_weights, precision=precision)[..., None]
    return numerator / jnp.maximum(valid_sum, 1e-12 * jnp.sum(e, axis=-1, keepdims=True))


# A block of attention weights (query rows x keys) larger than this many weights (128 MiB in
# float32) gets fewer rows than asked for, but never fewer than BLOCK_MIN_ROWS.
BLOCK_WEIGHTS = 2 ** 25
BLOCK_MIN_ROWS = 1024


def block_rows(query_chunk: int, n_queries: int, n_keys: int) -> int:
    """Query rows per block of a chunked attention asked for ``query_chunk`` rows at most.

    At most ``query_chunk`` and the number of queries (no padded rows when all fit in one
    block); and when a block of ``query_chunk`` rows would hold more than :data:`BLOCK_WEIGHTS`
    weights, the larger of the rows that fit in that budget and :data:`BLOCK_MIN_ROWS`. So the
    entry points' default of 2048 rows runs a 512-px photo (16,384 keys) in blocks of 2048 rows
    (the official-width scratch stage 3.5 % faster than with 1024, +65 MiB at its peak;
    benchmarks/README.md, issue 18), while larger photos keep blocks of 1024 rows and the
    memory they had (a 2048-px photo: 1 GiB blocks, not 2). A chunk of at most 1024 rows is
    always used as given.
    """
    budget = max(BLOCK_MIN_ROWS, BLOCK_WEIGHTS // max(n_keys, 1))
    return max(1, min(query_chunk, n_queries, budget))


def partial_nonlocal_attention_chunked(theta: Array, phi: Array, g: Array, valid: Array,
                                       query_chunk: int,
                                       precision: Precision = "highest") -> Array:
    """:func:`partial_nonlocal_attention` computed ``query_chunk`` query rows at a time.

    The softmax and the L1 renormalisation are per query row, so the result is the same as the
    dense form (up to float32 rounding) while only a B x query_chunk x N block of weights exists
    at any time: peak memory is linear in N for a fixed chunk. The chunks run sequentially
    (``lax.map``) and each is rematerialised in the backward pass (``jax.checkpoint``), so the
    gradient does not store the N x N weights either.
    """
    b, n_q, c = theta.shape
    if query_chunk <= 0:
        raise ValueError(f"query_chunk must be positive, got {query_chunk}")
    query_chunk = block_rows(query_chunk, n_q, phi.shape[1])
    n_chunks = -(-n_q // query_chunk)
    pad = n_chunks * query_chunk - n_q
    theta_p = jnp.pad(theta, ((0, 0), (0, pad), (0, 0)))
    chunks = theta_p.reshape(b, n_chunks, query_chunk, c).transpose(1, 0, 2, 3)

    weighted_g, key_weights = valid[..., None] * g, jnp.abs(valid)  # once for every chunk

    @jax.checkpoint
    def one_chunk(theta_chunk):
        return _attention_rows(theta_chunk, phi, weighted_g, key_weights, precision)

    out = jax.lax.map(one_chunk, chunks)                       # n_chunks x B x chunk x C
    out = out.transpose(1, 0, 2, 3).reshape(b, n_chunks * query_chunk, -1)
    return out[:, :n_q]


class _Conv1x1ZeroBias(nn.Module):
    """1x1 conv whose bias starts at zero (the non-local output conv ``W``, reference 10.1)."""

    features: int
    precision: Precision = "highest"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        kernel = self.param("kernel", official_kernel_init, (1, 1, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return conv2d(x, kernel, precision=self.precision) + bias


class PartialNonLocalBlock(nn.Module):
    """``NonLocalBlock2D_with_mask_Res`` in the official inference setting.

    (mode "combine", re_norm True, temperature 1, use_self False, cosin False; inter channels =
    in channels.) ``z = V * x + (1 - V) * res(W(attention(theta(x), phi(x), g(x), V)))``.
    ``query_chunk`` > 0 selects the chunked attention (same result, memory linear in h*w).
    Param tree: {theta, phi, g, W (1x1 convs), res (ResnetStack of ``n_res_blocks``)}.
    """

    features: int = 512
    n_res_blocks: int = 3
    query_chunk: int = 0
    precision: Precision = "highest"

    def setup(self):
        self.theta = Conv2d(self.features, 1, precision=self.precision)
        self.phi = Conv2d(self.features, 1, precision=self.precision)
        self.g = Conv2d(self.features, 1, precision=self.precision)
        self.W = _Conv1x1ZeroBias(self.features, precision=self.precision)
        self.res = ResnetStack(self.features, self.n_res_blocks, self.precision)

    def __call__(self, x: Array, mask: Array) -> Array:
        b, h, w, _ = x.shape
        valid = nonlocal_valid_map(mask.astype(x.dtype), (h, w))        # B x h x w x 1
        flat = lambda t: t.reshape(b, h * w, t.shape[-1])
        args = (flat(self.theta(x)), flat(self.phi(x)), flat(self.g(x)), valid.reshape(b, h * w))
        if self.query_chunk > 0:
            y = partial_nonlocal_attention_chunked(*args, query_chunk=self.query_chunk,
                                                   precision=self.precision)
        else:
            y = partial_nonlocal_attention(*args, precision=self.precision)
        w_y = self.res(self.W(y.reshape(b, h, w, -1)))
        return valid * x + (1.0 - valid) * w_y


# ----------------------------------------------------------------------------------------------
# Patch attention (Mapping_Model_with_mask_2)


def extract_patches(x: Array, patch: int) -> Array:
    """Non-overlapping ``patch`` x ``patch`` blocks: B x h x w x C -> B x L x (patch*patch*C).

    Patches are numbered row-major over the (h // patch) x (w // patch) grid, like ``F.unfold``
    with stride = kernel; rows/cols beyond the last whole patch are dropped. The vector order
    inside a patch is (ky, kx, c) rather than the official (c, ky, kx): similarities are over the
    whole vector and copies move whole blocks, so only float summation order differs.
    """
    b, h, w, c = x.shape
    hp, wp = h // patch, w // patch
    x = x[:, :hp * patch, :wp * patch]
    x = x.reshape(b, hp, patch, wp, patch, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, hp * wp, patch * patch * c)


def fold_patches(patches: Array, patch: int, size: tuple[int, int], channels: int) -> Array:
    """Inverse of :func:`extract_patches` into B x h x w x C; uncovered rows/cols are zero
    (``F.fold`` with stride = kernel)."""
    h, w = size
    hp, wp = h // patch, w // patch
    b = patches.shape[0]
    x = patches.reshape(b, hp, wp, patch, patch, channels).transpose(0, 1, 3, 2, 4, 5)
    x = x.reshape(b, hp * patch, wp * patch, channels)
    return jnp.pad(x, ((0, 0), (0, h - hp * patch), (0, w - wp * patch), (0, 0)))


def patch_query_flags(mask_latent: Array, patch: int) -> Array:
    """B x h x w x 1 binarized latent mask -> B x L booleans: patch mean > 0.6 ("mostly
    scratched", a query that gets replaced; the others are the keys)."""
    return jnp.mean(extract_patches(mask_latent, patch), axis=-1) > 0.6


def select_best_keys(sim: Array, is_key: Array) -> Array:
    """Row-wise choice of the best key from similarities ``sim`` (B x Q x L) -> B x Q int32.

    Non-key columns get :data:`MASKED_LOGIT`, the row goes through a softmax and the first index
    of the maximum probability is taken (``torch.max`` semantics), as the official code does.
    With at least one key, non-key columns get exactly zero probability and the softmax equals the
    official softmax over the key subset (same key order, so the same first index on ties); with
    no key at all every row is uniform and the answer is index 0 (the official training path).

    Softmax-then-argmax is *not* always the argmax of the masked logits: softmax is monotone but
    not strictly so in float32. When the best similarity is below 0.5, a runner-up 1 ulp below it
    gets exactly the same probability (``exp(-ulp)`` rounds to 1; measured: always, for both XLA
    and torch), and the first index wins even if it holds the smaller logit. Taking the softmax
    first reproduces torch's choice there; the argmax of the logits would not. (Cosine maxima
    below 0.5 are common for 512*p*p-dimensional patches.) Near-ties at the ulp level also depend
    on the summation order of the similarities, so they cannot be matched bit for bit anyway,
    but exact ties (identical patches) and softmax rounding ties follow the official rule.
    """
    sim = jnp.where(is_key[:, None, :], sim, jnp.asarray(MASKED_LOGIT, sim.dtype))
    probs = jax.nn.softmax(sim, axis=-1)
    return jnp.argmax(probs, axis=-1).astype(jnp.int32)


def best_key_indices(patches: Array, is_key: Array, precision: Precision = "highest",
                     query_chunk: int = 0) -> Array:
    """For every patch (B x L x D), the index of the most similar key patch (B x L int32).

    Cosine similarity of whole patch vectors (``F.normalize``, eps 1e-12) of all patches against
    all patches, then :func:`select_best_keys` (masked softmax, first index of the maximum).

    ``query_chunk`` 0 builds the whole B x L x L similarity matrix at once (as the official
    code); > 0 computes ``query_chunk`` query rows at a time (:func:`_best_key_indices_chunked`),
    same result, memory linear in L.
    """
    normed = l2_normalize(patches, axis=-1)
    if query_chunk > 0:
        return _best_key_indices_chunked(normed, is_key, query_chunk, precision)
    if query_chunk < 0:
        raise ValueError(f"query_chunk must be >= 0, got {query_chunk}")
    return _best_keys_of_rows(normed, normed, is_key, precision)


def _best_keys_of_rows(queries: Array, keys: Array, is_key: Array, precision: Precision) -> Array:
    """:func:`select_best_keys` for the normalized query rows ``queries`` (B x Q x D) against
    all normalized patches ``keys`` (B x L x D) -> B x Q int32."""
    sim = jnp.einsum("bqd,bkd->bqk", queries, keys, precision=precision)
    return select_best_keys(sim, is_key)


def _best_key_indices_chunked(normed: Array, is_key: Array, query_chunk: int,
                              precision: Precision) -> Array:
    """:func:`best_key_indices` of the normalized patches, ``query_chunk`` query rows at a time.

    The key choice is per query row (:func:`select_best_keys`), so the rows of a block are
    exactly the rows of the dense result computed from the same similarities; only a
    B x query_chunk x L block of similarities exists at any time. The blocks run sequentially
    (``lax.map``); L is padded with zero rows up to a multiple of the chunk and the padded rows
    are dropped. (The similarities of a block could in principle round differently from the
    dense matrix if the backend picks another matmul algorithm for the other shape; that only
    matters for ulp-level near-ties, see :func:`select_best_keys`.) The indices carry no
    gradient, so nothing is kept for the backward pass.
    """
    b, n_q, d = normed.shape
    query_chunk = block_rows(query_chunk, n_q, n_q)  # every patch is a key
    n_chunks = -(-n_q // query_chunk)
    pad = n_chunks * query_chunk - n_q
    keys = jax.lax.stop_gradient(normed)
    rows = jnp.pad(keys, ((0, 0), (0, pad), (0, 0)))
    chunks = rows.reshape(b, n_chunks, query_chunk, d).transpose(1, 0, 2, 3)

    def one_chunk(query_rows):
        return _best_keys_of_rows(query_rows, keys, is_key, precision)

    index = jax.lax.map(one_chunk, chunks)                     # n_chunks x B x chunk
    index = index.transpose(1, 0, 2).reshape(b, n_chunks * query_chunk)
    return index[:, :n_q]


def _copy_patches(patches: Array, index: Array, replace: Array) -> Array:
    """patches[b, index[b, l]] where ``replace[b, l]``, else patches[b, l]."""
    gathered = jnp.take_along_axis(patches, index[..., None], axis=1)
    return jnp.where(replace[..., None], gathered, patches)


def patch_attention_inference(x: Array, mask_latent: Array, patch: int,
                              precision: Precision = "highest", query_chunk: int = 0) -> Array:
    """``composed`` of ``Patch_Attention_4.inference_forward`` (reference 5.3), static shapes.

    Queries are the patches of *batch 0* whose binarized-mask mean exceeds 0.6 (the same patch
    set is used for every batch element); each query patch of x is replaced by the key patch
    (non-query patch of the same batch element) with the highest cosine similarity, and the
    patches are folded back with rows/cols beyond the last whole patch set to zero.
    If no patch is a query, x is returned unchanged (official branch). If *every* patch is a
    query the official code crashes (empty key set); here x is returned unchanged as well.
    ``query_chunk``: see :func:`best_key_indices` (0 = dense, > 0 = blocks of query rows).
    """
    b, h, w, c = x.shape
    patches = extract_patches(x, patch)
    query = patch_query_flags(mask_latent, patch)[0]                       # L, batch 0 only
    query_b = jnp.broadcast_to(query, patches.shape[:2])
    index = best_key_indices(patches, ~query_b, precision, query_chunk)
    folded = fold_patches(_copy_patches(patches, index, query_b), patch, (h, w), c)
    copy = jnp.any(query) & jnp.any(~query)
    return jnp.where(copy, folded, x)


def patch_attention_training(x: Array, mask_latent: Array, patch: int,
                             precision: Precision = "highest", query_chunk: int = 0) -> Array:
    """``composed`` of the batched training ``Patch_Attention_4.forward`` (reference 5.3).

    Per batch element: *every* patch is replaced by its best key (keys = patches that are not
    mostly scratched, others get the -1e9 logit), so an unscratched patch normally matches
    itself; the fold always runs (remainder rows/cols are zero). An element without any key
    gets uniform rows and every patch becomes a copy of patch 0, as in the official code.
    Gradients flow to x through the copied values (the arg-max itself has none).
    ``query_chunk``: see :func:`best_key_indices` (0 = dense, > 0 = blocks of query rows).
    """
    b, h, w, c = x.shape
    patches = extract_patches(x, patch)
    query = patch_query_flags(mask_latent, patch)                          # B x L
    index = best_key_indices(patches, ~query, precision, query_chunk)
    replace = jnp.ones_like(query)
    return fold_patches(_copy_patches(patches, index, replace), patch, (h, w), c)


class PatchAttention(nn.Module):
    """``Patch_Attention_4(mc, mc, patch_size)``: ResnetBlock, hard patch copy, F_Combine.

    ``out = combine(concat[z, composed, Mb])`` with ``x = res_block(z)``, ``composed`` from
    :func:`patch_attention_inference` (or :func:`patch_attention_training` when ``training``)
    and ``Mb`` the binarized bilinear mask at the latent size. ``combine`` is a 3x3 zero-padded
    conv from 2 * features + 1 to features channels (official 1025 -> 512).
    ``query_chunk``: 0 = dense as the official code; > 0 = query rows per block, same result,
    memory linear in the number of patches (see :func:`best_key_indices`).
    Param tree: {res_block (ResnetBlock), combine (Conv2d)}.
    """

    features: int = 512
    patch_size: int = 8
    query_chunk: int = 0
    precision: Precision = "highest"

    def setup(self):
        self.res_block = ResnetBlock(self.features, self.precision)
        self.combine = Conv2d(self.features, 3, padding=1, precision=self.precision)

    def __call__(self, z: Array, mask: Array, training: bool = False) -> Array:
        x = self.res_block(z)
        mb = binarized_bilinear_mask(mask.astype(x.dtype), x.shape[1:3])
        attend = patch_attention_training if training else patch_attention_inference
        composed = attend(x, mb, self.patch_size, self.precision, self.query_chunk)
        return self.combine(jnp.concatenate([z, composed, mb], axis=-1))


# ----------------------------------------------------------------------------------------------
# The three registered networks


STATS_CORRECTIONS = ("gate", "pooled")


class StatsResidual(nn.Module):
    """The last ``channels`` channels of a mapping's output as its input's plus a learned
    correction that is zero at the start (``stats_residual`` and ``stats_correction`` above)."""

    channels: int
    correction: str = "gate"

    @nn.compact
    def __call__(self, z: Array, out: Array) -> Array:
        k = self.channels
        if not 0 < k <= z.shape[-1]:
            raise ValueError(f"stats_residual must be in 1..{z.shape[-1]} (the latent's "
                             f"channels), got {k}")
        stats_in = z[..., -k:]
        if self.correction == "gate":
            gate = self.param("gate", nn.initializers.zeros, (k,), jnp.float32)
            kept = stats_in + gate.astype(out.dtype) * out[..., -k:]
        elif self.correction == "pooled":
            pooled = out.astype(jnp.float32)
            features = jnp.concatenate([
                jnp.mean(pooled, axis=(1, 2)), jnp.std(pooled, axis=(1, 2)),
                jnp.mean(stats_in.astype(jnp.float32), axis=(1, 2))], axis=-1)
            delta = nn.Dense(k, kernel_init=nn.initializers.zeros, name="correction")(features)
            kept = stats_in + delta[:, None, None, :].astype(out.dtype)
        else:
            raise ValueError(f"stats_correction must be one of {STATS_CORRECTIONS}, "
                             f"got {self.correction!r}")
        return jnp.concatenate([out[..., :-k], kept], axis=-1)


def _with_stats(module: nn.Module, z: Array, out: Array) -> Array:
    return module.stats(z, out) if module.stats_residual else out


def _check_latent(name: str, z: Array, nc: int) -> None:
    if z.ndim != 4 or z.shape[-1] != nc:
        raise ValueError(f"{name} expects an NHWC latent with {nc} channels, got {z.shape}")


def _check_mask(name: str, z: Array, mask: Array) -> None:
    if mask.ndim != 4 or mask.shape[-1] != 1 or mask.shape[0] != z.shape[0]:
        raise ValueError(f"{name} expects an NHWC mask B x H x W x 1 (B = {z.shape[0]}), "
                         f"got {mask.shape}")


class MappingModel(nn.Module):
    """``Mapping_Model`` (quality): head, ``n_blocks`` ResnetBlocks, tail.

    Fields (official defaults): nc 64, mc 512 (``map_mc``), n_up 4, n_blocks 6
    (``mapping_n_block``), dilation 1 (``mapping_net_dilation``, first conv of each trunk block),
    stats_residual 0 and stats_correction "gate" (not in the release: see the module docstring).
    ``__call__(z)``: B x h x w x nc -> B x h x w x nc.
    """

    nc: int = 64
    mc: int = 512
    n_up: int = 4
    n_blocks: int = 6
    dilation: int = 1
    stats_residual: int = 0
    stats_correction: str = "gate"
    precision: Precision = "highest"

    def setup(self):
        width = level_channels(self.nc, self.n_up, self.mc)
        self.head = MappingHead(self.nc, self.mc, self.n_up, self.precision)
        self.trunk = ResnetStack(width, self.n_blocks, self.precision, self.dilation)
        self.tail = MappingTail(self.nc, self.mc, self.n_up, self.precision)
        if self.stats_residual:
            self.stats = StatsResidual(self.stats_residual, self.stats_correction)

    def __call__(self, z: Array) -> Array:
        _check_latent("MappingModel", z, self.nc)
        return _with_stats(self, z, self.tail(self.trunk(self.head(z))))


class MappingModelWithMask(nn.Module):
    """``Mapping_Model_with_mask`` (scratch): head, partial non-local block, trunk, tail.

    Fields as :class:`MappingModel` plus ``nl_res_blocks`` (3, the non-local block's own
    ResnetBlocks, never dilated) and ``query_chunk`` (0 = dense attention; > 0 = chunked
    attention with memory linear in h*w, same result).
    ``__call__(z, mask)``: z B x h x w x nc, mask B x H x W x 1 (1 = scratch) -> B x h x w x nc.
    """

    nc: int = 64
    mc: int = 512
    n_up: int = 4
    n_blocks: int = 6
    nl_res_blocks: int = 3
    dilation: int = 1
    stats_residual: int = 0
    stats_correction: str = "gate"
    query_chunk: int = 0
    precision: Precision = "highest"

    def setup(self):
        width = level_channels(self.nc, self.n_up, self.mc)
        self.head = MappingHead(self.nc, self.mc, self.n_up, self.precision)
        self.nl = PartialNonLocalBlock(width, self.nl_res_blocks, self.query_chunk,
                                       self.precision)
        self.trunk = ResnetStack(width, self.n_blocks, self.precision, self.dilation)
        self.tail = MappingTail(self.nc, self.mc, self.n_up, self.precision)
        if self.stats_residual:
            self.stats = StatsResidual(self.stats_residual, self.stats_correction)

    def __call__(self, z: Array, mask: Array) -> Array:
        _check_latent("MappingModelWithMask", z, self.nc)
        _check_mask("MappingModelWithMask", z, mask)
        return _with_stats(self, z, self.tail(self.trunk(self.nl(self.head(z), mask))))


class MappingModelWithMask2(nn.Module):
    """``Mapping_Model_with_mask_2`` (HR, multi-scale patch attention).

    head -> ``pre`` (stage_blocks ResnetBlocks) -> attn_0 (patch 8) -> between_0 -> attn_1
    (patch 4) -> between_1 -> attn_2 (patch 2) -> ``post`` (stage_blocks ResnetBlocks) -> tail.
    The official class ignores ``mapping_n_block``: every group has 2 blocks, so there is no
    ``n_blocks`` field; ``stage_blocks`` (2) sets them all. ``patch_sizes`` is (8, 4, 2).
    ``query_chunk`` (patch attention similarities): 0 = dense as the official code; > 0 = query
    rows per block, same result, memory linear in the number of patches.

    ``__call__(z, mask)`` is the official ``inference_forward`` (what test.py runs);
    :meth:`train_forward` is the official batched training ``forward``. They agree when the
    batch has one element, the latent sides are multiples of every patch size, the mask has at
    least one query and one key patch at every scale, and every key patch's best match is
    itself (the usual case: its cosine similarity with itself is 1).
    """

    nc: int = 64
    mc: int = 512
    n_up: int = 4
    stage_blocks: int = 2
    patch_sizes: Sequence[int] = (8, 4, 2)
    dilation: int = 1
    stats_residual: int = 0
    stats_correction: str = "gate"
    query_chunk: int = 0
    precision: Precision = "highest"

    def setup(self):
        width = level_channels(self.nc, self.n_up, self.mc)
        stack = lambda: ResnetStack(width, self.stage_blocks, self.precision, self.dilation)
        sizes = tuple(int(p) for p in self.patch_sizes)
        self.head = MappingHead(self.nc, self.mc, self.n_up, self.precision)
        self.pre = stack()
        self.attn = [PatchAttention(width, p, query_chunk=self.query_chunk,
                                    precision=self.precision) for p in sizes]
        self.between = [stack() for _ in sizes[1:]]
        self.post = stack()
        self.tail = MappingTail(self.nc, self.mc, self.n_up, self.precision)
        if self.stats_residual:
            self.stats = StatsResidual(self.stats_residual, self.stats_correction)

    def _run(self, z: Array, mask: Array, training: bool) -> Array:
        _check_latent("MappingModelWithMask2", z, self.nc)
        _check_mask("MappingModelWithMask2", z, mask)
        x = self.pre(self.head(z))
        for s, attn in enumerate(self.attn):
            x = attn(x, mask, training)
            if s < len(self.between):
                x = self.between[s](x)
        return _with_stats(self, z, self.tail(self.post(x)))

    def __call__(self, z: Array, mask: Array) -> Array:
        """Official ``inference_forward(z, mask)``: z B x h x w x nc, mask B x H x W x 1."""
        return self._run(z, mask, training=False)

    def train_forward(self, z: Array, mask: Array) -> Array:
        """Official training ``forward(z, mask)``: per-element batched patch copy of every patch
        (see :func:`patch_attention_training`)."""
        return self._run(z, mask, training=True)
