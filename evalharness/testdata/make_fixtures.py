"""Reference values for evalharness/metrics, computed by pytrec_eval (trec_eval).

Run from the repository root with a Python that has pytrec-eval-terrier:

    /opt/pyref/bin/python evalharness/testdata/make_fixtures.py

For each fixture it writes, under evalharness/testdata/fixtures/:
  NAME.run    a TREC run file (qid Q0 docid rank score tag), scores in full precision;
  NAME.qrels  TREC qrels (qid 0 docid rel);
  NAME.json   {"measures": {go_name: {qid: value}}} as pytrec_eval computes them.

Go's measure names map to trec_eval's: ndcg@k = ndcg_cut_k, map@k = map_cut_k,
recall@k = recall_k, p@k = P_k, ndcg = ndcg, map = map, mrr = recip_rank.
trec_eval has no recip_rank at a cutoff: mrr@k is recip_rank on the run cut to
its top k in trec_eval's order (score descending, then document ID descending).
"""

import json
import os
import random

import pytrec_eval

CUTS = [1, 3, 5, 10, 100]
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def trec_order(scores):
    return sorted(scores, key=lambda d: (scores[d], d), reverse=True)


def evaluate(qrels, run):
    names = {"ndcg": "ndcg", "map": "map", "mrr": "recip_rank"}
    for k in CUTS:
        names.update({f"ndcg@{k}": f"ndcg_cut_{k}", f"map@{k}": f"map_cut_{k}",
                      f"recall@{k}": f"recall_{k}", f"p@{k}": f"P_{k}"})
    measures = {"ndcg", "map", "recip_rank"} | {
        f"{m}.{','.join(map(str, CUTS))}" for m in ("ndcg_cut", "map_cut", "recall", "P")}
    res = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    out = {go: {q: v[te] for q, v in res.items()} for go, te in names.items()}
    for k in CUTS:
        cut = {q: {d: s[d] for d in trec_order(s)[:k]} for q, s in run.items()}
        rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut)
        out[f"mrr@{k}"] = {q: v["recip_rank"] for q, v in rr.items()}
    return out


def write(name, qrels, run):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name + ".qrels"), "w") as f:
        for q in sorted(qrels):
            for d in sorted(qrels[q]):
                f.write(f"{q} 0 {d} {qrels[q][d]}\n")
    with open(os.path.join(OUT, name + ".run"), "w") as f:
        for q in sorted(run):
            for i, d in enumerate(trec_order(run[q])):
                f.write(f"{q} Q0 {d} {i + 1} {run[q][d]!r} fixture\n")
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump({"measures": evaluate(qrels, run)}, f, indent=1, sort_keys=True)
        f.write("\n")


def handmade():
    """Every edge case named: graded labels, ties, unjudged and unretrieved documents."""
    qrels = {
        "q1": {"a": 2, "b": 0, "c": 1, "d": 3, "never": 2},  # graded; one relevant doc never retrieved
        "q2": {"a": 0, "b": 0},                                # judged, nothing relevant
        "q3": {"x": 1},                                        # retrieved nothing relevant, ties
        "q4": {"a": 1},                                        # judged but absent from the run: skipped
        "q6": {"a": 4, "b": 4, "c": 1},                        # all retrieved docs tied
    }
    run = {
        "q1": {"a": 1.5, "b": 1.5, "c": 1.5, "z": 2.0, "d": 0.25, "y": 0.1},  # z, y unjudged
        "q2": {"a": 3.0, "b": 2.0},
        "q3": {"m": 1.0, "n": 1.0, "o": 1.0, "x": 0.5},
        "q5": {"a": 1.0},                                      # not judged: skipped
        "q6": {"a": 7.0, "b": 7.0, "c": 7.0, "e": 7.0},
    }
    write("handmade", qrels, run)


def randomised(name, seed, n_queries, n_docs, max_label):
    """Many queries; scores rounded so that ties are common; some judged documents never retrieved."""
    rng = random.Random(seed)
    qrels, run = {}, {}
    for qi in range(n_queries):
        q = f"{qi + 1}"
        docs = [f"D{rng.randrange(400):03d}" for _ in range(n_docs)]
        run[q] = {d: round(rng.gauss(0, 1), 1) for d in docs}
        judged = rng.sample(sorted(set(docs)), k=len(set(docs)) // 2)
        judged += [f"U{rng.randrange(100)}" for _ in range(rng.randrange(4))]
        qrels[q] = {d: rng.choice(range(max_label + 1)) for d in judged}
    write(name, qrels, run)


if __name__ == "__main__":
    handmade()
    randomised("graded", seed=7, n_queries=40, n_docs=120, max_label=3)
    randomised("binary", seed=11, n_queries=40, n_docs=30, max_label=1)
