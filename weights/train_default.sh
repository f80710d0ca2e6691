#!/usr/bin/env bash
# Trains the bundled model (weights/default) with train.py, as recorded in weights/README.md.
# Re-running resumes every stage from weights/runs/<stage>_small/checkpoints; a finished stage
# (its last step checkpointed and exported) only re-exports. On a 2-core CPU: about 45 min for the
# two VAEs (in parallel) and 1.5 h for the mapping and the scratch detector (in parallel).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RUNS=weights/runs

# 1. The two VAEs (independent).
$PY train.py --config configs/vae_a.py:small --workdir $RUNS/vae_a_small &
$PY train.py --config configs/vae_b.py:small --workdir $RUNS/vae_b_small &
wait

# 2. The scratch mapping between the frozen VAEs, and the scratch detector (independent).
$PY train.py --config configs/mapping.py:small_scratch --workdir $RUNS/mapping_small_scratch \
    --config.vae_a_checkpoint=$RUNS/vae_a_small/export \
    --config.vae_b_checkpoint=$RUNS/vae_b_small/export &
$PY train.py --config configs/scratch.py:small --workdir $RUNS/scratch_small &
wait

# 3. One model directory for infer.py.
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
$PY -m oldphoto_jax.training.assemble --output weights/default --overwrite \
    --description "bundled model: weights/train_default.sh (train.py, configs/*.py:small) at commit $COMMIT" \
    $RUNS/vae_a_small/export $RUNS/vae_b_small/export \
    $RUNS/mapping_small_scratch/export $RUNS/scratch_small/export
