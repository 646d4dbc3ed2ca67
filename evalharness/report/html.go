package report

import (
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"strings"
)

// The HTML report is one file with no external asset: inline CSS, inline SVG.

var palette = []string{"#8c8c8c", "#4e79a7", "#e15759", "#59a14f"}

const (
	colorWin  = "#59a14f"
	colorLoss = "#e15759"
	colorRel  = "#e15759"
	colorNon  = "#4e79a7"
)

// WriteHTML writes the self-contained report.
func (r *Result) WriteHTML(w io.Writer) error {
	var b strings.Builder
	esc := html.EscapeString
	title := "Evaluation: " + r.Dataset
	if r.Split != "" {
		title += " (" + r.Split + ")"
	}
	fmt.Fprintf(&b, `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>%s</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em}
table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}
td:first-child,th:first-child{text-align:left}
.note{color:#666}svg{display:block;margin:.5em 0}svg text{font:11px system-ui,sans-serif;fill:#333}
</style></head><body>
<h1>%s</h1>
<p>%d judged queries, first-stage depth %d, primary measure %s.</p>
`, esc(title), esc(title), r.Queries, r.Depth, esc(r.Primary))

	b.WriteString("<h2>Measures</h2>\n<table><tr><th>measure</th>")
	for _, s := range r.Systems {
		fmt.Fprintf(&b, "<th>%s</th>", esc(s.label()))
	}
	b.WriteString("</tr>\n")
	for _, m := range r.Measures {
		fmt.Fprintf(&b, "<tr><td>%s</td>", esc(m))
		for _, s := range r.Systems {
			fmt.Fprintf(&b, "<td>%.4f</td>", s.Means[m])
		}
		b.WriteString("</tr>\n")
	}
	b.WriteString("</table>\n")
	b.WriteString(r.barChart())

	if len(r.Comparisons) > 0 {
		b.WriteString("<h2>Comparisons</h2>\n<table><tr><th>candidate vs base</th><th>measure</th><th>mean diff</th><th>95% CI (paired bootstrap)</th><th>p (paired randomization)</th><th>wins / ties / losses</th></tr>\n")
		for _, c := range r.Comparisons {
			fmt.Fprintf(&b, "<tr><td>%s vs %s</td><td>%s</td><td>%+.4f</td><td>%+.4f to %+.4f</td><td>%.4f</td><td>%d / %d / %d</td></tr>\n",
				esc(c.Candidate), esc(c.Base), esc(c.Metric), c.MeanDiff, c.CILow, c.CIHigh, c.PValue, c.Wins, c.Ties, c.Losses)
		}
		fmt.Fprintf(&b, "</table>\n<p class=note>%d resamples, seed %d.</p>\n", r.Comparisons[0].Resamples, r.Comparisons[0].Seed)
	}

	if len(r.Latency) > 0 {
		b.WriteString("<h2>Time per query (this run)</h2>\n<table><tr><th>stage</th><th>queries</th><th>mean ms</th><th>p50 ms</th><th>p99 ms</th></tr>\n")
		for _, l := range r.Latency {
			fmt.Fprintf(&b, "<tr><td>%s</td><td>%d</td><td>%.1f</td><td>%.1f</td><td>%.1f</td></tr>\n", esc(l.Stage), l.Queries, l.MeanMS, l.P50MS, l.P99MS)
		}
		b.WriteString("</table>\n")
	}

	if m := r.Main(); m != nil {
		base, _ := r.System(m.Base)
		cand, _ := r.System(m.Candidate)
		fmt.Fprintf(&b, "<h2>Per-query change in NDCG@10: %s vs %s</h2>\n", esc(cand.label()), esc(base.label()))
		b.WriteString(deltaChart(base.PerQuery["ndcg@10"], cand.PerQuery["ndcg@10"]))
	} else {
		b.WriteString("<p class=note>One system only: run with --model (and --baseline-model) for comparisons and per-query deltas.</p>\n")
	}

	b.WriteString("<h2>Score distributions</h2>\n<p class=note>Scores each system gave to the first stage's candidates, judged relevant vs. not (unjudged counts as not relevant); each group's bars sum to 1.</p>\n")
	for _, s := range r.Systems {
		fmt.Fprintf(&b, "<h3>%s</h3>\n", esc(s.label()))
		b.WriteString(r.histogram(s))
	}
	b.WriteString("</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// barChart draws every measure's mean, one bar per system.
func (r *Result) barChart() string {
	const W, H, left, bottom, top = 900, 260, 40, 40, 20
	plotH := float64(H - bottom - top)
	group := float64(W-left) / float64(len(r.Measures))
	bar := group * 0.8 / float64(len(r.Systems))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="measure means per system">`, W, H, W, H)
	for _, t := range []float64{0, 0.25, 0.5, 0.75, 1} {
		y := float64(top) + plotH*(1-t)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%.2f</text>`, left, W, y, y, left-4, y+4, t)
	}
	for i, m := range r.Measures {
		x0 := float64(left) + group*float64(i) + group*0.1
		for j, s := range r.Systems {
			v := max(0, min(1, s.Means[m]))
			h := plotH * v
			x := x0 + bar*float64(j)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s %.4f</title></rect>`,
				x, float64(top)+plotH-h, bar*0.92, h, palette[j%len(palette)], html.EscapeString(s.label()), m, s.Means[m])
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%.3f</text>`, x+bar*0.46, float64(top)+plotH-h-3, s.Means[m])
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, float64(left)+group*(float64(i)+0.5), H-bottom+16, m)
	}
	for j, s := range r.Systems {
		x := left + 10 + j*220
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`,
			x, H-14, palette[j%len(palette)], x+14, H-5, html.EscapeString(s.label()))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// deltaChart draws candidate - base per query, sorted, one bar each.
func deltaChart(base, cand map[string]float64) string {
	type qd struct {
		q string
		d float64
	}
	var ds []qd
	for q, v := range cand {
		ds = append(ds, qd{q, v - base[q]})
	}
	slices.SortFunc(ds, func(a, b qd) int {
		if a.d != b.d {
			if a.d > b.d {
				return -1
			}
			return 1
		}
		return strings.Compare(a.q, b.q)
	})
	const W, H, left, pad = 900, 260, 40, 16
	maxAbs := 0.0
	for _, d := range ds {
		maxAbs = max(maxAbs, math.Abs(d.d))
	}
	if maxAbs == 0 {
		maxAbs = 1
	}
	mid := float64(H) / 2
	scale := (mid - pad) / maxAbs
	bw := float64(W-left) / float64(max(1, len(ds)))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="per-query delta of NDCG@10, sorted">`, W, H, W, H)
	for _, t := range []float64{-1, -0.5, 0.5, 1} {
		y := mid - t*maxAbs*scale
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" text-anchor="end">%+.2f</text>`, left, W, y, y, left-4, y+4, t*maxAbs)
	}
	for i, d := range ds {
		if d.d == 0 {
			continue
		}
		h := math.Abs(d.d) * scale
		y, color := mid-h, colorWin
		if d.d < 0 {
			y, color = mid, colorLoss
		}
		fmt.Fprintf(&b, `<rect x="%.2f" y="%.1f" width="%.2f" height="%.1f" fill="%s"><title>query %s: %+.4f</title></rect>`,
			float64(left)+bw*float64(i), y, max(bw*0.9, 0.5), h, color, html.EscapeString(d.q), d.d)
	}
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#333"/><text x="%d" y="%.1f">0</text>`, left, W, mid, mid, left-12, mid+4)
	fmt.Fprintf(&b, `<text x="%d" y="%d">%d queries, best gain on the left; bars at 0 are ties</text>`, left, H-2, len(ds))
	b.WriteString("</svg>\n")
	return b.String()
}

// histogram draws the distribution of a system's scores, relevant vs other.
func (r *Result) histogram(s System) string {
	var rel, non []float64
	for q, docs := range s.Run {
		judged, ok := r.qrels[q]
		if !ok {
			continue
		}
		for d, v := range docs {
			if math.IsInf(v, 0) {
				continue
			}
			if judged[d] >= 1 {
				rel = append(rel, v)
			} else {
				non = append(non, v)
			}
		}
	}
	if len(rel)+len(non) == 0 {
		return "<p class=note>No scores (the run is not part of a --json result).</p>\n"
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range append(slices.Clone(rel), non...) {
		lo, hi = min(lo, v), max(hi, v)
	}
	if hi == lo {
		hi = lo + 1
	}
	const bins = 40
	share := func(xs []float64) []float64 {
		h := make([]float64, bins)
		for _, v := range xs {
			h[min(bins-1, int((v-lo)/(hi-lo)*bins))]++
		}
		for i := range h {
			h[i] /= float64(max(1, len(xs)))
		}
		return h
	}
	hr, hn := share(rel), share(non)
	peak := slices.Max(append(slices.Clone(hr), hn...))
	const W, H, left, bottom, top = 900, 180, 40, 34, 10
	plotH := float64(H - bottom - top)
	bw := float64(W-left) / bins
	var b strings.Builder
	fmt.Fprintf(&b, `<svg width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="score distribution">`, W, H, W, H)
	for _, series := range []struct {
		h     []float64
		color string
	}{{hn, colorNon}, {hr, colorRel}} {
		for i, v := range series.h {
			h := plotH * v / peak
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="0.55"><title>%.3g to %.3g: %.3f</title></rect>`,
				float64(left)+bw*float64(i), float64(top)+plotH-h, bw*0.95, h, series.color, lo+(hi-lo)*float64(i)/bins, lo+(hi-lo)*float64(i+1)/bins, v)
		}
	}
	base := float64(top) + plotH
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#333"/>`, left, W, base, base)
	fmt.Fprintf(&b, `<text x="%d" y="%.1f">%.3g</text><text x="%d" y="%.1f" text-anchor="end">%.3g</text>`, left, base+14, lo, W, base+14, hi)
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">relevant (%d)</text>`, left+200, H-12, colorRel, left+214, H-3, len(rel))
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">not relevant or unjudged (%d)</text>`, left+360, H-12, colorNon, left+374, H-3, len(non))
	b.WriteString("</svg>\n")
	return b.String()
}
