#!/usr/bin/env python
"""sentence-transformers CrossEncoder.predict throughput on SciFact (claim, abstract) pairs, on CPU.

    /opt/pyref/bin/python plugin/testdata/reference/bench_st.py [--pairs 512] [--lengths 256 512] \\
        [--batches 8 32 64] [--threads 2] [--shared /work/shared]

The model is the MiniLM cross-encoder (all-MiniLM-L6-v2 encoder + plugin/testdata/minilm-head.safetensors),
saved to a temporary folder and loaded with CrossEncoder(folder, max_length=L). Pairs are the train claims
with their relevant abstracts, then one other abstract per claim, in file order (deterministic).
Prints one JSON object; pairs/s counts the timed predict() call only (after one warm-up batch).
"""

import os

# Must be set before torch (and its OpenMP runtime) loads: idle OpenMP threads must not spin on a
# machine shared with the Go benchmark.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refmodels  # noqa: E402

import torch  # noqa: E402


def scifact_pairs(shared: Path, n: int) -> list:
    corpus, queries, qrels = refmodels.load_scifact(shared, "train")
    rel = [(queries[q], refmodels.doc_text(corpus[d])) for q, ds in qrels.items() for d in ds]
    rng = random.Random(0)
    ids = sorted(corpus)
    other = [(queries[q], refmodels.doc_text(corpus[rng.choice(ids)])) for q in qrels]
    pairs = rel + other
    if n > len(pairs):
        raise SystemExit(f"only {len(pairs)} pairs available")
    return pairs[:n]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=512)
    ap.add_argument("--pairs-file", type=Path, help="a JSONL of {query, text} (e.g. plugin/testdata/parity/pairs.jsonl, "
                    "the pairs the Go benchmark uses) instead of sampling SciFact")
    ap.add_argument("--lengths", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--batches", type=int, nargs="+", default=[8, 32, 64])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shared", type=Path, default=refmodels.DEFAULT_SHARED)
    args = ap.parse_args()

    import transformers
    import sentence_transformers
    from sentence_transformers import CrossEncoder

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    if args.pairs_file:
        pairs = [(r["query"], r["text"]) for r in map(json.loads, args.pairs_file.open())]
    else:
        pairs = scifact_pairs(args.shared, args.pairs)
    tok = refmodels.load_tokenizer(args.shared)

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        refmodels.save_ce_folder(refmodels.build_minilm_ce(), tok, Path(tmp))
        for L in args.lengths:
            ce = CrossEncoder(tmp, max_length=L, device="cpu")
            lens = [len(x) for x in tok([p[0] for p in pairs], [p[1] for p in pairs], truncation=True,
                                        max_length=L)["input_ids"]]
            for bs in args.batches:
                ce.predict(pairs[:bs], batch_size=bs)  # warm-up
                t0 = time.perf_counter()
                ce.predict(pairs, batch_size=bs, show_progress_bar=False)
                dt = time.perf_counter() - t0
                results.append({"max_length": L, "batch_size": bs, "pairs": len(pairs), "seconds": round(dt, 4),
                                "pairs_per_s": round(len(pairs) / dt, 2),
                                "mean_tokens": round(sum(lens) / len(lens), 1)})
                print(json.dumps(results[-1]), file=sys.stderr)

    print(json.dumps({
        "model": "all-MiniLM-L6-v2 encoder + minilm-head.safetensors (BertForSequenceClassification, num_labels=1)",
        "data": "SciFact train (claim, title + ' ' + abstract) pairs",
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
