package clicklog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/rerankloop/rerank/finetune/impression"
)

// exportChunk bounds the searches read per read transaction: a long-lived
// bbolt reader blocks the writer from growing the file and reusing pages.
const exportChunk = 256

// Scan calls fn for every search logged at or after since (zero: all),
// oldest first, joined with its clicks (whatever their time). It reads in
// short transactions and calls fn outside them, so logging goes on
// meanwhile; a search logged during the scan with a time already passed is
// not included. An error from fn stops the scan and is returned as is.
func (s *Store) Scan(ctx context.Context, since time.Time, fn func(impression.Impression) error) error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	var from []byte
	if since.Year() >= 1970 {
		from = binary.BigEndian.AppendUint64(nil, uint64(since.UnixNano()))
	}
	var last []byte // by_time key of the last search read
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var chunk []impression.Impression
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
			return fmt.Errorf("clicklog: scan: %w", err)
		}
		for _, e := range chunk {
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(chunk) < exportChunk {
			return nil
		}
	}
}

// Export writes what Scan reads, one impression per line (JSONL; read it
// back with impression.Read).
func (s *Store) Export(ctx context.Context, since time.Time, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	err := s.Scan(ctx, since, func(e impression.Impression) error {
		if err := enc.Encode(e); err != nil {
			return fmt.Errorf("clicklog: export: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("clicklog: export: %w", err)
	}
	return nil
}

// exportOne joins a search with its clicks.
func exportOne(tx *bolt.Tx, id []byte) (impression.Impression, error) {
	raw := tx.Bucket(bktSearches).Get(id)
	if raw == nil {
		return impression.Impression{}, fmt.Errorf("time index names search %s, which has no record", id)
	}
	var imp Impression
	if err := json.Unmarshal(raw, &imp); err != nil {
		return impression.Impression{}, fmt.Errorf("search %s: %w", id, err)
	}
	e := impression.Impression{
		SearchID: imp.SearchID, Time: imp.Time, Query: imp.Query, User: imp.UserID,
		Session: imp.SessionID, ModelVersion: imp.ModelVersion, Arm: imp.Arm,
		Reranked: imp.Reranked, Results: make([]impression.Result, len(imp.Results)),
	}
	byDoc := make(map[string]*impression.Result, len(imp.Results))
	for i, r := range imp.Results {
		e.Results[i] = impression.Result{DocID: r.DocID, Position: r.Position, BM25: r.BM25, Team: r.Team}
		if r.HasRerank {
			e.Results[i].Rerank = &r.Rerank
		}
		if r.HasCascade {
			e.Results[i].Cascade = &r.Cascade
		}
		byDoc[r.DocID] = &e.Results[i]
	}
	prefix := clickPrefix(imp.SearchID)
	cur := tx.Bucket(bktClicks).Cursor()
	for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
		var c Click
		if err := json.Unmarshal(v, &c); err != nil {
			return impression.Impression{}, fmt.Errorf("search %s: click: %w", id, err)
		}
		if r := byDoc[c.DocID]; r != nil { // always set: LogClick checks the doc was shown
			r.Clicked = true
			r.Clicks++
			r.DwellMS += c.DwellMS
		}
	}
	return e, nil
}
