#!/usr/bin/env python
"""sentence-transformers CrossEncoder.predict throughput on SciFact (claim, abstract) pairs.

    /opt/pyref/bin/python plugin/testdata/reference/bench_st.py [--pairs 512] [--lengths 256 512] \\
        [--batches 8 32 64] [--threads 2] [--device cpu|cuda] [--precision fp32|bf16|fp16] [--shared /work/shared]

The model is the MiniLM cross-encoder (all-MiniLM-L6-v2 encoder + plugin/testdata/minilm-head.safetensors),
saved to a temporary folder and loaded with CrossEncoder(folder, max_length=L). Pairs are the train claims
with their relevant abstracts, then one other abstract per claim, in file order (deterministic).
Prints one JSON object; pairs/s counts the timed predict() call only (after one warm-up batch), and pairs
per CPU-second the process's CPU time during it (steadier on a machine shared with other jobs). Per row
also GFLOP/s (the dense layers and attention products of the batches predict() pads, in its order, as
plugin/internal/engine's forwardFLOPs counts them) and the process's peak memory so far (resident on CPU, CUDA
allocations on a GPU); once the fp32 1024x1024 matmul peak, as plugin/internal/engine's BenchmarkMatmulPeak measures
it: the faster of x @ y (MKL on CPU) and oneDNN's product (CPU), each also reported.
bf16/fp16 run predict() under torch.autocast with TF32 matmuls, as the engine's autocast does.
"""

import os

# Must be set before torch (and its OpenMP runtime) loads: idle OpenMP threads must not spin on a
# machine shared with the Go benchmark.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
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


def forward_flops(cfg, batch: int, seq_len: int) -> float:
    h, f, t = cfg.hidden_size, cfg.intermediate_size, seq_len
    return batch * cfg.num_hidden_layers * (2 * t * (4 * h * h + 2 * h * f) + 2 * 2 * t * t * h)


def sync(device: str):
    if device == "cuda":
        torch.cuda.synchronize()


def peak_mb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_peaks(device: str, n: int = 1024, reps: int = 20) -> dict:
    """GFLOP/s of fp32 1024x1024 products: x @ y (MKL on CPU) and, on CPU, oneDNN's x @ y.T
    (torch.ops.mkldnn._linear_pointwise, what the Go engine's dense layers use); "peak" is the faster."""
    x, y = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    products = {"matmul": lambda: x @ y}
    if device == "cpu" and torch.backends.mkldnn.is_available():
        products["onednn"] = lambda: torch.ops.mkldnn._linear_pointwise(x, y, None, "none", [], "")
    rates = {}
    for name, product in products.items():
        product().sum().item()
        sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            product()
        sync(device)
        rates[name] = 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9
    rates["peak"] = max(rates.values())
    return rates


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=512)
    ap.add_argument("--pairs-file", type=Path, help="a JSONL of {query, text} (e.g. plugin/testdata/parity/pairs.jsonl, "
                    "the pairs the Go benchmark uses) instead of sampling SciFact")
    ap.add_argument("--lengths", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--batches", type=int, nargs="+", default=[8, 32, 64])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--random-init", type=Path, metavar="TOKENIZER_JSON",
                    help="a MiniLM-L6-shaped cross-encoder with transformers' random initialisation and this "
                    "tokenizer, instead of the pretrained encoder (the GPU machine has neither it nor /work/shared; "
                    "the speed is the same, as for Go's benchmark without RERANK_MINILM_DIR)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
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
    if args.random_init:
        from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

        tok = BertTokenizerFast(tokenizer_file=str(args.random_init))
        torch.manual_seed(0)
        model = BertForSequenceClassification(BertConfig(
            vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
            intermediate_size=1536, max_position_embeddings=512, num_labels=1))
    else:
        tok = refmodels.load_tokenizer(args.shared)
        model = refmodels.build_minilm_ce()

    dev = args.device
    peaks = matmul_peaks(dev)  # fp32, before TF32 is allowed below
    if args.precision == "fp32":
        autocast = contextlib.nullcontext()
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        autocast = torch.autocast(dev, dtype=torch.bfloat16 if args.precision == "bf16" else torch.float16)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        refmodels.save_ce_folder(model, tok, Path(tmp))
        for L in args.lengths:
            ce = CrossEncoder(tmp, max_length=L, device=dev)
            lens = [len(x) for x in tok([p[0] for p in pairs], [p[1] for p in pairs], truncation=True,
                                        max_length=L)["input_ids"]]
            for bs in args.batches:
                flops = sum(forward_flops(model.config, len(lens[i:i + bs]), max(lens[i:i + bs]))
                            for i in range(0, len(lens), bs))
                with autocast:
                    ce.predict(pairs[:bs], batch_size=bs)  # warm-up
                    t0, c0 = time.perf_counter(), time.process_time()
                    ce.predict(pairs, batch_size=bs, show_progress_bar=False)
                    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
                results.append({"max_length": L, "batch_size": bs, "pairs": len(pairs), "seconds": round(dt, 4),
                                "pairs_per_s": round(len(pairs) / dt, 2),
                                "pairs_per_cpu_s": round(len(pairs) / cpu, 2),
                                "gflops_per_s": round(flops / dt / 1e9, 1),
                                "peak_mb": round(peak_mb(dev)),
                                "mean_tokens": round(sum(lens) / len(lens), 1)})
                print(json.dumps(results[-1]), file=sys.stderr)

    print(json.dumps({
        "model": ("MiniLM-L6-shaped BertForSequenceClassification, random init" if args.random_init else
                  "all-MiniLM-L6-v2 encoder + minilm-head.safetensors (BertForSequenceClassification, num_labels=1)"),
        "data": "SciFact train (claim, title + ' ' + abstract) pairs",
        "device": dev,
        "precision": args.precision,
        "matmul_peak_gflops_per_s": round(peaks["peak"], 1),
        "matmul_peaks_gflops_per_s": {k: round(v, 1) for k, v in peaks.items() if k != "peak"},
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
