"""Train one task of the restoration model (VAE_A, VAE_B, a mapping, scratch detection, faces).

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
from oldphoto_jax.cli.train import is_multiprocess_job, main, run  # noqa: F401

if __name__ == "__main__":
    run()
