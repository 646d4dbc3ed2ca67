#!/usr/bin/env python
"""Joins `make bench-model`'s two sides into one table: Go's benchmark output (go test -bench) and the JSON
objects of bench_st.py (CrossEncoder.predict) and bench_st_encode.py (SentenceTransformer.encode).

    bench_table.py GO_LOG ST_JSON [ST_ENCODE_JSON] [--train TRAIN_JSON]

Prints a Markdown table, one row per (max_length, batch) and one for the bi-encoder: pairs (texts)/s of each
side and Go/Python (also per CPU-second of each process), GFLOP/s against each side's fp32 matmul peak measured in the same
process just before (Go: per row; Python: per run), peak memory; then
the rerank latency of one search; with --train (bench_train.py's objects), the training step of each kind on
the same batches: pairs/s of both, Go/Python, and each side's seconds per step in the forward pass, the
backward pass and the update. Exits 1 when a row lacks a side.

With paired rounds (bench-model.sh's BENCH_ROUNDS: GO_LOG holds a row's Go result once per round, ST_JSON
one bench_st.py object per round, in the same order), each figure is the median over the rounds and the
ratios are the medians of the rounds' own ratios (each round's two sides ran back to back).
"""

import argparse
import json
import math
import re
import statistics
import sys


def go_results(path):
    """{benchmark name without -GOMAXPROCS: [{unit: value}, one per run]} from go test -bench output."""
    out = {}
    for line in open(path, encoding="utf-8"):
        f = line.split()
        if not f or not f[0].startswith("Benchmark") or len(f) < 4 or not f[1].isdigit():
            continue
        name = re.sub(r"-\d+$", "", f[0])
        out.setdefault(name, []).append({f[i + 1]: float(f[i]) for i in range(2, len(f) - 1, 2)})
    return out


def json_objects(path):
    """Every top-level JSON object in the file (bench_st.py prints one per run)."""
    text, dec, out, i = open(path, encoding="utf-8").read(), json.JSONDecoder(), [], 0
    while (i := text.find("{\n", i)) >= 0:
        obj, i = dec.raw_decode(text, i)
        out.append(obj)
    return out


def median(xs):
    return statistics.median(xs)


def products(rates):
    """'matmul 199, onednn 470' (medians) from [{product: GFLOP/s}, one per run]; '?' for none."""
    names = [k for k in ("matmul", "onednn") if rates and all(k in r for r in rates)]
    return ", ".join(f"{k} {median([r[k] for r in rates]):.0f}" for k in names) or "?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("go_log")
    ap.add_argument("st_json")
    ap.add_argument("encode_json", nargs="?")
    ap.add_argument("--train")
    args = ap.parse_args()
    go = go_results(args.go_log)
    runs = json_objects(args.st_json)
    st = runs[-1]
    enc = json_objects(args.encode_json)[-1] if args.encode_json else None
    go_peak = median([r["GFLOP/s"] for r in go["BenchmarkMatmulPeak"]]) if "BenchmarkMatmulPeak" in go else None
    py_peak = median([r["matmul_peak_gflops_per_s"] for r in runs])
    # The peak is the faster of the products each side can run (MKL's matmul, oneDNN's): both are shown.
    go_each = products([{k.removesuffix("-GFLOP/s"): v for k, v in r.items() if k != "GFLOP/s"}
                        for r in go.get("BenchmarkMatmulPeak", [])])
    py_each = products([run.get("matmul_peaks_gflops_per_s", {}) for run in runs])
    rows = {}  # (max_length, batch) -> Python results, one per round, each with its run's peak
    for run in runs:
        for r in run["results"]:
            rows.setdefault((r["max_length"], r["batch_size"]), []).append(
                dict(r, peak=run["matmul_peak_gflops_per_s"]))
    rounds = max(len(v) for v in rows.values())
    print(f"device {st['device']}, precision {st.get('precision', 'fp32')}, {st['torch_threads']} threads; "
          f"sentence-transformers {st['sentence_transformers']} on torch {st['torch']}; "
          f"fp32 1024^3 matmul peak: Go {go_peak or math.nan:.1f} GFLOP/s ({go_each}), Python {py_peak:.1f} GFLOP/s ({py_each})"
          + (f"; medians of {rounds} paired rounds" if rounds > 1 else ""))
    print()
    print("| model | max_length | batch | Go pairs/s | Python pairs/s | Go/Python | Go/Python per CPU-second "
          "| Go GFLOP/s (% of peak) | Python GFLOP/s (% of peak) | Go peak MB | Python peak MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    missing = 0
    for (length, batch), py in rows.items():
        g = go.get(f"BenchmarkForward/len={length}/batch={batch}")
        if g is None or len(g) != len(py):
            missing += 1
            print(f"| cross-encoder | {length} | {batch} | (no Go row for each round) | "
                  f"{median([r['pairs_per_s'] for r in py])} | | | | | | |")
            continue
        gm = lambda k: median([x[k] for x in g])
        pm = lambda k: median([x[k] for x in py])
        wall = median([a["pairs/s"] / b["pairs_per_s"] for a, b in zip(g, py)])
        cpu = median([a["pairs/cpu-s"] / b["pairs_per_cpu_s"] for a, b in zip(g, py)])
        # Against the peak measured just before the row in the same process
        # where there is one: the load of a shared machine changes.
        go_pct = median([x["GFLOP/s"] / x.get("peak-GFLOP/s", go_peak or math.nan) for x in g])
        py_pct = median([x["gflops_per_s"] / x["peak"] for x in py])
        print(f"| cross-encoder | {length} | {batch} | {gm('pairs/s'):.1f} | {pm('pairs_per_s'):.1f} "
              f"| **{wall:.2f}** | {cpu:.2f} | {gm('GFLOP/s'):.0f} ({100 * go_pct:.0f}%) "
              f"| {pm('gflops_per_s'):.0f} ({100 * py_pct:.0f}%) | {gm('peakRSS-MB'):.0f} | {pm('peak_mb'):.0f} |")
    if enc is not None:
        g = go.get("BenchmarkBiEncoderEmbedThroughput", [None])[-1]
        if g is None or g["texts"] != enc["texts"]:
            missing += 1
            print(f"| bi-encoder | {enc['max_seq_length']} | {enc['batch_size']} | (no matching Go row) "
                  f"| {enc['texts_per_s']} | | | | | | |")
        else:
            print(f"| bi-encoder (texts/s) | {enc['max_seq_length']} | {enc['batch_size']} | {g['texts/s']:.1f} "
                  f"| {enc['texts_per_s']:.1f} | **{g['texts/s'] / enc['texts_per_s']:.2f}** | | | | "
                  f"{g['peakRSS-MB']:.0f} | |")
    if args.train:
        missing += train_table(go, json_objects(args.train))
    lat = sorted((k, v[-1]) for k, v in go.items() if k.startswith("BenchmarkRerankLatency/"))
    if lat:
        print()
        print("Go rerank latency of one search (Rerank, batch 32): " + ", ".join(
            f"{k.split('/', 1)[1]} {v['ns/op'] / 1e6:.0f} ms" for k, v in lat))
    sys.exit(1 if missing else 0)


def train_table(go, py_runs):
    """Prints the training rows; returns how many lack a side."""
    print()
    print("| training step (batch 16, max_length 256) | Go pairs/s | Python pairs/s | Go/Python "
          "| Go s/step forward, backward, update | Python s/step forward, backward, update |")
    print("|---|---|---|---|---|---|")
    missing = 0
    for kind, name in (("bi", "bi-encoder, contrastive"), ("ce", "cross-encoder, BCE")):
        g = go.get(f"BenchmarkTrainStep/kind={kind}", [])
        py = [r for r in py_runs if r["kind"] == kind]
        if not py or len(g) != len(py):
            missing += 1
            print(f"| {name} | (Go {len(g)} runs, Python {len(py)}) | | | | |")
            continue
        gm = lambda k: median([x[k] for x in g])
        pm = lambda k: median([x[k] for x in py])
        ratio = median([a["pairs/s"] / b["pairs_per_s"] for a, b in zip(g, py)])
        print(f"| {name} | {gm('pairs/s'):.2f} | {pm('pairs_per_s'):.2f} | **{ratio:.2f}** "
              f"| {gm('forward-s/step'):.2f}, {gm('backward-s/step'):.2f}, {gm('update-s/step'):.3f} "
              f"| {pm('forward_s_per_step'):.2f}, {pm('backward_s_per_step'):.2f}, {pm('update_s_per_step'):.3f} |")
    return missing


if __name__ == "__main__":
    main()
