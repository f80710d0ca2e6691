"""Train one task of the restoration model (VAE_A, VAE_B, a mapping, scratch detection, faces):
``train.py``, ``oldphoto-train``.

    .venv/bin/python train.py --config configs/vae_a.py:tiny --workdir runs/vae_a_tiny
    .venv/bin/python train.py --config configs/mapping.py:scratch --workdir runs/mapping_scratch \\
        --config.vae_a_checkpoint=runs/vae_a/export --config.vae_b_checkpoint=runs/vae_b/export \\
        --config.data.clean=/data/VOC/JPEGImages

The full recipe trains VAE_A and VAE_B, then the mapping(s) on their exports (the mapping
configs read ``runs/vae_a/export`` and ``runs/vae_b/export`` by default), plus scratch detection
and faces independently; ``python -m oldphoto_jax.training.assemble`` then combines the exports.

``--config`` is an ml_collections config file with an optional argument after ``:`` (each file's
docstring lists them: the official widths by default, ``tiny`` for a CPU-sized run, ``small`` for
the bundled model's run); the config files hold every number of a run, and any field can be
overridden with ``--config.<field>=<value>``. ``--print_config`` prints the resolved config and
exits. ``--workdir`` receives:

* ``checkpoints/<step>/``: training state and data-iterator position (orbax). Running the same
  command again resumes from the newest complete checkpoint, also after a kill at any moment,
  and continues exactly as an uninterrupted run would (same batches, same random keys);
* ``export/``: the inference networks in the ``infer.py --checkpoint_dir`` format, written at the
  end (and every ``export_every`` steps); ``python -m oldphoto_jax.training.assemble`` combines
  the exports of several tasks into one model directory;
* ``tb/``: TensorBoard event files (metrics, sample grids): ``tensorboard --logdir <workdir>``;
* ``config_from_step_<s>.json``: the configuration of each (re)start.

A NaN or infinite metric stops the run with an error naming the step and the metric (exit code
1); the checkpoints keep the last good state. A configuration that cannot run (a missing photo
folder, a batch that does not split over the devices...) is an error line with exit code 2.

Several processes (hosts): start the same command on every host, with
``--coordinator_address HOST:PORT --num_processes N --process_id I`` (HOST:PORT of process 0),
or without them where JAX detects the job itself (a multi-host Cloud TPU, SLURM, Open MPI) or
where ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` are set
(``oldphoto_jax.distributed``; ``--distributed=yes`` forces JAX's detection, ``--distributed=no``
never starts a multi-process job). Each process loads its share of every global batch; every
process takes part in checkpoints and exports, process 0 alone writes logs, samples and the
export. The workdir must be one all processes see: a shared file system or a bucket
(``gs://bucket/run``, through ``etils.epath``; needs ``gcsfs`` or TensorFlow for the bucket).
"""
from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from oldphoto_jax import distributed, paths

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Task config file, e.g. configs/vae_a.py or configs/mapping.py:tiny_scratch.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory for checkpoints, exports and TensorBoard logs; a run in an "
    "existing workdir resumes from its newest checkpoint.")
distributed.define_flags()
_VERBOSE = flags.DEFINE_bool("verbose", False, "Also print library logs (orbax, grain).")
_PRINT_CONFIG = flags.DEFINE_bool(
    "print_config", False, "Print the resolved config (file, argument and --config.* "
    "overrides) and exit without training; --workdir is not needed.")
flags.mark_flags_as_required(["config"])


is_multiprocess_job = distributed.is_multiprocess_job


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _PRINT_CONFIG.value:
        print(_CONFIG.value, end="", flush=True)
        return 0
    if not _WORKDIR.value:
        raise app.UsageError("--workdir is required (except with --print_config)")
    try:
        distributed.initialize_from_flags()  # before the JAX backend starts
    except distributed.DistributedError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    import jax

    if not _VERBOSE.value:
        logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    from oldphoto_jax.training import inputs, loop

    config = inputs.with_current_names(_CONFIG.value)
    if jax.process_index() == 0:
        print(f"task {config.task}: {jax.process_count()} process(es), "
              f"{jax.device_count()} {jax.devices()[0].platform} device(s); workdir "
              f"{paths.resolve(_WORKDIR.value)}", flush=True)
    try:
        loop.train(config, _WORKDIR.value)
    except loop.TrainingDiverged as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    except loop.ConfigError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    return 0



def run() -> None:
    """The console script's entry point (and ``train.py``'s).

    Installed, the config files ship inside the package (``oldphoto_jax/configs``): a
    ``--config`` path that does not exist, such as ``configs/vae_a.py:tiny``, is looked up there
    by its file name, and ``from configs import common`` in a config file finds them.
    """
    from oldphoto_jax import bundled, cpu_tuning

    cpu_tuning.apply()  # before the JAX backend starts
    sys.argv[1:] = bundled.resolve_config_args(sys.argv[1:])
    bundled.use_configs_package()
    app.run(main)


if __name__ == "__main__":
    run()
