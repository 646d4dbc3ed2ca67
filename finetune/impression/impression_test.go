package impression

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestReadRejects(t *testing.T) {
	good := `{"search_id":"s","time":"2026-01-01T00:00:00Z","query":"q","reranked":false,"results":[{"doc_id":"a","position":1,"bm25":1,"clicked":true,"clicks":1,"dwell_ms":5}]}`
	cases := []struct{ name, in, want string }{
		{"bad json", good + "\n{nope\n", "export line 2"},
		{"no id", `{"time":"2026-01-01T00:00:00Z","results":[]}`, "no search_id"},
		{"no time", `{"search_id":"s","results":[]}`, "no time"},
		{"position order", strings.Replace(good, `"position":1`, `"position":0`, 1), "position 0"},
		{"clicked mismatch", strings.Replace(good, `"clicks":1`, `"clicks":0`, 1), "clicked=true with 0 clicks"},
		{"negative dwell", strings.Replace(good, `"dwell_ms":5`, `"dwell_ms":-5`, 1), "negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Read(strings.NewReader(c.in), func(Impression) error { return nil })
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, c.want)
			}
		})
	}
	stop := errors.New("stop")
	n := 0
	err := Read(strings.NewReader("\n"+good+"\n\n"+good), func(Impression) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("fn's error must stop the read: err %v after %d", err, n)
	}
	n = 0
	if err := Read(strings.NewReader("\n"+good+"\n\n"+good), func(Impression) error { n++; return nil }); err != nil || n != 2 {
		t.Fatalf("blank lines and a last line without newline: %v, %d read", err, n)
	}
}

// Exports come from outside; whatever the bytes, Read returns an error or
// data, never panics:
//
//	go test -run '^$' -fuzz FuzzRead -fuzztime 5m -fuzzminimizetime 2s ./finetune/impression/
func FuzzRead(f *testing.F) {
	f.Add([]byte(`{"search_id":"s","time":"2026-01-01T00:00:00Z","query":"q","reranked":true,"results":[{"doc_id":"a","position":1,"bm25":1,"rerank":0.5,"team":"control","clicked":true,"clicks":1,"dwell_ms":5}]}` + "\n"))
	f.Add([]byte("\n\n{}\n"))
	f.Add([]byte(`{"search_id":"s","time":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = Read(bytes.NewReader(data), func(e Impression) error {
			// What is accepted survives a round trip unchanged in meaning.
			b, err := json.Marshal(e)
			if err != nil {
				t.Fatalf("accepted line does not re-encode: %v", err)
			}
			var back Impression
			if err := json.Unmarshal(b, &back); err != nil || back.Validate() != nil {
				t.Fatalf("re-encoded line fails: %v / %v", err, back.Validate())
			}
			return nil
		})
	})
}
