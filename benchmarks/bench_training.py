"""Training throughput per task: steps/s and images/s of the jitted train step.

    .venv/bin/python benchmarks/bench_training.py                      # tiny configs + official
    .venv/bin/python benchmarks/bench_training.py --cases vae_b:tiny scratch:official
    .venv/bin/python benchmarks/bench_training.py --official-batch 4 --crop 256 --official-steps 1
    .venv/bin/python benchmarks/bench_training.py --cases vae_b:official --conv-weight-grad xla im2col

A case is ``<config>:<tiny|small|official>`` with ``<config>`` one of vae_a, vae_b,
mapping_quality, mapping_scratch, mapping_hr, scratch, face. ``tiny`` runs the
``configs/<task>.py:tiny`` config as it is (32 px crops, batch 2); ``small`` the bundled
model's ``small`` config (128 px crops, batch 8; no face; timed like tiny ones); ``official`` the official widths with batch ``--official-batch``
of ``--crop`` px crops (default 4 x 256 x 256). The step is jitted exactly as ``train.py`` does
(state replicated, batch split over every device, state donated) and fed one fixed batch from the
task's input pipeline, so the numbers are the model's, not the data pipeline's (see
``bench_input_pipeline.py`` for that). Each case: compile (ahead of time, reported), then for
tiny cases ``--warmup`` steps and ``--steps`` timed steps, for official ones
``--official-steps`` timed steps (each takes tens of seconds on a CPU). The mapping tasks get
frozen VAEs with random weights (same cost).
Photos: ``../shared/photos`` relative to the repository (``--photos``). The load average is
printed: the machine may be shared; ``CPU s/step`` (user + system seconds of this process per
timed step) is steadier than steps/s then. The CPU tuning of :mod:`oldphoto_jax.cpu_tuning` is
applied as in ``train.py`` (``OLDPHOTO_JAX_CPU_TUNING=0`` measures without it).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import resource
import tempfile
import time

import jax
import numpy as np

from oldphoto_jax import model_files, sharding
from oldphoto_jax import data as data_lib
from oldphoto_jax.testing.config_files import load_config
from oldphoto_jax.training import inputs, keys, loop, tasks
from oldphoto_jax.training.tasks_vae import vae_module

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = {  # case name -> (config file, argument of the official config, of the tiny one)
    "vae_a": ("vae_a", None, "tiny"),
    "vae_b": ("vae_b", None, "tiny"),
    "mapping_quality": ("mapping", "quality", "tiny_quality"),
    "mapping_scratch": ("mapping", "scratch", "tiny_scratch"),
    "mapping_hr": ("mapping", "hr", "tiny_hr"),
    "scratch": ("scratch", None, "tiny"),
    "face": ("face", "256", "tiny"),
}
SMALL_ARGS = {"vae_a": "small", "vae_b": "small", "mapping_quality": "small_quality",
              "mapping_scratch": "small_scratch", "mapping_hr": "small_hr", "scratch": "small"}
DEFAULT_CASES = [f"{name}:tiny" for name in CONFIGS] + [f"{name}:official" for name in CONFIGS]


def random_vaes(config, directory: pathlib.Path) -> None:
    """VAE_A / VAE_B exports with random weights and the widths the mapping config expects."""
    vae_config = load_config("vae_b", None)
    vae_config.model.ngf = vae_config.model.max_channels = config.model.nc
    if config.model.nc < 64:  # the small configs' VAEs
        vae_config.model.ngf = config.model.nc // 2
    module = vae_module(vae_config, precision="highest")
    size = 4 * 2 ** vae_config.model.n_down_convs
    variables = jax.device_get(module.init(jax.random.key(0, impl="rbg"),
                                           np.zeros((1, size, size, 3), np.float32)))
    for name, roles in (("vae_a", ("vae_a",)), ("vae_b", ("vae_b_quality", "vae_b_scratch"))):
        model_files.save_model(directory / name, {r: (module, variables) for r in roles},
                               overwrite=True)
    config.vae_a_checkpoint = str(directory / "vae_a")
    config.vae_b_checkpoint = str(directory / "vae_b")


def case_config(case: str, batch: int, crop: int, photos: pathlib.Path, scratch_dir):
    name, kind = case.split(":")
    if name not in CONFIGS or kind not in ("tiny", "small", "official"):
        raise ValueError(f"unknown case {case!r}; names {sorted(CONFIGS)}, "
                         "kinds tiny|small|official")
    if kind == "small" and name not in SMALL_ARGS:
        raise ValueError(f"no small config for {name}; small cases: {sorted(SMALL_ARGS)}")
    file, official_arg, tiny_arg = CONFIGS[name]
    arg = {"tiny": tiny_arg, "official": official_arg}[kind] if kind != "small" else \
        SMALL_ARGS[name]
    config = load_config(file, arg)
    if "faces" in config.data:
        config.data.faces = str(photos / "clean")  # only the shapes matter here
    else:
        config.data.clean = str(photos / "clean")
    if "old" in config.data:
        config.data.old = (str(photos / "old"), str(photos / "old_w_scratch"))
    config.input.degrade_full_image = False
    config.input.num_workers = 0
    if kind == "official":
        config.input.batch_size = batch
        config.input.crop_size = crop
        if name == "face":
            config.model.load_size = crop
    if file == "mapping":
        random_vaes(config, pathlib.Path(scratch_dir) / case.replace(":", "_"))
    return config


def measure(config, warmup: int, steps: int, conv_weight_grad: str = "xla") -> dict:
    photos = inputs.training_photos(config.data, config.input.records)
    config = inputs.resolve_lengths(config, photos)
    task = tasks.build_task(config)
    mesh = sharding.make_mesh()
    batch_size = int(config.input.batch_size)
    batch = data_lib.batch_dataset(inputs.input_config(config, task.records), photos)[0]
    state = sharding.replicate(mesh, task.init_state(keys.init_key(0), batch))
    step_fn = loop.jit_train_step(task, mesh, 0, config.prng_impl, conv_weight_grad)
    placed = sharding.global_batch(mesh, batch)
    began = time.perf_counter()
    compiled = step_fn.lower(state, placed, np.int32(0)).compile()
    compile_s = time.perf_counter() - began
    for k in range(warmup):
        state, metrics = compiled(state, placed, np.int32(k))
    jax.block_until_ready(state)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    for k in range(steps):
        state, metrics = compiled(state, placed, np.int32(warmup + k))
    jax.block_until_ready((state, metrics))
    elapsed = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime) / steps
    params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state["params"]))
    return {"steps_per_s": steps / elapsed, "images_per_s": steps * batch_size / elapsed,
            "cpu_s_per_step": cpu, "sys_s_per_step": (after.ru_stime - usage.ru_stime) / steps,
            "compile_s": compile_s, "batch": batch_size, "crop": int(config.input.crop_size),
            "params": params}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES)
    parser.add_argument("--official-batch", type=int, default=4)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps (tiny cases)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (tiny cases)")
    parser.add_argument("--official-steps", type=int, default=2,
                        help="timed steps (official cases)")
    parser.add_argument("--photos", default=str(REPO.parent / "shared" / "photos"))
    parser.add_argument("--conv-weight-grad", nargs="+", default=["xla"],
                        choices=["xla", "im2col"],
                        help="kernel-gradient formulations to time (config.conv_weight_grad)")
    args = parser.parse_args(argv)
    device = f"{jax.device_count()} x {jax.devices()[0].device_kind}"
    print(f"devices: {device}; load average {os.getloadavg()[0]:.1f}", flush=True)
    header = (f"{'case':26s} {'wgrad':>6s} {'batch':>5s} {'crop':>5s} {'params':>11s} "
              f"{'compile s':>9s} {'steps/s':>9s} {'images/s':>9s} {'CPU s/step':>10s} "
              f"{'sys s/step':>10s}")
    print(header)
    print("-" * len(header), flush=True)
    with tempfile.TemporaryDirectory() as scratch_dir:
        for case in args.cases:
            config = case_config(case, args.official_batch, args.crop, pathlib.Path(args.photos),
                                 scratch_dir)
            official = case.endswith("official")
            for mode in args.conv_weight_grad:
                r = measure(config, 0 if official else args.warmup,
                            args.official_steps if official else args.steps, mode)
                print(f"{case:26s} {mode:>6s} {r['batch']:5d} {r['crop']:5d} {r['params']:11,d} "
                      f"{r['compile_s']:9.1f} {r['steps_per_s']:9.3f} {r['images_per_s']:9.2f} "
                      f"{r['cpu_s_per_step']:10.3f} {r['sys_s_per_step']:10.3f}",
                      flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    from oldphoto_jax import cpu_tuning

    cpu_tuning.apply()  # before the JAX backend starts
    main()
