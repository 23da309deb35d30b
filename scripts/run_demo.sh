#!/usr/bin/env bash
# The README's demo command. Sets everything up (idempotent), then:
#   1. renders a small synthetic test split of shape instances no model was trained on (cached in output/demo);
#   2. runs the Estimator over it with ground-truth masks: the shipped CleanPose lite model when models/ has it,
#      and always the non-learned box-fit baseline for comparison;
#   3. scores both with the official NOCS protocol (tables printed, JSON + plots written);
#   4. when the shipped pose and segmentation models exist, runs the ROS 2 demo: a synthetic camera and the pose
#      node as separate processes over DDS (annotated frames, GIF, MCAP bag, detections JSON).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh
set +u; source scripts/env.sh; set -u
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM % 80) + 10 ))}
OUT=${CLEANPOSE_DEMO_OUT:-output/demo}
mkdir -p "$OUT"

echo "[demo] 1/4 synthetic test split (unseen instances) -> $OUT/data"
cleanpose synth --out "$OUT/data" --scenes 40 --split test --seed 2024 --frames-per-scene 2 --quiet

backends=(box_fit)
[ -f models/cleanpose_lite.pt ] && backends=(cleanpose box_fit)
for backend in "${backends[@]}"; do
  echo "[demo] 2/4 pose estimation ($backend, ground-truth masks)"
  cleanpose predict --data "$OUT/data" --out "$OUT/results_$backend" --masks gt --pose-backend "$backend"
  echo "[demo] 3/4 NOCS-protocol evaluation ($backend)"
  cleanpose eval --results "$OUT/results_$backend" --json "$OUT/eval_$backend.json" --plots "$OUT/plots_$backend"
done

if [ -f models/cleanpose_lite.pt ] && [ -f models/segmenter_maskrcnn_mobilenet_v3.pt ]; then
  echo "[demo] 4/4 ROS 2: synthetic camera + pose node over DDS"
  python -m cleanpose_ros.demo --out "$OUT/ros" --frames 20
else
  echo "[demo] 4/4 skipped: the ROS demo needs the shipped trained models (models/cleanpose_lite.pt and"
  echo "       models/segmenter_maskrcnn_mobilenet_v3.pt), which are not in this checkout yet"
fi
echo "[demo] outputs in $OUT"
