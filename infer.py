"""Restore a folder of old photos (the official run.py, in JAX).

    python infer.py --input_folder photos/ --output_folder restored/ [--with_scratch] [--HR]
        [--checkpoint_dir models/official] [--no_faces] [--max_side 2048] [--overwrite]

Stages and the output layout follow the official code (stage_1_restore_output/...,
stage_2_detection_output/, stage_3_face_output/, final_output/). Every photo ends as a file in
final_output/ or as an error line naming it; the run ends with a summary and exits non-zero if any
photo failed. Inputs are never modified; outputs are written atomically; a re-run skips photos
already in final_output/ unless --overwrite.

Several processes (hosts, or processes on one machine): start the same command in each with
``--coordinator_address HOST:PORT --num_processes N --process_id I`` (or on a TPU pod slice,
SLURM, Open MPI, without them; ``oldphoto_jax.distributed``); each restores every N-th photo of
the sorted folder on its own devices and prints its own summary.
"""
from oldphoto_jax.cli.restore import main, run  # noqa: F401  (the flags are defined there)

if __name__ == "__main__":
    run()
