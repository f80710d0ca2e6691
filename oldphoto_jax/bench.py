"""Time and peak memory of the inference stages, per stage and photo size (a benchmark, not a test).

    .venv/bin/python -m oldphoto_jax.bench                               # the bundled model
    .venv/bin/python -m oldphoto_jax.bench --checkpoint_dir models/official --sizes 256,512,1024
    .venv/bin/python -m oldphoto_jax.bench --random_widths official --sizes 256,512
    .venv/bin/python -m oldphoto_jax.bench --stages restore_scratch --sizes 2048 --repeats 0

Each (stage, size) case runs in a fresh process, so its peak memory is its own: the jitted
function the pipeline uses (``oldphoto_jax.pipeline.stage1``, the face generator), with the
networks set up as ``infer.py`` sets them (``pipeline.run.inference_network``: precision,
attention chunk), is compiled ahead of time (``compile s``), run once (``first run s``) and then
``--repeats`` times (``run s``: the median). ``peak RSS`` is the process's peak resident memory
(interpreter, JAX, weights and XLA's buffers), ``rss0`` the same before the first compilation;
on a GPU/TPU the device's peak bytes in use are reported too. Inputs are a synthetic photo of
``size`` x ``size`` with a few scratch lines (the content does not change the work). Stages:

* ``detect``: the scratch UNet on the photo resized to short side 256 (as the pipeline does,
  so its cost does not grow with the photo);
* ``restore_quality`` / ``restore_scratch`` / ``restore_hr``: VAE_A encoder -> mapping ->
  VAE_B decoder at full size; the scratch mappings with ``--attention_chunk``;
* ``face``: the face generator on one aligned face (the network's own size: 512 where the model
  has ``face_512``, else 256).

Stages whose networks the model lacks are skipped with a note.
"""
from __future__ import annotations

import json
import multiprocessing
import pathlib
import resource
import statistics
import sys
import time

import numpy as np
from absl import app, flags

from oldphoto_jax.pipeline import run as pipeline_run

STAGES = ("detect", "restore_quality", "restore_scratch", "restore_hr", "face")
STAGE_ROLES = {
    "detect": ("scratch_detector",),
    "restore_quality": pipeline_run.MODE_ROLES["quality"],
    "restore_scratch": pipeline_run.MODE_ROLES["scratch"],
    "restore_hr": pipeline_run.MODE_ROLES["scratch_hr"],
}
FACE_ROLES = ("face_512", "face_256")


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
    precision = pipeline_run.Options().precision  # infer.py's default

    def network(role):
        return pipeline_run.inference_network(model, role, precision=precision,
                                              attention_chunk=attention_chunk)

    if stage == "detect":
        module, variables = network("scratch_detector")
        _, unet_input = preprocess.detection_input(Image.fromarray(photo))
        return (stage1.detection_function(module), (variables, jnp.asarray(unet_input)),
                min(unet_input.shape[1:3]))
    if stage == "face":
        role = next(r for r in FACE_ROLES if r in model.roles)
        module, variables = network(role)
        side = int(module.load_size)
        face = np.asarray(Image.fromarray(photo).resize((side, side), Image.BICUBIC))
        return (lambda p, x: module.apply(p, x)), (
            variables, jnp.asarray(preprocess.to_network_input(face))), side
    networks = [network(role) for role in STAGE_ROLES[stage]]
    fn = stage1.restoration_function(*(m for m, _ in networks))
    params = tuple(v for _, v in networks)
    image = jnp.asarray(preprocess.to_network_input(photo))
    if stage == "restore_quality":
        return (lambda p, x: fn(p, x)), (params, image), size
    return fn, (params, image, jnp.asarray(mask[None, :, :, None])), size


def run_case(checkpoint_dir: str, stage: str, size: int, repeats: int,
             attention_chunk: int) -> dict:
    """Measures one case in this process (call it in a fresh one for a clean peak)."""
    import jax

    from oldphoto_jax import checkpoints

    model = checkpoints.load_model(checkpoint_dir)
    fn, args, side = _case_function(model, stage, size, attention_chunk)
    rss0 = _status_mib("VmRSS")
    began = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - began
    began = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    first_s = time.perf_counter() - began
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - began)
    result = {
        "stage": stage, "size": size, "network_side": side, "output_shape": list(np.shape(out)),
        "compile_s": compile_s, "first_run_s": first_s,
        "run_s": statistics.median(times) if times else first_s,
        "rss0_mib": rss0,
        "peak_rss_mib": _status_mib("VmHWM"),
        "device": str(jax.devices()[0].device_kind),
    }
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        result["device_peak_mib"] = stats["peak_bytes_in_use"] / 2 ** 20
    return result


def _child(queue, *args) -> None:
    try:
        queue.put(run_case(*args))
    except Exception as error:  # reported by the parent, the table goes on
        queue.put({"error": f"{type(error).__name__}: {error}"})


def run_in_subprocess(*args, timeout: float | None = None) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(queue, *args))
    process.start()
    try:
        result = queue.get(timeout=timeout)
    except Exception:
        process.kill()
        result = {"error": f"no result within {timeout} s" if timeout else "worker died"}
    process.join()
    if process.exitcode not in (0, None) and "error" not in result:
        result["error"] = f"worker exit code {process.exitcode}"
    return result


def markdown_table(results: list[dict]) -> str:
    lines = ["| stage | photo side | network input side | compile s | first run s | run s | "
             "peak RSS MiB | rss0 MiB | device peak MiB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['stage']} | {r['size']} | error: {r['error']} | | | | | | |")
            continue
        device = f"{r['device_peak_mib']:,.0f}" if "device_peak_mib" in r else "–"
        lines.append(f"| {r['stage']} | {r['size']} | {r['network_side']} | {r['compile_s']:.2f} | "
                     f"{r['first_run_s']:.2f} | {r['run_s']:.2f} | {r['peak_rss_mib']:,.0f} | "
                     f"{r['rss0_mib']:,.0f} | {device} |")
    return "\n".join(lines)


def available_stages(roles: list[str], stages) -> tuple[list[str], list[str]]:
    """(stages the model can run, notes on those it cannot)."""
    runnable, notes = [], []
    for stage in stages:
        needed = STAGE_ROLES.get(stage)
        ok = (any(r in roles for r in FACE_ROLES) if stage == "face"
              else all(r in roles for r in needed))
        if ok:
            runnable.append(stage)
        else:
            want = (" or ".join(FACE_ROLES) if stage == "face"
                    else ", ".join(r for r in needed if r not in roles))
            notes.append(f"note: skipping {stage}: the model lacks {want}")
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
    flags.DEFINE_list("stages", list(STAGES), f"Stages among {', '.join(STAGES)}.")
    flags.DEFINE_list("sizes", ["256", "512", "1024"], "Square photo sides.")
    flags.DEFINE_integer("repeats", 2, "Timed runs after the first (run s is their median).")
    flags.DEFINE_integer("attention_chunk", 1024, "Query chunk of the non-local attention.")
    flags.DEFINE_float("case_timeout", 3600, "Seconds before a case is abandoned.")
    flags.DEFINE_string("json", None, "Also write the results to this JSON file.")


def main(argv):
    del argv
    from oldphoto_jax import checkpoints

    for stage in FLAGS.stages:
        if stage not in STAGES:
            raise app.UsageError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    if FLAGS.random_widths:
        import tempfile

        from oldphoto_jax.testing.random_model import write_random_model

        folder = pathlib.Path(tempfile.mkdtemp(prefix="oldphoto_bench_")) / "model"
        print(f"writing {FLAGS.random_widths}-width random weights to {folder}", flush=True)
        write_random_model(folder, widths=FLAGS.random_widths)
        model = checkpoints.load_model(folder)
    else:
        model = checkpoints.load_model(FLAGS.checkpoint_dir)
    stages, notes = available_stages(model.roles, FLAGS.stages)
    for note in notes:
        print(note)
    print(f"model: {model.directory} ({model.source or 'no source recorded'})")
    results = []
    for stage in stages:
        sizes = FLAGS.sizes if stage.startswith("restore") else FLAGS.sizes[:1]
        for size in (int(s) for s in sizes):
            print(f"{stage} at {size}x{size} ...", flush=True)
            result = run_in_subprocess(str(model.directory), stage, size, FLAGS.repeats,
                                       FLAGS.attention_chunk, timeout=FLAGS.case_timeout)
            result.setdefault("stage", stage)
            result.setdefault("size", size)
            results.append(result)
            print("  " + (result["error"] if "error" in result else
                          f"compile {result['compile_s']:.2f} s, run {result['run_s']:.2f} s, "
                          f"peak RSS {result['peak_rss_mib']:,.0f} MiB"), flush=True)
    print()
    print(markdown_table(results))
    if FLAGS.json:
        with open(FLAGS.json, "w") as out:
            json.dump(results, out, indent=1)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
