#!/usr/bin/env bash
# The README's ablation rows, resumable: the AG-Pose baseline (config/train/synthetic_lite_agpose.yaml: the
# shipped recipe without the causal module and without KD) and the shipped recipe, two seeds each, at one equal
# budget; then every model on the seed-2 and seed-5 test splits with ground-truth masks, and the tables.
# Usage: [SCHEDULE=full|short] [ITERATIONS=N] [SPLITS="2 5"] bash scripts/train_ablation.sh
#   SCHEDULE=short: both recipes with a 600-iteration learning-rate cycle (config/train/*_short.yaml), default
#   ITERATIONS=600, runs in runs/<recipe>_short_seed<S>, results in results/synthetic_s<SEED>/ablation_short<N>/:
#   the ablation that fits in one working session: 39 min of training on 2 cores for 600 iterations (1.4-1.9 s
#   per iteration per run, two side by side), 35 more to resume to ITERATIONS=1200 (a second cycle).
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
SCHEDULE=${SCHEDULE:-full}
case $SCHEDULE in
  full) IT=${ITERATIONS:-$SHIPPED}; suffix=""; tag=ablation_$IT ;;
  short) IT=${ITERATIONS:-600}; suffix=_short; tag=ablation_short$IT ;;
  *) echo "SCHEDULE must be full or short, not '$SCHEDULE'" >&2; exit 2 ;;
esac
SPLITS=${SPLITS:-2 5}
step() { echo "[train_ablation] $(date -u +%H:%M:%S) $*"; }
run() {  # CONFIG SEED OUT
  mkdir -p "$3"
  cleanpose train --config "$1" --seed "$2" --out "$3" --resume auto --no-progress --iterations "$IT" >> "$3/train.log" 2>&1
}
side_by_side() {  # "CONFIG SEED OUT" "CONFIG SEED OUT": two runs at once (1 thread each)
  # shellcheck disable=SC2086  # each argument is one run's three words
  run $1 & local first=$!
  # shellcheck disable=SC2086
  run $2 & local second=$!
  wait "$first" && wait "$second"
}
cleanpose=config/train/synthetic_lite$suffix.yaml
agpose=config/train/synthetic_lite_agpose$suffix.yaml
if [ "$SCHEDULE" = full ] && [ "$IT" = "$SHIPPED" ]; then
  step "AG-Pose lite, seeds 1 and 2, side by side ($IT iterations each)"
  side_by_side "$agpose 1 runs/agpose_lite_seed1" "$agpose 2 runs/agpose_lite_seed2"
  step "CleanPose lite, seed 2 (seed 1 is models/cleanpose_lite.pt)"
  run "$cleanpose" 2 runs/cleanpose_lite_seed2
  cleanpose_seed1=models/cleanpose_lite.pt
else  # one seed of each recipe at a time, so a stopped ablation still holds a like-for-like pair
  for seed in 1 2; do
    step "CleanPose lite and AG-Pose lite, seed $seed, side by side ($IT iterations each)"
    side_by_side "$cleanpose $seed runs/cleanpose_lite${suffix}_seed$seed" "$agpose $seed runs/agpose_lite${suffix}_seed$seed"
  done
  cleanpose_seed1=runs/cleanpose_lite${suffix}_seed1/model_final.pt
fi

for seed in $SPLITS; do
  step "evaluation on the seed-$seed test split"
  bash scripts/evaluate_synthetic.sh "$seed" "$tag/cleanpose_lite_seed1=$cleanpose_seed1" \
    "$tag/cleanpose_lite_seed2=runs/cleanpose_lite${suffix}_seed2/model_final.pt" \
    "$tag/agpose_lite_seed1=runs/agpose_lite${suffix}_seed1/model_final.pt" \
    "$tag/agpose_lite_seed2=runs/agpose_lite${suffix}_seed2/model_final.pt" "$tag/box_fit=box_fit"
done
for seed in $SPLITS; do  # one table per test split; mean ± spread over the training seeds
  echo "test split of seed $seed, $SCHEDULE schedule, $IT iterations:"
  r=results/synthetic_s$seed/$tag
  python scripts/results_table.py "CleanPose lite=$r/cleanpose_lite_seed1.json,$r/cleanpose_lite_seed2.json" \
    "AG-Pose lite=$r/agpose_lite_seed1.json,$r/agpose_lite_seed2.json" "box fit=$r/box_fit.json"
done
