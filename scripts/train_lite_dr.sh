#!/usr/bin/env bash
# Domain-randomised fine-tuning (issue 17 item 5; a candidate, not shipped), resumable: renders the sensor-domain
# training splits, fine-tunes the shipped 12,000-iteration model (models/cleanpose_lite.pt) on them beside its
# own data (config/train/synthetic_lite_dr.yaml), retrains the point classifier on all four domains, and
# compares the candidates with the shipped models on the validation pool (scripts/validate_models.py). Writes
# RUN_DIR/model_final.pt and RUN_DIR/point_classifier.pt; the shipped files are not touched.
# Usage: bash scripts/train_lite_dr.sh [RUN_DIR]   (default runs/synthetic_lite_dr)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
set +u; source scripts/env.sh; set -u
RUN=${1:-runs/synthetic_lite_dr}
step() { echo "[train_lite_dr] $(date -u +%H:%M:%S) $*"; }
SYNTH=(cleanpose synth --split train --workers 2 --quiet)

step "sensor-domain training splits (train instance pool, colour-sensor and scene effects on)"
"${SYNTH[@]}" --out data/synthetic --scenes 600 --seed 1
"${SYNTH[@]}" --out data/synth_train_d435_rgb --scenes 200 --seed 101 --camera d435 --depth-model stereo --rgb-effects
"${SYNTH[@]}" --out data/synth_train_d415_rgb --scenes 100 --seed 102 --camera d415 --depth-model stereo --rgb-effects
"${SYNTH[@]}" --out data/synth_train_azure_rgb --scenes 100 --seed 103 --camera azure_720p --depth-model noisy \
  --rgb-effects
step "pose network: fine-tune on the mix (2,400 iterations, one learning-rate cycle)"
cleanpose train --config config/train/synthetic_lite_dr.yaml --out "$RUN" --resume auto --no-progress
step "point classifier on the four domains' instances"
[ -f "$RUN/point_classifier.pt" ] || cleanpose train-classifier --data data/synthetic data/synth_train_d435_rgb \
  data/synth_train_d415_rgb data/synth_train_azure_rgb --out "$RUN/point_classifier.pt" --iterations 2000 --seed 0 \
  --no-progress
step "validation pool: shipped vs fine-tuned pose model, ground-truth masks"
python scripts/validate_models.py base=models/cleanpose_lite.pt dr="$RUN/model_final.pt"
step "done: $RUN/model_final.pt, $RUN/point_classifier.pt"
