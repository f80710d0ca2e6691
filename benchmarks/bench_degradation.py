"""Throughput of the synthetic degradation on random crops of the clean photos (one process).

    .venv/bin/python benchmarks/bench_degradation.py [--input DIR] [--n 300] [--size 256]
        [--per-op] [--processes 2]

Prints samples per second for each preset in one process; with --processes P also the combined
rate of P independent processes (a rough stand-in for P data-loader workers); with --per-op the
cost of every op on its own (median ms per call when it runs, and the expected ms per sample
given its probability).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import time

import numpy as np

from data_synth import config as config_lib
from data_synth import imagefiles, ops, pipeline

DEFAULT_INPUT = "/work/shared/photos/clean"


def crop_pool(folder: str, size: int, count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` random ``size`` crops cycling over the readable photos of ``folder``."""
    photos = [image for _, image in imagefiles.load_readable(imagefiles.list_images(folder))]
    rng = np.random.default_rng(seed)
    return [imagefiles.random_crop(photos[i % len(photos)], size, rng) for i in range(count)]


def time_preset(crops: list[np.ndarray], config, n: int) -> dict[str, float]:
    """Runs ``n`` samples (after a short warm-up) and returns throughput and latency figures."""
    for i in range(10):
        pipeline.degrade(crops[i % len(crops)], (999, i), config)
    durations = np.empty(n)
    start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        pipeline.degrade(crops[i % len(crops)], i, config)
        durations[i] = time.perf_counter() - t0
    total = time.perf_counter() - start
    return {
        "samples_per_s": n / total,
        "mean_ms": 1e3 * durations.mean(),
        "p50_ms": 1e3 * np.median(durations),
        "p95_ms": 1e3 * np.percentile(durations, 95),
    }


def _worker(args: tuple[str, int, int, str, int]) -> tuple[float, float]:
    """Degrades ``n`` crops in a fresh process; returns the wall-clock start and end."""
    folder, size, n, preset, worker = args
    crops = crop_pool(folder, size, 32, seed=worker)
    config = config_lib.get_preset(preset)
    pipeline.degrade(crops[0], (worker, 10**9), config)  # warm-up
    start = time.time()
    for i in range(n):
        pipeline.degrade(crops[i % len(crops)], (worker, i), config)
    return start, time.time()


def time_processes(folder: str, size: int, n: int, preset: str, processes: int) -> float:
    """Combined samples per second of ``processes`` workers, each degrading ``n`` samples."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        spans = pool.map(_worker, [(folder, size, n, preset, w) for w in range(processes)])
    first_start = min(start for start, _ in spans)
    last_end = max(end for _, end in spans)
    return processes * n / (last_end - first_start)


def time_ops(
    crops: list[np.ndarray], config, repeats: int = 40
) -> list[tuple[str, float, float, float]]:
    """(op, p, median ms per call, expected ms per sample) for every op of ``config``."""
    rows = []
    rng = np.random.default_rng(0)
    names = [name for step in config.step_order for name in config.steps[step].ops]
    for name in names:
        op, op_config = ops.get_op(name), config.ops[name]
        durations = []
        for i in range(repeats):
            image = crops[i % len(crops)]
            params = op.sample(rng, op_config, image.shape)
            t0 = time.perf_counter()
            op.apply(image, rng, params, op_config, config.min_change)
            durations.append(time.perf_counter() - t0)
        median_ms = 1e3 * float(np.median(durations))
        rows.append((name, float(op_config.p), median_ms, median_ms * float(op_config.p)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", default=DEFAULT_INPUT)
    parser.add_argument("--n", type=int, default=300, help="samples per preset")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--per-op", action="store_true")
    parser.add_argument("--processes", type=int, default=0, help="also time P parallel processes")
    args = parser.parse_args()

    crops = crop_pool(args.input, args.size, 64)
    print(f"{args.size}x{args.size} crops, {args.n} samples per preset, 1 process, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"{'preset':<10} {'samples/s':>10} {'mean ms':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for name in config_lib.PRESETS:
        r = time_preset(crops, config_lib.get_preset(name), args.n)
        print(f"{name:<10} {r['samples_per_s']:>10.1f} {r['mean_ms']:>8.2f} "
              f"{r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f}")
    if args.processes:
        print(f"\n{args.processes} processes x {args.n} samples")
        print(f"{'preset':<10} {'samples/s':>10}")
        for name in config_lib.PRESETS:
            rate = time_processes(args.input, args.size, args.n, name, args.processes)
            print(f"{name:<10} {rate:>10.1f}")
    if args.per_op:
        for name in config_lib.PRESETS:
            print(f"\nper op ({name} preset)")
            print(f"{'op':<16} {'p':>5} {'ms/call':>8} {'ms/sample':>10}")
            for op, p, per_call, per_sample in time_ops(crops, config_lib.get_preset(name)):
                print(f"{op:<16} {p:>5.2f} {per_call:>8.2f} {per_sample:>10.2f}")


if __name__ == "__main__":
    main()
