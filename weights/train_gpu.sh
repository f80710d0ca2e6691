#!/usr/bin/env bash
# The bundled model's runs on one GPU within a fixed wall-clock budget (weights/README.md):
#
#     weights/train_gpu.sh [BUDGET_SECONDS]      # default 480
#     DETECTORS=0 weights/train_gpu.sh 530        # VAEs and mapping only (bundled model 3)
#
# Runs train.py with the `small` configs, every process sharing the one GPU:
#   phase 1: VAE_A, VAE_B and two scratch detectors (plain BCE, and BCE with positives weighted
#            4x: the better one on held-out synthetic masks is bundled; DETECTORS=0 skips them
#            and gives their data workers to the VAEs and the mapping);
#   phase 2: the scratch mapping between the two finished VAEs, beside the detectors.
# Each run stops at its config's num_steps or at its --config.time_limit_s, whichever comes
# first, and then checkpoints and exports (train.py resumes it on a later call: a work directory
# left by another recipe is resumed too, so remove it first). Logs go to weights/runs/<run>.log.
# Data workers: 16 CPU cores assumed (--config.input.num_workers). At the end the exports are
# assembled into weights/default (the plain-BCE detector; ASSEMBLE=0 skips this). ON_RUN_END, if
# set, is a command run with each run's name as it ends (e.g. to copy its results away early).
# A run resumed with another worker count than its checkpoint's reads the same batches.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
RUNS=${RUNS:-weights/runs}
BUDGET=${1:-480}
MARGIN=60  # start-up, compilation, the last checkpoint and the export after a time limit
START=$(date +%s)
elapsed() { echo $(( $(date +%s) - START )); }
mkdir -p "$RUNS"
export XLA_PYTHON_CLIENT_PREALLOCATE=false

train() {  # train <run> <config> <workers> <time limit s> [overrides...]
  local run=$1 config=$2 workers=$3 limit=$(( $4 > 10 ? $4 : 10 ))
  shift 4
  echo "[$(elapsed) s] start $run ($config, time limit ${limit} s)"
  $PY train.py --config "$config" --workdir "$RUNS/$run" --config.input.num_workers="$workers" \
      --config.time_limit_s="$limit" --config.sample_every=1000 "$@" > "$RUNS/$run.log" 2>&1
  local rc=$?
  echo "[$(elapsed) s] $run ended with exit code $rc: $(grep -E '^step|time limit|error' \
      "$RUNS/$run.log" | tail -1)"
  if [[ -n ${ON_RUN_END:-} ]]; then $ON_RUN_END "$run"; fi
  return $rc
}

VAE_LIMIT=$(( BUDGET * 47 / 100 - MARGIN ))
if [[ ${DETECTORS:-1} == 1 ]]; then
  VAE_WORKERS=(4 1); MAPPING_WORKERS=5
  train scratch_small configs/scratch.py:small 3 $(( BUDGET - MARGIN - 30 )) &
  train scratch_small_pw4 configs/scratch.py:small 3 $(( BUDGET - MARGIN - 30 )) \
      --config.loss.positive_weight=4.0 &
else
  VAE_WORKERS=(8 7); MAPPING_WORKERS=14
fi
train vae_a_small configs/vae_a.py:small ${VAE_WORKERS[0]} $VAE_LIMIT & VAE_A=$!
train vae_b_small configs/vae_b.py:small ${VAE_WORKERS[1]} $VAE_LIMIT & VAE_B=$!
wait $VAE_A; A=$?
wait $VAE_B; B=$?
if [[ $A == 0 && $B == 0 ]]; then
  train mapping_small_scratch configs/mapping.py:small_scratch $MAPPING_WORKERS \
      $(( BUDGET - $(elapsed) - MARGIN - 30 )) \
      --config.vae_a_checkpoint="$RUNS/vae_a_small/export" \
      --config.vae_b_checkpoint="$RUNS/vae_b_small/export" &
else
  echo "a VAE run failed: no mapping run"
fi
wait
echo "[$(elapsed) s] all runs ended"

if [[ ${ASSEMBLE:-1} == 1 ]]; then
  COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  $PY -m oldphoto_jax.training.assemble --output weights/default --overwrite \
      --description "bundled model: train.py with configs/*.py:small (weights/train_gpu.sh $BUDGET) at commit $COMMIT; see weights/README.md" \
      "$RUNS/vae_a_small/export" "$RUNS/vae_b_small/export" \
      "$RUNS/mapping_small_scratch/export" "$RUNS/scratch_small/export"
fi
