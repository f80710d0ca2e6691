"""Time and peak memory of the OFFICIAL PyTorch networks per stage, mirroring
``python -m oldphoto_jax.bench`` (oldphoto_jax/bench.py) case by case.

    PY=.venv/bin/python   # has torch (the test extra)
    $PY benchmarks/official_pytorch/time_official.py --official_dir SRC              # seven cases
    $PY benchmarks/official_pytorch/time_official.py --official_dir SRC --cases restore_hr:512
    $PY benchmarks/official_pytorch/time_official.py --official_dir SRC \\
        --cases detect:64,face_256:64 --repeats 1 --json tiny.json                     # dry run

A case is STAGE:SIDE. Stages (as bench.py):

* ``detect``: ``torch.sigmoid(UNet(x))`` on the photo's detection input (grayscale, short side
  256; the input transform is not timed, as in bench.py);
* ``restore_quality`` / ``restore_scratch`` / ``restore_hr``: the official
  ``Pix2PixHDModel_Mapping.inference`` (VAE_A encoder -> Mapping_Model / Mapping_Model_with_mask /
  Mapping_Model_with_mask_2.inference_forward -> VAE_B decoder) on the whole normalised photo and
  its scratch mask (zeros in quality mode, as test.py), with test.py's options of that mode;
* ``face_256`` / ``face_512``: ``SPADEGenerator(label=zeros(1,18,S,S), face)``; SIDE is the face's
  side (256 / 512; smaller only for dry runs).

Settings: ``torch.set_num_threads(2)`` (``--threads``), float32, batch 1, ``torch.no_grad()``,
eval mode. Each case runs in a fresh process that loads the timing weights from
``<work_dir>/weights/*.pt`` (``torch.load`` + ``load_state_dict``, as the official loaders do),
runs once (``first run s``, the warm-up) and then ``--repeats`` times (``run s``: the median).
Per case: ``user s`` / ``sys s`` / ``faults`` = ``getrusage(RUSAGE_SELF)`` deltas over the timed
runs divided by their number (CPU seconds of all threads, minor page faults, per run);
``peak RSS`` = ``VmHWM`` of /proc/self/status at the end; ``rss0`` = ``VmRSS`` before the
networks are built (interpreter, torch, the official modules, the inputs); ``rss loaded`` =
``VmRSS`` once the weights are loaded.

Inputs: ``<work_dir>/inputs/<stage>_<side>.npz``, written by make_inputs.py with the project's
own virtual environment (``--our_python``) where missing. Weights: written once from the parity
fixtures (official_nets.write_timing_weights). Results: a markdown table and ``--json``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import official_nets as on

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUR_PYTHON = os.environ.get("OLDPHOTO_JAX_PYTHON",
                                    os.path.join(on.REPO_ROOT, ".venv", "bin", "python"))
DEFAULT_CASES = ("detect:256,restore_quality:256,restore_quality:512,restore_scratch:512,"
                 "restore_hr:512,face_256:256,face_512:512")
STAGE_NETWORKS = {
    "detect": ("scratch_unet",),
    "restore_quality": ("vae_a", "mapping_quality", "vae_b_quality"),
    "restore_scratch": ("vae_a", "mapping_scratch", "vae_b_scratch"),
    "restore_hr": ("vae_a", "mapping_patch_attention", "vae_b_scratch"),
    "face_256": ("face_spade_256",),
    "face_512": ("face_spade_512",),
}
MODES = {"restore_quality": "quality", "restore_scratch": "scratch", "restore_hr": "scratch_hr"}


# The timing workers import nothing of oldphoto_jax: oldphoto_jax.bench (whose _status_mib,
# cpu_model_name and per_run_usage these few lines mirror) pulls in JAX through the pipeline,
# and JAX's memory would then count in the official code's peak.
def status_mib(field: str) -> float:
    """A ``Vm*`` field of /proc/self/status in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_model_name() -> str:
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return ""


def loadavg() -> float:
    return os.getloadavg()[0]


def input_file(paths: on.Paths, stage: str, side: int) -> str:
    return os.path.join(paths.inputs_dir, f"{stage}_{side}.npz")


# ------------------------------------------------------------------------------ child: one case
def import_official_modules(paths: on.Paths, family: str) -> None:
    """Imports the official modules of ``family`` (before ``rss0``: code, not networks)."""
    on.use_family(family, paths.official)
    if family == "global":
        from detection_models import networks  # noqa: F401
        from models import mapping_model  # noqa: F401
    else:
        from models.networks import generator  # noqa: F401


def load_networks(paths: on.Paths, stage: str, side: int) -> dict:
    """The official networks of ``stage`` with the timing weights, in eval mode."""
    import torch

    face_side = side if stage in ("face_256", "face_512") else None
    nets = {}
    for name in STAGE_NETWORKS[stage]:
        net = on.build(name, paths.official, face_load_size=face_side)
        state = torch.load(on.weights_file(paths, name))
        net.load_state_dict(state, strict=True)
        del state
        nets[name] = net.eval()
    return nets


def stage_function(stage: str, nets: dict, x, mask):
    """The timed call of ``stage`` (no arguments), as the official scripts run it."""
    import torch

    if stage == "detect":
        unet = nets["scratch_unet"]
        return lambda: torch.sigmoid(unet(x))  # Global/detection.py
    if stage in ("face_256", "face_512"):
        generator = nets[STAGE_NETWORKS[stage][0]]
        label = torch.zeros(x.shape[0], 18, x.shape[2], x.shape[3])  # --no_parsing_map: unused
        return lambda: generator(label, x)
    from models.mapping_model import Pix2PixHDModel_Mapping

    vae_a, mapping, vae_b = (nets[n] for n in STAGE_NETWORKS[stage])
    opt = on.global_options(MODES[stage])
    opt.gpu_ids = []
    model = argparse.Namespace(opt=opt, netG_A=vae_a, mapping_net=mapping, netG_B=vae_b)
    inst = mask if mask is not None else torch.zeros_like(x)  # test.py: zeros in quality mode
    return lambda: Pix2PixHDModel_Mapping.inference(model, x, inst)


def time_function(fn, repeats: int) -> dict:
    """First run, the timed runs and their per-run CPU counters."""
    import torch

    with torch.no_grad():
        began = time.perf_counter()
        out = fn()
        first_s = time.perf_counter() - began
        before = resource.getrusage(resource.RUSAGE_SELF)
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            fn()
            times.append(time.perf_counter() - began)
        after = resource.getrusage(resource.RUSAGE_SELF)

    def per_run(field):  # no timed run: no counters
        return (getattr(after, field) - getattr(before, field)) / repeats if repeats else None

    return {"output_shape": list(out.shape), "output_finite": bool(torch.isfinite(out).all()),
            "first_run_s": first_s, "run_s": statistics.median(times or [first_s]),
            "run_times_s": times or [first_s], "user_s": per_run("ru_utime"),
            "sys_s": per_run("ru_stime"), "minor_faults": per_run("ru_minflt")}


def run_case(paths: on.Paths, stage: str, side: int, repeats: int, threads: int) -> dict:
    """Measures one case in this process (a fresh one, for a clean peak)."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    import_official_modules(paths, "face" if stage.startswith("face") else "global")
    data = np.load(input_file(paths, stage, side))
    x = torch.from_numpy(data["x"].copy())
    mask = torch.from_numpy(data["mask"].copy()) if "mask" in data.files else None
    load_before = loadavg()
    rss0 = status_mib("VmRSS")
    nets = load_networks(paths, stage, side)
    rss_loaded = status_mib("VmRSS")
    timing = time_function(stage_function(stage, nets, x, mask), repeats)
    return {
        "stage": stage, "size": side, "network_input_shape": list(x.shape), **timing,
        "peak_rss_mib": status_mib("VmHWM"), "rss0_mib": rss0, "rss_loaded_mib": rss_loaded,
        "mask_coverage": float(data["mask_coverage"]) if "mask_coverage" in data.files else None,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "loadavg_before": load_before, "loadavg_after": loadavg(),
    }


# ---------------------------------------------------------------------------- parent: every case
def ensure_inputs(paths: on.Paths, cases, our_python: str) -> None:
    """Writes the missing inputs with make_inputs.py run by the project's own Python."""
    missing = [f"{s}:{n}" for s, n in cases if not os.path.exists(input_file(paths, s, n))]
    if not missing:
        return
    print(f"writing inputs with {our_python} (oldphoto_jax.bench.synthetic_photo): "
          f"{' '.join(missing)}", flush=True)
    if not os.path.exists(our_python):
        raise SystemExit(f"{our_python} not found: pass --our_python (the project's virtual "
                         "environment's python, which imports oldphoto_jax)")
    subprocess.run([our_python, os.path.join(HERE, "make_inputs.py"), "--out", paths.inputs_dir,
                    *missing], check=True, cwd=on.REPO_ROOT)


def ensure_weights(paths: on.Paths, cases) -> None:
    names = sorted({n for s, _ in cases for n in STAGE_NETWORKS[s]})
    todo = [n for n in names if not os.path.exists(on.weights_file(paths, n))]
    if todo:
        print(f"writing fixture weights to {paths.weights_dir}: {' '.join(todo)}", flush=True)
        on.write_timing_weights(paths, todo)


def run_in_subprocess(paths: on.Paths, stage: str, side: int, args) -> dict:
    """One case measured in a fresh process; an ``error`` entry where it gave no result."""
    cmd = [sys.executable, os.path.abspath(__file__), *paths.as_arguments(),
           "--child", f"{stage}:{side}", "--repeats", str(args.repeats),
           "--threads", str(args.threads)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.case_timeout)
    except subprocess.TimeoutExpired:
        return {"stage": stage, "size": side, "error": f"no result within {args.case_timeout} s"}
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode or not lines:
        tail = (proc.stderr or proc.stdout)[-2000:].strip().splitlines()
        return {"stage": stage, "size": side,
                "error": f"exit {proc.returncode}: {tail[-1] if tail else ''}"}
    return json.loads(lines[-1][len("RESULT "):])


HEADER = ("stage", "photo side", "network input", "first run s", "run s", "user s", "sys s",
          "faults", "peak RSS MiB", "rss0 MiB", "rss loaded MiB", "load before/after")


def table_row(r: dict) -> str:
    if "error" in r:
        return f"| {r['stage']} | {r['size']} | error: {r['error']} |" + " |" * (len(HEADER) - 3)

    def cell(key, fmt):
        return "–" if r.get(key) is None else format(r[key], fmt)

    return "| " + " | ".join([
        r["stage"], str(r["size"]), "x".join(str(d) for d in r["network_input_shape"]),
        cell("first_run_s", ".2f"), cell("run_s", ".2f"), cell("user_s", ".2f"),
        cell("sys_s", ".2f"), cell("minor_faults", ",.0f"), cell("peak_rss_mib", ",.0f"),
        cell("rss0_mib", ",.0f"), cell("rss_loaded_mib", ",.0f"),
        f"{r['loadavg_before']:.2f}/{r['loadavg_after']:.2f}"]) + " |"


def markdown_table(results) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|---|" + "---:|" * (len(HEADER) - 1)]
    return "\n".join(lines + [table_row(r) for r in results])


def parse_cases(text: str) -> list[tuple[str, int]]:
    cases = []
    for item in text.split(","):
        stage, side = item.strip().split(":")
        if stage not in STAGE_NETWORKS:
            raise SystemExit(f"unknown stage {stage!r}; stages: {', '.join(STAGE_NETWORKS)}")
        cases.append((stage, int(side)))
    return cases


def summary_line(r: dict) -> str:
    if "error" in r:
        return r["error"]
    runs = ", ".join(f"{t:.2f}" for t in r["run_times_s"])
    return (f"run {r['run_s']:.2f} s (first {r['first_run_s']:.2f} s, runs {runs}), "
            f"peak RSS {r['peak_rss_mib']:,.0f} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    on.add_path_arguments(parser)
    parser.add_argument("--cases", default=DEFAULT_CASES, help="STAGE:SIDE,...")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after the warm-up")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--case_timeout", type=float, default=3600)
    parser.add_argument("--json", default="official_times.json",
                        help="results file; a bare file name goes into <work_dir>")
    parser.add_argument("--our_python", default=DEFAULT_OUR_PYTHON,
                        help="the project's python, for make_inputs.py (default: .venv/bin/python "
                             "in the repository, or $OLDPHOTO_JAX_PYTHON)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    paths = on.resolve_paths(args)

    if args.child:
        stage, side = args.child.split(":")
        result = run_case(paths, stage, int(side), args.repeats, args.threads)
        print("RESULT " + json.dumps(result), flush=True)
        return 0

    cases = parse_cases(args.cases)
    ensure_inputs(paths, cases, args.our_python)
    ensure_weights(paths, cases)
    import torch

    header = (f"official PyTorch code, torch {torch.__version__}, {args.threads} threads, fp32, "
              f"batch 1, no_grad, fresh process per case, warm-up + median of {args.repeats}; "
              f"CPU: {cpu_model_name()} ({os.cpu_count()} cores); "
              f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(header, flush=True)
    results = []
    for stage, side in cases:
        print(f"{stage} at {side} (load {loadavg():.2f}) ...", flush=True)
        results.append(run_in_subprocess(paths, stage, side, args))
        print("  " + summary_line(results[-1]), flush=True)
    print(f"\n{markdown_table(results)}\n\n{header}")
    out = args.json if os.path.dirname(args.json) else os.path.join(paths.work, args.json)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"header": header, "cpu": cpu_model_name(), "official_dir": paths.official,
                   "results": results}, f, indent=1)
    print(f"results: {out}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
