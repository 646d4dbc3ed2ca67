package dataset

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// wantErr fails unless err's message holds every part.
func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want an error containing %q, got nil", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q lacks %q", err, p)
		}
	}
}

func readAll(t *testing.T, path string) ([]Doc, error) {
	t.Helper()
	var docs []Doc
	err := ReadCorpus(path, func(d Doc) error { docs = append(docs, d); return nil })
	return docs, err
}

func TestReadCorpusBEIR(t *testing.T) {
	docs, err := readAll(t, "testdata/mini/corpus.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	want := []Doc{
		{"d1", "Aspirin and heart attacks", "Daily low-dose aspirin lowers the risk of a first heart attack."},
		{"d2", "Statins", "Statins reduce LDL cholesterol."},
		{"3", "", "Vitamin D supplements and bone density in the elderly."},
	}
	if !reflect.DeepEqual(docs, want) {
		t.Fatalf("got %+v", docs)
	}
}

func TestReadCorpusVariants(t *testing.T) {
	p := writeFile(t, "c.jsonl", "\xef\xbb\xbf{\"id\":\"a\",\"contents\":\"x y\"}\r\n\n{\"id\":\"b\",\"title\":\"only title\"}\r\n")
	docs, err := readAll(t, p)
	if err != nil {
		t.Fatal(err)
	}
	want := []Doc{{ID: "a", Text: "x y"}, {ID: "b", Title: "only title"}}
	if !reflect.DeepEqual(docs, want) {
		t.Fatalf("got %+v", docs)
	}
}

func TestReadCorpusErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		content string
		parts   []string
	}{
		"broken json":  {"{\"_id\":\"a\",\"text\":\"t\"}\n{\"_id\": \"b\", \"text\n", []string{"c.jsonl:2:", "not a JSON object"}},
		"no id":        {"{\"text\":\"t\"}\n", []string{"c.jsonl:1:", `missing "_id"`}},
		"empty id":     {"{\"_id\":\" \",\"text\":\"t\"}\n", []string{":1:", "empty"}},
		"text number":  {"{\"_id\":\"a\",\"text\":5}\n", []string{":1:", `"text"`, "want a string"}},
		"no text":      {"{\"_id\":\"a\"}\n", []string{":1:", "neither"}},
		"array":        {"[1,2]\n", []string{":1:", "not a JSON object"}},
		"two values":   {"{\"_id\":\"a\",\"text\":\"t\"} {}\n", []string{":1:", "more than one"}},
		"null":         {"null\n", []string{":1:", "null"}},
		"id is object": {"{\"_id\":{},\"text\":\"t\"}\n", []string{":1:", `"_id"`}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := readAll(t, writeFile(t, "c.jsonl", tc.content))
			wantErr(t, err, tc.parts...)
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("want a *LineError, got %T", err)
			}
		})
	}
	_, err := readAll(t, filepath.Join(t.TempDir(), "absent.jsonl"))
	wantErr(t, err, "absent.jsonl")
}

func TestReadCorpusStopsOnCallbackError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := ReadCorpus("testdata/mini/corpus.jsonl", func(Doc) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("err %v after %d docs; want stop after 1", err, n)
	}
}

func TestReadQueries(t *testing.T) {
	qs, err := ReadQueries("testdata/mini/queries.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 3 || qs[0] != (Query{"q1", "does aspirin prevent heart attacks"}) {
		t.Fatalf("got %+v", qs)
	}
	_, err = ReadQueries(writeFile(t, "q.jsonl", "{\"_id\":\"1\",\"text\":\"a\"}\n{\"_id\":\"1\",\"text\":\"b\"}\n"))
	wantErr(t, err, "q.jsonl:2:", `"1"`, "line 1")
	_, err = ReadQueries(writeFile(t, "q.jsonl", "{\"_id\":\"1\",\"text\":\"  \"}\n"))
	wantErr(t, err, "q.jsonl:1:", "no text")
	qs, err = ReadQueries(writeFile(t, "q.jsonl", "{\"id\":7,\"query\":\"alt\"}\n"))
	if err != nil || qs[0] != (Query{"7", "alt"}) {
		t.Fatalf("got %+v, %v", qs, err)
	}
}

func TestReadQrels(t *testing.T) {
	q, err := ReadQrels("testdata/mini/qrels/test.tsv")
	if err != nil {
		t.Fatal(err)
	}
	want := Qrels{"q1": {"d1": 1, "d2": 0}, "q2": {"3": 2}}
	if !reflect.DeepEqual(q, want) {
		t.Fatalf("got %v", q)
	}
	trec := writeFile(t, "qrels.txt", "301 0 FBIS3-1 1\n301 0 FBIS3-2 -1\n302 0 LA-9 2\n")
	q, err = ReadQrels(trec)
	if err != nil {
		t.Fatal(err)
	}
	want = Qrels{"301": {"FBIS3-1": 1, "FBIS3-2": -1}, "302": {"LA-9": 2}}
	if !reflect.DeepEqual(q, want) {
		t.Fatalf("got %v", q)
	}
	// No header is fine too.
	q, err = ReadQrels(writeFile(t, "q.tsv", "a\tb\t1\n"))
	if err != nil || q["a"]["b"] != 1 {
		t.Fatalf("got %v, %v", q, err)
	}
}

func TestReadQrelsErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		content string
		parts   []string
	}{
		"bad score":   {"query-id\tcorpus-id\tscore\nq\td\tx\n", []string{"q.tsv:2:", `column "score"`, "integer"}},
		"bad rel":     {"1 0 d 0.5\n", []string{"q.tsv:1:", `column "rel"`}},
		"two fields":  {"q\td\n", []string{"q.tsv:1:", "got 2"}},
		"conflicting": {"q d 1\nq d 0\n", []string{"q.tsv:2:", "judged 1 earlier and 0"}},
		"header only": {"query-id\tcorpus-id\tscore\n", []string{"no judgements"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ReadQrels(writeFile(t, "q.tsv", tc.content))
			wantErr(t, err, tc.parts...)
		})
	}
}

func TestOpenBEIR(t *testing.T) {
	b, err := OpenBEIR("testdata/mini")
	if err != nil {
		t.Fatal(err)
	}
	splits, err := b.Splits()
	if err != nil || !reflect.DeepEqual(splits, []string{"test", "train"}) {
		t.Fatalf("splits %v, %v", splits, err)
	}
	qs, qrels, err := b.SplitQueries("test")
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 2 || qs[0].ID != "q1" || qs[1].ID != "q2" || len(qrels) != 2 {
		t.Fatalf("got %+v %v", qs, qrels)
	}
	_, err = b.Qrels("dev")
	wantErr(t, err, `no split "dev"`, "test, train")

	dir := t.TempDir()
	_, err = OpenBEIR(dir)
	wantErr(t, err, "missing corpus.jsonl")
	_, err = OpenBEIR(filepath.Join(dir, "nope"))
	wantErr(t, err, "nope")
	os.WriteFile(filepath.Join(dir, "corpus.jsonl"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "queries.jsonl"), []byte("{\"_id\":\"x\",\"text\":\"y\"}\n"), 0o644)
	os.Mkdir(filepath.Join(dir, "qrels"), 0o755)
	_, err = OpenBEIR(dir)
	wantErr(t, err, "no <split>.tsv")
	os.WriteFile(filepath.Join(dir, "qrels", "test.tsv"), []byte("q\td\t1\n"), 0o644)
	b, err = OpenBEIR(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = b.SplitQueries("test")
	wantErr(t, err, `query "q"`, "absent from queries.jsonl")
}

func TestReadJudgmentsFormats(t *testing.T) {
	js, err := ReadJudgments("testdata/judgments.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	want := []Judgment{
		{"q1", "aspirin heart", "L1", "Aspirin lowers heart attack risk.", 2},
		{"q1", "aspirin heart", "L2", "Statins lower cholesterol.", 0},
		{"q2", "vitamin d", "L3", "Vitamin D and bone density.", 1},
	}
	if !reflect.DeepEqual(js, want) {
		t.Fatalf("jsonl: got %+v", js)
	}
	js, err = ReadJudgments("testdata/judgments.tsv")
	if err != nil {
		t.Fatal(err)
	}
	want[0].DocID, want[1].DocID, want[2].DocID = "dA", "dB", "dC"
	if !reflect.DeepEqual(js, want) {
		t.Fatalf("tsv: got %+v", js)
	}
	groups := GroupByQuery(js)
	if len(groups) != 2 || groups[0].QueryID != "q1" || len(groups[0].Items) != 2 || groups[1].Query != "vitamin d" {
		t.Fatalf("groups %+v", groups)
	}
	if q := JudgmentQrels(js); q["q1"]["dA"] != 2 || q["q2"]["dC"] != 1 || len(q) != 2 {
		t.Fatalf("qrels %v", q)
	}
	// Explicit IDs, sniffed format (no extension), number IDs.
	js, err = ReadJudgments(writeFile(t, "flat", `{"query":"a","text":"t","label":0,"query_id":7,"doc_id":"x"}`+"\n"))
	if err != nil || js[0].QueryID != "7" || js[0].DocID != "x" {
		t.Fatalf("got %+v, %v", js, err)
	}
}

func TestReadJudgmentsErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		file, content string
		parts         []string
	}{
		"jsonl missing label": {"j.jsonl", `{"query":"a","text":"b"}`, []string{"j.jsonl:1:", `column "label"`, "missing"}},
		"jsonl float label":   {"j.jsonl", `{"query":"a","text":"b","label":0.5}`, []string{":1:", `"label"`, "integer"}},
		"jsonl string label":  {"j.jsonl", `{"query":"a","text":"b","label":"high"}`, []string{`"label"`, "integer"}},
		"jsonl negative":      {"j.jsonl", `{"query":"a","text":"b","label":-1}`, []string{`"label"`, "negative"}},
		"jsonl missing text":  {"j.jsonl", `{"query":"a","label":1}`, []string{`column "text"`, "missing"}},
		"jsonl empty query":   {"j.jsonl", `{"query":"","text":"b","label":1}`, []string{`column "query"`, "empty"}},
		"jsonl query number":  {"j.jsonl", `{"query":3,"text":"b","label":1}`, []string{`column "query"`, "string"}},
		"jsonl broken":        {"j.jsonl", "{\"query\":\"a\",\"text\":\"b\",\"label\":1}\n{oops", []string{"j.jsonl:2:", "JSON"}},
		"tsv bad header":      {"j.tsv", "q\ttext\tlabel\na\tb\t1\n", []string{"j.tsv:1:", `column "query"`, "header lacks"}},
		"tsv short row":       {"j.tsv", "query\ttext\tlabel\na\tb\n", []string{"j.tsv:2:", "2 tab-separated fields, header has 3"}},
		"tsv bad label":       {"j.tsv", "query\ttext\tlabel\na\tb\t1\na\tc\tyes\n", []string{"j.tsv:3:", `column "label"`, `"yes"`}},
		"tsv dup column":      {"j.tsv", "query\ttext\tlabel\tlabel\n", []string{"j.tsv:1:", "twice"}},
		"tsv empty":           {"j.tsv", "", []string{"empty file"}},
		"tsv header only":     {"j.tsv", "query\ttext\tlabel\n", []string{"no judgments"}},
		"mixed query ids":     {"j.jsonl", "{\"query\":\"a\",\"text\":\"b\",\"label\":1,\"query_id\":\"1\"}\n{\"query\":\"a\",\"text\":\"c\",\"label\":1}", []string{"j.jsonl:2:", `"query_id"`, "some rows"}},
		"id with two queries": {"j.jsonl", "{\"query\":\"a\",\"text\":\"b\",\"label\":1,\"query_id\":\"1\"}\n{\"query\":\"z\",\"text\":\"c\",\"label\":1,\"query_id\":\"1\"}", []string{"j.jsonl:2:", `query_id "1" was "a"`}},
		"doc judged twice":    {"j.tsv", "query\ttext\tlabel\tdoc_id\na\tb\t1\td\na\tc\t0\td\n", []string{"j.tsv:3:", `"doc_id"`, "line 2"}},
		"sniffed tsv":         {"j", "query\ttext\tlabel\na\tb\tx\n", []string{"j:2:", `"label"`}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ReadJudgments(writeFile(t, tc.file, tc.content))
			wantErr(t, err, tc.parts...)
		})
	}
}

func TestDocTextJoinsTitleAndText(t *testing.T) {
	for _, c := range []struct{ title, text, want string }{
		{"Title", "body", "Title body"}, {"", " only body ", "only body"}, {"only title", "", "only title"},
	} {
		if got := DocText(c.title, c.text); got != c.want {
			t.Errorf("DocText(%q, %q) = %q, want %q", c.title, c.text, got, c.want)
		}
	}
}
