#!/usr/bin/env bash
# Cross-domain benchmark (issue 17 item 4): the test split of one seed rendered in six sensor domains, each pose
# model scored on every domain with ground-truth masks (pose model alone) and with the full pipeline (shipped
# Mask R-CNN + point-classifier re-scoring, `cleanpose predict --masks model`), then one table.
#
# Usage: bash scripts/evaluate_cross_domain.sh SEED MODEL [MODEL ...]
#   MODEL is a pose model file (its name without .pt names it in the outputs) or NAME=FILE.
#   The models' columns stand side by side in the table, in the order given.
#
# Domains (`cleanpose synth` flags; each split: the same seed, scenes and viewpoints, only the sensor differs):
#   ideal        --camera real275 --depth-model ideal       exact depth (quantised to mm)
#   noisy        --camera real275 --depth-model noisy       the engine's default, as the README's test tables
#   stereo_d435  --camera d435 --depth-model stereo         simulated D435 active stereo (holes, edge fattening)
#   stereo_d415  --camera d415 --depth-model stereo         simulated D415 (longer baseline, narrower IR FOV)
#   azure_720p   --camera azure_720p --depth-model noisy    Azure Kinect colour intrinsics, 1280x720
#   rgb_effects  --camera real275 --depth-model noisy --rgb-effects   exposure/white balance/noise/blur/JPEG, lights
# `cleanpose predict` gets each split's own intrinsics (--intrinsics, read from the split's config.yaml).
# Cost, 150 scenes (300 frames, ~1,000 objects per domain), one model, this 2-core CPU shared with other jobs:
# 39 min (renders 7 min, predict + eval 31 min; one domain's predict takes 0.5-7 min with the load). Each further
# model adds its predict + eval; CROSS_DOMAIN_REUSE=1 keeps the evaluations already made.
#
# Environment (defaults in brackets):
#   CROSS_DOMAIN_SCENES   scenes per domain, x 2 views each [150, as scripts/evaluate_synthetic.sh]
#   CROSS_DOMAIN_DOMAINS  which domains, space-separated [all six, in the order above]
#   CROSS_DOMAIN_MASKS    gt and/or model [gt model]
#   CROSS_DOMAIN_DATA     render cache: <DATA>/<domain>_s<SEED>/, reused when present [data/cross_domain]
#   CROSS_DOMAIN_WORK     result pickles and logs [results/cross_domain_s<SEED>]
#   CROSS_DOMAIN_OUT      evaluation JSON and the table [docs/results/cross_domain]
#   CROSS_DOMAIN_REUSE=1  keep an evaluation JSON already there when its provenance names the same model file
#                         (sha256), scene count and runtime (adding a model column without re-running the others)
#   CROSS_DOMAIN_WORKERS  render workers [2]
#   CROSS_DOMAIN_RUNTIME  `cleanpose predict --runtime` [eager: the reference, float32 PyTorch]
# Writes <OUT>/<name>_<domain>_s<SEED>_{gt_masks,predicted_masks}.json (`cleanpose eval --json`, as is),
# <OUT>/table_s<SEED>.md and <OUT>/summary_s<SEED>.json (scripts/cross_domain.py).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
set +u; source scripts/env.sh; set -u
SEED=${1:?usage: evaluate_cross_domain.sh SEED MODEL [MODEL ...]}; shift
[ $# -ge 1 ] || { echo "usage: evaluate_cross_domain.sh SEED MODEL [MODEL ...]" >&2; exit 2; }
SCENES=${CROSS_DOMAIN_SCENES:-150}
DOMAINS=${CROSS_DOMAIN_DOMAINS:-ideal noisy stereo_d435 stereo_d415 azure_720p rgb_effects}
MASKS=${CROSS_DOMAIN_MASKS:-gt model}
DATA_ROOT=${CROSS_DOMAIN_DATA:-data/cross_domain}
WORK=${CROSS_DOMAIN_WORK:-results/cross_domain_s$SEED}
OUT=${CROSS_DOMAIN_OUT:-docs/results/cross_domain}
WORKERS=${CROSS_DOMAIN_WORKERS:-2}
RUNTIME=${CROSS_DOMAIN_RUNTIME:-eager}
HELPER=(python "$ROOT/scripts/cross_domain.py")
# The CLI from this checkout (not the colcon install's per-file links, which miss modules added since the build).
CLEANPOSE=(python -m cleanpose_core.cli)

synth_flags() {
  case $1 in
    ideal) echo "--camera real275 --depth-model ideal" ;;
    noisy) echo "--camera real275 --depth-model noisy" ;;
    stereo_d435) echo "--camera d435 --depth-model stereo" ;;
    stereo_d415) echo "--camera d415 --depth-model stereo" ;;
    azure_720p) echo "--camera azure_720p --depth-model noisy" ;;
    rgb_effects) echo "--camera real275 --depth-model noisy --rgb-effects" ;;
    *) echo "unknown domain '$1' (ideal noisy stereo_d435 stereo_d415 azure_720p rgb_effects)" >&2; return 2 ;;
  esac
}

# Models: NAME=FILE or FILE (name = file name without .pt); names must differ.
specs=()
for arg in "$@"; do
  case $arg in *=*) name=${arg%%=*}; file=${arg#*=} ;; *) file=$arg; name=$(basename "$file" .pt) ;; esac
  [ -f "$file" ] || { echo "no model file $file" >&2; exit 2; }
  for s in "${specs[@]+"${specs[@]}"}"; do
    [ "${s%%=*}" != "$name" ] || { echo "two models named $name: use NAME=FILE" >&2; exit 2; }
  done
  specs+=("$name=$file")
done
for domain in $DOMAINS; do synth_flags "$domain" >/dev/null; done
for masks in $MASKS; do
  case $masks in gt|model) ;; *) echo "CROSS_DOMAIN_MASKS: gt and/or model, got $masks" >&2; exit 2 ;; esac
done

mkdir -p "$OUT" "$WORK" "$DATA_ROOT"
TIMINGS=$WORK/timings.tsv
: > "$TIMINGS"
start_all=$SECONDS
for domain in $DOMAINS; do
  data=$DATA_ROOT/${domain}_s$SEED
  t0=$SECONDS
  echo "[cross-domain] $domain: render $SCENES scenes x 2 views of seed $SEED -> $data"
  # shellcheck disable=SC2046  # the domain's flags are a list of options
  "${CLEANPOSE[@]}" synth --out "$data" --scenes "$SCENES" --split test --seed "$SEED" --frames-per-scene 2 \
    --workers "$WORKERS" --quiet $(synth_flags "$domain")
  printf 'render\t%s\t-\t-\t%d\n' "$domain" $((SECONDS - t0)) >> "$TIMINGS"
  # The split's intrinsics (and a check that the cache holds exactly SCENES scenes).
  read -r -a K <<< "$("${HELPER[@]}" intrinsics "$data" --scenes "$SCENES")"
  for spec in "${specs[@]}"; do
    name=${spec%%=*}; file=${spec#*=}
    for masks in $MASKS; do
      label=$([ "$masks" = gt ] && echo gt_masks || echo predicted_masks)
      json=$OUT/${name}_${domain}_s${SEED}_$label.json
      if [ "${CROSS_DOMAIN_REUSE:-0}" = 1 ] && "${HELPER[@]}" reusable "$json" "$file" --scenes "$SCENES" \
          --runtime "$RUNTIME"; then
        echo "[cross-domain] $domain, $name, $label: keeping $json"
        continue
      fi
      results=$WORK/$name/${domain}_$label
      echo "[cross-domain] $domain, $name, $label: predict (intrinsics ${K[*]}) + eval -> $json"
      t0=$SECONDS
      rm -rf "$results"
      "${CLEANPOSE[@]}" predict --data "$data" --out "$results" --masks "$masks" --weights "$file" \
        --runtime "$RUNTIME" --intrinsics "${K[@]}"
      "${CLEANPOSE[@]}" eval --results "$results" --json "$json" > "$results.txt"
      printf 'predict_eval\t%s\t%s\t%s\t%d\n' "$domain" "$name" "$label" $((SECONDS - t0)) >> "$TIMINGS"
    done
  done
done
printf 'total\t-\t-\t-\t%d\n' $((SECONDS - start_all)) >> "$TIMINGS"

command="bash scripts/evaluate_cross_domain.sh $SEED $*"
for var in CROSS_DOMAIN_SCENES CROSS_DOMAIN_DOMAINS CROSS_DOMAIN_MASKS CROSS_DOMAIN_RUNTIME; do
  [ -z "${!var:-}" ] || command="$var=\"${!var}\" $command"
done

# shellcheck disable=SC2086  # DOMAINS and MASKS are lists
"${HELPER[@]}" table --seed "$SEED" --scenes "$SCENES" --data-root "$DATA_ROOT" --out "$OUT" \
  --runtime "$RUNTIME" --timings "$TIMINGS" --command "$command" --domains $DOMAINS --masks $MASKS --models "${specs[@]}"
