#!/usr/bin/env python
"""Proves a bi-encoder folder (e.g. one our Go code saved) loads in sentence-transformers and embeds like we say.

    /opt/pyref/bin/python plugin/testdata/reference/check_biencoder.py FOLDER \\
        [--texts plugin/testdata/parity/embeddings.jsonl] [--compare go_embedding] [--tol 1e-5] \\
        [--limit N] [--batch-size 1]

FOLDER must be a sentence-transformers folder (modules.json, 1_Pooling/config.json, sentence_bert_config.json,
config.json, model.safetensors, tokenizer files); it is loaded offline with SentenceTransformer(FOLDER).
The texts are the "text" field of a JSONL file (default: the committed parity/embeddings.jsonl). Every text
is encoded (one at a time by default, so without padding) with encode(text, convert_to_numpy=True).

When lines carry the --compare field (default "go_embedding"; "embedding" compares against the committed
reference, "token_embeddings_mean"/"cls"/"max" need a folder without Normalize and with that pooling) it
prints the max abs difference and the lowest cosine to what sentence-transformers gives; lines without the
field are skipped. When lines carry "input_ids" it also checks that the folder tokenizes to the same ids.
With --tol the exit status is 1 when the max abs difference exceeds it, when any ids differ, or when no line
carried the field.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refmodels  # noqa: E402  (offline mode before transformers loads)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--texts", type=Path, default=refmodels.TESTDATA / "parity" / "embeddings.jsonl")
    ap.add_argument("--compare", default="go_embedding", help="field holding the vector to compare (default go_embedding)")
    ap.add_argument("--tol", type=float, default=None, help="exit 1 when max |compare - sentence-transformers| exceeds it")
    ap.add_argument("--limit", type=int, default=0, help="only the first N lines (0: all)")
    ap.add_argument("--batch-size", type=int, default=1, help="encode batch size (1: no padding)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--verbose", action="store_true", help="one line per text")
    args = ap.parse_args()
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)

    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    if not (args.folder / "modules.json").is_file():
        print(f"warning: {args.folder} has no modules.json; sentence-transformers will add mean pooling itself",
              file=sys.stderr)
    model = SentenceTransformer(str(args.folder), device="cpu").eval()
    tok = model.tokenizer
    rows = [json.loads(line) for line in args.texts.read_text(encoding="utf-8").splitlines() if line.strip()]
    if args.limit:
        rows = rows[: args.limit]
    texts = [r["text"] for r in rows]

    print(json.dumps({
        "folder": str(args.folder),
        "modules": [type(m).__name__ for m in model],
        "max_seq_length": model.max_seq_length,
        "pooling": [getattr(m, "pooling_mode", None) for m in model if type(m).__name__ == "Pooling"],
        "sentence_transformers": sentence_transformers.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "texts": len(rows),
    }))

    embs = model.encode(texts, batch_size=args.batch_size, convert_to_numpy=True, show_progress_bar=False)
    embs = np.asarray(embs, dtype=np.float64)

    id_mismatch = []
    for r in rows:
        if "input_ids" in r:
            ids = tok(r["text"], truncation=True, max_length=model.max_seq_length)["input_ids"]
            if ids != r["input_ids"]:
                id_mismatch.append(r.get("id", "?"))

    worst, worst_id, min_cos, compared = 0.0, None, 1.0, 0
    for r, e in zip(rows, embs):
        if args.compare not in r:
            continue
        ref = np.asarray(r[args.compare], dtype=np.float64)
        if ref.shape != e.shape:
            raise SystemExit(f"{r.get('id')}: {args.compare} has {ref.shape[0]} values, the model gives {e.shape[0]}")
        d = float(np.abs(ref - e).max())
        cos = float(ref @ e / max(np.linalg.norm(ref) * np.linalg.norm(e), 1e-12))
        compared += 1
        if d > worst:
            worst, worst_id = d, r.get("id")
        min_cos = min(min_cos, cos)
        if args.verbose:
            print(f"{r.get('id', '?')}\tmax_abs_diff={d:.3g}\tcosine={cos:.9f}\tnorm={np.linalg.norm(e):.6f}")

    report = {
        "compare": args.compare,
        "compared": compared,
        "skipped_without_field": len(rows) - compared,
        "max_abs_diff": worst,
        "worst_id": worst_id,
        "min_cosine": min_cos if compared else None,
        "input_ids_checked": sum("input_ids" in r for r in rows),
        "input_ids_mismatch": id_mismatch[:20],
        "input_ids_mismatch_count": len(id_mismatch),
    }
    print(json.dumps(report))
    if args.tol is not None:
        bad = []
        if compared == 0:
            bad.append(f"no line carries {args.compare!r}")
        if worst > args.tol:
            bad.append(f"max abs diff {worst:.3g} > tol {args.tol:g} (worst {worst_id})")
        if id_mismatch:
            bad.append(f"{len(id_mismatch)} texts tokenize differently")
        if bad:
            print("FAIL: " + "; ".join(bad), file=sys.stderr)
            sys.exit(1)
        print(f"OK: {compared} vectors within {args.tol:g}", file=sys.stderr)


if __name__ == "__main__":
    main()
