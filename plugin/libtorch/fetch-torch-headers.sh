#!/usr/bin/env bash
# Unpacks torch/include from PyPI's torch==VERSION wheel into DEST/torch/include
# (the wheel itself is not kept). `make compat-header` uses 2.1.0's headers as
# the reference gotch v0.9.1 was generated from; another version's headers let
# gotch be checked against it on a machine without that libtorch.
# Usage: fetch-torch-headers.sh VERSION DEST
set -euo pipefail
version=${1:?usage: fetch-torch-headers.sh VERSION DEST} dest=${2:?usage: fetch-torch-headers.sh VERSION DEST}
[[ -d $dest/torch/include ]] && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch-torch-headers: pip download torch==$version (several hundred MB)"
python3 -m pip download -q --no-deps --no-cache-dir -d "$tmp/wheel" "torch==$version"
python3 - "$tmp"/wheel/torch-*.whl "$tmp/out" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith("torch/include/")])
PY
mkdir -p "$dest"
mv "$tmp/out/torch" "$dest/torch"
echo "fetch-torch-headers: $dest/torch/include"
