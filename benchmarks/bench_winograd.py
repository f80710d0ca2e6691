"""Direct against Winograd F(2x2, 3x3) 3x3 convolutions on XLA:CPU, per layer shape (a benchmark).

    .venv/bin/python benchmarks/bench_winograd.py                       # the networks' shapes
    .venv/bin/python benchmarks/bench_winograd.py --shapes 64x64x512:512 --repeats 9

For each shape (N=1, H x W x C_in : C_out, reflection-padded as the ResnetBlocks pad): wall ms
(median of ``--repeats``), CPU ms per call (user + sys over the timed calls), GFLOP/s of the
direct convolution's multiply-adds, and the max absolute error of each against a float64
reference. Both run with ``oldphoto_jax.cpu_tuning`` applied, as the entry points do.
"""
from __future__ import annotations

import resource
import statistics
import time

from absl import app, flags

from oldphoto_jax import cpu_tuning

cpu_tuning.apply()

import jax  # noqa: E402  (after the tuning: XLA reads its flags when the backend starts)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from oldphoto_jax import layers, winograd  # noqa: E402
from oldphoto_jax.bench import per_run_usage  # noqa: E402

# The widest 3x3 layers of each network at the benchmark's photo sizes (benchmarks/README.md).
DEFAULT_SHAPES = ("64x64x512:512",    # mapping trunk, quality 256
                  "128x128x512:512",  # mapping trunk, 512
                  "64x64x256:256",    # UNet / VAE
                  "256x256x64:64",    # UNet, VAE ResnetBlocks at full size
                  "256x256x128:128",  # face generator SPADE at 256
                  "32x32x1024:512",   # UNet bottom
                  "64x64x128:512",    # face generator SPADE gamma / beta
                  "128x128x64:64")

_SHAPES = flags.DEFINE_list("shapes", list(DEFAULT_SHAPES), "HxWxCin:Cout per case.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per case (after one warm-up call).")


def parse_shape(text: str) -> tuple[int, int, int, int]:
    spatial, cout = text.split(":")
    h, w, cin = (int(v) for v in spatial.split("x"))
    return h, w, cin, int(cout)


def time_call(compiled, args, repeats: int) -> tuple[float, float]:
    """(median wall ms, CPU ms per call)."""
    jax.block_until_ready(compiled(*args))
    before = resource.getrusage(resource.RUSAGE_SELF)
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - began)
    usage = per_run_usage(before, resource.getrusage(resource.RUSAGE_SELF), repeats)
    return 1e3 * statistics.median(times), 1e3 * (usage["user_s"] + usage["sys_s"])


def main(argv):
    del argv
    print(f"# {cpu_tuning.describe()}")
    print("| shape | algorithm | wall ms | CPU ms | GFLOP/s (direct's work) | max error vs float64 |")
    print("|---|---|---:|---:|---:|---:|")
    for text in _SHAPES.value:
        h, w, cin, cout = parse_shape(text)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((1, h, w, cin)).astype(np.float32)
        k = (rng.standard_normal((3, 3, cin, cout)) / np.sqrt(9 * cin)).astype(np.float32)
        direct = lambda a, b: layers.conv2d(layers.reflect_pad(a, 1), b)  # noqa: E731
        fast = lambda a, b: winograd.conv3x3(layers.reflect_pad(a, 1), b,  # noqa: E731
                                             ((0, 0), (0, 0)), "highest")
        with jax.enable_x64(), layers.using_conv_algorithm("direct"):
            reference = np.asarray(direct(jnp.asarray(x, jnp.float64),
                                          jnp.asarray(k, jnp.float64)))
        flop = 2 * 9 * h * w * cin * cout
        args = (jnp.asarray(x), jnp.asarray(k))
        for name, fn in (("direct", direct), ("winograd", fast)):
            with layers.using_conv_algorithm("direct"):  # conv2d itself would choose ("auto")
                compiled = jax.jit(fn).lower(*args).compile()
            error = float(np.abs(np.asarray(compiled(*args)) - reference).max())
            wall, cpu = time_call(compiled, args, _REPEATS.value)
            print(f"| {text} | {name} | {wall:.1f} | {cpu:.1f} | {flop / wall / 1e6:.0f} | "
                  f"{error:.1e} |", flush=True)


if __name__ == "__main__":
    app.run(main)
