#!/usr/bin/env bash
# Rebuild segcount's embedded default counter (segcount/weights/default.safetensors) on a CPU, offline.
# The numbers in segcount/weights/MODEL_CARD.md come from exactly these commands (seed 0).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SEGCOUNT=${SEGCOUNT:-.venv/bin/segcount}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# 1. object pictures for the generator: Noto Emoji (Apache-2.0) from a pinned npm package (853 PNGs)
$PY data_scripts/fetch_sprites.py --out data/sources/noto-emoji
# 2. 3000 generated scenes: procedural shapes, self-collages of photo crops and emoji objects, 3..1000 objects,
#    canvases 384..896 px high (objects drawn with more pixels), look-alike distractors, camera and staining looks
#    (low contrast, gamma, dark, grey, defocus), a quarter of them packed (touching objects covering the canvas); seed 0
[ -f data/gen4/annotation_FSC147_384.json ] || $SEGCOUNT generate --out data/gen4 --n 3000 --seed 0 \
  --height 384 896 --count-range 3 1000 --sprites data/sources/noto-emoji --photometric 0.6 --packed 0.25 --workers 2
# 3. the counter head on frozen ImageNet MobileNetV2 features (cached), every image resized so that its exemplars
#    measure 24 px (drawn once per image from 24 px × exp(±0.25)); 13 epochs, the best chosen on the real validation
#    photos (epoch 9 in the shipped file); MAX_MINUTES=N stops a run early (rerun the script to resume it)
VAL=${VAL:-evalsets/val/groups.json}
VAL_ARGS=(); [ -f "$VAL" ] && VAL_ARGS=(--val-groups "$VAL")
$SEGCOUNT train-counter --root data/gen4 --out runs/default4 --backbone mobilenet_v2 --epochs 13 --lr 5e-4 \
  --batch-size 8 --seed 0 --exemplar-side 24 --scale-jitter 0.25 --max-train-images 2000 --max-val-images 120 \
  --cache disk "${VAL_ARGS[@]}" ${MAX_MINUTES:+--max-minutes "$MAX_MINUTES"} --resume "$@"
# 4. ship the best epoch as safetensors with the trunk inside (no weights package needed at run time)
$SEGCOUNT export-weights runs/default4/best.pt segcount/weights/default.safetensors --include-trunk
# 5. measure it on real photos it never saw: the validation set (model choice) and the test set
[ -f "$VAL" ] && $SEGCOUNT evaluate --groups "$VAL" --weights segcount/weights/default.safetensors --json --quiet
$SEGCOUNT evaluate --groups evalsets/real/groups.json --weights segcount/weights/default.safetensors --json --quiet
