"""What ``infer.py`` does once its flags are parsed: load the model, restore a folder, print the
summary, and return the exit status (0 all restored, 1 some photo failed, 2 could not start).

Separate from ``infer.py`` so that it can be run in-process (tests) with any output streams.
Nothing is written before the model has loaded and the output folder is known to be writable.
"""
from __future__ import annotations

import pathlib
import time
from typing import TextIO

from oldphoto_jax import bundled, model_files
from oldphoto_jax.pipeline.stage_runner import Options, PipelineError


def restore_folder(input_folder: str, output_folder: str, checkpoint_dir: str,
                   options: Options, out: TextIO, err: TextIO) -> int:
    """Restore ``input_folder`` into ``output_folder`` with the model at ``checkpoint_dir``,
    reporting to ``out`` / ``err``; returns the exit status."""
    def say(line: str, stream: TextIO = out) -> None:
        print(line, file=stream, flush=True)

    checkpoint_dir = pathlib.Path(checkpoint_dir)
    if not (checkpoint_dir / "manifest.json").exists():
        hint = ""
        if checkpoint_dir.resolve() == bundled.DEFAULT_DIR:
            hint = ("\nThe bundled model is not in this checkout. Convert the official weights "
                    "(python -m oldphoto_jax.convert --help) and pass --checkpoint_dir.")
        say(f"error: no model at {checkpoint_dir} (manifest.json missing){hint}", err)
        return 2
    if not pathlib.Path(input_folder).is_dir():
        say(f"error: input folder {input_folder} does not exist", err)
        return 2
    try:
        model = model_files.load_model(checkpoint_dir)
        say(f"weights: {model.directory} ({model.source or 'no source recorded'})")
        for note in model.notes:
            say(f"note: {note}")
        from oldphoto_jax.api import Restorer

        restorer = Restorer(model, options, log=say)  # loads every network the run needs
        start = time.perf_counter()
        summary = restorer.restore_folder(input_folder, output_folder)
    except (model_files.CheckpointError, PipelineError) as e:
        say(f"error: {e}", err)
        return 2
    elapsed = time.perf_counter() - start
    say(f"\nsummary: {len(summary.restored)} restored, {len(summary.skipped)} already done, "
        f"{len(summary.failed)} failed, {summary.faces} face(s) enhanced, {elapsed:.1f} s")
    for name, (compile_s, run_s, shapes) in summary.timings.items():
        say(f"  {name}: compile {compile_s:.1f} s ({shapes} shape(s)), run {run_s:.1f} s")
    for name, output_stem, why in summary.renamed:
        say(f"  renamed: {name} -> {output_stem}.png ({why})")
    for name, reason in summary.failed:
        say(f"  failed: {name}: {reason}", err)
    say(f"results in {pathlib.Path(output_folder) / 'final_output'}")
    return 1 if summary.failed else 0
