"""Several JAX processes (hosts) in one job: starting them, and the few things they must agree on.

``train.py`` and ``infer.py`` take the same flags (:func:`define_flags`)::

    --coordinator_address HOST:PORT --num_processes N --process_id I

and call :func:`initialize_from_flags` before JAX starts its backend. Without an address,
``jax.distributed.initialize()`` is called only where the environment describes a multi-process
job, and JAX then detects the cluster itself: a multi-host Cloud TPU (TPU VM pod slices), SLURM,
Open MPI; or the documented variables ``JAX_COORDINATOR_ADDRESS`` + ``JAX_NUM_PROCESSES`` +
``JAX_PROCESS_ID`` (jax 0.10.2 reads only the first of them; they are read here and passed on).
``--distributed=yes`` forces the call (JAX's own detection), ``--distributed=no`` never calls it.

On CPU the processes' collectives go over gloo (jaxlib 0.10.2's default for a distributed CPU
job); each process's devices are its own, ``jax.devices()`` lists every process's.

What every process must do together (and only process 0 alone) is documented where it happens:
:mod:`oldphoto_jax.training.loop` (checkpoints, exports, samples, the time limit). Helpers here:

* :func:`single_process_options`: orbax options for a save or restore that one process does on
  its own (the inference model export, loading a model): orbax otherwise waits at barriers for
  every process of the job, which hangs when only process 0 writes;
* :func:`agree` / :func:`barrier`: one value decided by process 0 / a rendezvous, no-ops in a
  single-process job;
* :func:`process_share`: this process's part of a list (inference: photos split by process).
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence, TypeVar

T = TypeVar("T")

MODES = ("auto", "yes", "no")


class DistributedError(ValueError):
    """Flags or environment that cannot describe a job of several processes."""


def _count(environ: Mapping[str, str], name: str) -> int:
    try:
        return int(environ.get(name, "1"))
    except ValueError:
        return 1


def is_multiprocess_job(environ: Mapping[str, str]) -> bool:
    """Whether the environment variables describe a job of several JAX processes."""
    if environ.get("JAX_COORDINATOR_ADDRESS"):
        return True
    if _count(environ, "SLURM_NTASKS") > 1 or _count(environ, "OMPI_COMM_WORLD_SIZE") > 1:
        return True
    hosts = environ.get("TPU_WORKER_HOSTNAMES", "")
    return len([h for h in hosts.split(",") if h.strip()]) > 1


def initialize_arguments(mode: str = "auto", coordinator_address: str | None = None,
                         num_processes: int | None = None, process_id: int | None = None,
                         environ: Mapping[str, str] = os.environ) -> dict | None:
    """The keyword arguments of ``jax.distributed.initialize`` for these flags and this
    environment, or None when it must not be called (a single-process run)."""
    if mode not in MODES:
        raise DistributedError(f"--distributed must be one of {MODES}, got {mode!r}")
    if mode == "no":
        if coordinator_address or num_processes or process_id is not None:
            raise DistributedError("--distributed=no contradicts --coordinator_address / "
                                   "--num_processes / --process_id")
        return None
    if not coordinator_address and environ.get("JAX_COORDINATOR_ADDRESS"):
        coordinator_address = environ["JAX_COORDINATOR_ADDRESS"]
        if num_processes is None and environ.get("JAX_NUM_PROCESSES"):
            num_processes = _int_variable(environ, "JAX_NUM_PROCESSES")
        if process_id is None and environ.get("JAX_PROCESS_ID"):
            process_id = _int_variable(environ, "JAX_PROCESS_ID")
    if coordinator_address:
        if num_processes is not None and num_processes < 1:
            raise DistributedError(f"--num_processes must be >= 1, got {num_processes}")
        if process_id is not None and num_processes is not None and not (
                0 <= process_id < num_processes):
            raise DistributedError(f"--process_id {process_id} is outside [0, {num_processes})")
        return {"coordinator_address": coordinator_address, "num_processes": num_processes,
                "process_id": process_id}
    if num_processes is not None or process_id is not None:
        raise DistributedError("--num_processes / --process_id need --coordinator_address "
                               "HOST:PORT (the address of process 0)")
    if mode == "yes" or is_multiprocess_job(environ):
        return {}  # JAX detects the cluster (Cloud TPU, SLURM, Open MPI)
    return None


def _int_variable(environ: Mapping[str, str], name: str) -> int:
    try:
        return int(environ[name])
    except ValueError:
        raise DistributedError(f"{name}={environ[name]!r} is not an integer") from None


def initialize(mode: str = "auto", coordinator_address: str | None = None,
               num_processes: int | None = None, process_id: int | None = None,
               timeout_s: int = 300, environ: Mapping[str, str] = os.environ) -> bool:
    """Call ``jax.distributed.initialize`` as :func:`initialize_arguments` says (before the JAX
    backend starts); returns whether it was called. ``timeout_s``: how long to wait for every
    process to join, and for a process that stopped answering, before giving up."""
    arguments = initialize_arguments(mode, coordinator_address, num_processes, process_id,
                                     environ)
    if arguments is None:
        return False
    import jax

    jax.distributed.initialize(**arguments, initialization_timeout=int(timeout_s),
                               heartbeat_timeout_seconds=max(10, int(timeout_s)))
    return True


def define_flags(flag_values=None):
    """Define ``--distributed``, ``--coordinator_address``, ``--num_processes``,
    ``--process_id`` and ``--distributed_timeout_s`` on ``flag_values`` (absl's global flags by
    default), at the entry point's module level; a second call (two entry points loaded in one
    process) leaves them as they are."""
    from absl import flags

    flag_values = flags.FLAGS if flag_values is None else flag_values
    if "coordinator_address" in flag_values:
        return
    flags.DEFINE_enum(
        "distributed", "auto", list(MODES),
        "Call jax.distributed.initialize(): 'auto' when --coordinator_address is given or the "
        "environment describes a multi-process job (multi-host Cloud TPU, SLURM, Open MPI, "
        "JAX_COORDINATOR_ADDRESS); 'yes' always (JAX detects the cluster); 'no' never.",
        flag_values=flag_values)
    flags.DEFINE_string(
        "coordinator_address", None, "HOST:PORT of process 0 in a job of several processes "
        "(every process gets the same address); with --num_processes and --process_id.",
        flag_values=flag_values)
    flags.DEFINE_integer("num_processes", None, "Processes of the job (with "
                         "--coordinator_address).", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_integer("process_id", None, "This process's index in [0, num_processes) "
                         "(with --coordinator_address).", lower_bound=0, flag_values=flag_values)
    flags.DEFINE_integer("distributed_timeout_s", 300, "Seconds to wait for every process to "
                         "join, or for a silent process, before the job stops.", lower_bound=1,
                         flag_values=flag_values)


def initialize_from_flags(flag_values=None) -> bool:
    """:func:`initialize` with the values of :func:`define_flags`' flags."""
    from absl import flags

    f = flags.FLAGS if flag_values is None else flag_values
    return initialize(f.distributed, f.coordinator_address, f.num_processes, f.process_id,
                      f.distributed_timeout_s)


# --- what processes share -----------------------------------------------------------------------

def process_share(items: Sequence[T], index: int | None = None,
                  count: int | None = None) -> list[T]:
    """This process's part of ``items``: every ``count``-th item from ``index`` (default: this
    JAX process among all), so N processes over the same sorted list each take a disjoint
    share and together every item once."""
    if index is None or count is None:
        import jax

        index, count = jax.process_index(), jax.process_count()
    return list(items[index::count])


def single_process_options():
    """``orbax.checkpoint.options.MultiprocessingOptions`` for a checkpointer used by this
    process alone: it is the primary host, and orbax skips its cross-process barriers."""
    import jax
    import orbax.checkpoint as ocp

    me = jax.process_index()
    return ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me},
                                              barrier_sync_key_prefix=f"process{me}")


def agree(value, name: str = "value"):
    """Process 0's ``value`` (a scalar or numpy array), on every process (a collective: every
    process must call it); ``value`` itself in a single-process job."""
    import jax

    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    return multihost_utils.broadcast_one_to_all(value)


def first_process_then_others(action, name: str, default=None):
    """Process 0 runs ``action()`` while the others wait for it (at the barrier ``name``);
    returns its result on process 0, ``default`` elsewhere. E.g. cleaning a shared folder
    before every process writes into it."""
    import jax

    result = action() if jax.process_index() == 0 else default
    barrier(name)
    return result


def barrier(name: str) -> None:
    """Wait until every process has reached the barrier ``name`` (no-op with one process)."""
    import jax

    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)
