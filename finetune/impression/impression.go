// Package impression is the click log's export format: one search with the
// list it showed and, per result, the clicks it got. The host's click log
// writes it and the fine-tuning side reads it, so it lives in a leaf package
// that neither side's internals leak into.
package impression

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Impression is one line of an export:
//
//	{"search_id":"s1","time":"2026-01-02T03:04:05.123Z","query":"q","user":"h:3fa…",
//	 "session":"…","model_version":"v3","arm":"treatment","reranked":true,
//	 "results":[{"doc_id":"d7","position":1,"bm25":12.1,"rerank":3.2,"team":"control",
//	             "clicked":true,"clicks":1,"dwell_ms":41000}, …]}
//
// Results are in position order. "rerank" is absent when the result was not
// reranked (BM25 order); "user", "session", "model_version", "arm" and "team"
// are absent when empty. User and session are hashed ("h:" + hex) when the log
// was written with hashing on.
type Impression struct {
	SearchID     string    `json:"search_id"`
	Time         time.Time `json:"time"`
	Query        string    `json:"query"`
	User         string    `json:"user,omitempty"`
	Session      string    `json:"session,omitempty"`
	ModelVersion string    `json:"model_version,omitempty"`
	Arm          string    `json:"arm,omitempty"`
	Reranked     bool      `json:"reranked"`
	Results      []Result  `json:"results"`
}

// Result is one shown result with its click aggregates.
type Result struct {
	DocID    string   `json:"doc_id"`
	Position int      `json:"position"`
	BM25     float64  `json:"bm25"`
	Rerank   *float64 `json:"rerank,omitempty"`
	// Cascade is the cascade model's score, for the hits it reordered.
	Cascade *float64 `json:"cascade,omitempty"`
	Team    string   `json:"team,omitempty"`
	Clicked bool     `json:"clicked"`
	Clicks  int      `json:"clicks"`   // clicks kept after de-duplication
	DwellMS int64    `json:"dwell_ms"` // summed over those clicks
}

// maxLine bounds one line read by Read (a 1,000-result impression is well
// under 1 MiB).
const maxLine = 16 << 20

// Read calls fn for each impression of an export, in file order. A line that
// is not valid JSON or breaks the format's rules (Validate) stops it with an
// error naming the line; an error from fn stops it and is returned as is.
// Blank lines are skipped; unknown fields are ignored, so newer exports stay
// readable.
func Read(r io.Reader, fn func(Impression) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for line := 1; ; line++ {
		b, err := readLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("export line %d: %w", line, err)
		}
		if len(bytes.TrimSpace(b)) > 0 {
			var e Impression
			if jerr := json.Unmarshal(b, &e); jerr != nil {
				return fmt.Errorf("export line %d: %w", line, jerr)
			}
			if verr := e.Validate(); verr != nil {
				return fmt.Errorf("export line %d: %w", line, verr)
			}
			if ferr := fn(e); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
	}
}

// readLine returns the next line without its newline, refusing lines longer
// than maxLine instead of buffering without bound.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > maxLine {
			return nil, fmt.Errorf("line longer than %d bytes", maxLine)
		}
		line = append(line, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimSuffix(line, []byte("\n")), err
	}
}

// Validate checks the rules a consumer may rely on: a search id and time,
// results with doc ids at distinct positions from 1 in increasing order,
// click counts that agree with "clicked", and no negative dwell.
func (e Impression) Validate() error {
	if e.SearchID == "" {
		return errors.New("no search_id")
	}
	if e.Time.IsZero() {
		return fmt.Errorf("search %s: no time", e.SearchID)
	}
	prev := 0
	for i, r := range e.Results {
		switch {
		case r.DocID == "":
			return fmt.Errorf("search %s: result %d has no doc_id", e.SearchID, i)
		case r.Position <= prev:
			return fmt.Errorf("search %s: result %q at position %d after position %d (want increasing, from 1)", e.SearchID, r.DocID, r.Position, prev)
		case r.Clicks < 0 || r.DwellMS < 0:
			return fmt.Errorf("search %s: result %q has negative clicks or dwell", e.SearchID, r.DocID)
		case r.Clicked != (r.Clicks > 0):
			return fmt.Errorf("search %s: result %q: clicked=%v with %d clicks", e.SearchID, r.DocID, r.Clicked, r.Clicks)
		}
		prev = r.Position
	}
	return nil
}

// ReadFile reads a whole export file.
func ReadFile(path string) ([]Impression, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Impression
	if err := Read(f, func(e Impression) error { out = append(out, e); return nil }); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}
