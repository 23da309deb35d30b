#!/usr/bin/env bash
# The README's ablation rows, resumable: the AG-Pose baseline (config/train/synthetic_lite_agpose.yaml: the
# shipped recipe without the causal module and without KD) with seeds 1 and 2, and the shipped recipe with a
# second seed, all at the shipped model's budget; then every model on the seed-2 and seed-5 test splits with
# ground-truth masks, and the table. Seed 1 of CleanPose lite is the shipped model itself.
# Usage: [ITERATIONS=12000] bash scripts/train_ablation.sh   (ITERATIONS must be the shipped model's step)
# Needs what scripts/train_lite.sh makes first: data/synthetic, the teachers, the confounder queue.
# Cost on 2 CPU cores: about 8 h per run; the two AG-Pose runs go side by side (1 thread each), then CleanPose
# seed 2. Interrupt at will: every run resumes from its last checkpoint.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
set +u; source scripts/env.sh; set -u
IT=${ITERATIONS:-12000}
step() { echo "[train_ablation] $(date -u +%H:%M:%S) $*"; }
run() {  # CONFIG SEED OUT
  mkdir -p "$3"
  cleanpose train --config "$1" --seed "$2" --out "$3" --resume auto --no-progress --iterations "$IT" >> "$3/train.log" 2>&1
}

step "AG-Pose lite, seeds 1 and 2, side by side ($IT iterations each)"
run config/train/synthetic_lite_agpose.yaml 1 runs/agpose_lite_seed1 & first=$!
run config/train/synthetic_lite_agpose.yaml 2 runs/agpose_lite_seed2 & second=$!
wait "$first" && wait "$second"
step "CleanPose lite, seed 2"
run config/train/synthetic_lite.yaml 2 runs/cleanpose_lite_seed2

for seed in 2 5; do
  step "evaluation on the seed-$seed test split"
  bash scripts/evaluate_synthetic.sh "$seed" cleanpose_lite_seed1=models/cleanpose_lite.pt \
    cleanpose_lite_seed2=runs/cleanpose_lite_seed2/model_final.pt \
    agpose_lite_seed1=runs/agpose_lite_seed1/model_final.pt agpose_lite_seed2=runs/agpose_lite_seed2/model_final.pt \
    box_fit=box_fit
done
for seed in 2 5; do  # one table per test split; mean ± spread over the training seeds
  echo "test split of seed $seed:"
  r=results/synthetic_s$seed
  python scripts/results_table.py "CleanPose lite=$r/cleanpose_lite_seed1.json,$r/cleanpose_lite_seed2.json" \
    "AG-Pose lite=$r/agpose_lite_seed1.json,$r/agpose_lite_seed2.json" "box fit=$r/box_fit.json"
done
