#!/usr/bin/env bash
# The full recipe that produces the shipped lite models (see config/train/synthetic_lite.yaml), resumable:
# every step skips itself when its output exists, and training resumes from its last checkpoint.
# Usage: bash scripts/train_lite.sh [RUN_DIR]   (default runs/synthetic_lite)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
set +u; source scripts/env.sh; set -u
RUN=${1:-runs/synthetic_lite}
mkdir -p "$RUN" models
step() { echo "[train_lite] $(date -u +%H:%M:%S) $*"; }

step "synthetic training data (600 scenes x 4 views, seed 1)"
cleanpose synth --out data/synthetic --scenes 600 --split train --seed 1 --workers 2 --quiet
step "teacher: PointBERT (KD target)"
[ -f models/teacher_pointbert_lite.pt ] || cleanpose teacher --arch pointbert \
  --config config/train/teacher_pointbert_lite.yaml --data data/synthetic --out models/teacher_pointbert_lite.pt --no-progress
step "teacher: PointNet++ SSG (queue initialisation)"
[ -f models/teacher_pn2ssg_lite.pt ] || cleanpose teacher --arch pointnet2_ssg \
  --config config/train/teacher_pointnet2_ssg_lite.yaml --data data/synthetic --out models/teacher_pn2ssg_lite.pt --no-progress
step "confounder queue initialisation"
[ -f models/queue_synthetic_lite.pt ] || cleanpose queue-init --teacher models/teacher_pn2ssg_lite.pt \
  --config config/train/synthetic_lite.yaml --n-q 40 --out models/queue_synthetic_lite.pt
step "pose network"
cleanpose train --config config/train/synthetic_lite.yaml --out "$RUN" --resume auto --no-progress
step "done: $RUN/model_final.pt"
