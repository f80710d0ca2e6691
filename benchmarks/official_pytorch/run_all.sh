#!/usr/bin/env bash
# Times the official PyTorch networks on every case that `python -m oldphoto_jax.bench` compares
# with (bench.OFFICIAL / OFFICIAL_EPYC): detect 256, restore_quality 256 and 512,
# restore_scratch 512, restore_hr 512, face_256, face_512. Each case runs in a fresh process
# (2 threads, fp32, batch 1, no_grad, warm-up + median of 3). Prints a markdown table and writes
# <work_dir>/official_times.json. Validate first, and run it on an otherwise idle machine
# (README.md; restore_scratch 512 peaks at ~4.7 GiB).
#
#   export OFFICIAL_SRC=/path/to/Bringing-Old-Photos-Back-to-Life   # or pass --official_dir
#   benchmarks/official_pytorch/run_all.sh               # the seven cases (~4 min on 2 cores)
#   benchmarks/official_pytorch/run_all.sh --tiny        # dry run: 64 px, 1 timed run,
#                                                        # <work_dir>/official_times_tiny.json
#   benchmarks/official_pytorch/run_all.sh --repeats 5   # other arguments go to time_official.py
#
# TORCH_PYTHON: a python with torch (default: the project's .venv/bin/python, whose test extra
# has torch 2.13.0+cpu).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PY="${TORCH_PYTHON:-$REPO/.venv/bin/python}"
if [[ ! -x "$PY" ]]; then
  echo "no python at $PY: run make setup, or set TORCH_PYTHON (README.md)" >&2
  exit 2
fi
if [[ "${1:-}" == "--tiny" ]]; then
  shift
  exec "$PY" "$HERE/time_official.py" --repeats 1 --json official_times_tiny.json \
    --cases detect:64,restore_quality:64,restore_scratch:64,restore_hr:64,face_256:64,face_512:64 \
    "$@"
fi
exec "$PY" "$HERE/time_official.py" --repeats 3 \
  --cases detect:256,restore_quality:256,restore_quality:512,restore_scratch:512,restore_hr:512,face_256:256,face_512:512 \
  "$@"
