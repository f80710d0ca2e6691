"""Convolution kernel gradients on this machine: XLA's own against im2col + matmul.

    .venv/bin/python benchmarks/bench_conv_grad.py
    .venv/bin/python benchmarks/bench_conv_grad.py --shapes 4x256x64x64 8x128x16x16

Each shape ``NxSxCINxCOUT`` is a 3x3 stride-1 zero-padded convolution of an N x S x S x CIN batch;
the table gives the time of the forward pass and of the kernel gradient with each formulation
(``oldphoto_jax.layers.WEIGHT_GRADIENTS``; ``train.py --config.conv_weight_grad=im2col``) and
their largest relative difference. The load average is printed: the machine may be shared.
"""
from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from oldphoto_jax import layers

DEFAULT_SHAPES = ["8x128x16x16", "8x64x32x32", "8x32x128x128", "4x256x64x64"]


def timed(fn, *args, seconds: float) -> float:
    """Mean seconds per call after one warm-up call, over at least ``seconds``."""
    jax.block_until_ready(fn(*args))
    began, calls = time.perf_counter(), 0
    while time.perf_counter() - began < seconds or calls == 0:
        jax.block_until_ready(fn(*args))
        calls += 1
    return (time.perf_counter() - began) / calls


def kernel_gradient(mode: str):
    def loss(x, w, dy):
        return jnp.vdot(layers.conv2d(x, w, padding=1), dy)

    def grad(x, w, dy):
        with layers.using_conv_weight_gradient(mode):
            return jax.grad(loss, argnums=1)(x, w, dy)

    return jax.jit(grad)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="+", default=DEFAULT_SHAPES)
    parser.add_argument("--seconds", type=float, default=2.0, help="timing per measurement")
    args = parser.parse_args(argv)
    print(f"{jax.devices()[0].device_kind}; load average {os.getloadavg()[0]:.1f}")
    header = (f"{'shape':>16s} {'forward ms':>11s} {'xla grad ms':>12s} {'im2col grad ms':>15s} "
              f"{'speed-up':>9s} {'rel diff':>9s}")
    print(header)
    print("-" * len(header), flush=True)
    forward = jax.jit(lambda x, w: layers.conv2d(x, w, padding=1))
    for shape in args.shapes:
        n, size, cin, cout = (int(v) for v in shape.split("x"))
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.standard_normal((n, size, size, cin)), jnp.float32)
        w = jnp.asarray(rng.standard_normal((3, 3, cin, cout)), jnp.float32)
        dy = jnp.asarray(rng.standard_normal((n, size, size, cout)), jnp.float32)
        t_fwd = timed(forward, x, w, seconds=args.seconds)
        grads, times = {}, {}
        for mode in layers.WEIGHT_GRADIENTS:
            fn = kernel_gradient(mode)
            grads[mode] = fn(x, w, dy)
            times[mode] = timed(fn, x, w, dy, seconds=args.seconds)
        diff = float(jnp.max(jnp.abs(grads["im2col"] - grads["xla"])) /
                     jnp.max(jnp.abs(grads["xla"])))
        print(f"{shape:>16s} {t_fwd * 1e3:11.1f} {times['xla'] * 1e3:12.1f} "
              f"{times['im2col'] * 1e3:15.1f} {times['xla'] / times['im2col']:8.2f}x "
              f"{diff:9.1e}", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    from oldphoto_jax import cpu_tuning

    cpu_tuning.apply()  # before the JAX backend starts
    main()
