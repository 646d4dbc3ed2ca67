package clicklog

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// ErrNoBucket: ViewBucket names a bucket that UpdateBucket never created.
var ErrNoBucket = errors.New("no such bucket in the click log")

// UpdateBucket runs fn in a write transaction on the top-level bucket name,
// creating it if needed; the commit is fsync'd before it returns. It lets
// state that belongs with the logs (the model registry, experiments) live in
// the same file, so one copy of events.db carries the clicks and the models
// they trained. fn's error rolls the transaction back. fn must not call the
// Store's other methods: bbolt has one writer, and the log's own commits wait
// for this one, so keep fn short.
func (s *Store) UpdateBucket(name string, fn func(*bolt.Bucket) error) error {
	if err := checkBucketName(name); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(name))
		if err != nil {
			return err
		}
		return fn(b)
	})
}

// ViewBucket runs fn in a read transaction on the top-level bucket name;
// ErrNoBucket when it was never created. Readers never wait for writers.
func (s *Store) ViewBucket(name string, fn func(*bolt.Bucket) error) error {
	if err := checkBucketName(name); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(name))
		if b == nil {
			return fmt.Errorf("clicklog: bucket %q: %w", name, ErrNoBucket)
		}
		return fn(b)
	})
}

// checkBucketName keeps callers out of the log's own buckets.
func checkBucketName(name string) error {
	if name == "" {
		return errors.New("clicklog: empty bucket name")
	}
	for _, own := range [][]byte{bktSearches, bktByTime, bktClicks} {
		if string(own) == name {
			return fmt.Errorf("clicklog: bucket %q is the log's own", name)
		}
	}
	return nil
}
