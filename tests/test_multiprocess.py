"""Jobs of two JAX processes on 127.0.0.1 (CPU, gloo collectives): ``train.py`` trains, checkpoints,
is killed, resumes and exports; ``infer.py`` restores a folder split over two processes.

One module-scoped run (``two_process_training``) serves the training assertions:

1. ``train.py`` as two processes (the scratch-detection task at tiny widths, 4 steps, a
   checkpoint every 2) pauses once the checkpoint of step 2 is committed, and both processes
   are killed (SIGKILL of their process groups);
2. the same command resumes from step 2 and finishes (sample images, checkpoint, export);
3. meanwhile ``train.py`` runs the same 4 steps as one process on two simulated devices.

Each process of the worker (``oldphoto_jax.testing.multiprocess``) records the parameters it
ends with. Every wait has a timeout, after which the processes are killed. A persistent
compilation cache shared by the runs keeps process 0 from compiling a program twice.
"""
from __future__ import annotations

import json
import pathlib
import sys
import time

import numpy as np
import pytest
from PIL import Image

from oldphoto_jax import model_files
from oldphoto_jax.testing import multiprocess as mp
from oldphoto_jax.testing.random_model import random_network
from oldphoto_jax.testing.synthetic_photos import smooth_photo

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS, PAUSE = 4, 2
TIMEOUT = 240  # seconds for one job; far above its time on an idle 2-core machine


def train_flags(workdir: pathlib.Path, clean: pathlib.Path) -> list[str]:
    return ["--config", "configs/scratch.py:tiny", "--workdir", str(workdir),
            f"--config.data.clean={clean}", f"--config.num_steps={STEPS}",
            f"--config.checkpoint_every={PAUSE}", f"--config.log_every={PAUSE}",
            f"--config.sample_every={PAUSE}", "--config.model.depth=1",
            "--config.model.conv_num=1"]


def worker(dump: pathlib.Path, flags: list[str], pause: int = 0) -> list[str]:
    extra = [f"--pause_after_step={pause}"] if pause else []
    return [sys.executable, "-m", "oldphoto_jax.testing.multiprocess", "--dump", str(dump),
            *extra, "--", *flags]


@pytest.fixture(scope="module")
def two_process_training(tmp_path_factory):
    root = tmp_path_factory.mktemp("two_processes")
    clean = root / "clean"
    clean.mkdir()
    for k in range(4):
        Image.fromarray(smooth_photo(64, 80, seed=k, phase=k)).save(clean / f"p{k}.png")
    cache = str(root / "compilation_cache")
    timings = {}

    # 1 + 3: the two-process run, paused and killed after the checkpoint of step 2, and the
    # single-process reference on two simulated devices, side by side.
    work = root / "work"
    port = mp.free_port()
    killed = mp.launch(
        [worker(root / "killed", train_flags(work, clean) + mp.distributed_flags(port, 2, i),
                pause=PAUSE) for i in range(2)],
        mp.cpu_environment(1, cache), root / "logs", "killed")
    reference = mp.launch(
        [worker(root / "reference", train_flags(root / "reference_work", clean)
                + ["--distributed=no"])],
        mp.cpu_environment(2, cache), root / "logs", "reference")
    try:
        mp.wait_for_files([root / "killed" / f"paused_{i}" for i in range(2)], killed, TIMEOUT)
        timings["until paused at step 2"] = killed.seconds
        committed = sorted(p.name for p in (work / "checkpoints").iterdir())
        killed.kill()
        assert [p.poll() for p in killed.processes] == [-9, -9]

        # 2: resume.
        start = time.monotonic()
        port = mp.free_port()
        resumed = mp.launch(
            [worker(root / "resumed", train_flags(work, clean) + mp.distributed_flags(port, 2, i))
             for i in range(2)], mp.cpu_environment(1, cache), root / "logs", "resumed")
        resumed.wait(TIMEOUT)
        timings["resume to step 4 and export"] = time.monotonic() - start
        reference.wait(TIMEOUT)
        timings["one process, two devices (alongside)"] = reference.seconds
    finally:
        killed.kill()
        reference.kill()
    return {"root": root, "work": work, "committed": committed, "timings": timings,
            "logs": root / "logs"}


def load_params(path: pathlib.Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def test_two_processes_train_resume_and_match_one_process(two_process_training):
    run = two_process_training
    root = run["root"]
    print("two-process timings (s):", json.dumps(
        {k: round(v, 1) for k, v in run["timings"].items()}))
    assert str(PAUSE) in run["committed"]
    results = [json.loads((root / "resumed" / f"result_{i}.json").read_text()) for i in range(2)]
    assert [r["start_step"] for r in results] == [PAUSE, PAUSE]
    assert [r["step"] for r in results] == [STEPS, STEPS]
    assert [r["process_count"] for r in results] == [2, 2]
    reference_result = json.loads((root / "reference" / "result_0.json").read_text())
    assert (reference_result["process_count"], reference_result["device_count"]) == (1, 2)

    ours = [load_params(root / "resumed" / f"params_{i}.npz") for i in range(2)]
    reference = load_params(root / "reference" / "params_0.npz")
    assert ours[0].keys() == ours[1].keys() == reference.keys() and reference
    for key in reference:
        np.testing.assert_array_equal(ours[0][key], ours[1][key], err_msg=key)
        np.testing.assert_array_equal(ours[0][key], reference[key], err_msg=key)
    # The resumed run logged (process 0 only), checkpointed and exported.
    log0 = (run["logs"] / "resumed_0.log").read_text()
    log1 = (run["logs"] / "resumed_1.log").read_text()
    assert f"resumed from the checkpoint of step {PAUSE}" in log0
    assert "resumed from" not in log1 and "exported" not in log1
    work = run["work"]
    assert sorted(int(p.name) for p in (work / "checkpoints").iterdir()
                  if p.name.isdigit()) == [PAUSE, STEPS]
    assert list((work / "tb").glob("events.out.tfevents.*"))
    exported = model_files.load_model(work / "export")
    assert exported.roles == ["scratch_detector"]
    _, variables = exported.network("scratch_detector")
    assert variables["params"]  # the checksums were verified while loading


def test_infer_runs_as_two_processes_on_the_trained_export(two_process_training, tmp_path):
    """The trained detector, with tiny random networks for the rest, restores a folder split
    over two ``infer.py`` processes: each restores its share, together every photo once. The
    job is described by the documented variables (``JAX_COORDINATOR_ADDRESS``...), not flags."""
    trained = model_files.load_model(two_process_training["work"] / "export")
    networks = {role: random_network(role, seed=i)
                for i, role in enumerate(("vae_a", "vae_b_scratch", "mapping_scratch"))}
    networks["scratch_detector"] = trained.network("scratch_detector")
    model = model_files.save_model(tmp_path / "model", networks, source="test")
    photos = tmp_path / "photos"
    photos.mkdir()
    names = [f"photo{k}.png" for k in range(3)]
    for k, name in enumerate(names):
        Image.fromarray(smooth_photo(48, 64, seed=10 + k, phase=k)).save(photos / name)
    out = tmp_path / "restored"
    port = mp.free_port()
    job = mp.launch(
        [[sys.executable, str(REPO / "infer.py"), "--input_folder", str(photos),
          "--output_folder", str(out), "--checkpoint_dir", str(model), "--with_scratch",
          "--no_faces", "--distributed_timeout_s=60"] for i in range(2)],
        [mp.distributed_environment(
            mp.cpu_environment(1, str(two_process_training["root"] / "compilation_cache")),
            port, 2, i) for i in range(2)],
        tmp_path / "logs", "infer")
    try:
        job.wait(TIMEOUT)
    finally:
        job.kill()
    print(f"two-process infer.py: {job.seconds:.1f} s")
    assert sorted(p.name for p in (out / "final_output").iterdir()) == names
    logs = [log.read_text() for log in job.logs]
    assert "summary: 2 restored" in logs[0] and "summary: 1 restored" in logs[1]
    assert "photo0.png: done" in logs[0] and "photo1.png: done" in logs[1]
    assert "photo2.png: done" in logs[0]


def test_initialize_arguments():
    from oldphoto_jax import distributed

    args = distributed.initialize_arguments
    assert args("auto", environ={}) is None
    assert args("no", environ={"SLURM_NTASKS": "4"}) is None
    assert args("auto", environ={"SLURM_NTASKS": "4"}) == {}
    assert args("yes", environ={}) == {}
    assert args("auto", "10.0.0.1:1234", 2, 1, environ={}) == {
        "coordinator_address": "10.0.0.1:1234", "num_processes": 2, "process_id": 1}
    # The documented variables, which jax 0.10.2 reads only the first of.
    env = {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"}
    assert args("auto", environ=env) == {"coordinator_address": "h:1", "num_processes": 4,
                                         "process_id": 3}
    # Cloud TPU: the address comes from the TPU metadata.
    assert args("auto", environ={"TPU_WORKER_HOSTNAMES": "t0,t1"}) == {}
    for bad in (dict(num_processes=2), dict(process_id=1),
                dict(coordinator_address="h:1", num_processes=2, process_id=2)):
        with pytest.raises(distributed.DistributedError):
            args("auto", environ={}, **bad)
    with pytest.raises(distributed.DistributedError):
        args("no", "h:1", environ={})
    assert distributed.process_share(list("abcde"), 0, 2) == ["a", "c", "e"]
    assert distributed.process_share(list("abcde"), 1, 2) == ["b", "d"]


@pytest.mark.slow
def test_fsdp_over_two_processes_matches_replicated_training(tmp_path):
    """``param_sharding=fsdp`` with the state split over two processes (checkpoint, samples and
    export gather it): the same parameters as a replicated state on one process with two
    devices, up to float summation order (Adam's epsilon raised as in
    ``tests/training/test_trainer_fsdp.py``)."""
    clean = tmp_path / "clean"
    clean.mkdir()
    for k in range(4):
        Image.fromarray(smooth_photo(64, 80, seed=k, phase=k)).save(clean / f"p{k}.png")
    cache = str(tmp_path / "compilation_cache")
    common = ["--config.optim.eps=0.001"]
    port = mp.free_port()
    fsdp = mp.launch(
        [worker(tmp_path / "fsdp", train_flags(tmp_path / "fsdp_work", clean) + common
                + ["--config.param_sharding=fsdp", "--config.fsdp_min_size=8"]
                + mp.distributed_flags(port, 2, i)) for i in range(2)],
        mp.cpu_environment(1, cache), tmp_path / "logs", "fsdp")
    replicated = mp.launch(
        [worker(tmp_path / "replicated", train_flags(tmp_path / "replicated_work", clean)
                + common + ["--distributed=no"])],
        mp.cpu_environment(2, cache), tmp_path / "logs", "replicated")
    try:
        fsdp.wait(TIMEOUT)
        replicated.wait(TIMEOUT)
    finally:
        fsdp.kill()
        replicated.kill()
    ours = [load_params(tmp_path / "fsdp" / f"params_{i}.npz") for i in range(2)]
    reference = load_params(tmp_path / "replicated" / "params_0.npz")
    for key in reference:
        np.testing.assert_array_equal(ours[0][key], ours[1][key], err_msg=key)
        np.testing.assert_allclose(ours[0][key], reference[key], rtol=1e-5, atol=1e-6,
                                   err_msg=key)
    exported = model_files.load_model(tmp_path / "fsdp_work" / "export")
    _, variables = exported.network("scratch_detector")
    for path, value in _flat(variables["params"]).items():  # the gathered, whole arrays
        (key,) = [key for key in ours[0] if key.endswith(path)]
        np.testing.assert_array_equal(value, ours[0][key], err_msg=key)


def _flat(tree) -> dict:
    import jax

    return {jax.tree_util.keystr(p): np.asarray(v)
            for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}
