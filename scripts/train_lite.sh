#!/usr/bin/env bash
# The full recipe that produces the shipped lite models (see config/train/synthetic_lite.yaml), resumable:
# every step skips itself when its output exists, and training resumes from its last checkpoint.
# Usage: [ITERATIONS=N] bash scripts/train_lite.sh [RUN_DIR]   (default runs/synthetic_lite, 12000 iterations = the shipped model)
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
step "pose network (ITERATIONS=${ITERATIONS:-12000}: each 3,000-iteration learning-rate cycle ends at the base lr)"
cleanpose train --config config/train/synthetic_lite.yaml --out "$RUN" --resume auto --no-progress \
  --iterations "${ITERATIONS:-12000}"
cp "$RUN/model_final.pt" models/cleanpose_lite.pt
SEG=models/segmenter_maskrcnn_mobilenet_v3.pt
STAGE1=$RUN/segmenter_stage1.pt
if [ ! -f "$SEG" ]; then
  step "segmenter stage 1: Mask R-CNN MobileNetV3 from scratch at 320 px (see models/segmenter_maskrcnn_mobilenet_v3.md)"
  [ -f "$STAGE1" ] || cleanpose train-seg --data data/synthetic --out "$STAGE1" --iterations 1200 --batch-size 4 \
    --min-size 320 --max-size 427 --seed 0 --no-progress $([ -f "$STAGE1.train.pt" ] && echo --resume)
  step "segmenter stage 2: fine-tune from stage 1 at a lower learning rate"
  cleanpose train-seg --data data/synthetic --init "$STAGE1" --out "$SEG" --iterations 1000 --batch-size 4 \
    --min-size 320 --max-size 427 --lr 5e-4 --seed 3 --no-progress $([ -f "$SEG.train.pt" ] && echo --resume)
fi
step "point-cloud category classifier (re-scores the segmenter's detections)"
[ -f models/point_classifier.pt ] || cleanpose train-classifier --data data/synthetic --out models/point_classifier.pt \
  --iterations 2000 --seed 0 --no-progress
step "done: models/cleanpose_lite.pt, models/segmenter_maskrcnn_mobilenet_v3.pt, models/point_classifier.pt"
