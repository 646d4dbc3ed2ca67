package clickmodel

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rerankloop/rerank/host/clicklog"
)

// trecSample is the click log's own TREC Session 2013 sample (five sessions).
const trecSample = "../../host/clicklog/testdata/trec-session-2013-sample/sessions.jsonl"

// trecExport loads a TREC Session 2013 file through the host's real path,
// import into the log store and `logs export`, and returns the export file.
func trecExport(tb testing.TB, path string) string {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	store, err := clicklog.Open(filepath.Join(dir, "data"), clicklog.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	defer store.Close()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if _, err := clicklog.ImportTREC(ctx, store, f, time.Date(2013, 6, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		tb.Fatal(err)
	}
	out := filepath.Join(dir, "export.jsonl")
	w, err := os.Create(out)
	if err != nil {
		tb.Fatal(err)
	}
	defer w.Close()
	if err := store.Export(ctx, time.Time{}, w); err != nil {
		tb.Fatal(err)
	}
	return out
}

func TestFitOnTRECSessionSample(t *testing.T) {
	export := trecExport(t, trecSample)
	for _, key := range []KeyBy{KeyQuery, KeySession} {
		imps, err := ReadExport(export, ExportOptions{KeyBy: key})
		if err != nil {
			t.Fatal(err)
		}
		m, err := Fit(imps, Options{MaxRank: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(imps) != 15 || m.Impressions != 14 {
			t.Fatalf("%d searches, %d with results; the sample has 15 and 14", len(imps), m.Impressions)
		}
		clicked := 0
		for _, c := range m.RankClicks {
			clicked += c
		}
		shown := 0
		for _, n := range m.RankImpressions {
			shown += n
		}
		// 32 clicks in the sample, some on a result clicked twice.
		if shown != 159 || clicked == 0 || clicked > 32 {
			t.Errorf("shown %d, clicked results %d; want 159 shown and 1-32 clicked", shown, clicked)
		}
		for k := 1; k <= 10; k++ {
			if p := m.Propensity(k); !(p > 0 && p <= 1) {
				t.Errorf("key %s: propensity at rank %d = %g", key, k, p)
			}
		}
		labels, err := m.Labels(LabelOptions{})
		if err != nil {
			t.Fatal(err)
		}
		neg, pos := 0, 0
		for _, l := range labels {
			if l.Clicks == 0 {
				neg++
			} else {
				pos++
			}
		}
		if neg == 0 || pos == 0 {
			t.Errorf("key %s: %d clicked and %d skipped-above labels, want both", key, pos, neg)
		}
		t.Logf("key %s:\n%s", key, m.Text())
	}
	// A dwell threshold removes clicks.
	all, _ := ReadExport(export, ExportOptions{})
	long, _ := ReadExport(export, ExportOptions{MinDwellMS: 30000})
	if clicks(long) >= clicks(all) {
		t.Errorf("30 s dwell threshold kept %d of %d clicks", clicks(long), clicks(all))
	}
}

func clicks(imps []Impression) int {
	n := 0
	for _, im := range imps {
		for _, r := range im.Results {
			if r.Clicked {
				n++
			}
		}
	}
	return n
}

// BenchmarkFitTREC2013 fits the model on the whole TREC Session 2013 log when
// ../shared holds it and logs the propensities by rank:
//
//	go test ./finetune/clickmodel -run '^$' -bench TREC -benchtime 1x -v
func BenchmarkFitTREC2013(b *testing.B) {
	path := "../../../shared/datasets/trec-session-2013/sessions.jsonl"
	if _, err := os.Stat(path); err != nil {
		b.Skip("no ../shared/datasets/trec-session-2013")
	}
	export := trecExport(b, path)
	for _, key := range []KeyBy{KeyQuery, KeySession} {
		imps, err := ReadExport(export, ExportOptions{KeyBy: key})
		if err != nil {
			b.Fatal(err)
		}
		var m *Model
		b.Run(string(key), func(b *testing.B) {
			for b.Loop() {
				if m, err = Fit(imps, Options{MaxRank: 11}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Logf("key %s:\n%s", key, m.Text())
	}
}
