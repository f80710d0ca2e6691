"""Throughput of the grain input pipeline: degraded 256x256 samples per second by workers.

    .venv/bin/python benchmarks/bench_input_pipeline.py [--batches 20] [--batch-size 16]
        [--workers 0 1 2] [--cases mapping_mask:official mapping_mask:extended]
        [--read-threads 1] [--cache-mb 512] [--repeats 1]

Each case is ``records:preset`` (kinds of ``oldphoto_jax.data.config.RECORDS``; ``mapping`` and
``domain_a`` degrade the full photo before cropping, the official recipe; add ``:crop`` to degrade
the crop instead). For every case and worker count the script builds a fresh iterator over the
clean (and old) photos, discards two warm-up batches (worker start-up, first decodes), then times
``--batches`` batches as the training loop would receive them. With ``--repeats`` above 1 the best
rate is printed. The load average is printed with each row: the machine may be shared, so each
cell also gives the CPU time the pipeline spent per sample (training process + workers, from
/proc), which other users' load barely changes: 2 free cores bound the rate by 2000 / (CPU ms).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import time

from oldphoto_jax.data import FolderPhotos, InputConfig, TrainingPhotos, batch_iterator

PHOTOS = "/work/shared/photos"
DEFAULT_CASES = ("mapping_mask:official", "mapping_mask:extended")


def parse_case(case: str) -> dict:
    """``records:preset[:crop]`` to ``InputConfig`` keyword arguments."""
    parts = case.split(":")
    settings = {"records": parts[0], "preset": parts[1] if len(parts) > 1 else "official"}
    if len(parts) > 2:
        if parts[2] != "crop":
            raise ValueError(f"unknown case option {parts[2]!r} (only 'crop')")
        settings["degrade_full_image"] = False
    return settings


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of the processes ``pids`` (Linux /proc)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def measure(config: InputConfig, photos: TrainingPhotos, batches: int,
            warmup: int = 2) -> tuple[float, float]:
    """(samples per second, CPU milliseconds per sample) over ``batches`` batches after
    ``warmup`` batches."""
    iterator = batch_iterator(config, photos)
    try:
        for _ in range(warmup):
            next(iterator)
        pids = [os.getpid()] + [child.pid for child in multiprocessing.active_children()]
        cpu_start, start = cpu_seconds(pids), time.perf_counter()
        for _ in range(batches):
            next(iterator)
        elapsed = time.perf_counter() - start
        cpu = cpu_seconds(pids) - cpu_start
    finally:
        if config.num_workers:
            iterator.close()
    samples = batches * config.batch_size
    return samples / elapsed, 1e3 * cpu / samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", default=PHOTOS, help="folder with clean/, old/, old_w_scratch/")
    parser.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES))
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--crop-size", type=int, default=256)
    parser.add_argument("--read-threads", type=int, default=1)
    parser.add_argument("--cache-mb", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    clean = FolderPhotos(os.path.join(args.photos, "clean"), cache_mb=args.cache_mb)
    old = tuple(FolderPhotos(os.path.join(args.photos, name), cache_mb=args.cache_mb)
                for name in ("old", "old_w_scratch")
                if os.path.isdir(os.path.join(args.photos, name)))
    photos = TrainingPhotos(clean=clean, old=old)
    print(f"{args.crop_size}x{args.crop_size} samples/s, batch {args.batch_size}, "
          f"{args.batches} timed batches after 2 warm-up, read threads {args.read_threads}, "
          f"cache {args.cache_mb} MiB, best of {args.repeats}; {os.cpu_count()} CPUs; "
          f"{len(clean)} clean, {sum(len(o) for o in old)} old photos")
    print("cells: samples/s (CPU ms per sample)")
    header = f"{'case':<28}" + "".join(f"{f'{w} workers':>18}" for w in args.workers)
    print(header + f"{'load avg':>10}")
    for case in args.cases:
        cells = ""
        for workers in args.workers:
            config = InputConfig(batch_size=args.batch_size, crop_size=args.crop_size,
                                 num_workers=workers, read_threads=args.read_threads,
                                 cache_mb=args.cache_mb, **parse_case(case))
            rate, cpu_ms = max(measure(config, photos, args.batches) for _ in range(args.repeats))
            cells += f"{rate:>10.1f} ({cpu_ms:>4.1f})"
        print(f"{case:<28}{cells}{os.getloadavg()[0]:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
