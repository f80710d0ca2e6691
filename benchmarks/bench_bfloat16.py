"""bfloat16 against float32 global restoration: time and the difference in the restored photo.

    .venv/bin/python benchmarks/bench_bfloat16.py                          # bundled model, samples
    .venv/bin/python benchmarks/bench_bfloat16.py --checkpoint_dir /tmp/official-width --size 256

For each photo of ``--photos`` (resized to ``--size`` squared) and each stage of ``--stages``
(``restore_quality``; ``restore_scratch`` with the synthetic scratch mask of
``oldphoto_jax.bench``): the stage's
networks run once with their float32 weights and input, once with every floating-point weight
and the input cast to bfloat16 (each layer then computes in bfloat16; the output is cast back).
Prints the median wall seconds and CPU user seconds of ``--repeats`` runs of each, and the PSNR
and largest level difference of the bfloat16 photo against the float32 one (8-bit, as written).
This is the measurement behind "no bfloat16 option" (benchmarks/README.md, issue 18); on a GPU
or TPU run it again before deciding there. Random weights (``--random_widths``-style models)
time correctly but their PSNR means nothing: use trained weights for the quality column.
"""
from __future__ import annotations

import pathlib
import resource
import statistics
import time

from absl import app, flags

from oldphoto_jax import cpu_tuning

cpu_tuning.apply()

import jax  # noqa: E402  (after the tuning: XLA reads its flags when the backend starts)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from oldphoto_jax import bench, bundled, model_files  # noqa: E402

_CHECKPOINT = flags.DEFINE_string("checkpoint_dir", str(bundled.DEFAULT_DIR), "Model directory.")
_PHOTOS = flags.DEFINE_string("photos", str(bundled.REPO / "samples" / "old"), "Folder of photos.")
_STAGES = flags.DEFINE_list("stages", ["restore_quality", "restore_scratch"],
                            "restore_quality and/or restore_scratch.")
_SIZE = flags.DEFINE_integer("size", 512, "Square side the photos are resized to.")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Timed runs per dtype (after one warm-up).")


def _cast(tree, dtype):
    return jax.tree_util.tree_map(
        lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def _timed(compiled, args, repeats):
    walls, users = [], []
    for _ in range(repeats):
        before, began = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        jax.block_until_ready(compiled(*args))
        walls.append(time.perf_counter() - began)
        users.append(resource.getrusage(resource.RUSAGE_SELF).ru_utime - before.ru_utime)
    return statistics.median(walls), statistics.median(users)


def _to_uint8(image) -> np.ndarray:
    return np.clip(np.round((np.asarray(image[0], np.float64) + 1.0) * 127.5), 0, 255)


def measure(model, stage: str, photo: np.ndarray, repeats: int) -> dict:
    _, mask = bench.synthetic_photo(photo.shape[0])
    fn, (params, image, *extra) = bench.restoration_case(model, stage, photo, mask, "highest",
                                                         attention_chunk=1024)
    row = {}
    for name, dtype in (("float32", jnp.float32), ("bfloat16", jnp.bfloat16)):
        def run(p, x, *m, dtype=dtype):
            return fn(p, x.astype(dtype), *(a.astype(dtype) for a in m)).astype(jnp.float32)
        args = (_cast(params, dtype), image, *extra)
        compiled = jax.jit(run).lower(*args).compile()
        row[name] = _to_uint8(jax.block_until_ready(compiled(*args)))
        row[f"{name}_s"], row[f"{name}_user_s"] = _timed(compiled, args, repeats)
    mse = float(np.mean((row["float32"] - row["bfloat16"]) ** 2))
    row["psnr_db"] = float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
    row["max_level_diff"] = int(np.abs(row["float32"] - row["bfloat16"]).max())
    return row


def main(argv):
    del argv
    model = model_files.load_model(_CHECKPOINT.value)
    photos = sorted(p for p in pathlib.Path(_PHOTOS.value).iterdir()
                    if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    print(f"{jax.devices()[0].device_kind}; {_CHECKPOINT.value}; {len(photos)} photos at "
          f"{_SIZE.value} px")
    print("| stage | photo | float32 s | bfloat16 s | float32 user s | bfloat16 user s "
          "| PSNR bf16 vs f32 dB | max level diff |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for stage in _STAGES.value:
        for path in photos:
            side = _SIZE.value
            photo = np.asarray(Image.open(path).convert("RGB").resize((side, side),
                                                                       Image.BICUBIC))
            r = measure(model, stage, photo, _REPEATS.value)
            print(f"| {stage} | {path.name} | {r['float32_s']:.2f} | {r['bfloat16_s']:.2f} "
                  f"| {r['float32_user_s']:.2f} | {r['bfloat16_user_s']:.2f} "
                  f"| {r['psnr_db']:.1f} | {r['max_level_diff']} |", flush=True)


if __name__ == "__main__":
    app.run(main)
