"""Official face-enhancement ``SPADEGenerator`` state dict -> :class:`SPADEGenerator`.

Official checkpoints: ``Face_Enhancement/checkpoints/{Setting_9_epoch_100,FaceSR_512}/
latest_net_G.pth`` (keys in ``parity/keys/face_spade_256.txt``; 256 and 512 share them). Key map::

    fc.{weight,bias}                                  -> fc/{kernel,bias}
    <blk>.conv_{0,1}.{bias,weight_orig,weight_u,weight_v}  -> <blk>/conv_{0,1}
    <blk>.conv_s.{weight_orig,weight_u,weight_v}      -> <blk>/conv_s (no bias)
    <blk>.norm_{0,1,s}.param_free_norm.running_{mean,var}
                                                      -> batch_stats <blk>/norm_*/param_free_norm
    <blk>.norm_*.mlp_shared.0.{weight,bias}           -> <blk>/norm_*/mlp_shared
    <blk>.norm_*.mlp_{gamma,beta}.{weight,bias}       -> <blk>/norm_*/mlp_{gamma,beta}
    conv_img.{weight,bias}                            -> conv_img/{kernel,bias}

Spectral norm. For ``spectral_norm=False`` (inference) the kernel is the eval-mode effective
weight ``weight_orig / (u . (weight_orig.reshape(out, -1) @ v))``. For ``spectral_norm=True`` the
kernel is ``weight_orig`` and ``u``/``v`` go to the ``spectral`` collection unchanged.

Pre-1.0 PyTorch checkpoints store ``weight`` (the effective weight) instead of ``weight_v``.
PyTorch upgrades them on load: ``sigma = mean(weight_orig / weight)`` and ``v`` is the min-norm
solution of ``W_mat v = u`` rescaled so that ``u . (W_mat v) = sigma``; the eval weight is then
``weight_orig / sigma``. This converter does the same (``v`` via least squares, which equals
PyTorch's ``pinverse(W^T W) W^T u``; ``v`` is anyway replaced by the first training power
iteration). A spectral-normed conv with neither ``weight_v`` nor ``weight`` is a ConversionError.
"""
from __future__ import annotations

import numpy as np

from oldphoto_jax.convert.common import (ConversionError, StateDictReader, assign, conv_kernel,
                                         fold_spectral_norm)
from oldphoto_jax.convert.converters import converter
from oldphoto_jax.models.spade import SPADEGenerator


def upgrade_legacy_spectral(weight_orig: np.ndarray, weight: np.ndarray, u: np.ndarray
                            ) -> tuple[np.ndarray, float]:
    """PyTorch's load-time upgrade of a checkpoint without ``weight_v``: returns (v, sigma)."""
    w_orig = weight_orig.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = float(np.mean(w_orig / weight.astype(np.float64)))
    w_mat = w_orig.reshape(w_orig.shape[0], -1)
    u64 = u.astype(np.float64)
    v = np.linalg.lstsq(w_mat, u64, rcond=None)[0]
    v = v * (sigma / float(np.dot(u64, w_mat @ v)))
    return v.astype(np.float32), sigma


def _spectral_conv(reader: StateDictReader, key: str, cin: int, cout: int, k: int,
                   use_bias: bool, spectral_norm: bool) -> tuple[dict, dict]:
    """(params, spectral vectors) of one spectral-normed conv."""
    weight_orig = reader.take(f"{key}.weight_orig", (cout, cin, k, k))
    u = reader.take(f"{key}.weight_u", (cout,))
    if f"{key}.weight_v" in reader:
        v = reader.take(f"{key}.weight_v", (cin * k * k,))
        sigma = None
    elif f"{key}.weight" in reader:
        weight = reader.take(f"{key}.weight", (cout, cin, k, k))
        v, sigma = upgrade_legacy_spectral(weight_orig, weight, u)
        if not np.isfinite(sigma) or sigma == 0.0:
            raise ConversionError(
                f"{reader.source}: cannot upgrade the old spectral-norm entry "
                f"'{reader.prefix}{key}.weight' (sigma = mean(weight_orig / weight) is {sigma})")
    else:
        raise ConversionError(f"{reader.source}: missing key '{reader.prefix}{key}.weight_v' "
                              f"(spectral norm needs weight_orig, weight_u and weight_v, or an "
                              f"old checkpoint's weight)")
    if spectral_norm:
        params = {"kernel": conv_kernel(weight_orig)}
        spectral = {"u": u, "v": v}
    else:
        if sigma is None:
            folded = fold_spectral_norm(weight_orig, u, v)
        else:
            folded = (weight_orig.astype(np.float64) / sigma).astype(np.float32)
        params = {"kernel": conv_kernel(folded)}
        spectral = {}
    if use_bias:
        params["bias"] = reader.take(f"{key}.bias", (cout,))
    return params, spectral


def _plain_conv(reader: StateDictReader, key: str, cin: int, cout: int, k: int) -> dict:
    return {"kernel": conv_kernel(reader.take(f"{key}.weight", (cout, cin, k, k))),
            "bias": reader.take(f"{key}.bias", (cout,))}


def _spade(reader: StateDictReader, key: str, c: int, nhidden: int, params: dict, stats: dict,
           path: list[str]) -> None:
    norm = f"{key}.param_free_norm"
    assign(stats, path + ["param_free_norm", "mean"], reader.take(f"{norm}.running_mean", (c,)))
    assign(stats, path + ["param_free_norm", "var"], reader.take(f"{norm}.running_var", (c,)))
    reader.skip(f"{norm}.num_batches_tracked")
    assign(params, path + ["mlp_shared"], _plain_conv(reader, f"{key}.mlp_shared.0", 3, nhidden, 3))
    assign(params, path + ["mlp_gamma"], _plain_conv(reader, f"{key}.mlp_gamma", nhidden, c, 3))
    assign(params, path + ["mlp_beta"], _plain_conv(reader, f"{key}.mlp_beta", nhidden, c, 3))


@converter("SPADEGenerator")
def convert_spade_generator(reader: StateDictReader, module: SPADEGenerator) -> dict:
    params: dict = {}
    stats: dict = {}
    spectral: dict = {}
    widths = module.block_widths()
    sn = module.spectral_norm
    assign(params, ["fc"], _plain_conv(reader, "fc", 3, widths["head_0"], 3))
    fin = widths["head_0"]
    for name, fout in widths.items():
        fmiddle = min(fin, fout)
        convs = [("conv_0", fin, fmiddle, 3, True), ("conv_1", fmiddle, fout, 3, True)]
        norms = [("norm_0", fin), ("norm_1", fmiddle)]
        if fin != fout:
            convs.append(("conv_s", fin, fout, 1, False))
            norms.append(("norm_s", fin))
        for conv, cin, cout, k, bias in convs:
            p, s = _spectral_conv(reader, f"{name}.{conv}", cin, cout, k, bias, sn)
            assign(params, [name, conv], p)
            if s:
                assign(spectral, [name, conv], s)
        for norm, c in norms:
            _spade(reader, f"{name}.{norm}", c, module.nhidden, params, stats, [name, norm])
        fin = fout
    assign(params, ["conv_img"], _plain_conv(reader, "conv_img", fin, 3, 3))
    variables = {"params": params, "batch_stats": stats}
    if sn:
        variables["spectral"] = spectral
    return variables
