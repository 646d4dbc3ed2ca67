// Package embcache is a durable on-disk store of document embeddings for the
// bi-encoder reranker.
//
// A document's embedding depends only on the model weights and the document
// text, so entries are content-addressed: one file per model checkpoint
// (dir/<checkpoint hash>.emb, a bbolt database) maps Key(text) to the vector.
// The document id plays no part, so an edited text under an old id can never
// be served the old embedding, and a model's whole cache goes away with
// Remove. Anything that also changes the embedding (tokenizer, maximum
// sequence length, pooling) must be folded into the model hash by the caller.
//
// Vectors are stored as IEEE half floats (see floatToHalf) behind a CRC-32C
// of key and vector, and widened to float32 on Get.
//
// # Layout
//
//	meta: "format" -> uint32 BE, "model" -> hex string, "dim" -> uint32 BE
//	keys: Key (16 bytes)           -> sequence number (uint64 BE)
//	vecs: sequence number (uint64) -> CRC-32C(key ‖ halves) LE ‖ dim halves LE
//
// Vectors live in a bucket keyed by a sequence number, so every insert is an
// append and its leaf pages fill completely; the hash keys, which arrive in
// random order, live in a small separate index. Storing vectors directly
// under their hash keys would leave the big leaf pages about 2/3 full after
// random inserts. The page size is picked per dimension at creation so that
// whole vectors tile a page with little slack (4 KiB for dim 384, 8 KiB for
// 768, 32 KiB for 1024, 16 KiB for 1536).
//
// # Durability
//
// Commits are fsync'd (bbolt's default, NoSync off). Embeddings can be
// recomputed, so losing the last commits would be acceptable, but NoSync
// buys more than a lost tail: bbolt's crash safety rests on the data pages
// being on disk before the meta page that points at them, and without the
// fsyncs an OS crash or power cut can persist a meta page that points at
// pages never written, a silently corrupt tree that bbolt (no page
// checksums) cannot detect. A process crash (kill -9) loses nothing in either
// mode. The price of syncing is about two fdatasyncs per Put, which is why
// Put takes a batch: call it once per embedded batch, not once per document.
//
// # Corruption
//
// A file that is not a bbolt database, fails its meta checksums, is
// truncated, or whose pages or records do not check out is reported as
// ErrCorrupt naming the file; it is never overwritten. Before bbolt maps a
// file, Open checks its meta pages, length and freelist with plain reads
// (preflight.go), the damage bbolt would fault or panic on while opening.
// Every record carries a CRC-32C over key and vector, so damaged vectors are
// detected rather than returned; bbolt's own panics on damaged pages, and
// memory faults on its memory map (debug.SetPanicOnFault), are recovered and
// reported the same way. After ErrCorrupt the Cache refuses further work;
// Remove the file and rebuild. Verify checks the whole file.
//
// # Memory
//
// There is no in-memory layer: reads come straight from bbolt's memory map
// (the OS page cache), without copies. A Get of 100 keys of dim 384 takes
// about 0.2 ms, two B-tree lookups per key plus the checksum and half
// decode (about 0.4 µs per vector); a float32 cache in front would save only
// the decode, at twice the memory of the file per cached vector.
package embcache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

const (
	// FormatVersion is the on-disk format written to the meta bucket. A file
	// with another version is refused (ErrMismatch).
	FormatVersion = 1
	// Ext is the file name extension: dir/<model>.emb.
	Ext = ".emb"
	// MaxDim is the largest embedding size accepted.
	MaxDim = 1 << 16

	crcSize = 4
	seqSize = 8
	// allocSize is how far the file is grown past what is needed once it is
	// larger than this (bbolt's default, 16 MiB, grows small files to the
	// next power of two, doubling a small cache's size on disk).
	allocSize = 1 << 20
)

// lockTimeout bounds the wait for bbolt's exclusive file lock, held by any
// other open Cache on the same file, in this process or another. A variable
// so tests can shorten it.
var lockTimeout = 2 * time.Second

// Errors to branch on with errors.Is; returned errors wrap them and name the file.
var (
	// ErrCorrupt: the file is damaged (not bbolt, bad checksums, truncated,
	// bad pages or records). Remove it and rebuild.
	ErrCorrupt = errors.New("embedding cache file is corrupt")
	// ErrMismatch: the file is a valid bbolt file but not a cache for this
	// model, dimension and format.
	ErrMismatch = errors.New("embedding cache file does not match")
	// ErrLocked: another open Cache (in this or another process) holds the file.
	ErrLocked = errors.New("embedding cache file is locked by another open cache")
	// ErrClosed: the Cache was closed.
	ErrClosed = errors.New("embedding cache is closed")
)

var (
	bktMeta    = []byte("meta")
	bktKeys    = []byte("keys")
	bktVecs    = []byte("vecs")
	metaFormat = []byte("format")
	metaModel  = []byte("model")
	metaDim    = []byte("dim")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Key identifies a text: the first 16 bytes of the SHA-256 of its exact UTF-8
// bytes. 128 bits keep accidental collisions out of reach (probability about
// n²/2^129: 10^-21 for a billion documents), and a deliberate one needs two
// crafted texts and about 2^64 hash evaluations (a second preimage for a
// given text, 2^128); a full 32-byte key would add 16 bytes to every index
// entry, 2-3% of the file at dim 384, for no practical gain.
type Key [16]byte

// KeyOf returns the Key of text. No normalisation is applied: pass exactly
// the text that is embedded.
func KeyOf(text string) Key {
	sum := sha256.Sum256([]byte(text))
	return Key(sum[:16])
}

// BytesPerVector is the size of one stored record for dim: the halves and
// their checksum. On disk a document also costs its index entry and its share
// of page headers, slack, branch and free pages: measured for 5,000 documents
// put 100 at a time, the pages in use come to 1.21× the record at dim 384
// (935 bytes), 1.15× at 768 and 1024, and the file adds up to allocSize
// (1 MiB) of growth headroom (1,107 bytes per document at dim 384).
func BytesPerVector(dim int) int { return crcSize + 2*dim }

// Cache is an open embedding cache file. Its methods are safe for concurrent
// use; reads run in parallel with each other and with one writer.
type Cache struct {
	db   *bolt.DB
	path string
	dim  int
	bad  atomic.Pointer[error] // first corruption seen; sticky
}

// Open opens, creating it if absent, the cache file dir/<model>.emb of one
// model. model is the checkpoint hash in hex (case is ignored); dim the
// embedding size. An existing file must record the same model, dimension and
// format (else ErrMismatch) and be intact (else ErrCorrupt); an empty file is
// initialised. A file held by another open Cache fails with ErrLocked after
// a short wait.
func Open(dir, model string, dim int) (*Cache, error) {
	model, err := cleanModel(model)
	if err != nil {
		return nil, err
	}
	if dim < 1 || dim > MaxDim {
		return nil, fmt.Errorf("embcache: dimension %d out of range [1, %d]", dim, MaxDim)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("embcache: %w", err)
	}
	return open(filePath(dir, model), model, dim)
}

// Remove deletes the cache file of model in dir; no error if it is absent.
// A Cache still open on it keeps working on the unlinked file; a later Open
// starts an empty one.
func Remove(dir, model string) error {
	model, err := cleanModel(model)
	if err != nil {
		return err
	}
	err = os.Remove(filePath(dir, model))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("embcache: %w", err)
	}
	return nil
}

func filePath(dir, model string) string { return filepath.Join(dir, model+Ext) }

// cleanModel checks that model is a hex hash (it becomes a file name) and
// lower-cases it.
func cleanModel(model string) (string, error) {
	if model == "" || len(model) > 128 {
		return "", fmt.Errorf("embcache: model hash %q: want 1 to 128 hex digits", model)
	}
	for _, r := range model {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F') {
			return "", fmt.Errorf("embcache: model hash %q: want hex digits only", model)
		}
	}
	return strings.ToLower(model), nil
}

// pageSizeFor picks the bbolt page size for a new file: the smallest of
// 4..64 KiB whose pages whole vector entries fill to within 1/16, else the
// one with the least slack.
func pageSizeFor(dim int) int {
	const pageHeader, leafElem = 16, 16
	entry := leafElem + seqSize + BytesPerVector(dim)
	best, bestWaste := 0, 2.0
	for ps := max(4096, os.Getpagesize()); ps <= 1<<16; ps *= 2 {
		n := (ps - pageHeader) / entry
		if n == 0 {
			continue
		}
		waste := float64(ps-n*entry) / float64(ps)
		if waste <= 1.0/16 {
			return ps
		}
		if waste < bestWaste {
			best, bestWaste = ps, waste
		}
	}
	if best == 0 {
		best = 1 << 16 // one vector spans several pages (overflow); slack < 64 KiB per node
	}
	return best
}

func open(path, model string, dim int) (c *Cache, err error) {
	err = preflight(path)
	if errors.Is(err, errFreelist) {
		err = preflightLocked(path)
	}
	switch {
	case errors.Is(err, ErrCorrupt), errors.Is(err, ErrLocked):
		return nil, fmt.Errorf("embcache: %s: %w", path, err)
	case err != nil:
		return nil, fmt.Errorf("embcache: %w", err) // *fs.PathError: names the file
	}
	// A damaged file can make bbolt panic, or fault on its memory map: turn
	// both into ErrCorrupt. bbolt only returns the DB at the end of a
	// successful Open, so capture the file to close it if Open itself panics
	// (its memory map, and so the lock, stay until the process exits:
	// preflight rules out the likely causes).
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var f *os.File
	var db *bolt.DB
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				closeQuietly(db)
			} else if f != nil {
				f.Close()
			}
			c, err = nil, fmt.Errorf("embcache: %s: %w (%v)", path, ErrCorrupt, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      lockTimeout,
		PageSize:     pageSizeFor(dim), // used only when creating the file
		FreelistType: bolt.FreelistMapType,
		NoStatistics: true,
		// NoSync stays false (see the package comment). The freelist is
		// synced, so Open does not scan the whole file to rebuild it (and
		// does not run bbolt's scan, which panics on a goroutine we cannot
		// recover on a damaged file).
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			var err error
			f, err = os.OpenFile(name, flag, perm)
			return f, err
		},
	})
	switch {
	case err == nil:
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("embcache: %s: %w (waited %s; close the other Cache first)", path, ErrLocked, lockTimeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
		errors.Is(err, berrors.ErrVersionMismatch):
		return nil, fmt.Errorf("embcache: %s: %w: not a valid bbolt file (%v)", path, ErrCorrupt, err)
	default:
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("embcache: %w", err) // permissions, missing folder: names the file
		}
		return nil, fmt.Errorf("embcache: %s: %w (%v)", path, ErrCorrupt, err)
	}
	db.AllocSize = allocSize
	c = &Cache{db: db, path: path, dim: dim}
	if err := c.init(model); err != nil {
		closeQuietly(db)
		return nil, err
	}
	return c, nil
}

// preflightLocked repeats preflight while holding bbolt's shared lock, so
// that no writer can be changing the file. Opening read-only reads only the
// meta pages, which preflight found intact.
func preflightLocked(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockTimeout, NoStatistics: true})
	if errors.Is(err, berrors.ErrTimeout) {
		return fmt.Errorf("%w (waited %s; close the other Cache first)", ErrLocked, lockTimeout)
	}
	if err != nil {
		return fmt.Errorf("%w (%v)", ErrCorrupt, err)
	}
	defer db.Close()
	return preflight(path)
}

func closeQuietly(db *bolt.DB) {
	defer func() { _ = recover() }()
	_ = db.Close()
}

// init checks the meta bucket of an existing file, or writes it into a new one.
func (c *Cache) init(model string) error {
	info, err := os.Stat(c.path)
	if err != nil {
		return fmt.Errorf("embcache: %w", err)
	}
	fresh := false
	err = c.db.View(func(tx *bolt.Tx) error {
		// Pages past the end of the file would fault when read. preflight
		// checked this without the lock; again now that it is held.
		if tx.Size() > info.Size() {
			return fmt.Errorf("%w: file is %d bytes but its pages reach %d (truncated)", ErrCorrupt, info.Size(), tx.Size())
		}
		meta := tx.Bucket(bktMeta)
		if meta == nil {
			if k, _ := tx.Cursor().First(); k != nil {
				return fmt.Errorf("%w: a bbolt file without the cache's meta bucket, not an embedding cache", ErrMismatch)
			}
			fresh = true // new (or created but never initialised): nothing to lose
			return nil
		}
		u32 := func(k []byte) (uint32, bool) {
			v := meta.Get(k)
			if len(v) != 4 {
				return 0, false
			}
			return binary.BigEndian.Uint32(v), true
		}
		format, ok1 := u32(metaFormat)
		fdim, ok2 := u32(metaDim)
		fmodel := meta.Get(metaModel)
		if !ok1 || !ok2 || fmodel == nil {
			return fmt.Errorf("%w: meta bucket incomplete", ErrCorrupt)
		}
		if m, err := cleanModel(string(fmodel)); err != nil || m != string(fmodel) || fdim < 1 || fdim > MaxDim {
			return fmt.Errorf("%w: meta bucket damaged (model %q, dimension %d)", ErrCorrupt, fmodel, fdim)
		}
		switch {
		case format != FormatVersion:
			return fmt.Errorf("%w: format version %d, this build reads %d", ErrMismatch, format, FormatVersion)
		case string(fmodel) != model:
			return fmt.Errorf("%w: holds model %s, not %s", ErrMismatch, fmodel, model)
		case int(fdim) != c.dim:
			return fmt.Errorf("%w: holds dimension %d, not %d", ErrMismatch, fdim, c.dim)
		}
		if tx.Bucket(bktKeys) == nil || tx.Bucket(bktVecs) == nil {
			return fmt.Errorf("%w: data buckets missing", ErrCorrupt)
		}
		return nil
	})
	if err == nil && fresh {
		err = c.db.Update(func(tx *bolt.Tx) error {
			meta, err := tx.CreateBucket(bktMeta)
			if err != nil {
				return err
			}
			var format, dim [4]byte
			binary.BigEndian.PutUint32(format[:], FormatVersion)
			binary.BigEndian.PutUint32(dim[:], uint32(c.dim))
			for _, kv := range [][2][]byte{{metaFormat, format[:]}, {metaModel, []byte(model)}, {metaDim, dim[:]}} {
				if err := meta.Put(kv[0], kv[1]); err != nil {
					return err
				}
			}
			if _, err := tx.CreateBucket(bktKeys); err != nil {
				return err
			}
			_, err = tx.CreateBucket(bktVecs)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("embcache: %s: %w", c.path, err)
	}
	return nil
}

// Path is the cache file.
func (c *Cache) Path() string { return c.path }

// Dim is the embedding size.
func (c *Cache) Dim() int { return c.dim }

// Close closes the file. Calls after Close fail with ErrClosed.
func (c *Cache) Close() error {
	if err := c.db.Close(); err != nil {
		return fmt.Errorf("embcache: close %s: %w", c.path, err)
	}
	return nil
}

// Get looks up keys in one read transaction. out[i] is the vector of keys[i]
// widened to float32 (len Dim), or nil on a miss; found counts the hits. The
// vectors share one allocation and belong to the caller.
func (c *Cache) Get(keys []Key) (out [][]float32, found int, err error) {
	if err := c.usable(); err != nil {
		return nil, 0, err
	}
	defer func() {
		if err != nil {
			out, found = nil, 0
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer c.recoverCorrupt(&err)
	recs := make([][]byte, len(keys))
	out = make([][]float32, len(keys))
	err = c.db.View(func(tx *bolt.Tx) error {
		kb, vb, err := buckets(tx)
		if err != nil {
			return err
		}
		rs := BytesPerVector(c.dim)
		// Two cursors, reused for every key: Bucket.Get allocates one per call.
		kc, vc := kb.Cursor(), vb.Cursor()
		for i := range keys {
			k, seq := kc.Seek(keys[i][:])
			if !bytes.Equal(k, keys[i][:]) {
				continue
			}
			s, rec := vc.Seek(seq)
			if len(seq) != seqSize || !bytes.Equal(s, seq) || len(rec) != rs {
				return fmt.Errorf("%w: key %x: index entry or record malformed", ErrCorrupt, keys[i])
			}
			recs[i] = rec
			found++
		}
		buf := make([]float32, found*c.dim)
		for i, rec := range recs {
			if rec == nil {
				continue
			}
			v := buf[:c.dim:c.dim]
			buf = buf[c.dim:]
			if !decodeRecord(v, &keys[i], rec) {
				return fmt.Errorf("%w: key %x: record checksum mismatch", ErrCorrupt, keys[i])
			}
			out[i] = v
		}
		return nil
	})
	if err != nil {
		return nil, 0, c.fail(err)
	}
	return out, found, nil
}

// Put stores vecs[i] under keys[i], all in one fsync'd transaction. Every
// vector must have Dim finite components; otherwise nothing is stored. A key
// already present keeps its stored vector (the entry is content-addressed, so
// the new one is the same embedding), as does a repeat within the batch.
func (c *Cache) Put(keys []Key, vecs [][]float32) (err error) {
	if len(keys) != len(vecs) {
		return fmt.Errorf("embcache: %s: %d keys but %d vectors", c.path, len(keys), len(vecs))
	}
	rs := BytesPerVector(c.dim)
	recs := make([]byte, len(keys)*rs)
	for i, v := range vecs {
		if len(v) != c.dim {
			return fmt.Errorf("embcache: %s: vector %d has %d components, want %d", c.path, i, len(v), c.dim)
		}
		for j, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("embcache: %s: vector %d component %d is %v", c.path, i, j, x)
			}
		}
		encodeRecord(recs[i*rs:(i+1)*rs], &keys[i], v)
	}
	if len(keys) == 0 {
		return c.usable()
	}
	if err := c.usable(); err != nil {
		return err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer c.recoverCorrupt(&err)
	seqs := make([]byte, len(keys)*seqSize) // bbolt keeps references until commit
	err = c.db.Update(func(tx *bolt.Tx) error {
		kb, vb, err := buckets(tx)
		if err != nil {
			return err
		}
		vb.FillPercent = 1 // sequence numbers only grow: split full pages, not half ones
		for i := range keys {
			if kb.Get(keys[i][:]) != nil {
				continue
			}
			n, err := vb.NextSequence()
			if err != nil {
				return err
			}
			seq := seqs[i*seqSize : (i+1)*seqSize]
			binary.BigEndian.PutUint64(seq, n)
			if err := vb.Put(seq, recs[i*rs:(i+1)*rs]); err != nil {
				return err
			}
			if err := kb.Put(keys[i][:], seq); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return c.fail(err)
	}
	return nil
}

// Len is the number of stored vectors (entries are never deleted one by one,
// so it is the vector bucket's sequence: O(1)).
func (c *Cache) Len() (n int, err error) {
	if err := c.usable(); err != nil {
		return 0, err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer c.recoverCorrupt(&err)
	err = c.db.View(func(tx *bolt.Tx) error {
		_, vb, err := buckets(tx)
		if err == nil {
			n = int(vb.Sequence())
		}
		return err
	})
	if err != nil {
		return 0, c.fail(err)
	}
	return n, nil
}

// Verify reads the whole file and checks every index entry, record and
// checksum, and that the counts agree; it returns ErrCorrupt naming the file
// on the first problem. It takes time proportional to the file size.
func (c *Cache) Verify() (err error) {
	if err := c.usable(); err != nil {
		return err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer c.recoverCorrupt(&err)
	err = c.db.View(func(tx *bolt.Tx) error {
		kb, vb, err := buckets(tx)
		if err != nil {
			return err
		}
		rs := BytesPerVector(c.dim)
		scratch := make([]float32, c.dim)
		var nk, nv uint64
		kc := kb.Cursor()
		for k, seq := kc.First(); k != nil; k, seq = kc.Next() {
			nk++
			rec := vb.Get(seq)
			if len(k) != len(Key{}) || len(seq) != seqSize || len(rec) != rs {
				return fmt.Errorf("%w: key %x: index entry or record malformed", ErrCorrupt, k)
			}
			if !decodeRecord(scratch, (*Key)(k), rec) {
				return fmt.Errorf("%w: key %x: record checksum mismatch", ErrCorrupt, k)
			}
		}
		vc := vb.Cursor()
		for s, rec := vc.First(); s != nil; s, rec = vc.Next() {
			nv++
			if len(s) != seqSize || len(rec) != rs || binary.BigEndian.Uint64(s) > vb.Sequence() {
				return fmt.Errorf("%w: record %x malformed", ErrCorrupt, s)
			}
		}
		if nk != nv || nv != vb.Sequence() {
			return fmt.Errorf("%w: %d index entries, %d records, sequence %d", ErrCorrupt, nk, nv, vb.Sequence())
		}
		return nil
	})
	if err != nil {
		return c.fail(err)
	}
	return nil
}

func buckets(tx *bolt.Tx) (keys, vecs *bolt.Bucket, err error) {
	keys, vecs = tx.Bucket(bktKeys), tx.Bucket(bktVecs)
	if keys == nil || vecs == nil {
		return nil, nil, fmt.Errorf("%w: data buckets missing", ErrCorrupt)
	}
	return keys, vecs, nil
}

// usable returns the sticky corruption error, if any.
func (c *Cache) usable() error {
	if p := c.bad.Load(); p != nil {
		return *p
	}
	return nil
}

// fail names the file in err, maps bbolt's closed error to ErrClosed and
// makes corruption sticky.
func (c *Cache) fail(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("embcache: %s: %w", c.path, ErrClosed)
	}
	err = fmt.Errorf("embcache: %s: %w", c.path, err)
	if errors.Is(err, ErrCorrupt) {
		c.bad.CompareAndSwap(nil, &err)
		return *c.bad.Load()
	}
	return err
}

// recoverCorrupt, deferred right after SetPanicOnFault, turns a bbolt panic
// or a fault on its memory map into ErrCorrupt. bbolt's View and Update roll
// their transaction back while the panic passes, releasing its locks.
func (c *Cache) recoverCorrupt(err *error) {
	if r := recover(); r != nil {
		*err = c.fail(fmt.Errorf("%w (%v)", ErrCorrupt, r))
	}
}

func recordCRC(k *Key, halves []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, k[:]), castagnoli, halves)
}

// encodeRecord writes CRC ‖ halves of v into rec (len BytesPerVector).
func encodeRecord(rec []byte, k *Key, v []float32) {
	h := rec[crcSize:]
	for i, x := range v {
		binary.LittleEndian.PutUint16(h[2*i:], floatToHalf(x))
	}
	binary.LittleEndian.PutUint32(rec, recordCRC(k, h))
}

// decodeRecord widens rec's halves into v, reporting whether the checksum
// (which covers the key, so a record filed under the wrong key fails) holds.
func decodeRecord(v []float32, k *Key, rec []byte) bool {
	h := rec[crcSize:]
	if binary.LittleEndian.Uint32(rec) != recordCRC(k, h) {
		return false
	}
	h = h[:2*len(v)] // lets the compiler drop the bounds checks below
	for i := range v {
		v[i] = halfToFloat(uint16(h[2*i]) | uint16(h[2*i+1])<<8)
	}
	return true
}
