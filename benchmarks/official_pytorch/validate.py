"""Checks the official networks as official_nets.py builds them against the parity fixtures,
before any timing: a network that does not reproduce the fixtures is not the official one.

    PY=.venv/bin/python   # has torch (the test extra)
    $PY benchmarks/official_pytorch/validate.py --official_dir SRC            # every case
    $PY benchmarks/official_pytorch/validate.py --official_dir SRC face_256   # some cases

Each case runs in a fresh process (the two official trees cannot share one): build the official
network(s), load ``make_state_dict(keys, seed)`` with the case's overrides, run the stored inputs
(float32, ``torch.no_grad()``) and compare with the stored outputs at the fixtures' tolerance
(``1e-4 + 20 * fp32_err``, as tests/test_parity.py). The pipeline cases check the detector's
probabilities and the restoration networks of ``pipeline_scratch`` / ``pipeline_scratch_hr``
(test.py's hole painting from the stored mask). One thread by default (``VALIDATE_THREADS``).
Results: ``<work_dir>/validation.json``; exit status 1 if a check fails.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

import official_nets as on

# single-network case -> network name in official_nets.NETWORKS
SINGLE = {
    "vae_encoder": "vae_a",
    "vae_decoder": "vae_b_quality",
    "mapping_quality": "mapping_quality",
    "mapping_scratch": "mapping_scratch",
    "mapping_hr": "mapping_patch_attention",
    "mapping_hr_noquery": "mapping_patch_attention",
    "scratch_unet": "scratch_unet",
    "face_256": "face_spade_256",
    "face_512": "face_spade_512",
}
PIPELINES = ("pipeline_scratch", "pipeline_scratch_hr")
ALL_CASES = tuple(SINGLE) + PIPELINES


def tensor(array):
    import torch

    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def fixture_network(paths: on.Paths, name: str, keys: str, seed: int, npz):
    """Official network ``name`` with the fixture weights of (keys, seed) and the case's
    overrides."""
    net = on.build(name, paths.official)
    state = on.fixture_state_dict(paths, keys, seed, on.case_overrides(npz))
    net.load_state_dict(on.to_torch_state(state), strict=True)
    return net


def to_network_input(u8_hwc: np.ndarray):
    """ToTensor + Normalize(0.5, 0.5) in torch's float32 order -> 1 x C x H x W."""
    x = (u8_hwc.astype(np.float32) / np.float32(255.0) - np.float32(0.5)) / np.float32(0.5)
    return tensor(x.transpose(2, 0, 1)[None])


def run_single(net, kind: str, npz):
    """The official call of a single-network case kind (parity/README.md)."""
    import torch

    if kind == "vae_encoder":
        return net(tensor(npz["in_image"]), flow="enc")
    if kind == "vae_decoder":
        return net(tensor(npz["in_latent"]), flow="dec")
    if kind == "mapping_quality":
        return net(tensor(npz["in_latent"]))
    if kind == "mapping_scratch":
        return net(tensor(npz["in_latent"]), tensor(npz["in_mask"]))
    if kind == "mapping_hr":
        return net.inference_forward(tensor(npz["in_latent"]), tensor(npz["in_mask"]))
    if kind == "scratch_unet":
        return net(tensor(npz["in_gray"]))
    if kind == "face":
        face = tensor(npz["in_face"])
        return net(torch.zeros(face.shape[0], 18, *face.shape[2:]), face)
    raise ValueError(f"unknown case kind {kind!r}")


def pipeline_outputs(case: str, nets: dict, npz) -> dict:
    """Detector probabilities and restored network output of a pipeline case, as detection.py
    and test.py --Scratch_and_Quality_restore [--HR] compute them from the stored arrays."""
    import torch

    outputs = {"out_unet_prob":
               torch.sigmoid(nets["scratch_unet"](tensor(npz["out_unet_input"])))}
    if case == "pipeline_scratch_hr":
        mask01 = npz["out_dilated_mask"][0, 0]
    else:
        mask01 = (npz["out_mask_png"][..., 0] / 255.0).astype(np.float32)
    rgb = npz["out_detection_input_rgb"]
    alpha = (mask01 * 255).astype(np.uint8)[..., None].repeat(3, axis=2) / 255
    holed = (rgb * (1 - alpha) + alpha * 255).astype(np.uint8)  # irregular_hole_synthesize
    mask = tensor(mask01[None, None])
    mapping_name = next(k for k in nets if k.startswith("mapping"))
    z = nets["vae_a"](to_network_input(holed), flow="enc")
    if case == "pipeline_scratch_hr":
        z = nets[mapping_name].inference_forward(z, mask)
    else:
        z = nets[mapping_name](z, mask)
    outputs["out_network"] = nets["vae_b_scratch"](z, flow="dec")
    return outputs


def check(case: str, label: str, got, want: np.ndarray, tolerance: float) -> dict:
    err = float(np.max(np.abs(got.detach().numpy().astype(np.float64) - want)))
    return {"case": case, "output": label, "max_abs_err": err, "tolerance": tolerance,
            "ok": err <= tolerance, "shape": list(want.shape)}


def run_case(paths: on.Paths, case: str) -> list[dict]:
    """The checks of one parity case, in this process."""
    import torch

    torch.set_num_threads(int(os.environ.get("VALIDATE_THREADS", "1")))
    with open(os.path.join(paths.parity_cases, "cases.json")) as f:
        meta = json.load(f)[case]
    npz = np.load(os.path.join(paths.parity_cases, f"{case}.npz"))
    with torch.no_grad():
        if case in SINGLE:
            net = fixture_network(paths, SINGLE[case], meta["keys"], meta["seed"], npz)
            (out_key,) = [k for k in npz.files if k.startswith("out_")]
            tolerance = 1e-4 + 20 * float(meta[f"fp32_err_{out_key[4:]}"])
            return [check(case, out_key, run_single(net, meta["kind"], npz), npz[out_key],
                          tolerance)]
        nets = {k: fixture_network(paths, k, k, s, npz)
                for k, s in zip(meta["keys"], meta["seeds"])}
        outputs = pipeline_outputs(case, nets, npz)
        return [check(case, "out_unet_prob", outputs["out_unet_prob"], npz["out_unet_prob"],
                      1e-5),
                check(case, "out_network", outputs["out_network"], npz["out_network"],
                      1e-4 + 20 * float(meta["fp32_err_network"]))]


def run_in_subprocess(paths: on.Paths, case: str) -> list[dict] | str:
    """The checks of ``case`` from a fresh process, or the reason it gave none."""
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), *paths.as_arguments(),
                           "--child", case], capture_output=True, text=True)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode or not lines:
        return f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def save_results(path: str, results: list[dict]) -> None:
    """Writes ``results`` to ``path``, keeping earlier results of other cases."""
    merged = {}
    if os.path.exists(path):
        with open(path) as f:
            merged = {(r["case"], r["output"]): r for r in json.load(f)}
    merged.update({(r["case"], r["output"]): r for r in results})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(list(merged.values()), f, indent=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    on.add_path_arguments(parser)
    parser.add_argument("cases", nargs="*", help=f"default: all ({', '.join(ALL_CASES)})")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    paths = on.resolve_paths(args)
    if args.child:
        print("RESULT " + json.dumps(run_case(paths, args.child)))
        return 0

    results, failed = [], False
    for case in args.cases or ALL_CASES:
        checks = run_in_subprocess(paths, case)
        if isinstance(checks, str):
            print(f"{case}: FAILED ({checks})")
            failed = True
            continue
        for r in checks:
            results.append(r)
            failed |= not r["ok"]
            print(f"{case:20s} {r['output']:14s} max|err| {r['max_abs_err']:.3e}  "
                  f"tol {r['tolerance']:.3e}  {'ok' if r['ok'] else 'FAIL'}", flush=True)
    out = os.path.join(paths.work, "validation.json")
    save_results(out, results)
    print(f"results: {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
