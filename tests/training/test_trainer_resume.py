"""train.py end to end (scratch detection's tiny config on two simulated CPU devices, the batch
split over the "data" axis): killed with SIGKILL after its first checkpoint it resumes, and
continued to step N gives bitwise the parameters (and optimizer and batch-norm states) of an
uninterrupted run to N; a NaN stops it with exit code 1 and the last good checkpoint kept.
The uninterrupted run also shows the task's BCE falling.

The processes share a persistent compilation cache, so only the first one compiles.
"""
from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from oldphoto_jax import model_files
from oldphoto_jax.training import train_checkpoints

REPO = pathlib.Path(__file__).resolve().parents[2]
STEPS = 60
EVERY = 10


def command(workdir, photo_dirs, *extra):
    return [sys.executable, str(REPO / "train.py"), "--config", "configs/scratch.py:tiny",
            "--workdir", str(workdir), f"--config.num_steps={STEPS}",
            f"--config.checkpoint_every={EVERY}", "--config.log_every=20",
            "--config.sample_every=30", "--config.input.batch_size=4",
            f"--config.data.clean={photo_dirs['clean']}", *extra]


def environment(cache_dir):
    env = dict(os.environ)
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_COMPILATION_CACHE_DIR=str(cache_dir))
    return env


def committed_steps(directory: pathlib.Path) -> list[int]:
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def run(cmd, env, log_path, timeout=300):
    with open(log_path, "w") as log:
        done = subprocess.run(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                              timeout=timeout)
    output = pathlib.Path(log_path).read_text()
    assert done.returncode == 0, output[-3000:]
    return output


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return environment(tmp_path_factory.mktemp("jax_cache"))


def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path, photo_dirs, env):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    out = run(command(straight, photo_dirs), env, tmp_path / "straight.log")
    assert "2 cpu device(s)" in out and f"step {STEPS}/{STEPS}" in out
    bce = [float(v) for v in re.findall(r"loss/bce ([0-9.]+)", out)]
    assert len(bce) == STEPS // 20 and bce[-1] < 0.85 * bce[0], bce  # the detector learns

    # Start again in a new workdir, wait for the first complete checkpoint, kill at once.
    with open(tmp_path / "killed.log", "w") as log:
        process = subprocess.Popen(command(killed, photo_dirs), env=env, cwd=REPO,
                                   stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while not committed_steps(killed / "checkpoints"):
            assert process.poll() is None, "train.py ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    at_kill = sorted(p.name for p in (killed / "checkpoints").iterdir())
    steps_at_kill = committed_steps(killed / "checkpoints")
    assert process.returncode == -signal.SIGKILL
    assert steps_at_kill and steps_at_kill[-1] < STEPS, at_kill
    print(f"checkpoint directory at the kill: {at_kill}")  # shows a half-written one, if any

    out = run(command(killed, photo_dirs), env, tmp_path / "resumed.log")
    resumed_from = int(re.search(r"resumed from the checkpoint of step (\d+)", out).group(1))
    assert resumed_from >= steps_at_kill[-1] and resumed_from % EVERY == 0

    a = train_checkpoints.load_state_arrays(straight / "checkpoints", STEPS)
    b = train_checkpoints.load_state_arrays(killed / "checkpoints", STEPS)
    assert a.keys() == b.keys()
    assert any("batch_stats" in key for key in a) and any("opt_state" in key for key in a)
    for key in a:
        assert a[key].tobytes() == b[key].tobytes(), f"{key} differs after the resume"
    _, va = model_files.load_model(straight / "export").network("scratch_detector")
    _, vb = model_files.load_model(killed / "export").network("scratch_detector")
    for x, y in zip(_leaves(va), _leaves(vb)):
        assert x.tobytes() == y.tobytes()


def test_nan_stops_train_py_and_keeps_the_last_good_checkpoint(tmp_path, photo_dirs, env):
    cmd = command(tmp_path, photo_dirs, "--config.debug_nan_step=25")
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]
    message = done.stderr.strip().splitlines()[-1]
    # NaN images give NaN gradients (the balanced BCE of a NaN image is not itself NaN here).
    assert message.startswith("error: training stopped at step 25: non-finite grad_norm/unet = nan")
    assert message.endswith(f"the last good checkpoint is step 20 in {tmp_path / 'checkpoints'}")
    assert committed_steps(tmp_path / "checkpoints") == [10, 20]
    assert not (tmp_path / "export").exists()


def _leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(tree)]
