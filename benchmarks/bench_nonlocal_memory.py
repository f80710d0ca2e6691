"""Peak memory and time of scratch restoration: dense vs chunked partial non-local attention.

    .venv/bin/python benchmarks/bench_nonlocal_memory.py [--sizes 256 512 1024] [--with-2048]
        [--chunks 256 1024 4096] [--no-dense] [--hr] [--hr-attention 0 1024] [--hr-patch 2]
        [--calls 2] [--json FILE]
        [--mem-budget-gib G] [--kill-gib G] [--dense-k K] [--time-limit S] [--trace-every S]
        [--xla-report] [--compile-only] [--xla-dump DIR] [--xla-flags=--xla_...]

Results and their reading: benchmarks/README.md.

The whole global scratch restoration (VAE_A encoder -> ``MappingModelWithMask`` -> VAE_B decoder,
``oldphoto_jax.pipeline.stage1.restoration_function``, jitted as ``stage1.restore`` runs it)
runs at the official widths with random weights (N(0, 0.02) for every parameter, shapes from
``jax.eval_shape(module.init, ...)``) on a random image with a random thin-stroke scratch mask
(six 3-px polylines), batch 1.

Every configuration (image side, ``query_chunk``; 0 = dense as the official code) runs in a fresh
subprocess so that its peak memory is its own. Per configuration the worker reports

* ``rss0``: resident memory right before the first call (interpreter + JAX + weights + inputs);
* ``peak``: ``ru_maxrss`` after the last call; ``peak - rss0`` is what the restoration itself
  needed, compilation included (it happens inside the first call);
* the peak during each call alone (``VmHWM`` after resetting it through
  ``/proc/self/clear_refs`` before the call) minus the RSS right before that call: with
  ``--calls 2`` the second call's value is what a run of the compiled executable adds;
* ``first`` (compile + run) and ``second`` (run only) wall seconds, and the process CPU seconds
  (user + sys) of the last call — the machine is shared, so CPU seconds are the steadier number
  when other jobs compete for the 2 cores;
* with ``--xla-report``: the AOT compile time and XLA's own memory statistics of the same
  function (``compiled.memory_analysis()``; measured after the peak was read, so it does not
  inflate it).

The parent watches every worker's RSS (``/proc/<pid>/status``) and kills it above
``--kill-gib``; it runs the chunked configurations of a size before the dense one and skips a
dense run whose predicted need exceeds ``--mem-budget-gib``: the dense attention's extra memory
is modelled as ``k * N**2 * 4`` bytes (N = H*W/16 latent positions) on top of the best chunked
configuration of the same size, with ``k`` measured at the largest size where dense did run
(``k = (dense - leanest chunked, both peak - rss0) / (4 N**2)``, or ``--dense-k``). On XLA:CPU
the dense block runs inside a YNNPACK fusion whose memory is not a constant k * N**2 (see
benchmarks/README.md), so the prediction is a guide and ``--kill-gib`` is the safety net.
At the sizes where dense ran, the maximum absolute difference of every chunked output from the
dense output is reported; elsewhere the chunked outputs are compared with each other.

``--hr`` adds the official HR path (``MappingModelWithMask2``, multi-scale patch attention, mask
dilated 7x7 as test.py does) at every size, for comparison.

``--hr-attention C ...`` adds, at every size, the HR patch attention alone: one
``PatchAttention`` (official width 512, patch size ``--hr-patch``, default 2, the scale with the
most patches) in inference mode on a random 1 x S/4 x S/4 x 512 latent and the same dilated mask,
once per ``query_chunk`` C (0 = dense, the L x L similarities of all L = (S/4/p)**2 patches at
once; > 0 = C query rows per block). Its chunked outputs are compared with its dense output. No
dense-memory prediction is made for it: ``--kill-gib`` is the guard.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

MIB = 1024 ** 2
GIB = 1024 ** 3
SEED = 0
MIN_N_FOR_K = 4096          # 256² images: 4 N^2 = 64 MiB


# ----------------------------------------------------------------------------------------------
# Helpers shared by parent and worker (no JAX import here: the parent stays small).


def proc_status_kib(field: str, pid: str | int = "self") -> int | None:
    """A ``kB`` field (VmRSS, VmHWM, ...) of ``/proc/<pid>/status``, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def mem_available_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def reset_hwm() -> None:
    """Resets this process's VmHWM to its current RSS (``echo 5 > /proc/self/clear_refs``), so
    that VmHWM afterwards is the peak of what follows. ``ru_maxrss`` is not affected."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def thin_stroke_mask(size: int, rng: np.random.Generator, strokes: int = 6,
                     width: int = 3) -> np.ndarray:
    """size x size float32 {0, 1} mask of ``strokes`` random ``width``-px polylines (1 = scratch)"""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(strokes):
        points = [tuple(int(v) for v in rng.integers(0, size, 2))
                  for _ in range(int(rng.integers(2, 5)))]
        draw.line(points, fill=255, width=width)
    return (np.asarray(canvas) > 127).astype(np.float32)


def dilate_square(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a (2r+1)^2 square (``cv2.dilate(ones(3,3), iterations=r)``)."""
    out = mask.copy()
    padded = np.pad(mask, radius)
    size = mask.shape[0]
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            np.maximum(out, padded[dy:dy + size, dx:dx + size], out=out)
    return out


# ----------------------------------------------------------------------------------------------
# Worker: one configuration in this (fresh) process.


def random_variables(shapes, rng: np.random.Generator):
    """A variables tree of N(0, 0.02) float32 arrays with the shapes of ``shapes``."""
    import jax

    return jax.tree.map(
        lambda s: jax.device_put((rng.standard_normal(s.shape) * 0.02).astype(np.float32)),
        shapes)


def build_networks(size: int, mapping_kind: str, chunk: int):
    """(vae_a, mapping, vae_b) ``(module, variables)`` pairs at the official widths."""
    import jax
    import jax.numpy as jnp

    from oldphoto_jax.models.mapping import MappingModelWithMask, MappingModelWithMask2
    from oldphoto_jax.models.vae import VAE

    rng = np.random.default_rng(SEED)
    key = jax.random.key(0)
    image = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    mask = jax.ShapeDtypeStruct((1, size, size, 1), jnp.float32)
    latent = jax.ShapeDtypeStruct((1, size // 4, size // 4, 64), jnp.float32)
    vae = VAE()
    vae_vars = random_variables(jax.eval_shape(vae.init, key, image), rng)
    if mapping_kind == "scratch":
        mapping = MappingModelWithMask(query_chunk=chunk)
    elif mapping_kind == "hr":
        mapping = MappingModelWithMask2()
    else:
        raise ValueError(mapping_kind)
    map_vars = random_variables(jax.eval_shape(mapping.init, key, latent, mask), rng)
    vae_a = (vae, {"params": {"encoder": vae_vars["params"]["encoder"]}})
    vae_b = (vae, {"params": {"decoder": vae_vars["params"]["decoder"]}})
    return vae_a, (mapping, map_vars), vae_b


def build_patch_attention(size: int, chunk: int, patch: int):
    """``PatchAttention`` (width 512, patch size ``patch``, ``query_chunk`` ``chunk``), its random
    variables and a random 1 x S/4 x S/4 x 512 latent."""
    import jax
    import jax.numpy as jnp

    from oldphoto_jax.models.mapping import PatchAttention

    rng = np.random.default_rng(SEED)
    module = PatchAttention(512, patch, query_chunk=chunk)
    side = size // 4
    latent = jax.ShapeDtypeStruct((1, side, side, 512), jnp.float32)
    mask = jax.ShapeDtypeStruct((1, size, size, 1), jnp.float32)
    variables = random_variables(jax.eval_shape(module.init, jax.random.key(0), latent, mask),
                                 rng)
    z = jax.device_put(rng.standard_normal(latent.shape).astype(np.float32))
    return module, variables, z


def build_workload(size: int, mapping_kind: str, chunk: int, patch: int):
    """(jitted function, its arguments) of one configuration: the whole restoration
    (``scratch``, ``hr``: ``stage1.restoration_function``) or the patch attention alone
    (``hr_attention``)."""
    import jax

    from oldphoto_jax.pipeline import stage1

    image, mask = (jax.device_put(a) for a in random_inputs(size, mapping_kind))
    if mapping_kind == "hr_attention":
        module, variables, z = build_patch_attention(size, chunk, patch)
        return jax.jit(lambda v, x, m: module.apply(v, x, m)), (variables, z, mask)
    (enc, enc_vars), (mapping, map_vars), (dec, dec_vars) = build_networks(size, mapping_kind,
                                                                            chunk)
    fn = jax.jit(stage1.restoration_function(enc, mapping, dec))
    return fn, ((enc_vars, map_vars, dec_vars), image, mask)


def random_inputs(size: int, mapping_kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Image 1 x S x S x 3 in [-1, 1] with scratch pixels set to white, mask 1 x S x S x 1."""
    rng = np.random.default_rng(SEED + 1)
    mask = thin_stroke_mask(size, rng)
    if mapping_kind in ("hr", "hr_attention"):
        mask = dilate_square(mask, 3)          # test.py --HR: 3x3 dilation, 3 iterations = 7x7
    image = rng.uniform(-1.0, 1.0, (size, size, 3)).astype(np.float32)
    image = np.where(mask[..., None] > 0, np.float32(1.0), image)
    return image[None], mask[None, ..., None]


def xla_report(fn, args) -> dict:
    """AOT-compiles the jitted ``fn`` once more and returns XLA's memory statistics."""
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    report = {"aot_compile_s": time.perf_counter() - start}
    stats = compiled.memory_analysis()
    if stats is not None:
        for name in ("temp_size_in_bytes", "argument_size_in_bytes", "output_size_in_bytes",
                     "alias_size_in_bytes", "generated_code_size_in_bytes"):
            report[name] = getattr(stats, name, None)
    return report


def largest_xla_buffers(dump_dir: str, lines: int = 8) -> list[str]:
    """The first rows of the newest XLA memory-usage report in ``dump_dir``: the slots of the
    preallocated temp buffer, largest first, with the shapes that share each slot."""
    import glob

    reports = glob.glob(os.path.join(dump_dir, "*memory-usage-report.txt"))
    if not reports:
        return []
    with open(max(reports, key=os.path.getmtime)) as f:
        text = f.read().splitlines()
    return [line.strip()[:400] for line in text[:4 + lines]]


def run_worker(args) -> None:
    import jax

    t0 = time.perf_counter()
    fn, fn_args = build_workload(args.size, args.mapping, args.chunk, args.hr_patch)
    jax.block_until_ready(jax.tree.leaves(fn_args))
    result = {"size": args.size, "mapping": args.mapping, "chunk": args.chunk,
              "n_latent": (args.size // 4) ** 2, "mask_fraction": float(fn_args[-1].mean()),
              "setup_s": time.perf_counter() - t0, "calls": []}
    if args.mapping == "hr_attention":
        result["patch"] = args.hr_patch
        result["n_patches"] = (args.size // 4 // args.hr_patch) ** 2
    if args.compile_only:
        result["xla"] = xla_report(fn, fn_args)
        if args.xla_dump:
            result["xla"]["largest_temp_slots"] = largest_xla_buffers(args.xla_dump)
        result["maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result["rss0_kib"] = proc_status_kib("VmRSS")
        result["status"] = "compiled only"
        print("RESULT " + json.dumps(result), flush=True)
        return
    result["rss0_kib"] = proc_status_kib("VmRSS")
    print(f"worker ready: rss0 {result['rss0_kib'] / 1024:.0f} MiB", file=sys.stderr, flush=True)
    output = None
    for call in range(args.calls):
        reset_hwm()
        rss_before = proc_status_kib("VmRSS")
        wall, cpu = time.perf_counter(), cpu_seconds()
        output = np.asarray(fn(*fn_args))
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        record = {"wall_s": wall, "cpu_s": cpu, "rss_before_kib": rss_before,
                  "hwm_kib": proc_status_kib("VmHWM"),
                  "rss_after_kib": proc_status_kib("VmRSS")}
        result["calls"].append(record)
        print(f"call {call}: {wall:.1f} s wall, {cpu:.1f} s cpu, peak during the call "
              f"{record['hwm_kib'] / 1024:.0f} MiB", file=sys.stderr, flush=True)
    result["maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["finite"] = bool(np.isfinite(output).all())
    if args.save:
        np.save(args.save, output)
    if args.xla_report:
        result["xla"] = xla_report(fn, fn_args)
        if args.xla_dump:
            result["xla"]["largest_temp_slots"] = largest_xla_buffers(args.xla_dump)
    print("RESULT " + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------------------------
# Parent: schedule configurations, watch memory, compare outputs, print tables.


def run_config(size: int, mapping: str, chunk: int, opts, save: str | None) -> dict:
    """Runs one configuration in a fresh subprocess; returns its result dict (or a failure)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--size", str(size),
           "--mapping", mapping, "--chunk", str(chunk), "--calls", str(opts.calls),
           "--hr-patch", str(opts.hr_patch)]
    if save:
        cmd += ["--save", save]
    if opts.xla_report:
        cmd.append("--xla-report")
    if opts.compile_only:
        cmd.append("--compile-only")
    env = dict(os.environ)
    flags = opts.xla_flags
    if opts.xla_dump:
        dump = os.path.join(opts.xla_dump, f"{size}_{mapping}_{chunk}")
        cmd += ["--xla-dump", dump]
        flags += f" --xla_dump_to={dump} --xla_dump_hlo_module_re=.*restore.*"
    if flags.strip():
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + flags).strip()
    kill_kib = int(opts.kill_gib * GIB / 1024)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None, text=True, env=env,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    watch = {"max_rss_kib": 0, "killed": None, "trace": []}

    def watchdog():
        last_trace = -1e9
        while proc.poll() is None:
            rss = proc_status_kib("VmRSS", proc.pid) or 0
            watch["max_rss_kib"] = max(watch["max_rss_kib"], rss)
            now = time.perf_counter() - start
            if now - last_trace >= opts.trace_every:
                watch["trace"].append((round(now, 1), rss))
                last_trace = now
            if rss > kill_kib:
                watch["killed"] = "killed above --kill-gib"
            elif opts.time_limit and now > opts.time_limit:
                watch["killed"] = f"stopped at --time-limit {opts.time_limit:.0f} s"
            if watch["killed"]:
                proc.kill()
                return
            time.sleep(0.2)

    thread = threading.Thread(target=watchdog, daemon=True)
    thread.start()
    stdout, _ = proc.communicate()
    thread.join()
    total = time.perf_counter() - start
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
            break
    else:
        result = {"size": size, "mapping": mapping, "chunk": chunk,
                  "n_latent": (size // 4) ** 2,
                  "status": watch["killed"] or f"failed (exit {proc.returncode})"}
    result.setdefault("status", "ok")
    result["sampled_max_rss_kib"] = watch["max_rss_kib"]
    result["rss_trace"] = watch["trace"]           # (seconds since start, VmRSS KiB)
    result["process_s"] = total
    return result


def delta_bytes(result: dict) -> float:
    """Peak RSS over the whole worker (ru_maxrss) minus the RSS before the first call."""
    return (result["maxrss_kib"] - result["rss0_kib"]) * 1024


def run_delta_bytes(result: dict) -> float:
    """Peak RSS during the last call minus the RSS right before it (with --calls 2: what a run
    of the already compiled executable adds; memory that the first call freed but the allocator
    kept can hide part of it)."""
    last = result["calls"][-1]
    return (last["hwm_kib"] - last["rss_before_kib"]) * 1024


def dense_ks(results: list[dict]) -> dict[int, float]:
    """Measured ``k`` of the dense attention's extra memory (bytes = k * N^2 * 4) per size:
    whole-worker peak minus rss0, dense minus the leanest chunked configuration of that size
    (compilation memory is about the same for both and cancels)."""
    ks = {}
    for dense in results:
        if dense["mapping"] != "scratch" or dense["chunk"] != 0 or dense["status"] != "ok":
            continue
        chunked = [r for r in results if r["mapping"] == "scratch" and r["chunk"] > 0
                   and r["size"] == dense["size"] and r["status"] == "ok"]
        if not chunked:
            continue
        base = min(delta_bytes(r) for r in chunked)
        ks[dense["size"]] = (delta_bytes(dense) - base) / (4.0 * dense["n_latent"] ** 2)
    return ks


def dense_k(results: list[dict]) -> float | None:
    """``k`` measured at the largest size where dense ran (N^2 dominates there the most); sizes
    with N < MIN_N_FOR_K are ignored (there 4 N^2 is below the run-to-run noise)."""
    ks = {size: k for size, k in dense_ks(results).items() if (size // 4) ** 2 >= MIN_N_FOR_K}
    return ks[max(ks)] if ks else None


def predict_dense(size: int, results: list[dict], k: float) -> float | None:
    """Predicted peak RSS (bytes) of the dense run at ``size``: rss0 + chunked delta + k 4 N^2."""
    n = (size // 4) ** 2
    same = [r for r in results if r["mapping"] == "scratch" and r["chunk"] > 0
            and r["size"] == size and r["status"] == "ok"]
    if same:
        best = min(same, key=delta_bytes)
        return best["rss0_kib"] * 1024 + delta_bytes(best) + k * 4.0 * n * n
    smaller = [r for r in results if r["mapping"] == "scratch" and r["status"] == "ok"]
    if not smaller:
        return None
    ref = max(smaller, key=lambda r: r["size"])     # chunked/dense linear part scales ~ N
    linear = delta_bytes(ref) - (k * 4.0 * ref["n_latent"] ** 2 if ref["chunk"] == 0 else 0.0)
    return ref["rss0_kib"] * 1024 + linear * n / ref["n_latent"] + k * 4.0 * n * n


def compare_outputs(results: list[dict], paths: dict) -> None:
    """Adds ``max_abs_diff`` (vs dense, else vs the first chunked output of the same size and
    kind) to each result whose output was saved (``scratch`` and ``hr_attention``)."""
    saved = lambda r: (r["size"], r["mapping"], r["chunk"])      # noqa: E731
    for size, kind in sorted({(r["size"], r["mapping"]) for r in results}):
        group = [r for r in results if (r["size"], r["mapping"]) == (size, kind)
                 and r["status"] == "ok" and saved(r) in paths
                 and os.path.exists(paths[saved(r)])]
        dense = [r for r in group if r["chunk"] == 0]
        ref = dense[0] if dense else (group[0] if group else None)
        if ref is None:
            continue
        ref_out = np.load(paths[saved(ref)])
        for r in group:
            if r is ref:
                continue
            out = np.load(paths[saved(r)])
            r["max_abs_diff"] = float(np.max(np.abs(out - ref_out)))
            r["diff_vs"] = "dense" if ref["chunk"] == 0 else f"chunk {ref['chunk']}"


def fmt_mib(nbytes: float | None) -> str:
    return "-" if nbytes is None else f"{nbytes / MIB:,.0f}"


def print_table(results: list[dict]) -> None:
    header = ("| side | N | attention | first call s | second call s | CPU s (last call) | "
              "rss0 MiB | peak MiB | peak − rss0 MiB | last call: peak − RSS before MiB | "
              "XLA temp MiB | max abs diff | status |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for r in results:
        name = "dense" if r["chunk"] == 0 else f"chunk {r['chunk']}"
        if r["mapping"] == "hr":
            name = "HR (Mask2)"
        elif r["mapping"] == "hr_attention":
            name = f"HR attention p{r.get('patch', '?')} (L {r.get('n_patches', '?')}) {name}"
        calls = r.get("calls", [])
        first = f"{calls[0]['wall_s']:.1f}" if calls else "-"
        second = f"{calls[1]['wall_s']:.1f}" if len(calls) > 1 else "-"
        cpu = f"{calls[-1]['cpu_s']:.1f}" if calls else "-"
        if r["status"] == "ok":
            rss0 = r["rss0_kib"] * 1024
            peak = r["maxrss_kib"] * 1024
            delta, run_delta = delta_bytes(r), run_delta_bytes(r)
        else:
            rss0 = peak = delta = run_delta = None
        temp = r.get("xla", {}).get("temp_size_in_bytes")
        diff = (f"{r['max_abs_diff']:.1e} vs {r['diff_vs']}" if "max_abs_diff" in r else "-")
        status = r["status"]
        if r["status"] != "ok" and r.get("sampled_max_rss_kib"):
            status += f" (max sampled RSS {r['sampled_max_rss_kib'] / 1024 ** 2:.1f} GiB)"
        if "predicted_bytes" in r:
            status += f" (predicted {r['predicted_bytes'] / GIB:.1f} GiB)"
        print(f"| {r['size']}² | {r['n_latent']} | {name} | {first} | {second} | "
              f"{cpu} | {fmt_mib(rss0)} | {fmt_mib(peak)} | {fmt_mib(delta)} | "
              f"{fmt_mib(run_delta)} | {fmt_mib(temp)} | {diff} | {status} |")


def recommend(results: list[dict]) -> None:
    """Per size: the chunk with the lowest run time, and the smallest chunk within 10% of it."""
    print("\nChunk choice (CPU seconds and peak of the last call; the machine is shared):")
    for size in sorted({r["size"] for r in results}):
        chunked = [r for r in results if r["size"] == size and r["mapping"] == "scratch"
                   and r["chunk"] > 0 and r["status"] == "ok"]
        if not chunked:
            continue
        run = lambda r: r["calls"][-1]["cpu_s"]             # noqa: E731
        fastest = min(chunked, key=run)
        ok = [r for r in chunked if run(r) <= 1.1 * run(fastest)]
        lean = min(ok, key=run_delta_bytes)
        print(f"  {size}²: fastest chunk {fastest['chunk']} ({run(fastest):.1f} CPU s, "
              f"+{run_delta_bytes(fastest) / MIB:,.0f} MiB); smallest-memory chunk within 10% "
              f"of it: {lean['chunk']} ({run(lean):.1f} CPU s, "
              f"+{run_delta_bytes(lean) / MIB:,.0f} MiB)")


def config_name(mapping: str, chunk: int, patch: int) -> str:
    attention = "dense" if chunk == 0 else f"chunk {chunk}"
    if mapping == "hr":
        return "HR (MappingModelWithMask2)"
    if mapping == "hr_attention":
        return f"HR PatchAttention p{patch} {attention}"
    return attention


def run_parent(opts) -> None:
    sys.stdout.reconfigure(line_buffering=True)
    sizes = list(opts.sizes) + ([2048] if opts.with_2048 and 2048 not in opts.sizes else [])
    avail = mem_available_bytes()
    if opts.mem_budget_gib is None:
        opts.mem_budget_gib = 0.7 * avail / GIB
    if opts.kill_gib is None:
        opts.kill_gib = 0.9 * avail / GIB
    print(f"MemAvailable {avail / GIB:.1f} GiB; dense budget {opts.mem_budget_gib:.1f} GiB; "
          f"kill above {opts.kill_gib:.1f} GiB; XLA_FLAGS extra: {opts.xla_flags or '-'}",
          flush=True)
    results: list[dict] = []
    tmp = tempfile.mkdtemp(prefix="bench_nl_")
    paths = {}
    for size in sizes:
        plan = [("scratch", c) for c in opts.chunks]
        if not opts.no_dense:
            plan.append(("scratch", 0))
        if opts.hr:
            plan.append(("hr", -1))
        plan += [("hr_attention", c) for c in opts.hr_attention]
        for mapping, chunk in plan:
            tag = f"{size}² " + config_name(mapping, chunk, opts.hr_patch)
            if mapping == "scratch" and chunk == 0 and not opts.compile_only:
                k = dense_k(results)
                k = opts.dense_k if k is None else k
                predicted = predict_dense(size, results, k) if k is not None else None
                if predicted is not None and predicted > opts.mem_budget_gib * GIB:
                    print(f"[skip] {tag}: predicted {predicted / GIB:.1f} GiB "
                          f"(k = {k:.2f}) > budget {opts.mem_budget_gib:.1f} GiB", flush=True)
                    results.append({"size": size, "mapping": mapping, "chunk": 0,
                                    "n_latent": (size // 4) ** 2,
                                    "status": "skipped", "predicted_bytes": predicted,
                                    "k": k})
                    continue
            print(f"[run] {tag}", flush=True)
            save = None
            if mapping != "hr":
                save = os.path.join(tmp, f"out_{size}_{mapping}_{chunk}.npy")
                paths[(size, mapping, chunk)] = save
            result = run_config(size, mapping, chunk, opts, save)
            results.append(result)
            print(f"      -> {result['status']}, {result['process_s']:.0f} s in the subprocess",
                  flush=True)
            if opts.json:
                with open(opts.json, "w") as f:
                    json.dump(results, f, indent=1)
    compare_outputs(results, paths)
    for path in paths.values():
        if os.path.exists(path):
            os.remove(path)
    os.rmdir(tmp)
    print()
    print_table(results)
    ks = dense_ks(results)
    if ks:
        print("\nDense attention extra memory (bytes ≈ k · N² · 4): "
              + ", ".join(f"k = {k:.2f} at {size}²" for size, k in sorted(ks.items())))
    recommend(results)
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(results, f, indent=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--with-2048", action="store_true", help="add 2048² (many CPU minutes)")
    parser.add_argument("--chunks", type=int, nargs="*", default=[256, 1024, 4096])
    parser.add_argument("--no-dense", action="store_true")
    parser.add_argument("--hr", action="store_true", help="add MappingModelWithMask2 (HR path)")
    parser.add_argument("--hr-attention", type=int, nargs="*", default=[],
                        help="add the HR PatchAttention alone (inference) with each of these "
                             "query_chunk values (0 = dense)")
    parser.add_argument("--hr-patch", type=int, default=2,
                        help="patch size of --hr-attention (official scales: 8, 4, 2)")
    parser.add_argument("--calls", type=int, default=2,
                        help="restore calls per configuration (1st compiles)")
    parser.add_argument("--mem-budget-gib", type=float, default=None,
                        help="skip dense runs predicted above this (default 70%% of MemAvailable)")
    parser.add_argument("--kill-gib", type=float, default=None,
                        help="kill a worker whose RSS exceeds this (default 90%% of MemAvailable)")
    parser.add_argument("--dense-k", type=float, default=None,
                        help="k to predict dense memory with until a dense run of this "
                             "invocation (N >= 4096) has measured one")
    parser.add_argument("--time-limit", type=float, default=0,
                        help="stop a worker after this many seconds (0 = no limit)")
    parser.add_argument("--trace-every", type=float, default=5.0,
                        help="seconds between the RSS samples kept in the JSON trace")
    parser.add_argument("--xla-flags", default="",
                        help="extra XLA_FLAGS for the workers (write --xla-flags=--xla_...)")
    parser.add_argument("--xla-report", action="store_true",
                        help="also AOT-compile once more and report XLA's memory_analysis()")
    parser.add_argument("--compile-only", action="store_true",
                        help="only AOT-compile each configuration and report XLA's memory "
                             "statistics (seconds even at 2048²)")
    parser.add_argument("--xla-dump", default="",
                        help="dump the optimized HLO and buffer assignment under this folder "
                             "and report the largest slots of XLA's temp buffer")
    parser.add_argument("--json", help="write all results to this file")
    # worker mode (internal)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mapping", default="scratch", help=argparse.SUPPRESS)
    parser.add_argument("--chunk", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.worker:
        run_worker(opts)
    else:
        run_parent(opts)


if __name__ == "__main__":
    from oldphoto_jax import cpu_tuning

    cpu_tuning.apply()  # before the JAX backend starts
    main()
