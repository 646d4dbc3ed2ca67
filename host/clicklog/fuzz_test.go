package clicklog

import (
	"bytes"
	"os"
	"testing"
)

// The readers take files from outside; whatever the bytes, they return an
// error or data, never panic. A short -fuzzminimizetime keeps the engine from
// stalling for a minute on each new input it minimises:
//
//	go test -run '^$' -fuzz FuzzTRECReaders -fuzztime 5m -fuzzminimizetime 2s ./host/clicklog/

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
