#!/usr/bin/env bash
# Rebuild segcount's embedded default model (segcount/weights/default.safetensors) on this CPU, offline.
# The numbers in segcount/weights/MODEL_CARD.md come from exactly these commands.
set -euo pipefail
cd "$(dirname "$0")/.."
SEGCOUNT=${SEGCOUNT:-.venv/bin/segcount}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # one torch thread per busy core is faster than two spinning
# 1. 2500 generated scenes (procedural + self-collage objects, 5..600 per image, distractor kinds), seed 0
[ -f data/gen/annotation_FSC147_384.json ] || $SEGCOUNT generate --out data/gen --n 2500 --seed 0
# 2. the counter head on frozen ImageNet MobileNetV2 features (cached), exemplar-size normalisation at 12 px
$SEGCOUNT train-counter --root data/gen --out runs/default --backbone mobilenet_v2 --epochs 60 --lr 5e-4 \
  --batch-size 8 --seed 0 --min-exemplar-side 12 --max-train-images 1600 --max-val-images 100 \
  --max-minutes "${MAX_MINUTES:-38}" "$@"
# 3. ship the best epoch (by validation MAE on generated scenes) as safetensors
$SEGCOUNT export-weights runs/default/best.pt segcount/weights/default.safetensors
# 4. measure it on real photos it never saw
$SEGCOUNT evaluate --groups evalsets/real/groups.json --weights segcount/weights/default.safetensors --json
