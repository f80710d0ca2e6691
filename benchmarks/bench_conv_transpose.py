"""Transposed convolution: the lhs-dilated convolution against the sub-pixel phase decomposition
(``oldphoto_jax.layers.conv_transpose``), forward pass, float32, on this machine.

    .venv/bin/python benchmarks/bench_conv_transpose.py [--shapes 1x128x64x64 1x256x64x64]

A shape is ``N x S x CIN x COUT`` (S x S input; ``nn.ConvTranspose2d(k=4, stride=2, padding=1)``,
the VAE decoder's, gives 2S x 2S). Per form: wall milliseconds, CPU (user + sys) milliseconds and
minor page faults per call, the mean of ``--calls`` calls after a warm-up, twice in alternation;
and the largest difference between the two outputs. The CPU tuning of
:mod:`oldphoto_jax.cpu_tuning` is applied (``OLDPHOTO_JAX_CPU_TUNING=0`` measures without it).
"""
from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np


def measure(fn, args, calls: int) -> tuple[float, float, float]:
    before, began = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(calls):
        fn(*args).block_until_ready()
    wall = (time.perf_counter() - began) / calls
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / calls
    return wall * 1e3, cpu * 1e3, (after.ru_minflt - before.ru_minflt) / calls


def main() -> None:
    import jax
    import jax.numpy as jnp

    from oldphoto_jax import layers

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="+", default=["1x128x64x64", "1x256x64x64"])
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()
    print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; load average "
          f"{os.getloadavg()[0]:.1f}")
    print("| shape | form | wall ms | CPU ms | faults |\n|---|---|---:|---:|---:|")
    rng = np.random.default_rng(0)
    padding = ((2, 2), (2, 2))
    forms = {
        "dilated": jax.jit(lambda x, w: layers.conv2d(x, w, lhs_dilation=2, padding_hw=padding)),
        "phases": jax.jit(lambda x, w: layers.conv_transpose(x, w, 2, padding)),
    }
    for shape in args.shapes:
        n, s, cin, cout = (int(v) for v in shape.split("x"))
        x = jnp.asarray(rng.standard_normal((n, s, s, cin)), jnp.float32)
        w = jnp.asarray(rng.standard_normal((4, 4, cin, cout)) / np.sqrt(16 * cin), jnp.float32)
        outputs = {name: fn(x, w).block_until_ready() for name, fn in forms.items()}
        for _ in range(2):
            for name, fn in forms.items():
                wall, cpu, faults = measure(fn, (x, w), args.calls)
                print(f"| {shape} | {name} | {wall:.1f} | {cpu:.1f} | {faults:,.0f} |", flush=True)
        diff = float(jnp.max(jnp.abs(outputs["dilated"] - outputs["phases"])))
        print(f"| {shape} | max abs difference | {diff:.2e} | | |")


if __name__ == "__main__":
    from oldphoto_jax import cpu_tuning

    cpu_tuning.apply()  # before the JAX backend starts
    main()
