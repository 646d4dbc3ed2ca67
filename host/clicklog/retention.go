package clicklog

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// pruneChunk bounds one deleting transaction, so retention never holds the
// write lock long enough to stall logging.
const pruneChunk = 500

// Prune deletes every search logged before cutoff together with its clicks,
// and returns how many searches it deleted. Open and a background loop call
// it with now minus Options.Retention; it is exported for tools and tests.
func (s *Store) Prune(ctx context.Context, cutoff time.Time) (int, error) {
	if cutoff.Year() < 1970 {
		return 0, nil // nothing can be older: event times start in 1970
	}
	limit := uint64(cutoff.UnixNano())
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n := 0
		err := s.db.Update(func(tx *bolt.Tx) error {
			byTime, searches, clicks := tx.Bucket(bktByTime), tx.Bucket(bktSearches), tx.Bucket(bktClicks)
			cur := byTime.Cursor()
			for k, _ := cur.First(); k != nil && n < pruneChunk; k, _ = cur.First() {
				if binary.BigEndian.Uint64(k[:8]) >= limit {
					break
				}
				id := bytes.Clone(k[8:]) // k is invalid once the page changes
				if err := cur.Delete(); err != nil {
					return err
				}
				if err := searches.Delete(id); err != nil {
					return err
				}
				if err := deletePrefix(clicks, clickPrefix(string(id))); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("clicklog: retention: %w", err)
		}
		if n < pruneChunk {
			return total, nil
		}
	}
}

// deletePrefix removes every key starting with prefix. Keys are collected
// first: deleting under a moving cursor skips entries in bbolt.
func deletePrefix(b *bolt.Bucket, prefix []byte) error {
	var keys [][]byte
	cur := b.Cursor()
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// retentionLoop prunes periodically: a tenth of the retention, clamped to
// between a minute and an hour, so events outlive the setting by at most that.
func (s *Store) retentionLoop() {
	defer close(s.pruned)
	every := min(max(s.opts.Retention/10, time.Minute), time.Hour)
	t := time.NewTicker(every)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.stopPrune
		cancel()
	}()
	for {
		select {
		case <-s.stopPrune:
			return
		case <-t.C:
			cutoff := time.Now().Add(-s.opts.Retention)
			n, err := s.Prune(ctx, cutoff)
			if err != nil && ctx.Err() == nil {
				s.log.Error("click log retention failed", "err", err, "deleted", n)
			} else if n > 0 {
				s.log.Info("click log retention", "deleted_searches", n, "before", cutoff)
			}
		}
	}
}
