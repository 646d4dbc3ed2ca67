#!/usr/bin/env python
"""Reference run: sentence-transformers' SentenceTransformer trained as `rerank finetune` trains a bi-encoder.

    /opt/pyref/bin/python finetune/testdata/reference/train_st_bi.py \\
        --data OUT/data --model BASE_BI [--plan plan.json] --out DIR [--threads 2] > st-bi.json

Run by hand, never in CI (see README.md beside it). The inputs are what the Go side wrote:

- --data: OUT/data of a `rerank finetune` run of a bi-encoder: train.jsonl (one pair a line: query_id,
  query, doc_id, text, label, weight) and request.json (the request the Go trainer got: its configuration,
  and the validation queries with their BM25 candidates, BM25 scores and judgments).
- --model: the sentence-transformers folder the Go run started from (`rerank model init --kind bi-encoder`
  writes one), so both start from the same bytes.
- --plan: optional, the Go trainer's own batches (`RERANK_DUMP_PLAN=OUT/data/request.json
  RERANK_DUMP_PLAN_OUT=plan.json go test ./plugin/internal/train -run DumpContrastivePlan`): each epoch's
  batches of units (a positive pair and its negative, as indexes into train.jsonl). Without it the units
  and batches are drawn here by the same rules with Python's RNG (so other draws than Go's).

Training follows plugin/internal/train's contrastive loss, which is sentence-transformers'
MultipleNegativesRankingLoss (scale 20, cosine): a unit is one positive pair (label > 0) and one of its
query's non-relevant pairs (drawn afresh each epoch from all of them: the BM25 hard negatives and the random
ones alike); a batch holds batch-size units of distinct queries (shuffled, then packed greedily; a unit whose
query is already in the batch waits for the next one); each query is scored against every positive and
negative of the batch. Here those units are (anchor, positive, negative) rows, fed to
SentenceTransformerTrainer in the plan's order by a batch sampler that yields the plan's batches. The
hyperparameters are the Go run's (request.json's Config; flags override): AdamW (adamw_torch, betas
0.9/0.999, eps 1e-8, decay on weights, not biases and LayerNorm), linear warm-up over ceil(ratio x steps)
then linear decay, clipping by global norm, max_length (max_seq_length), seed.

Validation is the Go trainer's: every eval-steps steps and at each epoch's end (step 0 is the base), embed
the validation queries and their BM25 candidates (inference mode), score by cosine, fuse with the BM25 scores
(per-query min-max, a x bm25 + (1 - a) x model) with a refitted on these queries (grid 0, 0.05, ..., 1; the
middle of the longest run of best points, as evalharness/fusion.Fit), and keep the state with the best fused
NDCG@10 (strictly better than the best so far). --out receives that state as a sentence-transformers folder
with its fusion.json, which `rerank eval --model DIR` loads as a bi-encoder fused with BM25.

Prints one JSON object: the validation curve, training pairs/s (as the Go report counts: the pairs of the
units, two per unit, over the wall seconds of the optimisation steps, i.e. trainer.train() minus
validation), CPU seconds of those steps and of the whole process, the configuration and the versions.
"""

import os

# Before torch (and its OpenMP runtime) loads: idle OpenMP threads must not spin on a shared machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "plugin" / "testdata" / "reference"))
import refmodels  # noqa: E402

SCALE = 20.0  # plugin/internal/train/contrastive.go similarityScale
HARD_NEGATIVES = 1  # contrastive.go hardNegatives: negatives per unit
MIN_FIT_QUERIES = 30  # contrastive.go minFitQueries
TIE_EPS = 1e-12  # evalharness/fusion tieEps


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="the Go run's OUT/data (train.jsonl, request.json)")
    ap.add_argument("--model", type=Path, required=True, help="base sentence-transformers folder (the Go run's --model)")
    ap.add_argument("--plan", type=Path, help="the Go trainer's batches (TestDumpContrastivePlan); default: drawn here")
    ap.add_argument("--out", type=Path, help="save the best state here (sentence-transformers layout + fusion.json)")
    hp = ap.add_argument_group("training (default: the Go run's, from request.json)")
    hp.add_argument("--epochs", type=int)
    hp.add_argument("--lr", type=float)
    hp.add_argument("--batch-size", type=int)
    hp.add_argument("--max-length", type=int)
    hp.add_argument("--warmup-ratio", type=float)
    hp.add_argument("--weight-decay", type=float)
    hp.add_argument("--max-grad-norm", type=float)
    hp.add_argument("--seed", type=int)
    hp.add_argument("--eval-steps", type=int, help="validate every N steps and at epoch ends (0: only the last state, no validation)")
    hp.add_argument("--eval-batch-size", type=int)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    return ap.parse_args()


def settings(args, cfg: dict) -> dict:
    """The Go run's configuration (request.json Config), each overridden by its flag when given."""
    go = {"epochs": cfg.get("Epochs") or 2, "lr": cfg.get("LearningRate") or 3e-5, "batch_size": cfg.get("BatchSize") or 8,
          "max_length": cfg.get("MaxLength") or 256, "warmup_ratio": cfg.get("WarmupRatio", 0.1),
          "weight_decay": cfg.get("WeightDecay", 0.01), "max_grad_norm": cfg.get("MaxGradNorm") or 1.0,
          "seed": cfg.get("Seed", 42), "eval_steps": cfg.get("EvalSteps") or 100, "eval_batch_size": cfg.get("EvalBatchSize") or 32}
    out = {}
    for k, v in go.items():
        flag = getattr(args, k)
        out[k] = v if flag is None else flag
        if flag is not None and flag != v:
            print(f"WARNING: --{k.replace('_', '-')} {flag} differs from the Go run's {v}", file=sys.stderr)
    return out


# ---------------------------------------------------------------- units and batches


def read_pairs(path: Path) -> list:
    pairs = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                p = json.loads(line)
                p["label"], p["weight"] = float(p["label"]), float(p.get("weight") or 1)
                pairs.append(p)
    return pairs


def plan_here(pairs: list, epochs: int, batch_size: int, seed: int) -> list:
    """contrastive.go planContrastive with Python's RNG: per epoch, each positive with one of its query's
    non-relevant pairs, shuffled, packed greedily into batches of distinct queries."""
    groups = {}
    for i, p in enumerate(pairs):
        groups.setdefault(p["query_id"] or p["query"], []).append(i)
    plan = []
    for e in range(epochs):
        rng = random.Random(seed * 1000 + e + 1)
        units = []
        for idx in groups.values():
            pos = [i for i in idx if pairs[i]["label"] > 0]
            neg = [i for i in idx if pairs[i]["label"] <= 0]
            for p in pos:
                units.append([p] + [neg[k] for k in rng.sample(range(len(neg)), min(HARD_NEGATIVES, len(neg)))])
        rng.shuffle(units)
        plan.append(pack(units, pairs, batch_size))
    return plan


def pack(units: list, pairs: list, batch_size: int) -> list:
    batches = []
    while units:
        cur, seen, wait = [], set(), []
        for u in units:
            q = pairs[u[0]]["query_id"] or pairs[u[0]]["query"]
            if len(cur) < batch_size and q not in seen:
                cur.append(u)
                seen.add(q)
            else:
                wait.append(u)
        batches.append(cur)
        units = wait
    return batches


def check_plan(plan: list, pairs: list, batch_size: int):
    for e, batches in enumerate(plan):
        used = [u[0] for b in batches for u in b]
        positives = [i for i, p in enumerate(pairs) if p["label"] > 0]
        if sorted(used) != positives:
            sys.exit(f"plan epoch {e + 1} does not use every positive once")
        for b in batches:
            qs = [pairs[u[0]]["query_id"] for u in b]
            if len(b) > batch_size or len(set(qs)) != len(qs):
                sys.exit(f"plan epoch {e + 1}: a batch over {batch_size} units or with a query twice")
            for u in b:
                if len(u) != 2 or pairs[u[1]]["label"] > 0 or pairs[u[1]]["query_id"] != pairs[u[0]]["query_id"]:
                    sys.exit("plan: every unit must be a positive and one negative of its own query")


# ---------------------------------------------------------------- validation (the Go trainer's)


def ndcg10(ranked: list, judged: dict) -> float:
    """evalharness NDCG@10 (trec_eval's: linear gain, log2 discount) of a ranked document list."""
    dcg = sum(judged.get(d, 0) / math.log2(r + 2) for r, d in enumerate(ranked[:10]))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:10]
    idcg = sum(g / math.log2(r + 2) for r, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def mrr10(ranked: list, judged: dict) -> float:
    for r, d in enumerate(ranked[:10]):
        if judged.get(d, 0) > 0:
            return 1.0 / (r + 1)
    return 0.0


def minmax(xs: list) -> list:
    lo, hi = min(xs), max(xs)
    return [0.0] * len(xs) if hi == lo else [min((x - lo) / (hi - lo), 1.0) for x in xs]


def fused_order(a: float, first: list, model: list) -> list:
    """fusion.Fuse (minmax) then fusion.Order: score descending, ties by input (first-stage) position."""
    f, m = minmax(first), minmax(model)
    s = [a * x + (1 - a) * y for x, y in zip(f, m)]
    return sorted(range(len(s)), key=lambda i: (-s[i], i))


def evaluate(queries: list, a: float, measure=ndcg10) -> float:
    return sum(measure([q["docs"][i] for i in fused_order(a, q["first"], q["model"])], q["judged"]) for q in queries) / len(queries)


def fit(queries: list) -> tuple:
    """fusion.Fit over 0, 0.05, ..., 1: the middle (lower middle) of the longest run within 1e-12 of the best."""
    grid = [i / 20 for i in range(21)]
    points = [evaluate(queries, a) for a in grid]
    best = max(points)
    start, length, i = 0, 0, 0
    while i < len(points):
        if points[i] < best - TIE_EPS:
            i += 1
            continue
        j = i
        while j < len(points) and points[j] >= best - TIE_EPS:
            j += 1
        if j - i > length:
            start, length = i, j - i
        i = j
    k = start + (length - 1) // 2
    return grid[k], points[k]


def trec_measure(queries: list, a: float) -> tuple:
    """The trainer's v.measure: trec_eval rules on the fused run (pytrec_eval; ties by document ID)."""
    import pytrec_eval

    run, qrels = {}, {}
    for q in queries:
        f, m = minmax(q["first"]), minmax(q["model"])
        run[q["id"]] = {d: a * x + (1 - a) * y for d, x, y in zip(q["docs"], f, m)}
        qrels[q["id"]] = q["judged"]
    nd = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10"}).evaluate(run)
    top10 = {q: dict(sorted(d.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)[:10]) for q, d in run.items()}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    n = len(qrels)  # queries without a judged document in their candidates count as 0
    return sum(v["ndcg_cut_10"] for v in nd.values()) / n, sum(v["recip_rank"] for v in rr.values()) / n


# ---------------------------------------------------------------- main


def main():
    args = parse_args()
    wall0, ru0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)

    import torch

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)

    import datasets
    import transformers
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.util import cos_sim
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()

    req = json.loads((args.data / "request.json").read_text(encoding="utf-8"))
    hp = settings(args, req.get("Config") or {})
    pairs = read_pairs(args.data / "train.jsonl")
    if len(pairs) != len(req["Train"]) or any(p["query_id"] != r["QueryID"] for p, r in zip(pairs, req["Train"])):
        sys.exit("train.jsonl and request.json's Train differ")
    if any(p["weight"] != 1 for p in pairs) or any(p["label"] not in (0, 1) for p in pairs):
        sys.exit("weighted or graded pairs: this reference trains the unweighted MNRL only (binary labels, weight 1)")

    if args.plan:
        plan_file = json.loads(args.plan.read_text(encoding="utf-8"))
        plan = plan_file["epochs"]
        if plan_file.get("seed") != hp["seed"] or plan_file.get("batch_size") != hp["batch_size"] or len(plan) != hp["epochs"]:
            sys.exit(f"{args.plan}: seed, batch size or epochs differ from this run's")
        plan_source = f"the Go trainer's ({args.plan})"
    else:
        plan = plan_here(pairs, hp["epochs"], hp["batch_size"], hp["seed"])
        plan_source = "drawn here (Python's RNG, the Go trainer's rules)"
    check_plan(plan, pairs, hp["batch_size"])
    batches = [b for epoch in plan for b in epoch]
    epoch_ends, n = [], 0
    for epoch in plan:
        n += len(epoch)
        epoch_ends.append(n)
    total_steps = len(batches)
    rows = [u for b in batches for u in b]
    columns = {"anchor": [pairs[u[0]]["query"] for u in rows], "positive": [pairs[u[0]]["text"] for u in rows],
               "negative": [pairs[u[1]]["text"] for u in rows]}
    pairs_seen = sum(len(u) for u in rows)

    # Validation set: request.json's validation queries, their candidates (BM25 order) and BM25 scores.
    docs = req["Docs"]
    val = []
    for q in req.get("Validation") or []:
        if q.get("Scores") is None:
            sys.exit("validation without first-stage scores: not the Go bi-encoder's fused validation")
        seen, cands, first = set(), [], []
        for d, s in zip(q["Candidates"], q["Scores"]):
            if d not in seen:
                seen.add(d)
                cands.append(d)
                first.append(s)
        val.append({"id": q["QueryID"], "query": q["Query"], "cands": cands, "docs": [docs[d]["ID"] for d in cands],
                    "first": first, "judged": {k: int(v) for k, v in q["Judged"].items()}})
    val_docs = sorted({d for q in val for d in q["cands"]})
    do_val = bool(val) and hp["eval_steps"] > 0

    with tempfile.TemporaryDirectory(prefix="train-st-bi-") as tmp:
        model = SentenceTransformer(str(args.model), device=args.device)
        model.max_seq_length = hp["max_length"]
        curve = []
        state = {"eval_s": 0.0, "eval_cpu_s": 0.0, "best": None, "best_ndcg": -1.0, "best_step": 0, "fusion": None, "last": -1}

        def validate(step: int):
            if not do_val or state["last"] == step:
                return
            state["last"] = step
            t0, c0 = time.perf_counter(), time.process_time()
            was_training = model.training
            model.eval()
            with torch.no_grad():
                qe = model.encode([q["query"] for q in val], batch_size=hp["eval_batch_size"], convert_to_tensor=True)
                de = model.encode([docs[d]["Text"] for d in val_docs], batch_size=hp["eval_batch_size"], convert_to_tensor=True)
                sim = cos_sim(qe, de).cpu()
            model.train(was_training)
            col = {d: j for j, d in enumerate(val_docs)}
            for qi, q in enumerate(val):
                q["model"] = [float(sim[qi, col[d]]) for d in q["cands"]]
            judged = [q for q in val if q["judged"]]
            alone = evaluate(judged, 0.0)
            if len(judged) >= MIN_FIT_QUERIES:
                a, fit_ndcg = fit(judged)
                fitted_on = f"validation ({len(judged)} queries)"
            else:  # the Go trainer keeps the base model's fusion.json then
                base = json.loads((args.model / "fusion.json").read_text()) if (args.model / "fusion.json").is_file() else {"bm25_weight": 0.0}
                a, fit_ndcg, fitted_on = base["bm25_weight"], evaluate(judged, base["bm25_weight"]), "the base model's fusion.json"
            nd, mrr = trec_measure(val, a)
            took, cpu = time.perf_counter() - t0, time.process_time() - c0
            state["eval_s"] += took
            state["eval_cpu_s"] += cpu
            best = not curve or nd > state["best_ndcg"]
            if best:
                state.update(best_ndcg=nd, best_step=step, fusion={"method": "minmax", "bm25_weight": a, "fitted_on": fitted_on,
                                                                  "ndcg10": round(fit_ndcg, 6)},
                             best={k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})
            curve.append({"step": step, "ndcg@10": round(nd, 6), "mrr@10": round(mrr, 6), "bm25_weight": a,
                          "model_alone_ndcg@10": round(alone, 6), "best": best, "seconds": round(took, 1)})
            print(f"validation step {step}/{total_steps}: fused NDCG@10 {nd:.4f}, MRR@10 {mrr:.4f} (a={a:.2f}, model alone "
                  f"{alone:.4f}){' (best)' if best else ''} [{took:.0f} s]", file=sys.stderr)

        class Hooks(TrainerCallback):
            def on_train_begin(self, a, s, c, **kw):
                validate(0)
                state["t0"], state["cpu0"] = time.perf_counter(), time.process_time()
                state["eval_s0"], state["eval_cpu_s0"] = state["eval_s"], state["eval_cpu_s"]

            def on_step_end(self, a, s, c, **kw):
                if s.global_step % hp["eval_steps"] == 0 or s.global_step in epoch_ends:
                    validate(s.global_step)

            def on_log(self, a, s, c, logs=None, **kw):
                if logs and "loss" in logs:
                    t = time.perf_counter() - state["t0"] - (state["eval_s"] - state["eval_s0"])
                    done = sum(len(u) for b in batches[:s.global_step] for u in b)
                    print(f"step {s.global_step}/{total_steps}: loss {logs['loss']:.4f}, lr {logs.get('learning_rate', 0):.2e}, "
                          f"{done / max(t, 1e-9):.2f} pairs/s", file=sys.stderr)

            def on_train_end(self, a, s, c, **kw):
                state["t1"], state["cpu1"] = time.perf_counter(), time.process_time()

        class PlanSampler:
            """Yields the plan's batches, in order, as index lists into the rows (one row per unit)."""

            def __init__(self, dataset, **kw):
                self.starts = []
                i = 0
                for b in batches:
                    self.starts.append((i, i + len(b)))
                    i += len(b)

            def __len__(self):
                return len(self.starts)

            def __iter__(self):
                for i, j in self.starts:
                    yield list(range(i, j))

            def set_epoch(self, epoch):
                pass

        targs = SentenceTransformerTrainingArguments(
            output_dir=str(Path(tmp) / "trainer"), num_train_epochs=1, per_device_train_batch_size=hp["batch_size"],
            learning_rate=hp["lr"], weight_decay=hp["weight_decay"], warmup_steps=hp["warmup_ratio"],
            lr_scheduler_type="linear", max_grad_norm=hp["max_grad_norm"], optim="adamw_torch",
            adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, seed=hp["seed"], data_seed=hp["seed"],
            batch_sampler=PlanSampler, save_strategy="no", eval_strategy="no", logging_steps=5,
            report_to="none", disable_tqdm=True, dataloader_pin_memory=False, use_cpu=args.device == "cpu")
        loss = MultipleNegativesRankingLoss(model, scale=SCALE, similarity_fct=cos_sim)
        trainer = SentenceTransformerTrainer(model=model, args=targs, train_dataset=Dataset.from_dict(columns), loss=loss,
                                             callbacks=[Hooks()])
        trainer.remove_callback(PrinterCallback)  # it prints the logs on stdout, which carries the JSON
        result = trainer.train()
        steps = trainer.state.global_step
        train_s = state["t1"] - state["t0"] - (state["eval_s"] - state["eval_s0"])
        train_cpu_s = state["cpu1"] - state["cpu0"] - (state["eval_cpu_s"] - state["eval_cpu_s0"])

        if do_val:
            model.load_state_dict(state["best"])
        out = {"system": "sentence-transformers SentenceTransformer + MultipleNegativesRankingLoss"}
        if args.out is not None:
            model.save(str(args.out))
            if state["fusion"]:
                (args.out / "fusion.json").write_text(json.dumps(state["fusion"], indent=2) + "\n")
            out["checkpoint"] = str(args.out)

    ru = resource.getrusage(resource.RUSAGE_SELF)
    out.update({
        "best": {"step": state["best_step"], "ndcg@10": round(state["best_ndcg"], 6), "fusion": state["fusion"]} if do_val else None,
        "training": {"units": len(rows), "pairs_seen": pairs_seen, "epochs": hp["epochs"], "steps": steps,
                     "planned_steps": total_steps, "train_seconds": round(train_s, 1),
                     "pairs_per_second": round(pairs_seen / train_s, 3), "units_per_second": round(len(rows) / train_s, 3),
                     "train_cpu_seconds": round(train_cpu_s, 1), "cpu_utilisation": round(train_cpu_s / train_s, 2),
                     "pairs_per_cpu_second": round(pairs_seen / train_cpu_s, 3),
                     "train_loss": round(result.training_loss, 6), "validation_curve": curve},
        "timings": {"validation_s": round(state["eval_s"], 1), "validation_cpu_s": round(state["eval_cpu_s"], 1),
                    "total_s": round(time.perf_counter() - wall0, 1),
                    "process_cpu_s": round(ru.ru_utime + ru.ru_stime - ru0.ru_utime - ru0.ru_stime, 1)},
        "data": {"train": str(args.data / "train.jsonl"), "pairs": len(pairs), "plan": plan_source,
                 "validation_queries": len(val), "validation_docs": len(val_docs)},
        "config": dict(hp, scale=SCALE, similarity="cosine", negatives_per_unit=HARD_NEGATIVES,
                       warmup_steps=targs.get_warmup_steps(total_steps), threads=args.threads, device=args.device,
                       base_model=str(args.model)),
        "versions": refmodels.training_versions(),
    })
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
