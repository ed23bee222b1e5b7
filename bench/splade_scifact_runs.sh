#!/usr/bin/env bash
# Issue 15's SciFact runs, one heavy step at a time under the shared CPU lock.
#   bash bench/splade_scifact_runs.sh BM25_MINED.jsonl CROSS_ENCODER_DIR [OUT=runs/splade]
# 2: SPLADE-tiny + InfoNCE on BM25-mined negatives; 3: on SPLADE-mined negatives (the zero-shot
# SPLADE-tiny as miner, the paper's self-mined negatives); 4: 3 + MarginMSE from the
# cross-encoder's scores (mined in the same pass, teacher depth 12); 5: MiniLM-SPLADE (tied head)
# with the recipe of 4; 6: the best fused with dense (bench/splade_scifact.py --fuse-dense).
set -euo pipefail
BM25=$1; CROSS=$2; OUT=${3:-runs/splade}
PY=${PY:-.venv/bin/python}
L="flock /tmp/unirank-cpu.lock"
mkdir -p "$OUT"
step() { echo "== $(date -u +%H:%M:%S) $*"; }
step train 2
[ -f "$OUT/bm25/summary.json" ] || $L $PY -m unirank train bench/configs/splade_tiny_infonce.yaml --data.mined "$BM25" --out "$OUT/bm25"
$L $PY bench/splade_scifact.py --name "SPLADE-tiny + InfoNCE, BM25 negatives" --model "$OUT/bm25/model"
step mine with splade + cross teacher
[ -f "$OUT/mined/train.jsonl" ] || $L $PY -m unirank mine --data ../shared/data/scifact --split train --miner splade --model splade-tiny \
  --filter duplicates --filter relative_margin:p=0.05 --sampler top:range_min=3 --negatives 7 --depth 100 \
  --teacher cross --teacher-model "$CROSS" --set teacher.depth=12 --seed 0 --out "$OUT/mined"
step train 3
[ -f "$OUT/self/summary.json" ] || $L $PY -m unirank train bench/configs/splade_tiny_infonce.yaml --data.mined "$OUT/mined/train.jsonl" --out "$OUT/self"
$L $PY bench/splade_scifact.py --name "SPLADE-tiny + InfoNCE, SPLADE-mined negatives" --model "$OUT/self/model"
step train 4
[ -f "$OUT/distil/summary.json" ] || $L $PY -m unirank train bench/configs/splade_tiny_distil.yaml --data.mined "$OUT/mined/train.jsonl" --out "$OUT/distil"
$L $PY bench/splade_scifact.py --name "SPLADE-tiny + InfoNCE + MarginMSE, SPLADE-mined negatives" --model "$OUT/distil/model" --fuse-dense minilm
step train 5
[ -f "$OUT/minilm/summary.json" ] || $L $PY -m unirank train bench/configs/splade_tiny_distil.yaml --data.mined "$OUT/mined/train.jsonl" --out "$OUT/minilm" \
  --model.name minilm --model.settings "{max_length: 256, tied_head: true}" --epochs 1
$L $PY bench/splade_scifact.py --name "MiniLM-SPLADE (tied head) + InfoNCE + MarginMSE, SPLADE-mined negatives" --model "$OUT/minilm/model"
step done
