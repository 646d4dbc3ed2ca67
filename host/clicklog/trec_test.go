package clicklog

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rerankloop/rerank/finetune/impression"
)

const (
	sampleTSV   = "testdata/trec-session-2013-sample/interactions.tsv"
	sampleJSONL = "testdata/trec-session-2013-sample/sessions.jsonl"
)

// Counted in the sample files themselves (see its SOURCE.md): 15
// interactions, one of them with no results and so absent from the TSV; 159
// shown results; 32 clicks (the TSV's n_clicks column sums to 32, the JSONL
// has 32 click entries).
const (
	sampleInteractions    = 15
	sampleTSVInteractions = 14
	sampleResults         = 159
	sampleClicks          = 32
)

func importFile(t *testing.T, s *Store, path string) TRECStats {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := ImportTREC(context.Background(), s, f, t0)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

type resultKey struct{ search, doc string }

func clickTable(t *testing.T, s *Store) (map[resultKey]impression.Result, int, int) {
	t.Helper()
	table := map[resultKey]impression.Result{}
	results, clicks := 0, 0
	for _, e := range exportAll(t, s, time.Time{}) {
		for _, r := range e.Results {
			table[resultKey{e.SearchID, r.DocID}] = r
			results++
			clicks += r.Clicks
		}
	}
	return table, results, clicks
}

func TestImportTRECSample(t *testing.T) {
	fromJSONL := openTest(t, "", Options{})
	st := importFile(t, fromJSONL, sampleJSONL)
	if st != (TRECStats{Impressions: sampleInteractions, Results: sampleResults, Clicks: sampleClicks}) {
		t.Fatalf("sessions.jsonl: %+v", st)
	}
	fromTSV := openTest(t, "", Options{})
	st = importFile(t, fromTSV, sampleTSV)
	if st != (TRECStats{Impressions: sampleTSVInteractions, Results: sampleResults, Clicks: sampleClicks}) {
		t.Fatalf("interactions.tsv: %+v", st)
	}

	// The export holds what the files hold, and both layouts agree result by
	// result: clicks exactly, dwell up to the TSV's millisecond rounding.
	exported := exportAll(t, fromJSONL, time.Time{})
	if len(exported) != sampleInteractions {
		t.Fatalf("exported %d impressions, want %d", len(exported), sampleInteractions)
	}
	jt, jr, jc := clickTable(t, fromJSONL)
	tt, tr, tc := clickTable(t, fromTSV)
	if jr != sampleResults || tr != sampleResults || jc != sampleClicks || tc != sampleClicks {
		t.Fatalf("exported results %d/%d clicks %d/%d, want %d and %d", jr, tr, jc, tc, sampleResults, sampleClicks)
	}
	for k, j := range jt {
		r, ok := tt[k]
		if !ok {
			t.Fatalf("%v in the JSONL import only", k)
		}
		if r.Clicks != j.Clicks || r.Position != j.Position || abs64(r.DwellMS-j.DwellMS) > int64(j.Clicks) {
			t.Errorf("%v: tsv %+v, jsonl %+v", k, r, j)
		}
	}

	// Spot checks against the file: session 11's first query, rank 1, was
	// clicked twice for 34.735 s in all; session 105's click on rank 26 has
	// no end time ("NA").
	if r := jt[resultKey{"trec2013-s11-i1", "clueweb12-0007wb-60-15087"}]; r.Clicks != 2 || r.DwellMS != 34735 || r.Position != 1 {
		t.Errorf("session 11 interaction 1 rank 1: %+v", r)
	}
	if r := jt[resultKey{"trec2013-s105-i1", "clueweb12-1610wb-68-26138"}]; r.Clicks != 1 || r.DwellMS != 0 || r.Position != 26 {
		t.Errorf("session 105 rank 26: %+v", r)
	}
	for _, e := range exported {
		if e.SearchID == "trec2013-s11-i1" && (e.Query != "how to quit smoking" || e.Session != "trec2013-s11" || e.ModelVersion != trecModelVersion) {
			t.Errorf("impression fields: %+v", e)
		}
		if e.SearchID == "trec2013-s31-i6" && len(e.Results) != 0 {
			t.Errorf("the interaction that showed nothing: %+v", e)
		}
	}

	// Importing again, in either layout, adds nothing.
	st = importFile(t, fromJSONL, sampleTSV)
	if st != (TRECStats{Skipped: sampleTSVInteractions, ClicksPresent: sampleClicks}) {
		t.Fatalf("TSV over the JSONL import: %+v", st)
	}
	st = importFile(t, fromJSONL, sampleJSONL)
	if st != (TRECStats{Skipped: sampleInteractions, ClicksPresent: sampleClicks}) {
		t.Fatalf("JSONL again: %+v", st)
	}
	if _, _, c := clickTable(t, fromJSONL); c != sampleClicks {
		t.Fatalf("%d clicks after re-imports, want %d", c, sampleClicks)
	}
}

func TestImportTRECRejects(t *testing.T) {
	header := strings.Join(trecColumns, "\t") + "\n"
	row := func(fields ...string) string { return strings.Join(fields, "\t") + "\n" }
	ok := []string{"1", "1", "1", "q", "1", "doc-1", "u", "t", "s", "0", "0.0"}
	with := func(i int, v string) string {
		f := append([]string(nil), ok...)
		f[i] = v
		return row(f...)
	}
	cases := []struct{ name, in, want string }{
		{"empty", "", "empty input"},
		{"wrong header", "a\tb\n", "header"},
		{"short row", header + "1\t2\n", "wrong number of fields"},
		{"bad rank", header + with(4, "x"), `rank "x"`},
		{"rank 0", header + with(4, "0"), `rank "0"`},
		{"negative clicks", header + with(9, "-1"), `n_clicks "-1"`},
		{"absurd clicks", header + with(9, "99999999999"), `n_clicks "99999999999"`},
		{"bad dwell", header + with(10, "NA"), `dwell_seconds "NA"`},
		{"bad session", header + with(0, "x1"), `session "x1"`},
		{"query changes", header + row(ok...) + with(3, "other"), "has query"},
		{"doc twice", header + row(ok...) + with(4, "2"), "shown twice"},
		{"json syntax", `{"session": "1", `, "session 1 of the file"},
		{"json click not shown", `{"session":"1","interactions":[{"num":"1","starttime":"0","query":"q","results":[{"rank":"1","clueweb12id":"d"}],"clicks":[{"rank":"2","start":"1","end":"2"}]}]}`, "rank 2, which was not shown"},
		{"json end before start", `{"session":"1","interactions":[{"num":"1","starttime":"0","query":"q","results":[{"rank":"1","clueweb12id":"d"}],"clicks":[{"rank":"1","start":"5","end":"2"}]}]}`, "before start"},
		{"json bad start", `{"session":"1","interactions":[{"num":"1","starttime":"soon","query":"q","results":[]}]}`, "starttime"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := openTest(t, "", Options{})
			_, err := ImportTREC(context.Background(), s, strings.NewReader(c.in), t0)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, c.want)
			}
		})
	}
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
