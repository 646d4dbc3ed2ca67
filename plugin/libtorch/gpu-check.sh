#!/usr/bin/env bash
# The CUDA check in one run on the GPU machine (NVIDIA H100/H200; python3 with
# PyTorch 2.11 + CUDA 13; no registry, no Go): build the plugin against that
# Python's libtorch, run the CUDA tests, benchmark, fine-tune on SciFact, print
# one table. See plugin/libtorch/GPU.md.
#
#   plugin/libtorch/gpu-check.sh --prepare   here (Go and the module proxy): packs what
#                                            the GPU machine lacks into .build/gpu
#   plugin/libtorch/gpu-check.sh OUTDIR      there, from the repo root, with .build/gpu
#                                            carried; logs and table.md go to OUTDIR
#
# Optional environment: PYTHON (python3); LIBTORCH and TORCH_VARIANT (a torch/
# folder, instead of asking Python); GPU_CHECK_BUDGET_S (540, the whole run);
# GPU_CHECK_DEVICE (cuda; cpu rehearses the script where there is no GPU);
# GPU_CHECK_BATCHES (8,16,32,64,128,256); GPU_CHECK_BENCHTIME (8x);
# GPU_CHECK_BUILD_S (420: the build step's limit; the others' are fixed);
# GPU_CHECK_FINETUNE_ARGS (flags for rerank finetune instead of --epochs 2 --eval-queries 40);
# GPU_CHECK_GOFLAGS (added to GOFLAGS).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
pack=$root/.build/gpu   # what --prepare writes and the device tool carries
unpacked=/tmp/gpu-check # where the run unpacks it
say() {
	local line
	line=$(printf '[gpu-check %3ds] %s' "$SECONDS" "$*")
	echo "$line" >&2
	[[ -z ${out:-} ]] || echo "$line" >>"$out/run.log"
}
die() { say "FAILED: $*"; exit 1; }

# xz through tar where xz exists, else Python's tarfile (the GPU image's
# tools are not listed; its python3 is).
untar() { # untar ARCHIVE DEST
	mkdir -p "$2"
	if command -v xz >/dev/null; then
		tar -xJf "$1" -C "$2"
	else
		python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter="tar")' "$1" "$2"
	fi
}

# ---------------------------------------------------------------------------
# --prepare (here): a Go toolchain, the module cache and SciFact, packed small.
# ---------------------------------------------------------------------------
prepare() {
	command -v go >/dev/null || die "go not on PATH"
	[[ $(uname -m) == x86_64 ]] || die "the GPU machine is x86-64: prepare on an x86-64 machine (this is $(uname -m))"
	cd "$root"
	local want have
	want=$(awk '/^go /{print $2}' go.mod)
	have=$(go env GOVERSION)
	[[ $have == "go$want" ]] || say "note: go.mod says go $want, packing $have (GOTOOLCHAIN=local there: it must be at least $want)"
	local stage scratch sums
	stage=$(mktemp -d) scratch=$(mktemp -d)
	# shellcheck disable=SC2064 # expanded now: the variables are local
	trap "chmod -R u+w '$scratch' 2>/dev/null; rm -rf '$stage' '$scratch'" EXIT
	mkdir -p "$stage/gomodcache"

	# 1. Modules: let go fetch, into an empty cache, exactly what the GPU run
	# builds (the plugin with its tests, bin/rerank), then keep their package
	# folders only: gotch's module alone is 59 MB zipped (examples, generator
	# data), its packages 4 MB. Go trusts an extracted module folder that has
	# its .ziphash (checked against go.sum), so the zips stay here.
	# -mod=readonly: -mod=mod would rewrite go.mod's layout.
	sums=$(cat go.mod go.sum | sha256sum)
	local proxy
	proxy=$(go env GOPROXY)
	[[ -d $(go env GOMODCACHE)/cache/download ]] && proxy="file://$(go env GOMODCACHE)/cache/download,$proxy"
	say "listing the packages the GPU run builds (modules fetched into a scratch cache)"
	# bin/rerank is built without cgo, which can change a package's files.
	local cgo pkgs
	for cgo in 1 0; do
		pkgs=(./host/cmd/rerank)
		((cgo)) && pkgs+=(./plugin/...)
		GOMODCACHE=$scratch GOPROXY=$proxy GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=$cgo \
			go list -deps -test -f '{{with .Module}}{{.Dir}}|{{$.Dir}}|{{join $.EmbedFiles "|"}}{{end}}' \
			"${pkgs[@]}" 2>&1 >>"$stage/dirs" | grep -v '^go: downloading' >&2
		((PIPESTATUS[0] == 0)) || die "go list failed"
	done
	[[ $(cat go.mod go.sum | sha256sum) == "$sums" ]] || die "go list changed go.mod or go.sum"
	local line moddir dir f
	local -a fields
	sort -u "$stage/dirs" | while IFS= read -r line; do
		IFS='|' read -r -a fields <<<"$line"
		moddir=${fields[0]} dir=${fields[1]}
		[[ $moddir == "$scratch"/* ]] || continue # the main module
		mkdir -p "$stage/gomodcache/${dir#"$scratch"/}"
		find "$dir" -maxdepth 1 -type f ! -name '*_test.go' -exec cp -f {} "$stage/gomodcache/${dir#"$scratch"/}/" \;
		for f in "${fields[@]:2}"; do
			mkdir -p "$(dirname "$stage/gomodcache/${dir#"$scratch"/}/$f")"
			cp -f "$dir/$f" "$stage/gomodcache/${dir#"$scratch"/}/$f"
		done
		for f in "$moddir"/go.mod "$moddir"/LICENSE*; do
			[[ -f $f ]] && cp -f "$f" "$stage/gomodcache/${moddir#"$scratch"/}/"
		done
	done
	(cd "$scratch" && find cache/download -type f \( -name '*.mod' -o -name '*.info' -o -name '*.ziphash' \) -print0 |
		xargs -0 -I{} cp --parents {} "$stage/gomodcache/")
	say "modules: $(find "$stage/gomodcache" -name '*.ziphash' | wc -l) with packages, $(du -sh "$stage/gomodcache" | cut -f1) unpacked"

	# 2. Go: the compiler, linker, cgo, vet and the standard library's sources
	# (no tests, testdata or cmd/ sources).
	local goroot
	goroot=$(go env GOROOT)
	(cd "$goroot" && {
		ls bin/go go.env VERSION LICENSE pkg/tool/linux_amd64/{asm,cgo,compile,link,vet}
		find pkg/include -type f
		find src -path src/cmd -prune -o -type d -name testdata -prune -o -type f ! -name '*_test.go' -print
	}) >"$stage/go.files" || die "unexpected Go layout under $goroot"

	mkdir -p "$pack.new"
	say "packing go ($have), modules and SciFact with xz"
	tar -C "$goroot" -cf - -T "$stage/go.files" | xz -T0 -6 >"$pack.new/go.tar.xz" || die "packing Go failed"
	tar -C "$stage/gomodcache" -cf - . | xz -T0 -6 >"$pack.new/gomodcache.tar.xz" || die "packing modules failed"

	# 3. SciFact for the fine-tune (../shared does not travel to the GPU machine).
	local scifact=${RERANK_SHARED:-$root/../shared}/datasets/scifact
	if [[ -f $scifact/corpus.jsonl ]]; then
		tar -C "$(dirname "$scifact")" -cf - scifact | xz -T0 -6 >"$pack.new/scifact.tar.xz"
	else
		say "no SciFact at $scifact: the fine-tune step will be skipped there"
	fi
	{
		echo "packed $(date -u +%FT%TZ) by plugin/libtorch/gpu-check.sh --prepare"
		echo "go: $have ($goroot)"
		echo "modules: $(find "$stage/gomodcache" -name '*.ziphash' | wc -l)"
	} >"$pack.new/MANIFEST"
	# Offline, the packed cache must hold every package the run builds.
	mkdir -p "$stage/check"
	untar "$pack.new/gomodcache.tar.xz" "$stage/check" || die "unpacking the module cache failed"
	for cgo in 1 0; do
		pkgs=(./host/cmd/rerank)
		((cgo)) && pkgs+=(./plugin/...)
		GOMODCACHE=$stage/check GOPROXY=off GOSUMDB=off GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=$cgo \
			go list -deps -test "${pkgs[@]}" >/dev/null || die "the packed module cache is incomplete (go list above)"
	done
	chmod -R u+w "$stage/check"
	rm -rf "$pack" && mv "$pack.new" "$pack"

	# The device tool carries at most 64 MiB: the working tree plus this.
	local packed tree total
	packed=$(du -sb "$pack" | cut -f1)
	tree=$(git ls-files -z -c -o --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
	total=$((packed + tree))
	(cd "$pack" && ls -l --block-size=K) >&2
	say "$(awk -v p="$packed" -v t="$tree" 'BEGIN { m = 1048576
		printf "packed %.1f MiB + working tree %.1f MiB = %.1f MiB to carry (the device tool takes 64 MiB; this script wants <= 60)", p/m, t/m, (p+t)/m }')"
	((total <= 60 * 1048576)) || die "too much to carry: trim the working tree or .build/gpu"
	say "done: carry .build/gpu (see plugin/libtorch/GPU.md for the command)"
}

# ---------------------------------------------------------------------------
# The run (GPU machine).
# ---------------------------------------------------------------------------
declare -A status secs
steps=()
skip() { # skip NAME REASON
	steps+=("$1")
	status[$1]="skipped: $2"
	say "$1: skipped: $2"
}
# step NAME BUDGET_S CMD...: CMD with a timeout (the smaller of BUDGET_S and
# what the whole run has left), its output appended to OUTDIR/NAME.log.
step() {
	local name=$1 budget=$2
	shift 2
	local left=$((deadline - SECONDS - 15))
	((budget > left)) && budget=$left
	if ((budget < 20)); then
		skip "$name" "out of time"
		return 1
	fi
	steps+=("$name")
	say "$name: $* (timeout ${budget}s, log $name.log)"
	echo "\$ $*" >>"$out/$name.log"
	local t0=$SECONDS rc
	timeout -k 10 "$budget" "$@" >>"$out/$name.log" 2>&1
	rc=$?
	secs[$name]=$((SECONDS - t0))
	case $rc in
	0) status[$name]=ok ;;
	124 | 137) status[$name]="TIMED OUT after ${budget}s" ;;
	*) status[$name]="FAILED (exit $rc)" ;;
	esac
	say "$name: ${status[$name]} in ${secs[$name]}s"
	((rc == 0)) || tail -n 25 "$out/$name.log" >&2
	return "$rc"
}

run() {
	out=$(mkdir -p "$1" && cd "$1" && pwd) || die "cannot create $1"
	cd "$root"
	deadline=$((SECONDS + ${GPU_CHECK_BUDGET_S:-540}))
	device=${GPU_CHECK_DEVICE:-cuda}
	batches=${GPU_CHECK_BATCHES:-8,16,32,64,128,256}
	local py=${PYTHON:-python3}
	exec 3>>"$out/env.log"

	# --- the machine ---------------------------------------------------------
	say "machine: $(nproc) CPUs, $(uname -srm)"
	{
		nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || echo "no nvidia-smi"
		g++ --version | head -1
		make --version | head -1
		dpkg-query -W -f='${Package} ${Status}\n' g++ make 2>&1
	} >&3 2>&1
	command -v g++ >/dev/null || die "no g++: cgo needs it"
	command -v make >/dev/null || die "no make"
	gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)

	# --- libtorch: the torch/ folder of python3's PyTorch ----------------------
	if [[ -z ${LIBTORCH:-} ]]; then
		local probe
		probe=$(timeout 120 "$py" - 2>>"$out/env.log" <<-'PY'
			import os, shlex, torch
			print("LIBTORCH=" + shlex.quote(os.path.dirname(torch.__file__)))
			print("TORCH_VERSION=" + shlex.quote(torch.__version__))
			print("TORCH_VARIANT=" + ".".join(torch.__version__.split("+")[0].split(".")[:2]))
			print("TORCH_CUDA=" + shlex.quote(str(torch.version.cuda)))
			print("PY_CUDA=" + shlex.quote(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "unavailable"))
			# where this process found the driver's libcuda.so.1
			drv = [l.split()[-1] for l in open("/proc/self/maps") if "/libcuda.so" in l]
			print("CUDA_DRIVER_DIR=" + shlex.quote(os.path.dirname(drv[0]) if drv else ""))
		PY
		) || die "$py cannot import torch (set PYTHON, or LIBTORCH and TORCH_VARIANT)"
		eval "$probe"
	fi
	: "${TORCH_VARIANT:?TORCH_VARIANT must be set with LIBTORCH}" "${TORCH_VERSION:=$TORCH_VARIANT}" "${TORCH_CUDA:=?}" "${PY_CUDA:=not asked}"
	say "libtorch: torch $TORCH_VERSION (CUDA $TORCH_CUDA) at $LIBTORCH; PyTorch sees: $PY_CUDA"
	[[ -f $root/plugin/libtorch/compat-$TORCH_VARIANT.h ]] || die "no plugin/libtorch/compat-$TORCH_VARIANT.h for torch $TORCH_VERSION: make compat-header LIBTORCH=... TORCH_VARIANT=$TORCH_VARIANT (README.md)"
	# The wheel's libraries find CUDA's (nvidia/*/lib beside torch/) through
	# their RPATH, and the driver's libcuda.so.1 where the loader looks.
	# Should either fail, point the loader where Python found them (logged).
	local wheel_libs=("$LIBTORCH"/lib/lib{torch_cuda,caffe2_nvrtc}.so)
	if [[ -e ${wheel_libs[0]} ]] && ldd "${wheel_libs[@]}" | grep -q 'not found'; then
		local extra
		extra=$(find "$LIBTORCH/../nvidia" -maxdepth 3 -type d -name lib 2>/dev/null | paste -sd:)
		extra=${CUDA_DRIVER_DIR:-}${CUDA_DRIVER_DIR:+${extra:+:}}$extra
		export LD_LIBRARY_PATH=$extra${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
		say "libraries of libtorch_cuda or libcaffe2_nvrtc not found: LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
		ldd "${wheel_libs[@]}" | grep 'not found' >&3
	fi

	# --- Go: the carried toolchain and module cache, offline ----------------------
	if [[ -f $pack/go.tar.xz ]]; then
		rm -rf "$unpacked" && untar "$pack/go.tar.xz" "$unpacked/go" && untar "$pack/gomodcache.tar.xz" "$unpacked/gomodcache" ||
			die "unpacking .build/gpu failed"
		[[ -f $pack/scifact.tar.xz ]] && untar "$pack/scifact.tar.xz" "$unpacked"
		export PATH=$unpacked/go/bin:$PATH GOMODCACHE=$unpacked/gomodcache GOPROXY=off GOSUMDB=off
	elif ! command -v go >/dev/null; then
		die "no Go here and no .build/gpu: run 'plugin/libtorch/gpu-check.sh --prepare' on the dev machine and carry .build/gpu"
	fi
	# --allow-shlib-undefined: the linker need not resolve what the wheel's
	# libraries take from CUDA's (cuBLAS, cuDNN, NCCL, the driver's libcuda);
	# at run time the loader finds them through their RPATH, as for Python.
	export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false -ldflags=-extldflags=-Wl,--allow-shlib-undefined ${GPU_CHECK_GOFLAGS:-}"
	[[ -n ${HOME:-} ]] || export GOCACHE=$unpacked/gocache
	say "$(go version) at $(command -v go), GOMODCACHE=$(go env GOMODCACHE), GOPROXY=$(go env GOPROXY)"
	[[ -f $pack/MANIFEST ]] && cat "$pack/MANIFEST" >&3

	# --- 1. build ------------------------------------------------------------------
	local mk=(LIBTORCH="$LIBTORCH" TORCH_VARIANT="$TORCH_VARIANT")
	if step build "${GPU_CHECK_BUILD_S:-420}" make -C "$root" setup build "${mk[@]}"; then
		{
			echo "--- ldd bin/rerank-plugin"
			ldd "$root/bin/rerank-plugin"
		} >>"$out/build.log" 2>&1
		grep -q 'libtorch_cuda.so' <(ldd "$root/bin/rerank-plugin") || say "warning: bin/rerank-plugin does not load libtorch_cuda.so: CUDA will be unavailable"
		grep 'not found' <(ldd "$root/bin/rerank-plugin") >&2 && say "warning: libraries of bin/rerank-plugin not found (build.log)"
	fi
	eval "$(make -s -C "$root" env "${mk[@]}")"

	# --- 2. tests: the engine package, the CUDA tests required -----------------------
	local require=
	[[ $device == cuda ]] && require=1
	[[ ${status[build]:-} == ok ]] &&
		RERANK_REQUIRE_CUDA=$require step test 150 go test -count=1 -v -timeout=5m ./plugin/internal/engine

	# --- 3. benchmarks: ours and sentence-transformers on this card, fp32 and bf16 ---
	# bench-model.sh: Go's BenchmarkForward/RerankLatency/MatmulPeak, then
	# bench_st.py (CrossEncoder.predict, under torch.autocast for bf16) on the
	# same pairs, one table with Go/Python per row. Without the pretrained
	# MiniLM here, both sides run a randomly initialised model of its shape.
	local prec
	for prec in fp32 bf16; do
		[[ ${status[build]:-} == ok ]] || break
		RERANK_BENCH_DEVICE=$device RERANK_BENCH_BATCHES=$batches RERANK_BENCH_PRECISION=$prec \
			BENCHTIME="${GPU_CHECK_BENCHTIME:-8x}" BENCH_OUT="$unpacked/bench-$prec" PYREF="$py" \
			BENCH_RANDOM_MODEL=1 \
			step "bench-$prec" 150 bash "$root/plugin/testdata/reference/bench-model.sh"
	done

	# --- 4. fine-tune on SciFact, if bin/rerank has the command -----------------------
	finetune

	report | tee "$out/table.md"
}

# A MiniLM-L6-shaped cross-encoder with transformers' random initialisation
# (the pretrained weights are too big to carry; the speed is the same),
# trained on SciFact train with the command's defaults: 2 epochs, batch 8,
# max_length 256, BM25 hard negatives, validation every 100 steps (on 40 of
# the validation queries: all 161 cost 6 s per evaluation on an H200).
finetune() {
	if [[ ${status[build]:-} != ok ]] || ! "$root/bin/rerank" finetune --help >/dev/null 2>&1; then
		skip finetune "bin/rerank has no finetune command (or the build failed)"
		return
	fi
	if [[ ! -f $unpacked/scifact/corpus.jsonl ]]; then
		skip finetune "no SciFact (.build/gpu/scifact.tar.xz; --prepare packs it when ../shared has it)"
		return
	fi
	local base=$unpacked/ft-base ftout=$unpacked/ft-out
	rm -rf "$base" "$ftout"
	if ! timeout 120 "${PYTHON:-python3}" - "$base" "$root/plugin/testdata/tiny-ce/tokenizer.json" >>"$out/finetune.log" 2>&1 <<-'PY'; then
		import shutil, sys, torch
		from transformers import BertConfig, BertForSequenceClassification
		torch.manual_seed(0)
		cfg = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
		                 intermediate_size=1536, max_position_embeddings=512, num_labels=1)
		BertForSequenceClassification(cfg).save_pretrained(sys.argv[1], safe_serialization=True)
		shutil.copy(sys.argv[2], sys.argv[1] + "/tokenizer.json")
		print("base model:", sys.argv[1])
	PY
		steps+=(finetune)
		status[finetune]="FAILED: writing the base model with transformers (finetune.log)"
		return
	fi
	# shellcheck disable=SC2086 # GPU_CHECK_FINETUNE_ARGS is a list of flags
	step finetune 300 "$root/bin/rerank" finetune --model "$base" --train "$unpacked/scifact" --out "$ftout" \
		--device "$device" ${GPU_CHECK_FINETUNE_ARGS:---epochs 2 --eval-queries 40}
	ft_report=$ftout/training_report.json
}

# The table: steps, parity, throughput, latency, fine-tune, anchors.
report() {
	local name
	echo
	echo "## GPU check: ${gpu:-no GPU} (torch $TORCH_VERSION, CUDA $TORCH_CUDA), $(date -u +%F)"
	echo
	echo "| step | result | seconds |"
	echo "|---|---|---|"
	for name in "${steps[@]}"; do
		echo "| $name | ${status[$name]:-not run} | ${secs[$name]:-} |"
	done
	if [[ -f $out/test.log ]]; then
		echo
		echo "Parity on the 252 pairs of plugin/testdata/parity (GPU vs CPU and GPU vs transformers: bound 1e-3; tiny, CPU vs transformers: 1e-4):"
		echo
		grep -hoE '(tiny|tiny-ce [^:]*|minilm-sized [^:]*): [0-9]+ pairs, max \|difference\| [^ ]+' "$out/test.log" | sed 's/^/- /'
		grep -hE -- '--- (FAIL|SKIP)' "$out/test.log" | sed -E 's/^ *--- (FAIL|SKIP): ([^ ]+).*/- \1 \2/'
	fi
	local prec
	for prec in fp32 bf16; do
		[[ -f $unpacked/bench-$prec/table.md ]] || continue
		echo
		echo "Cross-encoder throughput on $device, $prec (make bench-model's table: ours against sentence-transformers, MiniLM-L6-shaped, SciFact pairs):"
		echo
		cat "$unpacked/bench-$prec/table.md"
	done
	if [[ -n ${ft_report:-} ]]; then
		echo
		python3 - "$ft_report" "$out/finetune.log" "${secs[finetune]:-0}" <<-'PY'
			import json, os, re, sys
			report, log, wall = sys.argv[1:]
			if os.path.exists(report):
			    r = json.load(open(report))
			    s, t, d = r.get("steps", 0), r.get("train_seconds") or float("nan"), r.get("data", {})
			    print(f"Fine-tune on SciFact train ({d.get('train_pairs')} pairs, {d.get('validation_queries')} validation queries): "
			          f"{s} of {r.get('total_steps')} steps in {t:.1f} s of training = {s / t:.2f} steps/s, "
			          f"{r.get('pairs_per_second', 0):.1f} pairs/s; {wall} s for the whole command "
			          f"(data, BM25 index, evaluations); stopped: {r.get('stopped')}.")
			    if s and (p := r.get("step_seconds")):
			        print(f"  per step: forward {p['forward'] / s:.3f} s, backward {p['backward'] / s:.3f} s, update {p['update'] / s:.3f} s")
			    sys.exit()
			# No report (stopped by the time limit): the last validation line's
			# ETA is the remaining steps at the training speed so far.
			last = None
			for m in re.finditer(r"step (\d+)/(\d+),.*?eta ([0-9hms.µ]+)\]", open(log, errors="replace").read()):
			    if int(m[1]) > 0:
			        last = m
			if last is None:
			    print(f"Fine-tune: no training_report.json and no validation line with an ETA ({wall} s; see finetune.log).")
			    sys.exit()
			units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "µs": 1e-6}
			eta = sum(float(v) * units[u] for v, u in re.findall(r"([0-9.]+)(h|ms|µs|m|s)", last[3]))
			step, total = int(last[1]), int(last[2])
			rate = f"{(total - step) / eta:.2f} steps/s from its ETA" if eta > 0 else "steps/s unknown"
			print(f"Fine-tune stopped by the time limit after {wall} s: step {step} of {total} validated, {rate}.")
		PY
	fi
	echo
	echo "Anchors: ms-marco-MiniLM-L-6-v2 reranks about 1,800 pairs/s on a V100 (sentence-transformers). Goals: >= 10,000 pairs/s on an H100 at max_length 256; a full SciFact fine-tune (2 epochs) in under 2 minutes."
	echo
	echo "Logs: $out"
}

case ${1:-} in
--prepare) prepare ;;
"" | -h | --help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
-*) die "unknown option $1" ;;
*) run "$1" ;;
esac
