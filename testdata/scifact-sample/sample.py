"""Rebuild this sample from a full BEIR SciFact folder (stdlib only, deterministic).

    python3 sample.py /path/to/scifact .

Takes 100 test and 100 train queries that have judgments, every judged document
of those, each query's top 3 unjudged documents by a plain BM25 (hard
negatives, so searches meet real competition), then random documents up to 1000.
"""
import json, math, os, random, re, sys
from collections import Counter

src, dst = sys.argv[1], sys.argv[2]
rng = random.Random(20240601)
corpus = [json.loads(l) for l in open(os.path.join(src, "corpus.jsonl"))]
queries = {q["_id"]: q for q in map(json.loads, open(os.path.join(src, "queries.jsonl")))}

def qrels(split):
    out = {}
    for i, line in enumerate(open(os.path.join(src, "qrels", split + ".tsv"))):
        if i == 0:
            continue
        q, d, s = line.split()
        out.setdefault(q, {})[d] = int(s)
    return out

splits = {s: qrels(s) for s in ("test", "train")}
picked = {s: sorted(rng.sample(sorted(splits[s]), 100), key=int) for s in splits}

tok = lambda s: re.findall(r"[a-z0-9]+", s.lower())
docs_tf = [Counter(tok(d["title"] + " " + d["text"])) for d in corpus]
lens = [sum(c.values()) for c in docs_tf]
avg = sum(lens) / len(lens)
df = Counter(t for c in docs_tf for t in c)
N = len(corpus)

def bm25(query):
    qs = set(tok(query))
    scores = []
    for i, c in enumerate(docs_tf):
        s = 0.0
        for t in qs:
            if t in c:
                idf = math.log(1 + (N - df[t] + 0.5) / (df[t] + 0.5))
                s += idf * c[t] * 1.9 / (c[t] + 0.9 * (0.6 + 0.4 * lens[i] / avg))
        scores.append((-s, i))
    scores.sort()
    return [corpus[i]["_id"] for _, i in scores]

keep = set()
for s in splits:
    for q in picked[s]:
        rel = splits[s][q]
        keep |= set(rel)
        keep |= set([d for d in bm25(queries[q]["text"]) if d not in rel][:3])
rest = sorted(d["_id"] for d in corpus if d["_id"] not in keep)
keep |= set(rng.sample(rest, 1000 - len(keep)))

with open(os.path.join(dst, "corpus.jsonl"), "w") as f:
    for d in corpus:
        if d["_id"] in keep:
            f.write(json.dumps({"_id": d["_id"], "title": d["title"], "text": d["text"]}, ensure_ascii=False) + "\n")
with open(os.path.join(dst, "queries.jsonl"), "w") as f:
    for q in sorted(set(picked["test"]) | set(picked["train"]), key=int):
        f.write(json.dumps({"_id": q, "text": queries[q]["text"]}, ensure_ascii=False) + "\n")
os.makedirs(os.path.join(dst, "qrels"), exist_ok=True)
for s in splits:
    with open(os.path.join(dst, "qrels", s + ".tsv"), "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q in picked[s]:
            for d, v in sorted(splits[s][q].items(), key=lambda x: int(x[0])):
                f.write(f"{q}\t{d}\t{v}\n")
