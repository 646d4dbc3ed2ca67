#!/usr/bin/env python
"""Proves a checkpoint folder (e.g. one our Go code saved) loads in Python and scores like we say.

    /opt/pyref/bin/python plugin/testdata/reference/check_checkpoint.py DIR PAIRS.jsonl \\
        [--max-length 512] [--compare go_logit] [--tol 1e-4] [--limit N]

DIR must hold config.json, model.safetensors and tokenizer.json (+ tokenizer_config.json). PAIRS.jsonl
has one object per line with "query" and "text" (plugin/testdata/parity/pairs.jsonl works). The folder
is loaded twice: transformers AutoModelForSequenceClassification and sentence-transformers CrossEncoder.
For every pair it prints the transformers logit, CrossEncoder's raw logit and its default predict()
output; when the lines carry the --compare field (default "go_logit") it prints the max abs difference
to the transformers logit, and with --tol it exits 1 when that difference exceeds the tolerance.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refmodels  # noqa: E402,F401  (offline mode before transformers loads)

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", type=Path)
    ap.add_argument("pairs", type=Path)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--compare", default="go_logit", help="field holding the logit to compare (default go_logit)")
    ap.add_argument("--tol", type=float, default=None, help="exit 1 when max |compare - transformers| exceeds it")
    ap.add_argument("--limit", type=int, default=0, help="only the first N pairs (0: all)")
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    transformers.logging.set_verbosity_error()

    rows = [json.loads(line) for line in args.pairs.read_text(encoding="utf-8").splitlines() if line.strip()]
    if args.limit:
        rows = rows[: args.limit]
    if not rows:
        raise SystemExit(f"{args.pairs}: no pairs")

    tok = AutoTokenizer.from_pretrained(str(args.dir))
    model, info = AutoModelForSequenceClassification.from_pretrained(str(args.dir), output_loading_info=True)
    model.eval()
    bad = {k: sorted(v) for k, v in info.items() if k != "error_msgs" and v}
    if bad or info.get("error_msgs"):
        raise SystemExit(f"{args.dir}: checkpoint does not load cleanly: {bad} {info.get('error_msgs')}")
    if model.config.num_labels != 1:
        raise SystemExit(f"{args.dir}: num_labels is {model.config.num_labels}, a reranker needs 1")

    hf = []
    with torch.no_grad():
        for i in range(0, len(rows), args.batch_size):
            chunk = rows[i : i + args.batch_size]
            b = tok([r["query"] for r in chunk], [r["text"] for r in chunk], truncation=True,
                    max_length=args.max_length, padding=True, return_tensors="pt")
            hf.extend(model(**b).logits[:, 0].tolist())

    from sentence_transformers import CrossEncoder

    ce = CrossEncoder(str(args.dir), max_length=args.max_length, device="cpu")
    pairs = [(r["query"], r["text"]) for r in rows]
    st_raw = ce.predict(pairs, batch_size=args.batch_size, activation_fn=torch.nn.Identity())
    st_default = ce.predict(pairs, batch_size=args.batch_size)

    print(f"{'id':<40} {'transformers':>13} {'st_raw':>13} {'st_predict':>11} {args.compare:>13} {'|diff|':>10}")
    diffs = []
    for r, h, s, d in zip(rows, hf, st_raw, st_default):
        other = r.get(args.compare)
        diff = abs(other - h) if other is not None else None
        if diff is not None:
            diffs.append(diff)
        print(f"{str(r.get('id', '-'))[:40]:<40} {h:13.7f} {float(s):13.7f} {float(d):11.7f} "
              f"{'' if other is None else f'{other:13.7f}':>13} {'' if diff is None else f'{diff:10.2e}':>10}")

    summary = {
        "dir": str(args.dir),
        "pairs": len(rows),
        "max_length": args.max_length,
        "architectures": model.config.architectures,
        "max_abs_diff_transformers_vs_st": max(abs(h - float(s)) for h, s in zip(hf, st_raw)),
        "st_default_activation": type(ce.activation_fn).__module__ + "." + type(ce.activation_fn).__name__,
        f"compared_{args.compare}": len(diffs),
        f"max_abs_diff_{args.compare}_vs_transformers": max(diffs) if diffs else None,
    }
    print(json.dumps(summary, indent=2))
    if args.tol is not None:
        if not diffs:
            raise SystemExit(f"--tol given but no line has a {args.compare!r} field")
        if max(diffs) > args.tol:
            raise SystemExit(f"max |{args.compare} - transformers| = {max(diffs):.3e} exceeds {args.tol}")


if __name__ == "__main__":
    main()
