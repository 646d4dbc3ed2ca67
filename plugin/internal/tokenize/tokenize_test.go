package tokenize

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rerankloop/rerank/plugin/internal/fixture"
)

// The fixtures are written by ../testdata/reference/make_vectors.py with the
// Hugging Face fast tokenizer; see ../testdata/reference/README.md.
const (
	tokenizerPath = "../../testdata/tiny-ce/tokenizer.json"
	pairsPath     = "../../testdata/parity/pairs.jsonl"
	windowsPath   = "../../testdata/parity/windows.jsonl"
)

type vector struct {
	ID       string  `json:"id"`
	Kind     string  `json:"kind"`
	Query    string  `json:"query"`
	Text     string  `json:"text"`
	NTokens  int     `json:"n_tokens"`
	IDs512   []int64 `json:"input_ids_512"`
	Types512 []int64 `json:"token_type_ids_512"`
	IDs128   []int64 `json:"input_ids_128"`
	Types128 []int64 `json:"token_type_ids_128"`
}

type windowCase struct {
	ID        string `json:"id"`
	Query     string `json:"query"`
	Text      string `json:"text"`
	MaxLength int    `json:"max_length"`
	Stride    int    `json:"stride"`
	Windows   []struct {
		IDs   []int64 `json:"input_ids"`
		Types []int64 `json:"token_type_ids"`
	} `json:"windows"`
}

func load(t testing.TB) *Encoder {
	t.Helper()
	e, err := Load(tokenizerPath)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func checkPair(t *testing.T, name string, got Pair, ids, types []int64) {
	t.Helper()
	if !slices.Equal(got.IDs, ids) {
		t.Errorf("%s: ids differ from Hugging Face\n got  %v\n want %v", name, got.IDs, ids)
	}
	if !slices.Equal(got.TypeIDs, types) {
		t.Errorf("%s: token types differ from Hugging Face\n got  %v\n want %v", name, got.TypeIDs, types)
	}
}

func TestEncodePairMatchesHuggingFace(t *testing.T) {
	e := load(t)
	vs := fixture.ReadJSONL[vector](t, pairsPath)
	long, edge := 0, 0
	for _, v := range vs {
		if v.Kind == "edge" {
			edge++
		} else if v.NTokens > 512 {
			long++
		}
	}
	// Guard against a regenerated fixture that silently lost its hard cases.
	if len(vs)-edge < 200 || long < 30 || edge < 10 {
		t.Fatalf("fixture has %d SciFact pairs (%d over 512 tokens) and %d edge pairs", len(vs)-edge, long, edge)
	}
	for _, v := range vs {
		for _, c := range []struct {
			maxLen     int
			ids, types []int64
		}{{512, v.IDs512, v.Types512}, {128, v.IDs128, v.Types128}} {
			got, err := e.EncodePair(v.Query, v.Text, c.maxLen)
			if err != nil {
				t.Errorf("%s@%d: %v", v.ID, c.maxLen, err)
				continue
			}
			checkPair(t, fmt.Sprintf("%s@%d", v.ID, c.maxLen), got, c.ids, c.types)
		}
	}
}

func TestEncodePairWindowsMatchesHuggingFace(t *testing.T) {
	e := load(t)
	cases := fixture.ReadJSONL[windowCase](t, windowsPath)
	multi := 0
	for _, c := range cases {
		got, err := e.EncodePairWindows(c.Query, c.Text, c.MaxLength, c.Stride)
		if err != nil {
			t.Fatalf("%s: %v", c.ID, err)
		}
		if len(got) != len(c.Windows) {
			t.Errorf("%s@%d/%d: %d windows, Hugging Face has %d", c.ID, c.MaxLength, c.Stride, len(got), len(c.Windows))
			continue
		}
		if len(got) > 1 {
			multi++
		}
		for i, w := range c.Windows {
			checkPair(t, fmt.Sprintf("%s@%d/%d window %d", c.ID, c.MaxLength, c.Stride, i), got[i], w.IDs, w.Types)
		}
	}
	if multi < 10 {
		t.Fatalf("fixture has only %d multi-window cases", multi)
	}
}

// docPart returns the document tokens of a pair (between the first and last [SEP]).
func docPart(e *Encoder, p Pair) []int64 {
	first := slices.Index(p.IDs, e.sep)
	return p.IDs[first+1 : len(p.IDs)-1]
}

func TestEncodePairWindowsCoversDocument(t *testing.T) {
	e := load(t)
	var long vector
	for _, v := range fixture.ReadJSONL[vector](t, pairsPath) {
		if v.Kind != "edge" && v.NTokens > long.NTokens {
			long = v
		}
	}
	// The whole document's tokens: windows without overlap, concatenated.
	var doc []int64
	plain, err := e.EncodePairWindows(long.Query, long.Text, 128, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range plain {
		doc = append(doc, docPart(e, w)...)
	}
	queryTokens := long.IDs512[1:slices.Index(long.IDs512, e.sep)]
	if want := long.NTokens - 3 - len(queryTokens); len(doc) != want {
		t.Fatalf("windows hold %d document tokens, the document has %d", len(doc), want)
	}

	// A long query as well: it is cut to half the budget.
	longQuery := strings.Repeat("apoptosis of neurons ", 100)
	for _, c := range []struct {
		query          string
		maxLen, stride int
	}{{long.Query, 128, 32}, {long.Query, 512, 128}, {long.Query, 64, 10}, {longQuery, 128, 16}} {
		ws, err := e.EncodePairWindows(c.query, long.Text, c.maxLen, c.stride)
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) < 2 {
			t.Fatalf("%d/%d: one window for a %d-token pair", c.maxLen, c.stride, long.NTokens)
		}
		var covered []int64
		for i, w := range ws {
			if len(w.IDs) > c.maxLen || len(w.IDs) != len(w.TypeIDs) {
				t.Fatalf("window %d: %d ids, %d types, maxLen %d", i, len(w.IDs), len(w.TypeIDs), c.maxLen)
			}
			if i < len(ws)-1 && len(w.IDs) != c.maxLen {
				t.Errorf("window %d of %d is not full: %d tokens", i, len(ws), len(w.IDs))
			}
			if nq := slices.Index(w.IDs, e.sep) - 1; nq > (c.maxLen-3)/2 {
				t.Errorf("query keeps %d tokens, more than half of %d", nq, c.maxLen-3)
			}
			d := docPart(e, w)
			if i > 0 {
				prev := docPart(e, ws[i-1])
				if !slices.Equal(prev[len(prev)-c.stride:], d[:c.stride]) {
					t.Errorf("windows %d and %d do not share %d tokens", i-1, i, c.stride)
				}
				d = d[c.stride:]
			}
			covered = append(covered, d...)
		}
		if !slices.Equal(covered, doc) {
			t.Errorf("%d/%d: windows do not cover the document exactly once beyond the overlaps", c.maxLen, c.stride)
		}
	}

	// A pair that fits is one window equal to EncodePair.
	short := "Apoptosis is a form of programmed cell death."
	ws, err := e.EncodePairWindows("apoptosis", short, 128, 32)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := e.EncodePair("apoptosis", short, 128)
	if len(ws) != 1 || !slices.Equal(ws[0].IDs, p.IDs) || !slices.Equal(ws[0].TypeIDs, p.TypeIDs) {
		t.Errorf("a fitting pair gave %d windows %v, want [%v]", len(ws), ws, p)
	}
}

func TestLongestFirst(t *testing.T) {
	for _, c := range []struct{ nq, nd, budget, wq, wd int }{
		{10, 20, 125, 10, 20},   // fits
		{10, 600, 125, 10, 115}, // only the document shrinks
		{600, 10, 125, 115, 10}, // only the query shrinks
		{300, 400, 125, 62, 63}, // both shrink: the odd token goes to the second text...
		{400, 300, 125, 63, 62}, // ...unless the first is strictly longer
		{300, 300, 125, 62, 63}, // a tie counts as "not longer"
		{300, 300, 124, 62, 62},
		{70, 70, 125, 62, 63},
		{62, 100, 125, 62, 63},
		{1, 100, 2, 1, 1},
		{100, 1, 2, 1, 1},
	} {
		if q, d := longestFirst(c.nq, c.nd, c.budget); q != c.wq || d != c.wd {
			t.Errorf("longestFirst(%d, %d, %d) = %d, %d; want %d, %d", c.nq, c.nd, c.budget, q, d, c.wq, c.wd)
		}
	}
}

// EncodePair tokenizes a document only up to max(budget, len(q))+1 tokens; the
// truncation must not be able to tell.
func TestLongestFirstNeedsFewDocumentTokens(t *testing.T) {
	for budget := 2; budget <= 20; budget++ {
		for nq := 1; nq <= 30; nq++ {
			limit := max(budget, nq) + 1
			for nd := 0; nd <= 60; nd++ {
				q1, d1 := longestFirst(nq, nd, budget)
				q2, d2 := longestFirst(nq, min(nd, limit), budget)
				if q1 != q2 || d1 != d2 {
					t.Fatalf("budget %d, nq %d, nd %d: %d,%d but %d,%d with the document cut to %d", budget, nq, nd, q1, d1, q2, d2, limit)
				}
			}
		}
	}
}

// Long texts are normalized in chunks cut at whitespace; the result must equal
// normalizing the whole text at once, marks and ideographs at the cuts included.
func TestChunkedTokenizationMatchesWhole(t *testing.T) {
	e := load(t)
	var sb strings.Builder
	for i, v := range fixture.ReadJSONL[vector](t, pairsPath)[:40] {
		sb.WriteString(v.Text)
		sb.WriteString([]string{" \u0301e\u0301 ", "\u00a0中文 ", "\t\x00 ", " Çà "}[i%4])
	}
	doc := sb.String()
	if len(doc) < 10*chunkBytes {
		t.Fatalf("document of %d bytes is too short to cross several chunks", len(doc))
	}
	var want []int64
	preTokenize(e.text.normalize(doc), func(w string) {
		toks, err := e.model.Tokenize(w)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range toks {
			want = append(want, int64(tk.Id))
		}
	})
	got, err := e.ids(doc, "document", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("chunked tokenization differs: %d ids, whole text gives %d", len(got), len(want))
	}
	got, err = e.ids(doc, "document", 300)
	if err != nil || !slices.Equal(got, want[:300]) {
		t.Fatalf("limited tokenization: %v, %d ids, want the first 300", err, len(got))
	}
}

func TestEncodeErrors(t *testing.T) {
	e := load(t)
	for _, c := range []struct {
		name, query, doc string
		maxLen           int
		want             error
		msg              string
	}{
		{"empty query", "", "doc", 128, ErrEmptyQuery, ""},
		{"whitespace query", " \t\n", "doc", 128, ErrEmptyQuery, ""},
		{"control-only query", "\x00\x01", "doc", 128, ErrEmptyQuery, ""},
		{"invalid UTF-8 query", "caf\xe9", "doc", 128, ErrInvalidUTF8, "query"},
		{"invalid UTF-8 doc", "query", "ok \xff\xfe", 128, ErrInvalidUTF8, "document"},
		{"maxLen too small", "query", "doc", MinMaxLen - 1, nil, "below"},
	} {
		_, err := e.EncodePair(c.query, c.doc, c.maxLen)
		_, werr := e.EncodePairWindows(c.query, c.doc, c.maxLen, 0)
		for _, err := range []error{err, werr} {
			if err == nil {
				t.Errorf("%s: no error", c.name)
				continue
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("%s: error %v, want %v", c.name, err, c.want)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, c.msg)
			}
		}
	}

	longDoc := strings.Repeat("cell death ", 200)
	for _, stride := range []int{-1, 128 - 3 - 1, 500} {
		if _, err := e.EncodePairWindows("q", longDoc, 128, stride); err == nil || !strings.Contains(err.Error(), "stride") {
			t.Errorf("stride %d: error %v, want a stride error", stride, err)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope", "tokenizer.json")
	if _, err := Load(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: error %v does not name %s", err, missing)
	}

	good, err := os.ReadFile(tokenizerPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(good, &cfg); err != nil {
		t.Fatal(err)
	}
	// A template that puts the document first: loads fine in the library, but is not what we build.
	swapped := clone(t, cfg)
	pair := swapped["post_processor"].(map[string]any)["pair"].([]any)
	pair[1], pair[3] = pair[3], pair[1]
	otherNormalizer := clone(t, cfg)
	otherNormalizer["normalizer"] = map[string]any{"type": "NFC"}
	stripToken := clone(t, cfg)
	stripToken["added_tokens"].([]any)[4].(map[string]any)["lstrip"] = true
	// The library type-asserts this without checking: it must not panic through Load.
	badProcessor := clone(t, cfg)
	badProcessor["post_processor"] = map[string]any{"type": 5}

	for name, content := range map[string][]byte{
		"empty":          nil,
		"truncated JSON": good[:len(good)/2],
		"not JSON":       []byte("\x00\x01 binary"),
		"wrong shape":    []byte(`{"model": 5, "normalizer": "x"}`),
		"no model":       []byte(`{"version": "1.0"}`),
		"swapped pair":   marshal(t, swapped),
		"NFC normalizer": marshal(t, otherNormalizer),
		"lstrip token":   marshal(t, stripToken),
		"bad processor":  marshal(t, badProcessor),
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".json")
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %v does not name %s", name, err, path)
		}
	}
}

// all-MiniLM-L6-v2's tokenizer.json truncates to 128 and pads to 128; transformers
// ignores both at call time, and so must we.
func TestLoadIgnoresFileTruncationAndPadding(t *testing.T) {
	good, err := os.ReadFile(tokenizerPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(good, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["truncation"] = map[string]any{"max_length": 128, "strategy": "LongestFirst", "stride": 0, "direction": "Right"}
	cfg["padding"] = map[string]any{"strategy": map[string]any{"Fixed": 128}, "direction": "Right",
		"pad_to_multiple_of": nil, "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"}
	path := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(path, marshal(t, cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if e.MaxPositions() != 0 {
		t.Errorf("MaxPositions without tokenizer_config.json = %d, want 0", e.MaxPositions())
	}
	vs := fixture.ReadJSONL[vector](t, pairsPath)
	for _, v := range vs[:20] {
		got, err := e.EncodePair(v.Query, v.Text, 512)
		if err != nil {
			t.Fatal(err)
		}
		checkPair(t, v.ID, got, v.IDs512, v.Types512)
	}
}

func TestSpecialIDs(t *testing.T) {
	e := load(t)
	if e.PadID() != 0 || e.cls != 101 || e.sep != 102 {
		t.Errorf("pad, cls, sep = %d, %d, %d; want 0, 101, 102", e.PadID(), e.cls, e.sep)
	}
	if e.MaxPositions() != 512 {
		t.Errorf("MaxPositions = %d, want 512 from tokenizer_config.json", e.MaxPositions())
	}
}

// Run with -race: concurrent encodes must neither race nor disagree.
func TestConcurrentEncode(t *testing.T) {
	e := load(t)
	vs := fixture.ReadJSONL[vector](t, pairsPath)
	var wg sync.WaitGroup
	errs := make(chan string, len(vs))
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(vs); i += 4 { // overlapping shares: the same pair on two goroutines
				got, err := e.EncodePair(vs[i].Query, vs[i].Text, 128)
				if err != nil || !slices.Equal(got.IDs, vs[i].IDs128) {
					errs <- fmt.Sprintf("%s: %v", vs[i].ID, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error("concurrent encode differs:", msg)
	}
}

func clone(t *testing.T, v map[string]any) map[string]any {
	var out map[string]any
	if err := json.Unmarshal(marshal(t, v), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func marshal(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func BenchmarkEncodePair(b *testing.B) {
	e := load(b)
	var vs []vector
	for _, v := range fixture.ReadJSONL[vector](b, pairsPath) {
		if v.Kind != "edge" {
			vs = append(vs, v)
		}
	}
	for _, maxLen := range []int{128, 512} {
		b.Run(fmt.Sprintf("maxLen=%d", maxLen), func(b *testing.B) {
			n := 0
			for b.Loop() {
				v := vs[n%len(vs)]
				if _, err := e.EncodePair(v.Query, v.Text, maxLen); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "pairs/s")
		})
	}
}
