"""Jobs of several JAX processes on one machine, for tests: free ports, launching, waiting with
timeouts, killing process groups, and a ``train.py`` worker that records each process's result.

    python -m oldphoto_jax.testing.multiprocess --dump DIR [--pause_after_step K] -- <train.py flags>

runs ``train.py``'s ``main`` (its flags, ``jax.distributed`` start-up, the trainer) and writes
``DIR/params_<process>.npz`` (the final parameters as this process holds them, gathered to the
host) and ``DIR/result_<process>.json``. With ``--pause_after_step K`` it stops after the
checkpoint of step K is committed, writes ``DIR/paused_<process>`` and sleeps, to be killed.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from typing import Mapping, Sequence

REPO = pathlib.Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released)."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_environment(devices: int = 1, cache_dir: str | None = None,
                    base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of a CPU JAX process with ``devices`` simulated devices and, if given, a
    persistent compilation cache shared by the processes of a test (they compile the same
    programs)."""
    env = dict(os.environ if base is None else base)
    flags = [f for f in env.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_force_host_platform_device_count")]
    if devices > 1:
        flags.append(f"--xla_force_host_platform_device_count={devices}")
    env["XLA_FLAGS"] = " ".join(flags)
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    if cache_dir:
        env["JAX_COMPILATION_CACHE_DIR"] = cache_dir
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"
    return env


@dataclasses.dataclass
class Job:
    """Processes started together; ``logs`` are their combined stdout + stderr files."""

    processes: list[subprocess.Popen]
    logs: list[pathlib.Path]
    started: float

    def kill(self) -> None:
        """SIGKILL every process group of the job (idempotent)."""
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)

    def wait(self, timeout: float) -> list[int]:
        """Exit codes once every process has ended; on timeout (or the first failure) every
        process is killed and ``JobFailed`` raised with the end of their logs."""
        deadline = self.started + timeout
        while True:
            codes = [p.poll() for p in self.processes]
            if all(c is not None for c in codes):
                if any(codes):
                    raise JobFailed(f"exit codes {codes}", self)
                return codes
            if any(c not in (None, 0) for c in codes):
                time.sleep(2)  # let the others report the failure, then stop them
                self.kill()
                raise JobFailed(f"a process failed (exit codes {[p.poll() for p in self.processes]})",
                                self)
            if time.monotonic() > deadline:
                self.kill()
                raise JobFailed(f"timed out after {timeout:.0f} s", self)
            time.sleep(0.1)

    def tails(self, chars: int = 3000) -> str:
        return "\n".join(f"--- process {i} ({log}):\n{log.read_text(errors='replace')[-chars:]}"
                         for i, log in enumerate(self.logs) if log.exists())

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


class JobFailed(RuntimeError):
    def __init__(self, what: str, job: Job):
        super().__init__(f"{what}\n{job.tails()}")
        self.job = job


def launch(commands: Sequence[Sequence[str]], env: Mapping[str, str] | Sequence[Mapping],
           log_dir: os.PathLike, name: str, cwd: os.PathLike = REPO) -> Job:
    """Start one process per command, each in its own session (so its whole group can be
    killed), logging to ``log_dir/<name>_<i>.log``; ``env``: one environment for all, or one
    per command."""
    envs = [env] * len(commands) if isinstance(env, Mapping) else list(env)
    log_dir = pathlib.Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    processes, logs = [], []
    started = time.monotonic()
    try:
        for i, command in enumerate(commands):
            log = log_dir / f"{name}_{i}.log"
            with open(log, "wb") as out:
                processes.append(subprocess.Popen(list(command), env=dict(envs[i]), cwd=cwd,
                                                  stdout=out, stderr=subprocess.STDOUT,
                                                  start_new_session=True))
            logs.append(log)
    except BaseException:
        Job(processes, logs, started).kill()
        raise
    return Job(processes, logs, started)


def distributed_flags(port: int, count: int, index: int, timeout_s: int = 60) -> list[str]:
    return [f"--coordinator_address=127.0.0.1:{port}", f"--num_processes={count}",
            f"--process_id={index}", f"--distributed_timeout_s={timeout_s}"]


def distributed_environment(env: Mapping[str, str], port: int, count: int,
                            index: int) -> dict[str, str]:
    """``env`` with the documented variables of a multi-process job (instead of the flags)."""
    return {**env, "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
            "JAX_NUM_PROCESSES": str(count), "JAX_PROCESS_ID": str(index)}


def wait_for_files(files: Sequence[os.PathLike], job: Job, timeout: float) -> None:
    """Wait until every file exists; kill the job and raise ``JobFailed`` if a process ends
    first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not all(os.path.exists(f) for f in files):
        ended = [p.poll() for p in job.processes]
        if any(c is not None for c in ended):
            job.kill()
            raise JobFailed(f"a process ended before {files} appeared (exit codes {ended})", job)
        if time.monotonic() > deadline:
            job.kill()
            raise JobFailed(f"{files} did not appear within {timeout:.0f} s", job)
        time.sleep(0.1)


# --- the worker ---------------------------------------------------------------------------------

def _worker(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--dump", required=True)
    parser.add_argument("--pause_after_step", type=int, default=0)
    parser.add_argument("--script", default=str(REPO / "train.py"))
    ours, rest = _split(argv)
    args = parser.parse_args(ours)
    dump = pathlib.Path(args.dump)
    dump.mkdir(parents=True, exist_ok=True)

    from oldphoto_jax import cpu_tuning

    cpu_tuning.apply()
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_script", args.script)
    train_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_script)

    import numpy as np

    from oldphoto_jax.training import loop, train_checkpoints

    original_train = loop.train

    def train_and_record(*a, **k):
        import jax

        from oldphoto_jax import sharding

        result = original_train(*a, **k)
        me = jax.process_index()
        params = sharding.gather_state(result.state)["params"]
        leaves = jax.tree_util.tree_flatten_with_path(params)[0]
        np.savez(dump / f"params_{me}.npz",
                 **{jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves})
        (dump / f"result_{me}.json").write_text(json.dumps(
            {"step": result.step, "start_step": result.start_step,
             "process_count": jax.process_count(), "device_count": jax.device_count()}))
        return result

    loop.train = train_and_record
    if args.pause_after_step:
        original_save = train_checkpoints.TrainCheckpoints.save

        def save_then_pause(self, step, state, iterator):
            started = original_save(self, step, state, iterator)
            if step == args.pause_after_step:
                import jax

                self.wait()
                (dump / f"paused_{jax.process_index()}").write_text(str(step))
                while True:  # until killed
                    time.sleep(1)
            return started

        train_checkpoints.TrainCheckpoints.save = save_then_pause
    from absl import app

    app.run(train_script.main, argv=[args.script] + rest)


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the worker's arguments, train.py's after ``--``)."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


if __name__ == "__main__":
    _worker(sys.argv[1:])
