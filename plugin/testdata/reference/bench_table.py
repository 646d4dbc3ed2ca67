#!/usr/bin/env python
"""Joins `make bench-model`'s two sides into one table: Go's benchmark output (go test -bench) and the JSON
objects of bench_st.py (CrossEncoder.predict) and bench_st_encode.py (SentenceTransformer.encode).

    bench_table.py GO_LOG ST_JSON [ST_ENCODE_JSON]

Prints a Markdown table, one row per (max_length, batch) and one for the bi-encoder: pairs (texts)/s of each
side and Go/Python (also per CPU-second of each process), GFLOP/s against each side's fp32 matmul peak measured in the same run, peak memory; then
the rerank latency of one search. Exits 1 when a row lacks a side.
"""

import json
import re
import sys


def go_results(path):
    """{benchmark name without -GOMAXPROCS: {unit: value}} from go test -bench output."""
    out = {}
    for line in open(path, encoding="utf-8"):
        f = line.split()
        if not f or not f[0].startswith("Benchmark") or len(f) < 4 or not f[1].isdigit():
            continue
        name = re.sub(r"-\d+$", "", f[0])
        out[name] = {f[i + 1]: float(f[i]) for i in range(2, len(f) - 1, 2)}
    return out


def last_json(path):
    text = open(path, encoding="utf-8").read()
    return json.loads(text[text.index("{\n"):])


def main():
    go = go_results(sys.argv[1])
    st = last_json(sys.argv[2])
    enc = last_json(sys.argv[3]) if len(sys.argv) > 3 else None
    go_peak = go.get("BenchmarkMatmulPeak", {}).get("GFLOP/s")
    py_peak = st.get("matmul_peak_gflops_per_s")
    pct = lambda v, p: f"{v:.0f} ({100 * v / p:.0f}%)" if p else f"{v:.0f}"
    print(f"device {st['device']}, precision {st.get('precision', 'fp32')}, {st['torch_threads']} threads; "
          f"sentence-transformers {st['sentence_transformers']} on torch {st['torch']}; "
          f"fp32 1024^3 matmul peak: Go {go_peak or '?'} GFLOP/s, Python {py_peak} GFLOP/s")
    print()
    print("| model | max_length | batch | Go pairs/s | Python pairs/s | Go/Python | Go/Python per CPU-second "
          "| Go GFLOP/s (% of peak) | Python GFLOP/s (% of peak) | Go peak MB | Python peak MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    missing = 0
    for r in st["results"]:
        g = go.get(f"BenchmarkForward/len={r['max_length']}/batch={r['batch_size']}")
        if g is None:
            missing += 1
            print(f"| cross-encoder | {r['max_length']} | {r['batch_size']} | (no Go row) | {r['pairs_per_s']} | | | | | | |")
            continue
        print(f"| cross-encoder | {r['max_length']} | {r['batch_size']} | {g['pairs/s']:.1f} | {r['pairs_per_s']:.1f} "
              f"| **{g['pairs/s'] / r['pairs_per_s']:.2f}** | {g['pairs/cpu-s'] / r['pairs_per_cpu_s']:.2f} "
              f"| {pct(g['GFLOP/s'], go_peak)} "
              f"| {pct(r['gflops_per_s'], py_peak)} | {g['peakRSS-MB']:.0f} | {r['peak_mb']} |")
    if enc is not None:
        g = go.get("BenchmarkBiEncoderEmbedThroughput")
        if g is None or g["texts"] != enc["texts"]:
            missing += 1
            print(f"| bi-encoder | {enc['max_seq_length']} | {enc['batch_size']} | (no matching Go row) "
                  f"| {enc['texts_per_s']} | | | | | | |")
        else:
            print(f"| bi-encoder (texts/s) | {enc['max_seq_length']} | {enc['batch_size']} | {g['texts/s']:.1f} "
                  f"| {enc['texts_per_s']:.1f} | **{g['texts/s'] / enc['texts_per_s']:.2f}** | | | | "
                  f"{g['peakRSS-MB']:.0f} | |")
    lat = sorted((k, v) for k, v in go.items() if k.startswith("BenchmarkRerankLatency/"))
    if lat:
        print()
        print("Go rerank latency of one search (Rerank, batch 32): " + ", ".join(
            f"{k.split('/', 1)[1]} {v['ns/op'] / 1e6:.0f} ms" for k, v in lat))
    sys.exit(1 if missing else 0)


if __name__ == "__main__":
    main()
