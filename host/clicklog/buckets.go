package clicklog

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// ErrNoBucket: ViewBucket names a bucket that UpdateBucket never created.
var ErrNoBucket = errors.New("no such bucket in the click log")

// Bucket is a key-value bucket in the log's file, where state that belongs
// with the logs keeps its records. Keys sort bytewise; values returned are
// valid only during the transaction, so copy what outlives it.
type Bucket interface {
	Get(key []byte) []byte
	Put(key, value []byte) error
	Delete(key []byte) error
	ForEach(fn func(key, value []byte) error) error
	// NextSequence is a durable counter, one per bucket.
	NextSequence() (uint64, error)
	// Nested is the nested bucket name, or nil when there is none.
	Nested(name []byte) Bucket
	// CreateNested creates the nested bucket name if it does not exist.
	CreateNested(name []byte) (Bucket, error)
}

// bucket is a Bucket on bbolt, whose types stay inside this package.
type bucket struct{ b *bolt.Bucket }

func (b bucket) Get(key []byte) []byte                          { return b.b.Get(key) }
func (b bucket) Put(key, value []byte) error                    { return b.b.Put(key, value) }
func (b bucket) Delete(key []byte) error                        { return b.b.Delete(key) }
func (b bucket) ForEach(fn func(key, value []byte) error) error { return b.b.ForEach(fn) }
func (b bucket) NextSequence() (uint64, error)                  { return b.b.NextSequence() }

func (b bucket) Nested(name []byte) Bucket {
	if n := b.b.Bucket(name); n != nil {
		return bucket{n}
	}
	return nil
}

func (b bucket) CreateNested(name []byte) (Bucket, error) {
	n, err := b.b.CreateBucketIfNotExists(name)
	if err != nil {
		return nil, err
	}
	return bucket{n}, nil
}

// UpdateBucket runs fn in a write transaction on the top-level bucket name,
// creating it if needed; the commit is fsync'd before it returns. It lets
// state that belongs with the logs (the model registry, experiments) live in
// the same file, so one copy of events.db carries the clicks and the models
// they trained. fn's error rolls the transaction back. fn must not call the
// Store's other methods: bbolt has one writer, and the log's own commits wait
// for this one, so keep fn short.
func (s *Store) UpdateBucket(name string, fn func(Bucket) error) error {
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
		return fn(bucket{b})
	})
}

// ViewBucket runs fn in a read transaction on the top-level bucket name;
// ErrNoBucket when it was never created. Readers never wait for writers.
func (s *Store) ViewBucket(name string, fn func(Bucket) error) error {
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
		return fn(bucket{b})
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
