package clicklog

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

// The readers take files from outside; whatever the bytes, they return an
// error or data, never panic. A short -fuzzminimizetime keeps the engine from
// stalling for a minute on each new input it minimises:
//
//	go test -run '^$' -fuzz FuzzReadExport -fuzztime 5m -fuzzminimizetime 2s ./host/clicklog/
//	go test -run '^$' -fuzz FuzzTRECReaders -fuzztime 5m -fuzzminimizetime 2s ./host/clicklog/

func FuzzReadExport(f *testing.F) {
	f.Add([]byte(`{"search_id":"s","time":"2026-01-01T00:00:00Z","query":"q","reranked":true,"results":[{"doc_id":"a","position":1,"bm25":1,"rerank":0.5,"team":"control","clicked":true,"clicks":1,"dwell_ms":5}]}` + "\n"))
	f.Add([]byte("\n\n{}\n"))
	f.Add([]byte(`{"search_id":"s","time":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = ReadExport(bytes.NewReader(data), func(e ExportedImpression) error {
			// What is accepted survives a round trip unchanged in meaning.
			b, err := json.Marshal(e)
			if err != nil {
				t.Fatalf("accepted line does not re-encode: %v", err)
			}
			var back ExportedImpression
			if err := json.Unmarshal(b, &back); err != nil || back.Validate() != nil {
				t.Fatalf("re-encoded line fails: %v / %v", err, back.Validate())
			}
			return nil
		})
	})
}

func FuzzTRECReaders(f *testing.F) {
	for _, p := range []string{sampleTSV, sampleJSONL} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:min(len(b), 2048)])
	}
	f.Add([]byte(`{"session":"1","interactions":[{"num":"1","starttime":"0","query":"q","results":[{"rank":"1","clueweb12id":"d"}],"clicks":[{"rank":"1","start":"1","end":"NA"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Both layouts, whatever the first byte says.
		_, _ = readTRECTable(bytes.NewReader(data), t0)
		_, _ = readTRECSessions(bytes.NewReader(data), t0)
	})
}
