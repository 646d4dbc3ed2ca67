#!/usr/bin/env python
"""Regenerates plugin/internal/train/testdata/adamw_steps.json (run by hand, never in CI).

    /opt/pyref/bin/python plugin/testdata/reference/make_train_vectors.py

Three training steps of the tiny cross-encoder (plugin/testdata/tiny-ce, dropout
off) on one fixed batch, in PyTorch: BCE with logits and per-pair weights, AdamW
(betas 0.9/0.999, eps 1e-8) with weight decay 0.01 except biases and LayerNorm,
transformers' linear schedule with 1 warm-up step, clipping at global norm 1.
Records each step's loss and gradient norm (before clipping) and every tensor's
sum and sum of squares afterwards; plugin/internal/train's TestStepsMatchPyTorch replays it.
"""

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "tiny-ce"
OUT = HERE.parent.parent / "train" / "testdata" / "adamw_steps.json"

PAIRS = [
    ("aspirin heart attack", "Aspirin lowers the risk of a heart attack.", 1, 1.0),
    ("aspirin heart attack", "The sky is blue over the ocean.", 0, 1.0),
    ("vitamin d bones", "Vitamin D deficiency weakens bone density in adults.", 1, 2.0),
    ("vitamin d bones", "Coffee is brewed from roasted beans.", 0, 1.0),
    ("river pollution fish", "Fish die where rivers carry industrial waste.", 1, 0.5),
    ("river pollution fish", "A violin has four strings.", 0, 1.0),
]
LR, DECAY, CLIP, STEPS, WARMUP, MAX_LEN = 1e-3, 0.01, 1.0, 3, 1, 32


def main():
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        SRC, num_labels=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    model.train()
    tok = AutoTokenizer.from_pretrained(SRC)
    enc = tok([p[0] for p in PAIRS], [p[1] for p in PAIRS], padding=True, truncation="longest_first",
              max_length=MAX_LEN, return_tensors="pt")
    y = torch.tensor([float(p[2]) for p in PAIRS])
    w = torch.tensor([p[3] for p in PAIRS])
    no_decay = ("bias", "LayerNorm.weight")
    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if not any(k in n for k in no_decay)], "weight_decay": DECAY},
              {"params": [p for n, p in named if any(k in n for k in no_decay)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=LR, betas=(0.9, 0.999), eps=1e-8)
    sched = get_linear_schedule_with_warmup(opt, WARMUP, STEPS)
    steps = []
    for _ in range(STEPS):
        lr = opt.param_groups[0]["lr"]
        opt.zero_grad()
        logits = model(**enc).logits.view(-1)
        loss = F.binary_cross_entropy_with_logits(logits, y, weight=w)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        sched.step()
        steps.append({"lr": lr, "loss": loss.item(), "grad_norm": norm.item()})
    tensors = {}
    for n, p in model.state_dict().items():
        if n.endswith("position_ids"):
            continue
        t = p.detach().double()
        tensors[n] = {"sum": t.sum().item(), "sum_squares": (t * t).sum().item()}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "pairs": [{"query": q, "text": d, "label": l, "weight": wt} for q, d, l, wt in PAIRS],
        "config": {"lr": LR, "weight_decay": DECAY, "max_grad_norm": CLIP, "steps": STEPS, "warmup_steps": WARMUP, "max_length": MAX_LEN},
        "steps": steps, "tensors": tensors, "torch": torch.__version__}, indent=1) + "\n")
    print(json.dumps(steps, indent=1))


if __name__ == "__main__":
    main()
