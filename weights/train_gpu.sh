#!/usr/bin/env bash
# The bundled model's runs on one GPU within a fixed wall-clock budget (weights/README.md):
#
#     weights/train_gpu.sh [BUDGET_SECONDS]      # default 480
#     DETECTORS=0 weights/train_gpu.sh 530        # VAEs and mapping only (bundled model 3)
#     DETECTORS=0 MAPPINGS="quality scratch hr" VAE_VARIANT=colour weights/train_gpu.sh 780
#                                                 # colour-carrying VAEs and all three mappings
#     SIZE=tiny WORKERS=0 RUNS=/tmp/dry OUTPUT=/tmp/dry/model PY=.venv/bin/python \
#         DETECTORS=0 MAPPINGS="quality scratch hr" VAE_VARIANT=colour weights/train_gpu.sh 300
#                                                 # the same on the CPU at tiny sizes (dry run)
#
# Runs train.py with the `small` configs (SIZE=tiny: the tiny ones), every process sharing the
# one GPU:
#   phase 1: VAE_A, VAE_B (VAE_VARIANT=colour: the `colour` variant, which carries each photo's
#            colour statistics in 6 more latent channels) and two scratch detectors (plain BCE,
#            and BCE with positives weighted 4x: the better one on held-out synthetic masks is
#            bundled; DETECTORS=0 skips them and gives their data workers to the others);
#   phase 2: the mappings of MAPPINGS (default "scratch"; any of quality, scratch, hr) between
#            the two finished VAEs, side by side (and beside the detectors).
# Each run stops at its config's num_steps or at its --config.time_limit_s, whichever comes
# first, and then checkpoints and exports (train.py resumes it on a later call: a work directory
# left by another recipe is resumed too, so remove it first). Logs go to $RUNS/<run>.log.
# Data workers: 16 CPU cores assumed (--config.input.num_workers; WORKERS=0 makes every run read
# in its own process, for a CPU dry run). At the end the exports are assembled into $OUTPUT
# (default weights/default; with the plain-BCE detector of $RUNS, or with DETECTORS=0 the one of
# weights/default, or DETECTOR_DIR's; ASSEMBLE=0 skips this). ON_RUN_END, if set, is a command
# run with each run's name as it ends (e.g. to copy its results away early). A run resumed with
# another worker count than its checkpoint's reads the same batches.
#
# Where the time goes: each run's progress lines (in $RUNS/<run>.log) give the shares of its
# loop's time spent waiting for input, dispatching and waiting for the GPU (LoopTimes in
# oldphoto_jax/training/reporting.py); where nvidia-smi exists, the GPU's utilisation is sampled
# every 500 ms into $RUNS/gpu_utilisation.csv and summarised per phase at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
RUNS=${RUNS:-weights/runs}
OUTPUT=${OUTPUT:-weights/default}
SIZE=${SIZE:-small}
VAE_VARIANT=${VAE_VARIANT:-}
MAPPINGS=${MAPPINGS:-scratch}
BUDGET=${1:-480}
MARGIN=60  # start-up, compilation, the last checkpoint and the export after a time limit
START=$(date +%s)
elapsed() { echo $(( $(date +%s) - START )); }
mkdir -p "$RUNS"
export XLA_PYTHON_CLIENT_PREALLOCATE=false

UTILISATION="$RUNS/gpu_utilisation.csv"
SAMPLER=
PHASE_NAMES=(); PHASE_STARTS=()  # each phase, and the sample line at which it began
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits \
      -lms 500 > "$UTILISATION" 2> /dev/null & SAMPLER=$!
  disown "$SAMPLER"  # not one of the runs the script's `wait`s wait for
fi
phase() {  # phase <name>: mark where a phase begins in the utilisation samples
  echo "[$(elapsed) s] phase $1"
  if [[ -n $SAMPLER ]]; then PHASE_NAMES+=("$1"); PHASE_STARTS+=("$(wc -l < "$UTILISATION")"); fi
}
utilisation_summary() {  # mean GPU utilisation and the largest memory used, per phase
  [[ -n $SAMPLER ]] || return 0
  kill "$SAMPLER" 2> /dev/null
  local i from to
  for i in "${!PHASE_STARTS[@]}"; do
    from=${PHASE_STARTS[$i]}
    to=$(wc -l < "$UTILISATION")
    if (( i + 1 < ${#PHASE_STARTS[@]} )); then to=${PHASE_STARTS[$((i + 1))]}; fi
    awk -F', *' -v name="${PHASE_NAMES[$i]}" -v from="$from" -v to="$to" \
        'NR > from && NR <= to && $2 ~ /^[0-9]+$/ {n++; u += $2; if ($3 > m) m = $3}
         END {if (n) printf "GPU utilisation, phase %s: mean %.0f %% over %d samples, memory used up to %d MiB\n", name, u / n, n, m}' \
        "$UTILISATION"
  done
}

case $SIZE in small|tiny) ;; *) echo "SIZE must be small or tiny, not $SIZE"; exit 2;; esac
case $VAE_VARIANT in ""|colour) ;; *) echo "VAE_VARIANT must be empty or colour"; exit 2;; esac
SUFFIX=${VAE_VARIANT:+_$VAE_VARIANT}           # run names and config arguments
LATENT=$([[ $SIZE == small ]] && echo 32 || echo 8)
# Colour VAEs: 6 more latent channels (the colour statistics), which the mappings keep plus a
# learned correction (model.stats_residual; weights/README.md, "The colour mappings").
STATS=$(( ${#VAE_VARIANT} > 0 ? 6 : 0 ))
# ... learned per photo from pooled features (model.stats_correction; "gate" is the older kind).
STATS_CORRECTION=${STATS_CORRECTION:-pooled}
NC=$(( LATENT + STATS ))  # the mapping's nc = the VAEs' latent channels
# The scratch and HR mappings see each photo downscaled by a random factor in this range first
# (bundled model 6's scratch mapping, trained on with it: 17.25 -> 17.81 dB in scratch mode over
# five seeds; the quality mapping lost with it, 19.10 -> 18.42 dB: weights/README.md); "" = full
# scale only.
SCALE_RANGE=${SCALE_RANGE-(0.5, 1.0)}
# ... and their crops' damage painted white as inference paints the detected mask, the HR one
# dilated 3 times as --HR inference does (bundled model 7: scratch mode 17.81 -> 18.10 dB, HR
# mode 15.50 -> 17.49 dB after 900 steps); 0 = the damage as drawn.
PAINT_HOLES=${PAINT_HOLES:-1}
HR_DILATION=$($PY -c 'from oldphoto_jax.pipeline.preprocess import HR_MASK_DILATION; print(HR_MASK_DILATION)') \
    || { echo "cannot import oldphoto_jax with $PY"; exit 2; }

train() {  # train <run> <config> <workers> <time limit s> [overrides...]
  local run=$1 config=$2 workers=${WORKERS:-$3} limit=$(( $4 > 10 ? $4 : 10 ))
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

read -r -a MAPPING_LIST <<< "$MAPPINGS"
for m in "${MAPPING_LIST[@]}"; do
  case $m in quality|scratch|hr) ;; *) echo "MAPPINGS: unknown mapping $m"; exit 2;; esac
done
VAE_LIMIT=$(( BUDGET * 47 / 100 - MARGIN ))
phase "1 ($([[ ${DETECTORS:-1} == 1 ]] && echo "VAEs and detectors" || echo VAEs))"
if [[ ${DETECTORS:-1} == 1 ]]; then
  VAE_WORKERS=(4 1); MAPPING_WORKERS=$(( 5 / ${#MAPPING_LIST[@]} ))
  train scratch_$SIZE configs/scratch.py:$SIZE 3 $(( BUDGET - MARGIN - 30 )) &
  train scratch_${SIZE}_pw4 configs/scratch.py:$SIZE 3 $(( BUDGET - MARGIN - 30 )) \
      --config.loss.positive_weight=4.0 &
else
  VAE_WORKERS=(8 7); MAPPING_WORKERS=$(( 14 / ${#MAPPING_LIST[@]} ))
fi
VAE_A_RUN=vae_a_$SIZE$SUFFIX; VAE_B_RUN=vae_b_$SIZE$SUFFIX
train $VAE_A_RUN configs/vae_a.py:$SIZE$SUFFIX ${VAE_WORKERS[0]} $VAE_LIMIT & VAE_A=$!
train $VAE_B_RUN configs/vae_b.py:$SIZE$SUFFIX ${VAE_WORKERS[1]} $VAE_LIMIT & VAE_B=$!
wait $VAE_A; A=$?
wait $VAE_B; B=$?
MAPPING_RUNS=()
if [[ $A == 0 && $B == 0 ]]; then
  MAPPING_LIMIT=$(( BUDGET - $(elapsed) - MARGIN - 30 ))
  phase "2 (mappings: $MAPPINGS)"
  for m in "${MAPPING_LIST[@]}"; do
    run=mapping_${SIZE}_$m$SUFFIX
    MAPPING_RUNS+=("$RUNS/$run/export")
    masked=()  # the scratch and HR mappings' input settings
    if [[ $m != quality ]]; then
      if [[ -n $SCALE_RANGE ]]; then masked+=("--config.input.scale_range=$SCALE_RANGE"); fi
      if [[ $PAINT_HOLES == 1 ]]; then
        masked+=(--config.input.paint_holes=True)
        if [[ $m == hr ]]; then masked+=(--config.input.hole_dilation=$HR_DILATION); fi
      fi
    fi
    train $run configs/mapping.py:${SIZE}_$m $MAPPING_WORKERS $MAPPING_LIMIT \
        --config.model.nc=$NC --config.model.stats_residual=$STATS \
        --config.model.stats_correction=$STATS_CORRECTION ${masked[@]+"${masked[@]}"} \
        --config.vae_a_checkpoint="$RUNS/$VAE_A_RUN/export" \
        --config.vae_b_checkpoint="$RUNS/$VAE_B_RUN/export" &
  done
else
  echo "a VAE run failed: no mapping run"
fi
wait
echo "[$(elapsed) s] all runs ended"
utilisation_summary

if [[ ${ASSEMBLE:-1} == 1 && ${#MAPPING_RUNS[@]} -gt 0 ]]; then
  # The plain-BCE detector trained here, or without DETECTORS the bundled one.
  DETECTOR_DIR=${DETECTOR_DIR:-$([[ ${DETECTORS:-1} == 1 ]] && echo "$RUNS/scratch_$SIZE/export" \
      || echo weights/default)}
  COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  $PY -m oldphoto_jax.training.assemble --output "$OUTPUT" --overwrite \
      --description "bundled model: train.py with configs/*.py:$SIZE$SUFFIX (weights/train_gpu.sh $BUDGET, MAPPINGS=\"$MAPPINGS\") at commit $COMMIT; see weights/README.md" \
      "$RUNS/$VAE_A_RUN/export" "$RUNS/$VAE_B_RUN/export" "${MAPPING_RUNS[@]}" \
      --network scratch_detector="$DETECTOR_DIR" \
      ${VAE_VARIANT:+--set vae_b_quality.restandardise=true --set vae_b_scratch.restandardise=true}
fi
