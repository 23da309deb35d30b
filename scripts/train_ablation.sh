#!/usr/bin/env bash
# The README's ablation (issue 18 item 8), resumable: does the causal front-door module help, does KD help?
# Four variants of the shipped recipe (CONFIG), each trained with seeds 1, 2 and 3 for one full learning-rate
# cycle (3,000 iterations: the cycle ends at the base lr), then scored with ground-truth masks on the test
# splits of SPLITS, and the table with mean ± standard deviation over seeds and paired tests against CleanPose
# (scripts/ablation_table.py: per-seed t-test of the APs, McNemar's test over every object).
#   cleanpose       the recipe as it is (front-door module + residual KD)
#   no_front_door   causal.enabled false (no confounder queue, so no queue_init)
#   no_kd           kd.enabled false, distillation loss weight 0
#   agpose          both off: AG-Pose lite
# Usage: [CONFIG=config/train/synthetic_lite_dr_scratch.yaml] [ITERATIONS=3000] [SEEDS="1 2 3"] [SPLITS="2 5"]
#        [VARIANTS="cleanpose agpose no_front_door no_kd"] bash scripts/train_ablation.sh
# Needs the CONFIG's data, teachers and queue (RECIPE=dr bash scripts/train_lite.sh makes them for the default).
# Runs go to runs/ablation/<config name>/<variant>_seed<S> (one at a time, two threads each: the frame caches of
# two runs side by side would not fit in 24 GB), results to results/synthetic_s<SPLIT>/<TAG>/ and the table to
# docs/results/<TAG>.json, TAG = ablation_<config name>_<ITERATIONS>. The config's own full run's 3,000-iteration
# model (seed 1, e.g. runs/synthetic_lite_dr_scratch/model_3000.pt) is the prefix of this cleanpose seed-1 run:
# REUSE_CLEANPOSE_SEED1=PATH skips training it.
# Cost on 2 CPU cores: about 0.75 s per iteration, so 37 min per run, 7.5 h for all twelve. Interrupt at will:
# every run resumes from its last checkpoint, finished runs are skipped.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
set +u; source scripts/env.sh; set -u
CONFIG=${CONFIG:-config/train/synthetic_lite_dr_scratch.yaml}
NAME=$(basename "$CONFIG" .yaml)
IT=${ITERATIONS:-3000}
SEEDS=${SEEDS:-1 2 3}
SPLITS=${SPLITS:-2 5}
VARIANTS=${VARIANTS:-cleanpose agpose no_front_door no_kd}
step() { echo "[train_ablation] $(date -u +%H:%M:%S) $*"; }
overrides() {  # VARIANT -> the --set flags that make it from CONFIG
  case $1 in
    cleanpose) ;;
    no_front_door) echo "--set model_overrides.causal.enabled=false --set queue_init=null" ;;
    no_kd) echo "--set model_overrides.kd.enabled=false --set model_overrides.loss.distillation=0.0" ;;
    agpose) echo "$(overrides no_front_door) $(overrides no_kd)" ;;
    *) echo "unknown variant '$1' (cleanpose, no_front_door, no_kd, agpose)" >&2; return 2 ;;
  esac
}
model() {  # VARIANT SEED -> the run's final model file
  if [ "$1" = cleanpose ] && [ "$2" = 1 ] && [ -n "${REUSE_CLEANPOSE_SEED1:-}" ]; then
    echo "$REUSE_CLEANPOSE_SEED1"
  else
    echo "runs/ablation/$NAME/$1_seed$2/model_final.pt"
  fi
}

trained() {  # MODEL_FILE -> true when it exists and reached ITERATIONS
  python -c "import sys, torch; sys.exit(torch.load(sys.argv[1], weights_only=True)['step'] < int(sys.argv[2]))" \
    "$1" "$IT" 2>/dev/null
}

for seed in $SEEDS; do  # seed-major: a stopped ablation still holds complete seeds
  for variant in $VARIANTS; do
    out=runs/ablation/$NAME/${variant}_seed$seed
    if trained "$(model "$variant" "$seed")"; then step "$variant seed $seed: done"; continue; fi
    step "$variant seed $seed ($IT iterations): $out"
    mkdir -p "$out"
    # shellcheck disable=SC2046  # the variant's --set flags, one word each
    cleanpose train --config "$CONFIG" --seed "$seed" --out "$out" --resume auto --no-progress \
      --iterations "$IT" $(overrides "$variant") >> "$out/train.log" 2>&1
  done
done

tag=ablation_${NAME}_$IT
# every model through the same reference runtime (a shipped model has int8 exports beside it, a run's has not)
export PREDICT_ARGS=${PREDICT_ARGS:---runtime eager}
for split in $SPLITS; do
  specs=()
  for variant in $VARIANTS; do
    for seed in $SEEDS; do specs+=("$tag/${variant}_seed$seed=$(model "$variant" "$seed")"); done
  done
  step "evaluation on the seed-$split test split"
  bash scripts/evaluate_synthetic.sh "$split" "${specs[@]}"
done
rows=()
for variant in $VARIANTS; do
  runs=()
  for seed in $SEEDS; do
    joined=""
    for split in $SPLITS; do joined+="${joined:++}results/synthetic_s$split/$tag/${variant}_seed$seed"; done
    runs+=("$joined")
  done
  rows+=("$variant=$(IFS=,; echo "${runs[*]}")")
done
python scripts/ablation_table.py --json "docs/results/$tag.json" "${rows[@]}"
