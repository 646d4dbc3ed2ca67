"""The sentence-transformers side of the fine-tuning comparison.

Trains sentence-transformers' CrossEncoder on exactly the data `rerank finetune`
prepared (OUT/data/request.json: training pairs with their negatives, validation
queries with their BM25 candidates) with the same hyperparameters (AdamW, weight
decay 0.01 except biases and LayerNorm, linear warm-up over 10% then linear decay,
gradient clipping at 1.0, BCE on label/label_max), and measures NDCG@10 and MRR@10
on the same validation candidates before and after, and the training throughput.

  OMP_WAIT_POLICY=PASSIVE /opt/pyref/bin/python finetune_st.py OUT/data/request.json \
      [--epochs 2 --lr 3e-5 --batch-size 8 --max-length 256 --seed 42 --threads 2]

Pair weights (inverse propensities from click logs) are not applied: the
CrossEncoder.fit API has none. Prints one JSON object.
"""
import argparse
import json
import math
import time

import torch
from sentence_transformers import CrossEncoder, InputExample
from torch.utils.data import DataLoader


def measure(model, req, batch_size):
    """Mean NDCG@10 and MRR@10 over the validation queries, trec_eval style
    (ties by document id descending, gain = label, ideal from every judged document)."""
    docs = req["Docs"]
    ndcgs, mrrs = [], []
    start = time.time()
    n = 0
    for q in req["Validation"]:
        judged = q.get("Judged") or {}
        cands = q.get("Candidates") or []
        scores = model.predict([(q["Query"], docs[c]["Text"]) for c in cands], batch_size=batch_size, show_progress_bar=False) if cands else []
        n += len(cands)
        best = {}
        for c, s in zip(cands, scores):
            d = docs[c]["ID"]
            best[d] = max(best.get(d, -math.inf), float(s))
        ranked = sorted(best, key=lambda d: (best[d], d), reverse=True)[:10]
        dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked) if judged.get(d, 0) > 0)
        gains = sorted((g for g in judged.values() if g > 0), reverse=True)[:10]
        ideal = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
        ndcgs.append(dcg / ideal if ideal else 0.0)
        mrrs.append(next((1 / (i + 1) for i, d in enumerate(ranked) if judged.get(d, 0) >= 1), 0.0))
    secs = time.time() - start
    return {"ndcg10": sum(ndcgs) / len(ndcgs), "mrr10": sum(mrrs) / len(mrrs), "seconds": secs, "pairs_per_second": n / secs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("request")
    ap.add_argument("--model", help="base checkpoint (default: the request's)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=3e-5)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--eval-batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    with open(a.request) as f:
        req = json.load(f)
    docs = req["Docs"]
    labels = [p["Label"] for p in req["Train"]]
    label_max = 1.0 if all(l in (0, 1) for l in labels) else 4.0
    examples = [InputExample(texts=[p["Query"], docs[p["Doc"]]["Text"]], label=p["Label"] / label_max) for p in req["Train"]]

    model = CrossEncoder(a.model or req["BaseModel"], num_labels=1, max_length=a.max_length, device="cpu")
    before = measure(model, req, a.eval_batch_size)
    loader = DataLoader(examples, shuffle=True, batch_size=a.batch_size)
    steps = len(loader) * a.epochs
    warmup = math.ceil(0.1 * steps)
    start = time.time()
    model.fit(train_dataloader=loader, epochs=a.epochs, warmup_steps=warmup, optimizer_params={"lr": a.lr},
              weight_decay=0.01, max_grad_norm=1.0, show_progress_bar=False)
    secs = time.time() - start
    after = measure(model, req, a.eval_batch_size)
    print(json.dumps({"system": "sentence-transformers CrossEncoder.fit", "torch": torch.__version__, "threads": a.threads,
                      "train_pairs": len(examples), "epochs": a.epochs, "steps": steps, "warmup_steps": warmup,
                      "train_seconds": secs, "train_pairs_per_second": len(examples) * a.epochs / secs,
                      "validation_before": before, "validation_after": after}, indent=2))


if __name__ == "__main__":
    main()
