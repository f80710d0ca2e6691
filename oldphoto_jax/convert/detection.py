"""Official scratch-detection UNet state dict -> :class:`~oldphoto_jax.models.unet.ScratchUNet`.

Official checkpoint: ``Global/checkpoints/detection/FT_Epoch_latest.pt``, entry ``model_state``
(keys listed in ``parity/keys/scratch_unet.txt``). Key map (i: down level, j: up level, k: conv
index inside a conv block)::

    first.1.{weight,bias}                         -> first/{kernel,bias}
    down_sample.i.1.{weight,bias}                 -> down_sample_i/conv
    down_sample.i.2.{weight,bias,running_*}       -> down_sample_i/norm (params + batch_stats)
    down_sample.i.4.filt                          -> checked to be the fixed blur, not stored
    down_path.i.block.{4k+1}.{weight,bias}        -> down_path_i/conv_k
    down_path.i.block.{4k+2}.*                    -> down_path_i/norm_k
    up_path.j.up.2.{weight,bias}                  -> up_path_j/up_conv
    up_path.j.conv_block.block.{4k+1|4k+2}.*      -> up_path_j/conv_block/{conv_k|norm_k}
    last.1.{weight,bias}                          -> last/{kernel,bias}

Every ``num_batches_tracked`` is skipped (unused in eval).
"""
from __future__ import annotations

import numpy as np

from oldphoto_jax.convert.common import ConversionError, StateDictReader, assign, conv_kernel
from oldphoto_jax.convert.converters import converter
from oldphoto_jax.models.unet import ScratchUNet, blur_filter_3x3


def _conv(reader: StateDictReader, key: str, cin: int, cout: int, k: int) -> dict:
    return {"kernel": conv_kernel(reader.take(f"{key}.weight", (cout, cin, k, k))),
            "bias": reader.take(f"{key}.bias", (cout,))}


def _batch_norm(reader: StateDictReader, key: str, c: int, params: dict, stats: dict,
                path: list[str]) -> None:
    assign(params, path + ["scale"], reader.take(f"{key}.weight", (c,)))
    assign(params, path + ["bias"], reader.take(f"{key}.bias", (c,)))
    assign(stats, path + ["mean"], reader.take(f"{key}.running_mean", (c,)))
    assign(stats, path + ["var"], reader.take(f"{key}.running_var", (c,)))
    reader.skip(f"{key}.num_batches_tracked")


def _conv_block(reader: StateDictReader, key: str, cin: int, cout: int, conv_num: int,
                params: dict, stats: dict, path: list[str]) -> None:
    for k in range(conv_num):
        assign(params, path + [f"conv_{k}"],
               _conv(reader, f"{key}.{4 * k + 1}", cin if k == 0 else cout, cout, 3))
        _batch_norm(reader, f"{key}.{4 * k + 2}", cout, params, stats, path + [f"norm_{k}"])


def check_blur_filter(reader: StateDictReader, key: str, channels: int) -> None:
    """The anti-aliasing buffer must be the fixed [1,2,1]x[1,2,1]/16 filter on every channel."""
    filt = reader.take(key, (channels, 1, 3, 3))
    expected = np.broadcast_to(blur_filter_3x3(), (channels, 1, 3, 3))
    if not np.allclose(filt, expected, rtol=0.0, atol=1e-7):
        worst = float(np.max(np.abs(filt - expected)))
        raise ConversionError(
            f"{reader.source}: key '{reader.prefix + key}' is not the fixed [1,2,1]x[1,2,1]/16 "
            f"blur filter (max deviation {worst:.3g}); this network keeps it constant")


@converter("ScratchUNet")
def convert_scratch_unet(reader: StateDictReader, module: ScratchUNet) -> dict:
    params: dict = {}
    stats: dict = {}
    wf, depth, n = module.wf, module.depth, module.conv_num
    assign(params, ["first"], _conv(reader, "first.1", module.in_channels, 2 ** wf, 7))
    for i in range(depth):
        c = 2 ** (wf + i)
        assign(params, [f"down_sample_{i}", "conv"], _conv(reader, f"down_sample.{i}.1", c, c, 3))
        _batch_norm(reader, f"down_sample.{i}.2", c, params, stats, [f"down_sample_{i}", "norm"])
        check_blur_filter(reader, f"down_sample.{i}.4.filt", c)
        _conv_block(reader, f"down_path.{i}.block", c, 2 * c, n, params, stats,
                    [f"down_path_{i}"])
    for j in range(depth):
        cin = 2 ** (wf + depth - j)
        cout = cin // 2
        assign(params, [f"up_path_{j}", "up_conv"],
               _conv(reader, f"up_path.{j}.up.2", cin, cout, 3))
        _conv_block(reader, f"up_path.{j}.conv_block.block", cin, cout, n, params, stats,
                    [f"up_path_{j}", "conv_block"])
    assign(params, ["last"], _conv(reader, "last.1", 2 ** wf, module.out_channels, 3))
    return {"params": params, "batch_stats": stats}
