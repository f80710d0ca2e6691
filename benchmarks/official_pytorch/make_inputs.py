"""Writes the inputs of the timing cases with this project's OWN code, so that the official
networks run on exactly what ``python -m oldphoto_jax.bench`` feeds its jitted functions.

Run with the project's virtual environment (it imports oldphoto_jax, not torch);
time_official.py calls it for the inputs it lacks:

    .venv/bin/python benchmarks/official_pytorch/make_inputs.py --out DIR detect:256 face_256:256

A case is STAGE:SIDE (SIDE = the photo's side; for face_256 / face_512 the face's side, normally
256 / 512). Per case it writes ``DIR/<stage>_<side>.npz`` with float32 NCHW arrays (as PyTorch
takes them) and the uint8 synthetic photo, as oldphoto_jax.bench._case_function builds them:

* detect: ``preprocess.detection_input(Image.fromarray(photo))[1]`` (grayscale, x16 PIL bicubic,
  bilinear rescale to short side 256) -> ``x`` 1x1xh'xw';
* face_*: ``Image.fromarray(photo).resize((side, side), BICUBIC)`` then
  ``preprocess.to_network_input`` -> ``x`` 1x3xSxS (``synthetic_photo(side)``);
* restore_*: ``preprocess.to_network_input(photo)`` -> ``x`` 1x3xSxS and the {0,1} scratch mask
  -> ``mask`` 1x1xSxS (the raw 3 px lines: no hole painting, no --HR dilation, as in bench.py).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO_ROOT)

from PIL import Image  # noqa: E402

from oldphoto_jax import bench  # noqa: E402
from oldphoto_jax.pipeline import preprocess  # noqa: E402


def nchw(array: np.ndarray) -> np.ndarray:
    """NHWC -> contiguous float32 NCHW."""
    return np.ascontiguousarray(array.transpose(0, 3, 1, 2), np.float32)


def case_arrays(stage: str, side: int) -> dict:
    """The arrays of one case (see the module docstring)."""
    photo, mask = bench.synthetic_photo(side)
    digest = hashlib.sha256(photo.tobytes()).hexdigest().encode()
    arrays = {"photo": photo, "photo_sha256": np.frombuffer(digest, np.uint8)}
    if stage == "detect":
        _, unet_input = preprocess.detection_input(Image.fromarray(photo))
        arrays["x"] = nchw(unet_input)
    elif stage in bench.FACE_SIDES:
        face = np.asarray(Image.fromarray(photo).resize((side, side), Image.BICUBIC))
        arrays["x"] = nchw(preprocess.to_network_input(face))
    elif stage in ("restore_quality", "restore_scratch", "restore_hr"):
        arrays["x"] = nchw(preprocess.to_network_input(photo))
        if stage != "restore_quality":
            arrays["mask"] = np.ascontiguousarray(mask[None, None], np.float32)
            arrays["mask_coverage"] = np.float64(mask.mean())
    else:
        raise SystemExit(f"unknown stage {stage!r}")
    return arrays


def input_file(directory: str, stage: str, side: int) -> str:
    return os.path.join(directory, f"{stage}_{side}.npz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for the npz files")
    parser.add_argument("cases", nargs="+", help="STAGE:SIDE")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for case in args.cases:
        stage, side = case.split(":")
        arrays = case_arrays(stage, int(side))
        path = input_file(args.out, stage, int(side))
        np.savez(path, **arrays)
        print(f"{path}: x {arrays['x'].shape}"
              + (f", mask {arrays['mask'].shape}" if "mask" in arrays else ""))


if __name__ == "__main__":
    main()
