package dataset

import (
	"bytes"
	"strings"
	"testing"
)

// The fuzz targets check that any input gives either data that keeps the
// readers' promises or an error that names the file; never a panic.

func FuzzReadCorpus(f *testing.F) {
	f.Add([]byte("{\"_id\":\"1\",\"title\":\"t\",\"text\":\"x\"}\n"))
	f.Add([]byte("{\"id\":2,\"contents\":\"x\"}\r\n\n{\"_id\":\"\"}"))
	f.Add([]byte("\xef\xbb\xbf[]\nnull\n{\"_id\":{}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		err := readCorpus(bytes.NewReader(data), "f.jsonl", func(d Doc) error {
			if strings.TrimSpace(d.ID) == "" {
				t.Fatalf("document without an ID: %+v", d)
			}
			return nil
		})
		if err != nil && !strings.HasPrefix(err.Error(), "f.jsonl") {
			t.Fatalf("error does not name the file: %v", err)
		}
	})
}

func FuzzReadQueries(f *testing.F) {
	f.Add([]byte("{\"_id\":\"1\",\"text\":\"q\"}\n{\"id\":\"2\",\"query\":\"r\"}\n"))
	f.Add([]byte("{\"_id\":\"1\",\"text\":\"q\"}\n{\"_id\":\"1\",\"text\":\"q\"}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		qs, err := readQueries(bytes.NewReader(data), "q.jsonl")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "q.jsonl") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, q := range qs {
			if seen[q.ID] || strings.TrimSpace(q.Text) == "" || strings.TrimSpace(q.ID) == "" {
				t.Fatalf("bad query accepted: %+v", q)
			}
			seen[q.ID] = true
		}
	})
}

func FuzzReadQrels(f *testing.F) {
	f.Add([]byte("query-id\tcorpus-id\tscore\nq1\td1\t1\n"))
	f.Add([]byte("301 0 doc 2\n301 0 doc2 -1\n"))
	f.Add([]byte("a b 1.0\na b 1e0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		q, err := readQrels(bytes.NewReader(data), "q.tsv")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "q.tsv") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if len(q) == 0 {
			t.Fatal("empty qrels without an error")
		}
	})
}

func FuzzReadJudgments(f *testing.F) {
	f.Add([]byte("{\"query\":\"a\",\"text\":\"b\",\"label\":1}\n"), true)
	f.Add([]byte("query\ttext\tlabel\tquery_id\na\tb\t2\t1\n"), false)
	f.Add([]byte("query\ttext\tlabel\tdoc_id\na\tb\t1\td\na\tc\t0\td\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, jsonl bool) {
		name := "j.tsv"
		if jsonl {
			name = "j.jsonl"
		}
		js, err := readJudgments(data, name)
		if err != nil {
			if !strings.HasPrefix(err.Error(), name) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		seen := map[[2]string]bool{}
		for _, j := range js {
			key := [2]string{j.QueryID, j.DocID}
			if j.QueryID == "" || j.DocID == "" || j.Label < 0 || seen[key] {
				t.Fatalf("bad judgment accepted: %+v", j)
			}
			seen[key] = true
		}
		n := 0
		for _, g := range GroupByQuery(js) {
			n += len(g.Items)
		}
		if n != len(js) {
			t.Fatalf("grouping lost rows: %d of %d", n, len(js))
		}
	})
}
