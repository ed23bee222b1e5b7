#!/usr/bin/env bash
# Issue 17 on a 2-core CPU: the Uni-Encoder recipe, its ablation and the other paradigms on
# DailyDialog R10 and MuTual R4 at one equal reduced budget (bench/train_rankers.py --budget cpu).
# Resumable: rerun the same command after a kill; finished rows are kept (--skip-done).
# Run it under the shared lock:  flock /tmp/unirank-cpu.lock bash bench/train_rankers_recipe.sh [OUT]
# then record:  .venv/bin/python bench/train_rankers.py --report OUT/<suite>/results.json --record
set -u
OUT=${1:-bench/out/unirecipe}
PY=${PYTHON:-.venv/bin/python}
MAIN=uni_recipe,uni,poly,poly_inbatch,cross,bi
ABLATION=uni_recipe-no_inbatch,uni_recipe-no_mlm,uni_recipe-no_speakers,uni_recipe-no_noam
for rows in "$MAIN" "$ABLATION"; do
  for suite in dailydialog mutual; do
    date -u
    "$PY" bench/train_rankers.py --suite "$suite" --budget cpu --rows "$rows" --skip-done --out "$OUT" || echo "FAILED: $suite $rows"
  done
done
date -u
