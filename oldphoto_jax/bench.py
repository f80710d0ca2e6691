"""Time and peak memory of the inference stages, per stage and photo size (a benchmark, not a test).

    .venv/bin/python -m oldphoto_jax.bench                               # the bundled model
    .venv/bin/python -m oldphoto_jax.bench --checkpoint_dir models/official --sizes 256,512,1024
    .venv/bin/python -m oldphoto_jax.bench --random_widths official --sizes 256,512
    .venv/bin/python -m oldphoto_jax.bench --stages restore_scratch --sizes 2048 --repeats 0

Each (stage, size) case runs in a fresh process, so its peak memory is its own: the jitted
function the pipeline uses (``oldphoto_jax.pipeline.stage1``, the face generator), with the
networks set up as ``infer.py`` sets them (``pipeline.stage_runner.inference_network``: precision,
attention chunk), is compiled ahead of time (``compile s``; as in ``infer.py``, through the
persistent compilation cache of :mod:`oldphoto_jax.compile_cache`, so a second benchmark of the
same case reads the executable back: ``OLDPHOTO_JAX_COMPILE_CACHE=0`` measures without), run once (``first run s``) and then
``--repeats`` times (``run s``: the median). ``peak RSS`` is the process's peak resident memory
(interpreter, JAX, weights and XLA's buffers), ``rss0`` the same before the first compilation;
on a GPU/TPU the device's peak bytes in use are reported too. Inputs are a synthetic photo of
``size`` x ``size`` with a few scratch lines (the content does not change the work). Stages:

* ``detect``: the scratch UNet on the photo resized to short side 256 (as the pipeline does,
  so its cost does not grow with the photo);
* ``restore_quality`` / ``restore_scratch`` / ``restore_hr``: VAE_A encoder -> mapping ->
  VAE_B decoder at full size; the scratch mappings with ``--attention_chunk``;
* ``face_256`` / ``face_512``: the face generator of that size on one aligned face (``face``
  on the command line selects both; the photo size does not apply).

Stages whose networks the model lacks are skipped with a note.

Per case the table also gives the CPU seconds of one run (``user s``, ``sys s``: the process's
``getrusage``, all threads, averaged over the timed runs), its minor page faults (``faults``: a
high count with a high ``sys s`` means the allocator maps and unmaps large buffers on every run)
and, where the official PyTorch code was measured on the same machine (:data:`OFFICIAL`), its time
and peak memory and our ratio to them. ``GFLOP`` is one run's matrix-product and convolution
work as computed (:mod:`oldphoto_jax.flop_count`: Winograd layers count their transformed
products), ``GFLOP/s`` that over ``run s``, and ``% of peak`` the share of the device's float32
peak (known GPUs: :data:`DEVICE_PEAK_TFLOPS`; a CPU's with ``--peak_tflops``). Every entry point
applies :mod:`oldphoto_jax.cpu_tuning` first (``OLDPHOTO_JAX_CPU_TUNING=0`` measures without
it); the header line says which.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import pathlib
import queue
import resource
import statistics
import sys
import time

import numpy as np
from absl import app, flags

from oldphoto_jax import compile_cache, cpu_tuning, params_cache
from oldphoto_jax.inference_defaults import ATTENTION_CHUNK
from oldphoto_jax.pipeline import stage_runner
from oldphoto_jax.roles import MODE_ROLES

STAGES = ("detect", "restore_quality", "restore_scratch", "restore_hr", "face_256", "face_512")
STAGE_ROLES = {
    "detect": ("scratch_detector",),
    "restore_quality": MODE_ROLES["quality"],
    "restore_scratch": MODE_ROLES["scratch"],
    "restore_hr": MODE_ROLES["scratch_hr"],
    "face_256": ("face_256",),
    "face_512": ("face_512",),
}
FACE_SIDES = {"face_256": 256, "face_512": 512}

# The official PyTorch code (github.com/microsoft/Bringing-Old-Photos-Back-to-Life) with the same
# weights, measured for issue 18: official PyTorch 2.13 code, 2 threads, fp32, batch 1, measured
# on this 2-core machine 2026-12, from issue 18 (each case in a fresh process, median of 3 runs
# after a warm-up). (stage, photo side) -> (seconds per run, peak RSS MiB). Kept as the issue
# gave it; re-measured on a 2-core Intel Xeon on 2026-12-06 with benchmarks/official_pytorch/
# (same cases and inputs): 0.63, 1.20, 5.33, 16.70, 9.91, 1.50 and 7.23 s, peaks 647, 505,
# 648, 4767, 958, 1183 and 1979 MiB, in this order (benchmarks/README.md).
OFFICIAL_PROVENANCE = ("official PyTorch 2.13 code, 2 threads, fp32, batch 1, measured on this "
                       "2-core machine 2026-12, from issue 18")
OFFICIAL = {
    ("detect", 256): (0.71, 804),
    ("restore_quality", 256): (1.14, 524),
    ("restore_quality", 512): (5.05, 668),
    ("restore_scratch", 512): (14.28, 4746),
    ("restore_hr", 512): (9.02, 994),
    ("face_256", 256): (1.69, 1219),
    ("face_512", 512): (7.25, 1978),
}

# The same seven cases timed on the 2-core AMD EPYC machines of this project (sessions get
# either kind of CPU; the one above was faster), with the official code's networks built from
# its own source files and loaded with the parity fixtures' weights (each verified against the
# fixtures first), on the bench's synthetic photo, each case in a fresh process, median of 3
# runs after a warm-up, with no other process using the CPU (benchmarks/README.md).
OFFICIAL_EPYC_PROVENANCE = ("official PyTorch 2.13 code (torch 2.13.0+cpu), 2 threads, fp32, "
                            "batch 1, measured on a 2-core AMD EPYC machine 2026-12-05, load < 0.1")
OFFICIAL_EPYC = {
    ("detect", 256): (1.12, 614),
    ("restore_quality", 256): (2.00, 539),
    ("restore_quality", 512): (8.79, 669),
    ("restore_scratch", 512): (18.26, 4739),
    ("restore_hr", 512): (16.58, 977),
    ("face_256", 256): (2.61, 1207),
    ("face_512", 512): (10.25, 2022),
}


# Dense float32 peak of the accelerators this project is lent, TFLOP/s (NVIDIA's datasheets: the
# CUDA cores' FP32 rate, not the tensor cores' TF32 one, since infer.py's default matmul
# precision is "highest", i.e. true float32). (substring of jax's device_kind, peak), the first
# match wins. A CPU's peak depends on its clock and vector units: give it with --peak_tflops.
DEVICE_PEAK_TFLOPS = (
    ("H200 NVL", 60.0),
    ("H200", 67.0),     # H200 SXM
    ("H100 NVL", 60.0),
    ("H100 PCIe", 51.0),
    ("H100", 67.0),     # H100 SXM ("NVIDIA H100 80GB HBM3")
    ("A100", 19.5),
)


def device_peak_tflops(device_kind: str) -> float | None:
    """The float32 peak of a device from :data:`DEVICE_PEAK_TFLOPS`, or None if unknown."""
    for name, peak in DEVICE_PEAK_TFLOPS:
        if name in device_kind:
            return peak
    return None


def rate_fields(flops: float | None, run_s: float, peak_tflops: float | None) -> dict:
    """``gflop`` per run, achieved ``gflop_per_s`` and, with a peak, ``peak_fraction``."""
    if not flops or run_s <= 0:
        return {}
    fields = {"gflop": flops / 1e9, "gflop_per_s": flops / run_s / 1e9}
    if peak_tflops:
        fields["peak_tflops"] = peak_tflops
        fields["peak_fraction"] = fields["gflop_per_s"] / (peak_tflops * 1e3)
    return fields


def cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def official_reference(cpu_model: str | None = None) -> tuple[dict, str]:
    """(official times, their provenance) measured on this kind of CPU: :data:`OFFICIAL_EPYC`
    on an AMD EPYC, else :data:`OFFICIAL` (issue 18's machine)."""
    cpu_model = cpu_model_name() if cpu_model is None else cpu_model
    if "AMD EPYC" in cpu_model:
        return OFFICIAL_EPYC, OFFICIAL_EPYC_PROVENANCE
    return OFFICIAL, OFFICIAL_PROVENANCE


def expand_stages(names) -> list[str]:
    """Command-line stage names -> :data:`STAGES` (``face`` = both face sizes); raises
    ValueError on an unknown name."""
    stages = []
    for name in names:
        for stage in (("face_256", "face_512") if name == "face" else (name,)):
            if stage not in STAGES:
                raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}, face")
            if stage not in stages:
                stages.append(stage)
    return stages


def synthetic_photo(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth ``size`` x ``size`` RGB photo (uint8) and a {0, 1} float32 mask of six 3 px
    lines."""
    import cv2

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / max(size, 1)
    photo = np.stack([127 + 100 * np.sin(7 * x + c) * np.cos(5 * y - c) for c in range(3)], -1)
    photo = np.clip(photo + rng.normal(0, 3, photo.shape), 0, 255).astype(np.uint8)
    mask = np.zeros((size, size), np.uint8)
    for _ in range(6):
        points = rng.integers(0, size, (4, 2)).astype(np.int32)
        cv2.polylines(mask, [points], False, 1, 3)
    return photo, mask.astype(np.float32)


def _status_mib(field: str) -> float:
    """A memory field of /proc/self/status in MiB: "VmRSS" (now) or "VmHWM" (the peak of this
    program image; unlike ``getrusage``'s maxrss it does not carry the parent's peak over a
    fork + exec)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    if field == "VmHWM":
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return float("nan")


def _case_function(model, stage: str, size: int, attention_chunk: int):
    """(jittable function, its arguments, the side it runs at) of one case."""
    import jax.numpy as jnp
    from PIL import Image

    from oldphoto_jax.pipeline import preprocess, stage1

    photo, mask = synthetic_photo(size)
    precision = stage_runner.Options().precision  # infer.py's default

    def network(role):
        return stage_runner.inference_network(model, role, precision=precision,
                                              attention_chunk=attention_chunk)

    if stage == "detect":
        module, variables = network("scratch_detector")
        _, unet_input = preprocess.detection_input(Image.fromarray(photo))
        return (stage1.detection_function(module), (variables, jnp.asarray(unet_input)),
                min(unet_input.shape[1:3]))
    if stage in FACE_SIDES:
        module, variables = network(stage)
        side = int(module.load_size)
        face = np.asarray(Image.fromarray(photo).resize((side, side), Image.BICUBIC))
        return (lambda p, x: module.apply(p, x)), (
            variables, jnp.asarray(preprocess.to_network_input(face))), side
    fn, args = restoration_case(model, stage, photo, mask, precision, attention_chunk)
    return fn, args, size


def restoration_case(model, stage: str, photo: np.ndarray, mask: np.ndarray, precision: str,
                     attention_chunk: int):
    """(jittable restoration of ``stage``, its arguments): (parameters, image) for
    ``restore_quality``, (parameters, image, mask) for the scratch stages."""
    import jax.numpy as jnp

    from oldphoto_jax.pipeline import preprocess, stage1

    networks = [stage_runner.inference_network(model, role, precision=precision,
                                               attention_chunk=attention_chunk)
                for role in STAGE_ROLES[stage]]
    fn = stage1.restoration_function(*(m for m, _ in networks))
    params = tuple(v for _, v in networks)
    image = jnp.asarray(preprocess.to_network_input(photo))
    if stage == "restore_quality":
        return (lambda p, x: fn(p, x)), (params, image)
    return fn, (params, image, jnp.asarray(mask[None, :, :, None], jnp.float32))


def run_case(checkpoint_dir: str, stage: str, size: int, repeats: int,
             attention_chunk: int, peak_tflops: float = 0.0) -> dict:
    """Measures one case in this process (call it in a fresh one for a clean peak).
    ``peak_tflops``: the device's float32 peak for ``peak_fraction`` (0: from
    :data:`DEVICE_PEAK_TFLOPS`, none for a CPU)."""
    import jax

    from oldphoto_jax import compile_cache, flop_count, model_files, params_cache

    compile_cache.enable()  # as infer.py: a warm cache skips XLA's compilation
    params_cache.enable()  # and the weights are read without orbax
    model = model_files.load_model(checkpoint_dir)
    fn, args, side = _case_function(model, stage, size, attention_chunk)
    cpu_tuning.release_free_memory()  # as the pipeline does after loading and compiling
    rss0 = _status_mib("VmRSS")
    began = time.perf_counter()
    traced = jax.jit(fn).trace(*args)
    compiled = traced.lower().compile()
    compile_s = time.perf_counter() - began
    flops = flop_count.jaxpr_flops(traced.jaxpr)  # the traced function's, not traced again
    del traced
    cpu_tuning.release_free_memory()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    first_s = time.perf_counter() - began
    times = []
    if repeats:  # the CPU counters cover the timed runs, else the first one
        usage = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(repeats):
        began = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - began)
    runs = per_run_usage(usage, resource.getrusage(resource.RUSAGE_SELF), max(repeats, 1))
    result = {
        "stage": stage, "size": size, "network_side": side, "output_shape": list(np.shape(out)),
        "compile_s": compile_s, "first_run_s": first_s,
        "run_s": statistics.median(times) if times else first_s,
        **runs,
        "rss0_mib": rss0,
        "peak_rss_mib": _status_mib("VmHWM"),
        "device": str(jax.devices()[0].device_kind),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    result.update(official_comparison(result, official_reference()[0]))
    result.update(rate_fields(flops, result["run_s"],
                              peak_tflops or device_peak_tflops(result["device"])))
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        result["device_peak_mib"] = stats["peak_bytes_in_use"] / 2 ** 20
    return result


def per_run_usage(before, after, runs: int) -> dict:
    """CPU user/system seconds and minor page faults per run between two ``getrusage`` results."""
    return {"user_s": (after.ru_utime - before.ru_utime) / runs,
            "sys_s": (after.ru_stime - before.ru_stime) / runs,
            "minor_faults": (after.ru_minflt - before.ru_minflt) / runs}


def official_comparison(result: dict, table: dict | None = None) -> dict:
    """The official code's time and peak for this case (``table``, by default
    :data:`OFFICIAL`) and our ratios to them; empty where it was not measured."""
    table = OFFICIAL if table is None else table
    key = (result["stage"], result["size"])
    if key not in table:
        return {}
    seconds, peak = table[key]
    return {"official_s": seconds, "official_peak_mib": peak,
            "vs_official": result["run_s"] / seconds,
            "peak_vs_official": result["peak_rss_mib"] / peak}


def _child(results, *args) -> None:
    try:
        results.put(run_case(*args))
    except Exception as error:  # reported by the parent, the table goes on
        results.put({"error": f"{type(error).__name__}: {error}"})


def run_in_subprocess(*args, timeout: float | None = None) -> dict:
    """:func:`run_case` in a fresh process: its result, or ``{"error": ...}``."""
    return result_of_worker(_child, args, timeout)


def result_of_worker(target, args, timeout: float | None = None,
                     poll_s: float = 1.0) -> dict:
    """Runs ``target(queue, *args)`` in a spawned process and returns what it put on the queue.

    A worker that dies without a result (a crash in XLA, a fatal flag error, the kernel's OOM
    killer) is reported as ``{"error": "worker died (exit code N)"}`` once it has exited, instead
    of leaving the table waiting for a result that will never come; one that is still running
    after ``timeout`` seconds is killed and reported."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=target, args=(results, *args))
    process.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    result = None
    while result is None:
        try:
            result = results.get(timeout=poll_s)
        except queue.Empty:
            if not process.is_alive():
                try:  # a result put just before the worker exited
                    result = results.get(timeout=poll_s)
                except queue.Empty:
                    process.join()
                    result = {"error": f"worker died (exit code {process.exitcode})"}
            elif deadline is not None and time.monotonic() > deadline:
                process.kill()
                result = {"error": f"no result within {timeout} s"}
    process.join()
    if process.exitcode not in (0, None) and "error" not in result:
        result["error"] = f"worker exit code {process.exitcode}"
    return result


TABLE_HEADER = ("stage", "photo side", "network input side", "compile s", "first run s", "run s",
                "user s", "sys s", "faults", "peak RSS MiB", "rss0 MiB", "device peak MiB",
                "GFLOP", "GFLOP/s", "% of peak",
                "official s", "× official", "official peak MiB", "peak × official")


def markdown_table(results: list[dict]) -> str:
    """The results as a markdown table (:data:`TABLE_HEADER`); "–" where a value does not
    apply."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |",
             "|---|" + "---:|" * (len(TABLE_HEADER) - 1)]
    blanks = " |" * (len(TABLE_HEADER) - 3)
    for r in results:
        if "error" in r:
            lines.append(f"| {r['stage']} | {r['size']} | error: {r['error']} |{blanks}")
            continue

        def cell(key, fmt):
            return format(r[key], fmt) if key in r else "–"

        cells = [r["stage"], str(r["size"]), str(r["network_side"]), cell("compile_s", ".2f"),
                 cell("first_run_s", ".2f"), cell("run_s", ".2f"), cell("user_s", ".2f"),
                 cell("sys_s", ".2f"), cell("minor_faults", ",.0f"), cell("peak_rss_mib", ",.0f"),
                 cell("rss0_mib", ",.0f"), cell("device_peak_mib", ",.0f"),
                 cell("gflop", ",.1f"), cell("gflop_per_s", ",.0f"),
                 format(100 * r["peak_fraction"], ".1f") if "peak_fraction" in r else "–",
                 cell("official_s", ".2f"), cell("vs_official", ".2f"),
                 cell("official_peak_mib", ",.0f"), cell("peak_vs_official", ".2f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def available_stages(roles: list[str], stages) -> tuple[list[str], list[str]]:
    """(stages the model can run, notes on those it cannot)."""
    runnable, notes = [], []
    for stage in stages:
        missing = [r for r in STAGE_ROLES[stage] if r not in roles]
        if missing:
            notes.append(f"note: skipping {stage}: the model lacks {', '.join(missing)}")
        else:
            runnable.append(stage)
    return runnable, notes


FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command line's flags (defined only when run as a program)."""
    from oldphoto_jax import bundled

    flags.DEFINE_string("checkpoint_dir", str(bundled.DEFAULT_DIR), "Model directory.")
    flags.DEFINE_enum("random_widths", None, ["tiny", "official"],
                      "Benchmark random weights of these widths (every network; written to a "
                      "temporary folder) instead of --checkpoint_dir: time and memory do not "
                      "depend on the weights.")
    flags.DEFINE_list("stages", list(STAGES), f"Stages among {', '.join(STAGES)} (face: both "
                      "face sizes).")
    flags.DEFINE_list("sizes", ["256", "512", "1024"], "Square photo sides.")
    flags.DEFINE_integer("repeats", 2, "Timed runs after the first (run s is their median).")
    flags.DEFINE_integer("attention_chunk", ATTENTION_CHUNK,
                         "Query rows per block of the attention (as infer.py).")
    flags.DEFINE_float("case_timeout", 3600, "Seconds before a case is abandoned.")
    flags.DEFINE_string("json", None, "Also write the results to this JSON file.")
    flags.DEFINE_float("peak_tflops", 0.0, "The device's float32 peak in TFLOP/s for the '%% of "
                       "peak' column (0: known GPUs from bench.DEVICE_PEAK_TFLOPS; none on a "
                       "CPU unless given).")


def main(argv):
    del argv
    from oldphoto_jax import model_files

    try:
        requested = expand_stages(FLAGS.stages)
    except ValueError as error:
        raise app.UsageError(str(error))
    if FLAGS.random_widths:
        import tempfile

        from oldphoto_jax.testing.random_model import write_random_model

        folder = pathlib.Path(tempfile.mkdtemp(prefix="oldphoto_bench_")) / "model"
        print(f"writing {FLAGS.random_widths}-width random weights to {folder}", flush=True)
        write_random_model(folder, widths=FLAGS.random_widths)
        model = model_files.load_model(folder)
    else:
        model = model_files.load_model(FLAGS.checkpoint_dir)
    stages, notes = available_stages(model.roles, requested)
    for note in notes:
        print(note)
    print(f"model: {model.directory} ({model.source or 'no source recorded'})")
    print(cpu_tuning.describe())
    print(f"compilation cache: {compile_cache.chosen_directory() or 'off'} "
          f"({compile_cache.SWITCH}=0: off; =DIR: another folder)")
    print(f"parameter cache: {params_cache.chosen_directory() or 'off'} "
          f"({params_cache.SWITCH}=0: off; =DIR: another folder)")
    results = []
    for stage in stages:
        sizes = ([FACE_SIDES[stage]] if stage in FACE_SIDES
                 else FLAGS.sizes if stage.startswith("restore") else FLAGS.sizes[:1])
        for size in (int(s) for s in sizes):
            print(f"{stage} at {size}x{size} ...", flush=True)
            result = run_in_subprocess(str(model.directory), stage, size, FLAGS.repeats,
                                       FLAGS.attention_chunk, FLAGS.peak_tflops,
                                       timeout=FLAGS.case_timeout)
            result.setdefault("stage", stage)
            result.setdefault("size", size)
            results.append(result)
            print("  " + (result["error"] if "error" in result else
                          f"compile {result['compile_s']:.2f} s, run {result['run_s']:.2f} s "
                          f"(user {result['user_s']:.2f} s, sys {result['sys_s']:.2f} s, "
                          f"{result['minor_faults']:,.0f} faults), "
                          f"peak RSS {result['peak_rss_mib']:,.0f} MiB"
                          + (f", {result['gflop_per_s']:,.0f} GFLOP/s" if "gflop_per_s" in result
                             else "")), flush=True)
    print()
    print(markdown_table(results))
    if any("official_s" in r for r in results):
        print(f"\nofficial: {official_reference()[1]}")
    if FLAGS.json:
        with open(FLAGS.json, "w") as out:
            json.dump(results, out, indent=1)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    cpu_tuning.apply()
    define_flags()
    app.run(main)
