#!/usr/bin/env bash
# One arm of the ISBI 2012 recipe at the README's budget: train, predict slices
# 20-24 with 8-fold TTA, evaluate. Usage:
#   UNETKIT_DATA=../shared/data examples/isbi2012/run_arm.sh OUTDIR [--set key=value ...]
# e.g. run_arm.sh runs/noaug --set augment.enabled=false
#      run_arm.sh runs/w0    --set weights.w0=0
set -euo pipefail
out=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
: "${UNETKIT_DATA:?set UNETKIT_DATA to the shared data folder}"
steps=${STEPS:-1200}
mkdir -p "$out/val_images" "$out/val_labels" "$out/probs"
for i in 20 21 22 23 24; do
  ln -sf "$(realpath "$UNETKIT_DATA/isbi2012/train/images/$i.png")" "$out/val_images/$i.png"
  ln -sf "$(realpath "$UNETKIT_DATA/isbi2012/train/labels/$i.png")" "$out/val_labels/$i.png"
done
start=$(date +%s)
unetkit train "$here/config.toml" --out "$out" --set train.steps="$steps" \
  --set train.val_every=200 --set train.checkpoint_every=200 --quiet "$@"
echo "train wall time: $(( $(date +%s) - start )) s" | tee "$out/wall_time.txt"
unetkit predict "$out/best.pt" "$out"/val_images/*.png --out "$out/pred" --tta --quiet
cp "$out"/pred/*_prob.tif "$out/probs/"
unetkit evaluate "$out/probs" "$out/val_labels" --json "$out/scores.json"
