#!/usr/bin/env bash
# The README's results table, reproducible: render a synthetic test split of unseen instances for one seed,
# then score each pose model on it with ground-truth masks (`cleanpose predict` + `cleanpose eval`).
# Usage: bash scripts/evaluate_synthetic.sh SEED NAME=WEIGHTS [NAME=WEIGHTS ...]
#   NAME=box_fit runs the non-learned baseline (no weights); NAME=PATH:model adds a row with predicted masks
#   from the shipped segmenter (full pipeline) for the pose model at PATH. PREDICT_ARGS adds `cleanpose predict`
#   options to every row, e.g. PREDICT_ARGS="--pose-solver regression --score detection" (the official output).
# Writes results/synthetic_s<SEED>/<NAME>.json (and the result pickles beside it).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
set +u; source scripts/env.sh; set -u
SEED=${1:?usage: evaluate_synthetic.sh SEED NAME=WEIGHTS ...}; shift
DATA=data/synth_test_s$SEED
OUT=results/synthetic_s$SEED
mkdir -p "$OUT"
cleanpose synth --out "$DATA" --scenes 150 --split test --seed "$SEED" --frames-per-scene 2 --workers 2 --quiet
for spec in "$@"; do
  name=${spec%%=*}; weights=${spec#*=}; masks=gt
  case $weights in *:model) weights=${weights%:model}; masks=model ;; esac
  if [ "$weights" = box_fit ]; then args=(--pose-backend box_fit); else args=(--weights "$weights"); fi
  echo "[evaluate] $name ($masks masks) on $DATA"
  # shellcheck disable=SC2086  # PREDICT_ARGS is a list of options
  cleanpose predict --data "$DATA" --out "$OUT/$name" --masks "$masks" "${args[@]}" ${PREDICT_ARGS:-}
  cleanpose eval --results "$OUT/$name" --json "$OUT/$name.json" > "$OUT/$name.txt"
  tail -n 12 "$OUT/$name.txt"
done
