#!/usr/bin/env bash
# The inference benchmark on one GPU within one short lease (issue 18):
#
#     OUT=$OUT benchmarks/gpu_bench.sh                    # on the device (its python3 has JAX for CUDA)
#     PY=.venv/bin/python WIDTHS=tiny SIZES=64 OUT=/tmp/gpu_dry benchmarks/gpu_bench.sh
#                                                         # the same on the CPU at tiny sizes (dry run)
#
# 1. the device as nvidia-smi describes it ($OUT/device.txt);
# 2. a random-weight model at the release's widths (WIDTHS=official; time and memory do not
#    depend on the weights), written once to $MODEL (default /tmp/oldphoto_gpu_bench/model);
# 3. `python -m oldphoto_jax.bench` on every stage at SIZES (default 512,1024; detection always
#    runs at short side 256, the faces at their own size), float32 as infer.py runs: compile s,
#    run s, the device's peak memory, GFLOP per run, GFLOP/s and the share of the device's float32
#    peak ($OUT/bench.md, $OUT/bench.json);
# 4. bfloat16 against float32 on the quality and scratch stages (benchmarks/bench_bfloat16.py):
#    speed with the release-width model at the largest size, and the PSNR of the bfloat16 photo
#    against the float32 one with the bundled (trained) model on samples/old ($OUT/bf16_*.txt).
# Each step's log is under $OUT; a step that fails is reported and the next one runs. Plan about
# 6-8 minutes on an H100/H200 (12 benchmark cases, each in a fresh process, plus 4 bfloat16 runs).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
OUT=${OUT:-outputs/gpu_bench}
WIDTHS=${WIDTHS:-official}
SIZES=${SIZES:-512,1024}
REPEATS=${REPEATS:-5}
MODEL=${MODEL:-/tmp/oldphoto_gpu_bench/model}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
START=$(date +%s)
step() { echo "[$(( $(date +%s) - START )) s] $*"; }
failed=0

step "device"
{ nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv 2>&1 \
    || echo "no nvidia-smi"; "$PY" -c "import jax; print(jax.__version__, jax.devices())"; } \
  | tee "$OUT/device.txt"

if [[ ! -f $MODEL/manifest.json ]]; then
  step "writing $WIDTHS-width random weights to $MODEL"
  "$PY" -c "import sys; from oldphoto_jax.testing.random_model import write_random_model; \
write_random_model(sys.argv[1], widths=sys.argv[2], overwrite=True)" "$MODEL" "$WIDTHS" \
    > "$OUT/model.log" 2>&1 || { echo "writing the model failed: $OUT/model.log"; exit 1; }
fi

step "benchmark, float32, sizes $SIZES"
"$PY" -m oldphoto_jax.bench --checkpoint_dir "$MODEL" --sizes "$SIZES" --repeats "$REPEATS" \
    --json "$OUT/bench.json" > "$OUT/bench.log" 2>&1 || failed=1
grep -E '^\||^official' "$OUT/bench.log" | tee "$OUT/bench.md"

LARGEST=${SIZES##*,}
step "bfloat16 against float32: release widths at $LARGEST (speed)"
"$PY" benchmarks/bench_bfloat16.py --checkpoint_dir "$MODEL" --size "$LARGEST" \
    --photos samples/old --repeats 3 > "$OUT/bf16_speed.txt" 2>&1 || failed=1
grep -E '^\|' "$OUT/bf16_speed.txt"
step "bfloat16 against float32: the bundled model at 512 (PSNR)"
"$PY" benchmarks/bench_bfloat16.py --size 512 --photos samples/old --repeats 3 \
    > "$OUT/bf16_quality.txt" 2>&1 || failed=1
grep -E '^\|' "$OUT/bf16_quality.txt"

if (( failed )); then step "done; a step failed: see its log under $OUT"; else step "done"; fi
exit $failed
