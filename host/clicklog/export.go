package clicklog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ExportedImpression is one line of the training export: a search with the
// list it showed and, per result, the clicks it got. This is the format
// finetune reads (through ReadExport).
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
type ExportedImpression struct {
	SearchID     string           `json:"search_id"`
	Time         time.Time        `json:"time"`
	Query        string           `json:"query"`
	User         string           `json:"user,omitempty"`
	Session      string           `json:"session,omitempty"`
	ModelVersion string           `json:"model_version,omitempty"`
	Arm          string           `json:"arm,omitempty"`
	Reranked     bool             `json:"reranked"`
	Results      []ExportedResult `json:"results"`
}

// ExportedResult is one shown result with its click aggregates.
type ExportedResult struct {
	DocID    string   `json:"doc_id"`
	Position int      `json:"position"`
	BM25     float64  `json:"bm25"`
	Rerank   *float64 `json:"rerank,omitempty"`
	Team     string   `json:"team,omitempty"`
	Clicked  bool     `json:"clicked"`
	Clicks   int      `json:"clicks"`   // clicks kept after de-duplication
	DwellMS  int64    `json:"dwell_ms"` // summed over those clicks
}

// exportChunk bounds the searches read per read transaction: a long-lived
// bbolt reader blocks the writer from growing the file and reusing pages.
const exportChunk = 256

// maxExportLine bounds one line read by ReadExport (a 1,000-result impression
// is well under 1 MiB).
const maxExportLine = 16 << 20

// Export writes every search logged at or after since (zero: all), oldest
// first, one ExportedImpression per line. Clicks are included whatever their
// time. It reads in short transactions, so logging goes on meanwhile; a
// search logged during the export with a time already passed is not included.
func (s *Store) Export(ctx context.Context, since time.Time, w io.Writer) error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	var from []byte
	if since.Year() >= 1970 {
		from = binary.BigEndian.AppendUint64(nil, uint64(since.UnixNano()))
	}
	var last []byte // by_time key of the last search written
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var chunk []ExportedImpression
		err := s.db.View(func(tx *bolt.Tx) error {
			cur := tx.Bucket(bktByTime).Cursor()
			var k []byte
			switch {
			case last != nil:
				if k, _ = cur.Seek(last); bytes.Equal(k, last) {
					k, _ = cur.Next()
				}
			case from != nil:
				k, _ = cur.Seek(from)
			default:
				k, _ = cur.First()
			}
			for ; k != nil && len(chunk) < exportChunk; k, _ = cur.Next() {
				e, err := exportOne(tx, k[8:])
				if err != nil {
					return err
				}
				chunk = append(chunk, e)
				last = append(last[:0], k...)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("clicklog: export: %w", err)
		}
		for _, e := range chunk {
			if err := enc.Encode(e); err != nil {
				return fmt.Errorf("clicklog: export: %w", err)
			}
		}
		if len(chunk) < exportChunk {
			break
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("clicklog: export: %w", err)
	}
	return nil
}

// exportOne joins a search with its clicks.
func exportOne(tx *bolt.Tx, id []byte) (ExportedImpression, error) {
	raw := tx.Bucket(bktSearches).Get(id)
	if raw == nil {
		return ExportedImpression{}, fmt.Errorf("time index names search %s, which has no record", id)
	}
	var imp Impression
	if err := json.Unmarshal(raw, &imp); err != nil {
		return ExportedImpression{}, fmt.Errorf("search %s: %w", id, err)
	}
	e := ExportedImpression{
		SearchID: imp.SearchID, Time: imp.Time, Query: imp.Query, User: imp.UserID,
		Session: imp.SessionID, ModelVersion: imp.ModelVersion, Arm: imp.Arm,
		Reranked: imp.Reranked, Results: make([]ExportedResult, len(imp.Results)),
	}
	byDoc := make(map[string]*ExportedResult, len(imp.Results))
	for i, r := range imp.Results {
		e.Results[i] = ExportedResult{DocID: r.DocID, Position: r.Position, BM25: r.BM25, Team: r.Team}
		if r.HasRerank {
			e.Results[i].Rerank = &r.Rerank
		}
		byDoc[r.DocID] = &e.Results[i]
	}
	prefix := clickPrefix(imp.SearchID)
	cur := tx.Bucket(bktClicks).Cursor()
	for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
		var c Click
		if err := json.Unmarshal(v, &c); err != nil {
			return ExportedImpression{}, fmt.Errorf("search %s: click: %w", id, err)
		}
		if r := byDoc[c.DocID]; r != nil { // always set: LogClick checks the doc was shown
			r.Clicked = true
			r.Clicks++
			r.DwellMS += c.DwellMS
		}
	}
	return e, nil
}

// ReadExport calls fn for each impression of an export, in file order. A line
// that is not valid JSON or breaks the format's rules (Validate) stops it
// with an error naming the line; an error from fn stops it and is returned
// as is. Blank lines are skipped; unknown fields are ignored, so newer
// exports stay readable.
func ReadExport(r io.Reader, fn func(ExportedImpression) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for line := 1; ; line++ {
		b, err := readLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("export line %d: %w", line, err)
		}
		if len(bytes.TrimSpace(b)) > 0 {
			var e ExportedImpression
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
// than maxExportLine instead of buffering without bound.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > maxExportLine {
			return nil, fmt.Errorf("line longer than %d bytes", maxExportLine)
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
func (e ExportedImpression) Validate() error {
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
