#!/usr/bin/env bash
# One GPU session: benchmarks, then the ISBI 2012 recipe at the paper's width,
# three arms trained side by side on the one GPU for the same number of steps,
# each evaluated on slices 20-24 with 8-fold TTA. Everything under $OUT.
#
#   OUT=out UNETKIT_DATA=../shared/data bash benchmarks/gpu_session.sh
#
# Optional: MONAI wheels in .whl/ are installed to /tmp/site first (machines
# without a package index). TRAIN_BUDGET_S (default 150) sizes the step count
# from the measured training step; each arm is also capped by `timeout`.
# Smoke test without a GPU: BENCH=0 FORCE_STEPS=10 WIDTH=4 (CPU, minutes).
set -uo pipefail
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
RUNS=${RUNS:-/tmp/unetkit_gpu_runs}
mkdir -p "$RUNS"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/src:${PYTHONPATH:-} PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
: "${UNETKIT_DATA:?set UNETKIT_DATA}"
nvidia-smi -L || true
python3 -c "import torch, sys; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'python', sys.version.split()[0])"

# ---- 1. benchmarks
rm -f "$OUT/gpu.json"  # never size the training from an earlier run's numbers
if [ "${BENCH:-1}" = 1 ]; then
  timeout 300 python3 benchmarks/bench_gpu.py --parts "${BENCH_PARTS:-limit,check,model,predict}" --out "$OUT" 2>&1 \
    | tee "$OUT/bench.log"
fi

# ---- 2. choose the step count and memory format from the measured w64 training step
read -r STEPS CL < <(python3 - "$OUT/gpu.json" "${TRAIN_BUDGET_S:-150}" <<'EOF'
import json, sys
try:
    rows = json.load(open(sys.argv[1]))["model"]
    best = min((r for r in rows if r["what"] == "train step" and r["width"] == 64 and r["batch"] == 1
                and r["variant"].startswith("bf16")), key=lambda r: r["ms_median"])
    ms, cl = best["ms_median"], "channels_last" in best["variant"]
except Exception:
    ms, cl = 30.0, False
# three arms share the GPU; 1.5x for data loading, logging and validation
steps = int(min(20000, max(1000, float(sys.argv[2]) * 1e3 / (3 * 1.5 * ms))) // 100 * 100)
print(steps, str(cl).lower())
EOF
)
STEPS=${FORCE_STEPS:-$STEPS}
CL=${FORCE_CL:-$CL}
WIDTH=${WIDTH:-64}
echo "training steps per arm: $STEPS, width $WIDTH, channels_last: $CL"

common=(--set model.base_features="$WIDTH" --set train.amp=true --set train.channels_last="$CL"
        --set train.num_workers=4 --set train.log_every=50 --quiet)
# ARMS: one arm per line, "name|steps (0: the measured STEPS)|overrides"
ARMS=${ARMS:-"w64_adam_1e-3|0|--set train.optimizer=adam --set train.lr=0.001
w64_sgd_0.99_1e-3|0|--set train.optimizer=sgd --set train.lr=0.001 --set train.momentum=0.99
w64_adam_1e-4|0|--set train.optimizer=adam --set train.lr=0.0001"}
NAMES=()
while IFS='|' read -r arm n overrides; do
  [ -z "$arm" ] && continue
  NAMES+=("$arm")
  [ "$n" = 0 ] && n=$STEPS
  # shellcheck disable=SC2086
  ( start=$(date +%s)
    timeout $(( ${TRAIN_BUDGET_S:-150} + 90 )) python3 -m unetkit train examples/isbi2012/config.toml \
      --out "$RUNS/$arm" "${common[@]}" --set train.steps="$n" --set train.val_every=$(( n / 5 > 0 ? n / 5 : 1 )) \
      --set train.checkpoint_every=$(( n / 5 > 0 ? n / 5 : 1 )) $overrides > "$RUNS/$arm.log" 2>&1
    echo "exit $? wall $(( $(date +%s) - start )) s" >> "$RUNS/$arm.log" ) &
done <<< "$ARMS"

wait
tail -n 3 "$RUNS"/*.log

# ---- 3. evaluate each arm's best checkpoint on slices 20-24 (8-fold TTA, fp32/TF32)
mkdir -p "$RUNS/val_images" "$RUNS/val_labels"
for i in 20 21 22 23 24; do
  cp "$UNETKIT_DATA/isbi2012/train/images/$i.png" "$RUNS/val_images/"
  cp "$UNETKIT_DATA/isbi2012/train/labels/$i.png" "$RUNS/val_labels/"
done
for arm in "${NAMES[@]}"; do
  ( if [ -f "$RUNS/$arm/best.pt" ]; then
      python3 -m unetkit predict "$RUNS/$arm/best.pt" "$RUNS"/val_images/*.png --out "$RUNS/$arm/pred" --tta --quiet &&
      mkdir -p "$RUNS/$arm/probs" && cp "$RUNS/$arm"/pred/*_prob.tif "$RUNS/$arm/probs/" &&
      timeout 150 python3 -m unetkit evaluate "$RUNS/$arm/probs" "$RUNS/val_labels" --json "$RUNS/$arm/scores.json" \
        > "$RUNS/$arm/scores.txt" 2>&1
    fi ) &
done
wait
for arm in "${NAMES[@]}"; do echo "== $arm"; cat "$RUNS/$arm/scores.txt" 2>/dev/null | head -12; done

# ---- 4. bring back the small files (no checkpoints)
tar -C "$RUNS" -czf "$OUT/gpu_runs.tar.gz" --exclude='*.pt' --exclude='pred' --exclude='probs' \
  --exclude='val_images' --exclude='val_labels' . && ls -la "$OUT"
