#!/usr/bin/env bash
# The README's ablation rows, resumable: the AG-Pose baseline (config/train/synthetic_lite_agpose.yaml: the
# shipped recipe without the causal module and without KD) and the shipped recipe, two seeds each, at one equal
# budget; then every model on the seed-2 and seed-5 test splits with ground-truth masks, and the tables.
# Usage: [ITERATIONS=12000] bash scripts/train_ablation.sh
#   ITERATIONS=12000 (the shipped model's budget): CleanPose seed 1 is the shipped model itself, so only
#   CleanPose seed 2 is trained. Any other budget trains CleanPose seeds 1 and 2 as well.
#   The learning rate is cyclic (3,000-iteration cycles), so a run stopped at a cycle's end is the prefix of a
#   longer one: ITERATIONS=3000 first, then ITERATIONS=12000 resumes the same runs. Results of each budget go
#   to results/synthetic_s<SEED>/ablation_<ITERATIONS>/.
# Needs what scripts/train_lite.sh makes first: data/synthetic, the teachers, the confounder queue.
# Cost on 2 CPU cores: about 3.5 h per pair of 3,000-iteration runs side by side (1 thread each, 4.2 s per
# iteration), i.e. about 14 h per pair at 12,000. Interrupt at will: every run resumes from its last checkpoint.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
set +u; source scripts/env.sh; set -u
SHIPPED=12000
IT=${ITERATIONS:-$SHIPPED}
step() { echo "[train_ablation] $(date -u +%H:%M:%S) $*"; }
run() {  # CONFIG SEED OUT
  mkdir -p "$3"
  cleanpose train --config "$1" --seed "$2" --out "$3" --resume auto --no-progress --iterations "$IT" >> "$3/train.log" 2>&1
}
pair() {  # CONFIG NAME: seeds 1 and 2 side by side
  run "$1" 1 "runs/$2_seed1" & local first=$!
  run "$1" 2 "runs/$2_seed2" & local second=$!
  wait "$first" && wait "$second"
}

step "AG-Pose lite, seeds 1 and 2, side by side ($IT iterations each)"
pair config/train/synthetic_lite_agpose.yaml agpose_lite
if [ "$IT" = "$SHIPPED" ]; then
  step "CleanPose lite, seed 2 (seed 1 is models/cleanpose_lite.pt)"
  run config/train/synthetic_lite.yaml 2 runs/cleanpose_lite_seed2
  cleanpose_seed1=models/cleanpose_lite.pt
else
  step "CleanPose lite, seeds 1 and 2, side by side ($IT iterations each)"
  pair config/train/synthetic_lite.yaml cleanpose_lite
  cleanpose_seed1=runs/cleanpose_lite_seed1/model_final.pt
fi

for seed in 2 5; do
  step "evaluation on the seed-$seed test split"
  bash scripts/evaluate_synthetic.sh "$seed" "ablation_$IT/cleanpose_lite_seed1=$cleanpose_seed1" \
    "ablation_$IT/cleanpose_lite_seed2=runs/cleanpose_lite_seed2/model_final.pt" \
    "ablation_$IT/agpose_lite_seed1=runs/agpose_lite_seed1/model_final.pt" \
    "ablation_$IT/agpose_lite_seed2=runs/agpose_lite_seed2/model_final.pt" "ablation_$IT/box_fit=box_fit"
done
for seed in 2 5; do  # one table per test split; mean ± spread over the training seeds
  echo "test split of seed $seed, $IT iterations:"
  r=results/synthetic_s$seed/ablation_$IT
  python scripts/results_table.py "CleanPose lite=$r/cleanpose_lite_seed1.json,$r/cleanpose_lite_seed2.json" \
    "AG-Pose lite=$r/agpose_lite_seed1.json,$r/agpose_lite_seed2.json" "box fit=$r/box_fit.json"
done
