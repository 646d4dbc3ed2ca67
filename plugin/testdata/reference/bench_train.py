#!/usr/bin/env python
"""sentence-transformers' training step on the batches the Go trainer trained (BenchmarkTrainStep).

    /opt/pyref/bin/python plugin/testdata/reference/bench_train.py PLAN.json [--threads 2]

PLAN.json is written by `RERANK_BENCH_TRAIN_PLAN=DIR go test ./plugin/internal/train -bench TrainStep`:
the batches of one epoch as texts, in the order trained, and the settings that shape a step.

- kind "bi": SentenceTransformer(RERANK_MINILM_DIR) (max_seq_length = max_length) and
  MultipleNegativesRankingLoss(scale) on (query, positive, negative) rows.
- kind "ce": CrossEncoder(folder, num_labels=1, max_length) with the MiniLM cross-encoder
  (all-MiniLM-L6-v2 encoder + plugin/testdata/minilm-head.safetensors), BCE with logits on its logits, as
  sentence-transformers' BinaryCrossEntropyLoss computes it.

Both as sentence-transformers' trainer steps: dropout on, AdamW (torch, as the trainer's adamw_torch) with
weight decay on all but biases and LayerNorm weights, linear warm-up and decay, gradient clipping, zero_grad.
Every batch is tokenized before the clock starts (the Go trainer tokenizes while it sets up). Prints one JSON
object: pairs/s counted as the Go trainer counts them (a unit's positive and negative; a cross-encoder's pairs)
over all steps, and seconds per step in the forward pass with the loss, the backward pass and the update.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refmodels  # noqa: E402

import torch  # noqa: E402


def decay_groups(model, weight_decay):
    no_decay = ("bias", "LayerNorm.weight")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for n, p in named if not any(k in n for k in no_decay)], "weight_decay": weight_decay},
        {"params": [p for n, p in named if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("plan")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    plan = json.load(open(args.plan, encoding="utf-8"))
    torch.set_num_threads(args.threads)
    torch.manual_seed(plan["seed"])
    from sentence_transformers import CrossEncoder, SentenceTransformer, losses
    from transformers import get_linear_schedule_with_warmup

    kind, max_len = plan["kind"], plan["max_length"]
    steps = []  # (inputs, pairs counted)
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "bi":
            model = SentenceTransformer(os.environ["RERANK_MINILM_DIR"], device="cpu")
            model.max_seq_length = max_len
            loss_fn = losses.MultipleNegativesRankingLoss(model, scale=plan["scale"])
            params_of = model
            for batch in plan["batches"]:
                columns = list(zip(*batch))
                steps.append(([model.tokenize(list(c)) for c in columns], len(batch) * (len(columns) - 1)))

            def forward(inputs):
                return loss_fn(inputs, None)
        else:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(os.environ["RERANK_MINILM_DIR"])
            refmodels.save_ce_folder(refmodels.build_minilm_ce(), tok, Path(tmp))
            ce = CrossEncoder(tmp, num_labels=1, max_length=max_len, device="cpu")
            params_of, bce = ce.model, torch.nn.BCEWithLogitsLoss()
            for batch in plan["batches"]:
                q, d, y = zip(*batch)
                feats = ce.tokenizer(list(q), list(d), padding=True, truncation="longest_first",
                                     max_length=max_len, return_tensors="pt")
                steps.append(((feats, torch.tensor(y, dtype=torch.float32)), len(batch)))

            def forward(inputs):
                feats, labels = inputs
                return bce(ce.model(**feats).logits.view(-1), labels)

        params_of.train()
        opt = torch.optim.AdamW(decay_groups(params_of, plan["weight_decay"]), lr=plan["lr"])
        sched = get_linear_schedule_with_warmup(opt, math.ceil(plan["warmup_ratio"] * len(steps)), len(steps))
        params = [p for g in opt.param_groups for p in g["params"]]
        fwd = bwd = upd = 0.0
        cpu0, pairs = time.process_time(), 0
        for inputs, n in steps:
            t0 = time.perf_counter()
            loss = forward(inputs)
            loss.item()
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            torch.nn.utils.clip_grad_norm_(params, plan["max_grad_norm"])
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            t3 = time.perf_counter()
            fwd, bwd, upd, pairs = fwd + t1 - t0, bwd + t2 - t1, upd + t3 - t2, pairs + n
        total = fwd + bwd + upd
        print(json.dumps({
            "kind": kind, "steps": len(steps), "pairs": pairs, "seconds": total, "pairs_per_s": pairs / total,
            "cpu_seconds": time.process_time() - cpu0,
            "forward_s_per_step": fwd / len(steps), "backward_s_per_step": bwd / len(steps),
            "update_s_per_step": upd / len(steps), "threads": torch.get_num_threads(),
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "torch": torch.__version__, "sentence_transformers": sys.modules["sentence_transformers"].__version__,
        }, indent=1))


if __name__ == "__main__":
    main()
