#!/bin/bash
# The paper's "FSC-147 + Synthetic" counter, offline: fine-tune the embedded counter on two-class images made from
# generated scenes (paper §4.1, Tables 1 and 5). About 20 minutes on a 2-core CPU (12 of them caching features).
#   bash data_scripts/finetune_two_class.sh            → data/counter-finetuned-syn.safetensors
# With FSC-147: pass ROOT=data/FSC-147 BACKBONE=resnet50 INIT=runs/counter-r50.safetensors (and a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${ROOT:-data/gen}; BACKBONE=${BACKBONE:-mobilenet_v2}; INIT=${INIT:-segcount/weights/default.safetensors}
OUT=${OUT:-data/counter-finetuned-syn.safetensors}; MINUTES=${MINUTES:-30}
[ -d "$ROOT" ] || segcount generate --out "$ROOT" --n 800 --seed 0
segcount make-synthetic --root "$ROOT" --split train --out data/syn-train --seed 1
python - <<'PY'
import dataclasses
from segcount.data import read_groups, write_fsc147, resize_sample
g = read_groups('data/syn-train/groups.json')
ss = [dataclasses.replace(resize_sample(g[i], 384), name=f"syn{i:05d}.jpg", region=None) for i in range(len(g))]
nv = max(20, len(ss) // 10)   # the target's dots only: the other strip's objects are background to learn
write_fsc147('data/syn-train-fsc', ss, splits={'train': [s.name for s in ss[nv:]], 'val': [s.name for s in ss[:nv]], 'test': []})
PY
# the init counter's own scale rule, read from its file (the embedded default: exemplars resized to 24 px)
SCALE=$(python -c "import json, sys; from segcount.model_files import read_metadata
c = json.loads(read_metadata(sys.argv[1])['config'])
if c.get('exemplar_side'): print('--exemplar-side', c['exemplar_side'], '--scale-jitter 0.25')
elif c.get('min_exemplar_side'): print('--min-exemplar-side', c['min_exemplar_side'])" "$INIT")
segcount train-counter --root data/syn-train-fsc --out runs/finetune-syn --backbone "$BACKBONE" --init-weights "$INIT" \
   --epochs 4 --lr 1e-4 --batch-size 8 $SCALE --max-minutes "$MINUTES"
segcount export-weights runs/finetune-syn/best.pt "$OUT"
