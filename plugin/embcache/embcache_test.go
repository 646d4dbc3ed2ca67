package embcache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

const (
	modelA = "3f1c0a9be2d54e7f8a6b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5"
	modelB = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
)

// doc i's text and vector, reproducible from i alone.
func docText(i int) string { return fmt.Sprintf("document %d: some text", i) }

func docVec(i, dim int) []float32 {
	rng := rand.New(rand.NewPCG(uint64(i), uint64(dim)))
	v := make([]float32, dim)
	for j := range v {
		v[j] = float32(rng.NormFloat64() * 0.05)
		if j%50 == 0 {
			v[j] *= 1000 // some larger components too
		}
	}
	return v
}

func docs(from, to, dim int) ([]Key, [][]float32) {
	keys := make([]Key, 0, to-from)
	vecs := make([][]float32, 0, to-from)
	for i := from; i < to; i++ {
		keys = append(keys, KeyOf(docText(i)))
		vecs = append(vecs, docVec(i, dim))
	}
	return keys, vecs
}

// checkVec: relative error <= 2^-11 for values in half's normal range,
// absolute error <= 2^-25 (half a subnormal step) below it.
func checkVec(t *testing.T, what string, want, got []float32) {
	t.Helper()
	if err := vecErr(what, want, got); err != nil {
		t.Fatal(err)
	}
}

func vecErr(what string, want, got []float32) error {
	if len(got) != len(want) {
		return fmt.Errorf("%s: got %d components, want %d", what, len(got), len(want))
	}
	for j := range want {
		w, g := float64(want[j]), float64(got[j])
		d := math.Abs(w - g)
		if math.Abs(w) >= 0x1p-14 && d > 0x1p-11*math.Abs(w) || math.Abs(w) < 0x1p-14 && d > 0x1p-25 {
			return fmt.Errorf("%s[%d] = %g, want %g (error %g)", what, j, g, w, d)
		}
	}
	return nil
}

func mustOpen(t testing.TB, dir, model string, dim int) *Cache {
	t.Helper()
	c, err := Open(dir, model, dim)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustPut(t testing.TB, c *Cache, keys []Key, vecs [][]float32) {
	t.Helper()
	if err := c.Put(keys, vecs); err != nil {
		t.Fatal(err)
	}
}

func mustLen(t *testing.T, c *Cache, want int) {
	t.Helper()
	if n, err := c.Len(); err != nil || n != want {
		t.Fatalf("Len = %d, %v; want %d", n, err, want)
	}
}

func TestRoundTrip(t *testing.T) {
	const dim = 384
	c := mustOpen(t, t.TempDir(), modelA, dim)
	defer c.Close()
	if c.Dim() != dim || c.Path() != filepath.Join(filepath.Dir(c.Path()), modelA+".emb") {
		t.Fatalf("Dim %d Path %s", c.Dim(), c.Path())
	}
	keys, vecs := docs(0, 200, dim)
	mustPut(t, c, keys, vecs)
	mustLen(t, c, 200)

	// Ask for every other stored doc, interleaved with misses.
	var ask []Key
	for i := 0; i < 200; i += 2 {
		ask = append(ask, keys[i], KeyOf(docText(1000+i)))
	}
	out, found, err := c.Get(ask)
	if err != nil || found != 100 || len(out) != len(ask) {
		t.Fatalf("Get: found %d of %d, err %v", found, len(out), err)
	}
	for j := range ask {
		if j%2 == 1 {
			if out[j] != nil {
				t.Fatalf("miss %d returned a vector", j)
			}
			continue
		}
		checkVec(t, fmt.Sprintf("doc %d", j), vecs[j], out[j])
	}

	// Same key again (in one batch and later) keeps the first vector.
	other := docVec(999, dim)
	mustPut(t, c, []Key{keys[0], keys[0], keys[1]}, [][]float32{other, other, other})
	mustLen(t, c, 200)
	out, _, _ = c.Get(keys[:2])
	checkVec(t, "kept doc 0", vecs[0], out[0])
	checkVec(t, "kept doc 1", vecs[1], out[1])

	if out, found, err := c.Get(nil); err != nil || found != 0 || len(out) != 0 {
		t.Fatalf("empty Get: %v %d %v", out, found, err)
	}
	if err := c.Put(nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestKey(t *testing.T) {
	a, b := KeyOf("hello"), KeyOf("hello ")
	if a == b {
		t.Fatal("different texts share a key")
	}
	// sha256("hello") = 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824
	if got := fmt.Sprintf("%x", a); got != "2cf24dba5fb0a30e26e83b2ac5b9e29e" {
		t.Fatalf("KeyOf(hello) = %s", got)
	}
}

func TestSurvivesReopen(t *testing.T) {
	const dim = 64
	dir := t.TempDir()
	keys, vecs := docs(0, 300, dim)
	c := mustOpen(t, dir, modelA, dim)
	mustPut(t, c, keys[:150], vecs[:150])
	mustPut(t, c, keys[150:], vecs[150:])
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	c = mustOpen(t, dir, strings.ToUpper(modelA), dim) // same hash, other case
	defer c.Close()
	mustLen(t, c, 300)
	out, found, err := c.Get(keys)
	if err != nil || found != 300 {
		t.Fatalf("after reopen: found %d, %v", found, err)
	}
	for i := range keys {
		checkVec(t, fmt.Sprintf("doc %d", i), vecs[i], out[i])
	}
	if err := c.Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestModelsAndMismatch(t *testing.T) {
	const dim = 16
	dir := t.TempDir()
	keys, vecs := docs(0, 10, dim)
	a := mustOpen(t, dir, modelA, dim)
	mustPut(t, a, keys, vecs)
	b := mustOpen(t, dir, modelB, dim)
	if a.Path() == b.Path() {
		t.Fatal("two models share a file")
	}
	if _, found, err := b.Get(keys); err != nil || found != 0 {
		t.Fatalf("model B sees model A's vectors: found %d, %v", found, err)
	}
	a.Close()
	b.Close()

	expect := func(err error, target error, path string) {
		t.Helper()
		if !errors.Is(err, target) || !strings.Contains(err.Error(), path) {
			t.Fatalf("got %v, want %v naming %s", err, target, path)
		}
	}
	_, err := Open(dir, modelA, 2*dim)
	expect(err, ErrMismatch, a.Path())

	// A file renamed to another model's name.
	other := filePath(dir, "abcdef")
	data, _ := os.ReadFile(a.Path())
	if err := os.WriteFile(other, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, "abcdef", dim)
	expect(err, ErrMismatch, other)

	// Another format version.
	db, err := bolt.Open(b.Path(), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bktMeta).Put(metaFormat, binary.BigEndian.AppendUint32(nil, FormatVersion+1))
	})
	db.Close()
	_, err = Open(dir, modelB, dim)
	expect(err, ErrMismatch, b.Path())

	// Someone else's bbolt file.
	foreign := filePath(dir, "f00d")
	db, err = bolt.Open(foreign, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err })
	db.Close()
	_, err = Open(dir, "f00d", dim)
	expect(err, ErrMismatch, foreign)

	// Model names that are not hex never reach the file system.
	for _, m := range []string{"", "../x", "abc/def", "xyz", strings.Repeat("a", 129)} {
		if _, err := Open(dir, m, dim); err == nil {
			t.Fatalf("Open(%q) succeeded", m)
		}
		if err := Remove(dir, m); err == nil {
			t.Fatalf("Remove(%q) succeeded", m)
		}
	}
	for _, d := range []int{0, -1, MaxDim + 1} {
		if _, err := Open(dir, modelA, d); err == nil {
			t.Fatalf("Open dim %d succeeded", d)
		}
	}
	// Mismatches left the files as they were.
	if got, _ := os.ReadFile(other); !bytes.Equal(got, data) {
		t.Fatal("mismatched file was modified")
	}
}

// build writes n docs of dim into a fresh cache file and returns its path.
func build(t *testing.T, dir string, n, dim int) (string, []Key, [][]float32) {
	t.Helper()
	c := mustOpen(t, dir, modelA, dim)
	keys, vecs := docs(0, n, dim)
	for i := 0; i < n; i += 100 {
		mustPut(t, c, keys[i:min(i+100, n)], vecs[i:min(i+100, n)])
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return c.Path(), keys, vecs
}

func expectCorrupt(t *testing.T, err error, path string) {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v, want ErrCorrupt naming %s", err, path)
	}
}

func TestCorruptFile(t *testing.T) {
	const dim = 64
	t.Run("random bytes", func(t *testing.T) {
		dir := t.TempDir()
		path := filePath(dir, modelA)
		junk := make([]byte, 64<<10)
		rand.NewChaCha8([32]byte{3, 4}).Read(junk)
		os.WriteFile(path, junk, 0o600)
		_, err := Open(dir, modelA, dim)
		expectCorrupt(t, err, path)
		if got, _ := os.ReadFile(path); !bytes.Equal(got, junk) {
			t.Fatal("corrupt file was overwritten")
		}
	})
	t.Run("short", func(t *testing.T) {
		dir := t.TempDir()
		path := filePath(dir, modelA)
		os.WriteFile(path, []byte("not bbolt"), 0o600)
		_, err := Open(dir, modelA, dim)
		expectCorrupt(t, err, path)
	})
	t.Run("truncated", func(t *testing.T) {
		dir := t.TempDir()
		path, _, _ := build(t, dir, 2000, dim)
		data, _ := os.ReadFile(path)
		for _, size := range []int{len(data) / 2, len(data) / 4, 3 * 4096, 4096 + 100, 100} {
			os.WriteFile(path, data[:size], 0o600)
			_, err := Open(dir, modelA, dim)
			expectCorrupt(t, err, path)
			// The lock was released: a second try fails the same way, not with ErrLocked.
			_, err = Open(dir, modelA, dim)
			expectCorrupt(t, err, path)
		}
		// Remove lets a fresh one start.
		if err := Remove(dir, modelA); err != nil {
			t.Fatal(err)
		}
		c := mustOpen(t, dir, modelA, dim)
		mustLen(t, c, 0)
		c.Close()
	})
	t.Run("damaged freelist", func(t *testing.T) {
		dir := t.TempDir()
		path, _, _ := build(t, dir, 500, dim)
		data, _ := os.ReadFile(path)
		f, _ := os.Open(path)
		m0, ok0 := metaAt(f, 0)
		m1, ok1 := metaAt(f, int64(m0.pageSize))
		f.Close()
		if !ok0 || !ok1 {
			t.Fatal("meta pages unreadable")
		}
		m := m0
		if m1.txn > m0.txn {
			m = m1
		}
		data[m.freelist*m.pageSize+8] ^= 0xff // page flags
		os.WriteFile(path, data, 0o600)
		for range 2 { // the first attempt must not leave the file locked
			_, err := Open(dir, modelA, dim)
			expectCorrupt(t, err, path)
			if !strings.Contains(err.Error(), "freelist") {
				t.Fatalf("error does not say what is damaged: %v", err)
			}
		}
	})
	t.Run("damaged record", func(t *testing.T) {
		dir := t.TempDir()
		path, keys, vecs := build(t, dir, 500, dim)
		data, _ := os.ReadFile(path)
		rec := make([]byte, BytesPerVector(dim))
		encodeRecord(rec, &keys[123], vecs[123])
		at := bytes.Index(data, rec)
		if at < 0 {
			t.Fatal("record not found in the file")
		}
		data[at+BytesPerVector(dim)/2] ^= 0x10
		os.WriteFile(path, data, 0o600)

		c := mustOpen(t, dir, modelA, dim) // structure intact: opens
		defer c.Close()
		if _, found, err := c.Get(keys[:100]); err != nil || found != 100 {
			t.Fatalf("intact records: found %d, %v", found, err)
		}
		out, _, err := c.Get(keys[120:130])
		expectCorrupt(t, err, path)
		if out != nil {
			t.Fatal("Get returned vectors along with ErrCorrupt")
		}
		// Sticky: no more reads or writes into a damaged file.
		_, _, err = c.Get(keys[:1])
		expectCorrupt(t, err, path)
		k2, v2 := docs(900, 901, dim)
		expectCorrupt(t, c.Put(k2, v2), path)
		expectCorrupt(t, c.Verify(), path)
	})
	t.Run("verify", func(t *testing.T) {
		dir := t.TempDir()
		path, keys, vecs := build(t, dir, 500, dim)
		data, _ := os.ReadFile(path)
		rec := make([]byte, BytesPerVector(dim))
		encodeRecord(rec, &keys[7], vecs[7])
		at := bytes.Index(data, rec)
		data[at] ^= 1 // the checksum itself
		os.WriteFile(path, data, 0o600)
		c := mustOpen(t, dir, modelA, dim)
		defer c.Close()
		expectCorrupt(t, c.Verify(), path)
	})
	// Random damage anywhere (meta pages included), sometimes also a cut:
	// every call may fail with ErrCorrupt (a scribbled meta bucket may read
	// as ErrMismatch) or miss, but none may panic, hang on a leaked lock or
	// return a wrong vector.
	t.Run("scribbled", func(t *testing.T) {
		dir := t.TempDir()
		path, keys, vecs := build(t, dir, 1000, dim)
		clean, _ := os.ReadFile(path)
		newKeys, newVecs := docs(5000, 5010, dim)
		damaged := func(err error) bool {
			if err == nil {
				return false
			}
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), path) {
				t.Fatalf("got %v, want ErrCorrupt or ErrMismatch naming the file", err)
			}
			return true
		}
		var failedOpen, failedLater int
		for seed := range uint64(300) {
			rng := rand.New(rand.NewPCG(seed, 1234))
			data := bytes.Clone(clean)
			lo := 0
			if seed%3 != 0 {
				lo = 2 * 4096 // spare the meta pages
			}
			for range 1 + rng.IntN(20) {
				at := lo + rng.IntN(len(data)-lo-4096)
				n := 1 + rng.IntN(8)
				if seed%2 == 0 {
					n = 1 + rng.IntN(4096)
				}
				for j := range n {
					data[at+j] = byte(rng.Uint32())
				}
			}
			if seed%5 == 0 {
				data = data[:rng.IntN(len(data))]
			}
			os.WriteFile(path, data, 0o600)
			c, err := Open(dir, modelA, dim)
			if damaged(err) {
				failedOpen++
				continue
			}
			out, _, err := c.Get(keys)
			for i, v := range out {
				if v != nil {
					checkVec(t, fmt.Sprintf("seed %d doc %d", seed, i), vecs[i], v)
				}
			}
			if damaged(err) || damaged(c.Verify()) || damaged(c.Put(newKeys, newVecs)) {
				failedLater++
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("of 300 damaged files %d failed Open and %d a later call", failedOpen, failedLater)
		if failedOpen == 0 || failedLater == 0 {
			t.Fatal("damage went unnoticed")
		}
	})
}

func TestRemove(t *testing.T) {
	const dim = 8
	dir := t.TempDir()
	path, keys, _ := build(t, dir, 10, dim)
	if err := Remove(dir, modelA); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file still there: %v", err)
	}
	if err := Remove(dir, modelA); err != nil {
		t.Fatalf("Remove of an absent file: %v", err)
	}
	if err := Remove(filepath.Join(dir, "no such dir"), modelA); err != nil {
		t.Fatalf("Remove in an absent folder: %v", err)
	}
	c := mustOpen(t, dir, modelA, dim)
	defer c.Close()
	mustLen(t, c, 0)
	if _, found, _ := c.Get(keys); found != 0 {
		t.Fatal("removed vectors came back")
	}
}

func TestPutValidation(t *testing.T) {
	const dim = 8
	c := mustOpen(t, t.TempDir(), modelA, dim)
	defer c.Close()
	keys, vecs := docs(0, 3, dim)
	bad := func(name string, keys []Key, vecs [][]float32) {
		t.Helper()
		err := c.Put(keys, vecs)
		if err == nil || !strings.Contains(err.Error(), c.Path()) {
			t.Fatalf("%s: Put returned %v", name, err)
		}
	}
	bad("short vector", keys, [][]float32{vecs[0], vecs[1][:dim-1], vecs[2]})
	bad("long vector", keys, [][]float32{vecs[0], vecs[1], append(vecs[2], 1)})
	bad("count mismatch", keys, vecs[:2])
	nan := append([]float32(nil), vecs[1]...)
	nan[3] = float32(math.NaN())
	bad("NaN", keys, [][]float32{vecs[0], nan, vecs[2]})
	inf := append([]float32(nil), vecs[1]...)
	inf[0] = float32(math.Inf(-1))
	bad("Inf", keys, [][]float32{vecs[0], inf, vecs[2]})
	mustLen(t, c, 0) // nothing of a rejected batch is stored
	mustPut(t, c, keys, vecs)
	mustLen(t, c, 3)
}

func TestLockedAndClosed(t *testing.T) {
	defer func(d time.Duration) { lockTimeout = d }(lockTimeout)
	lockTimeout = 200 * time.Millisecond
	dir := t.TempDir()
	c := mustOpen(t, dir, modelA, 8)
	start := time.Now()
	_, err := Open(dir, modelA, 8)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), c.Path()) {
		t.Fatalf("second Open: %v, want ErrLocked naming the file", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second Open took %s", d)
	}
	c.Close()
	if _, _, err := c.Get([]Key{KeyOf("x")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if err := c.Put([]Key{KeyOf("x")}, [][]float32{make([]float32, 8)}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
	if _, err := c.Len(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Len after Close: %v", err)
	}
	c = mustOpen(t, dir, modelA, 8) // the lock went with Close
	c.Close()
}

// Open's unlocked preflight must not mistake a file that another Cache is
// writing for a damaged one.
func TestOpenWhileWriting(t *testing.T) {
	defer func(d time.Duration) { lockTimeout = d }(lockTimeout)
	lockTimeout = 20 * time.Millisecond
	const dim = 64
	dir := t.TempDir()
	c := mustOpen(t, dir, modelA, dim)
	done := make(chan struct{})
	var puts atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i += 20 {
			select {
			case <-done:
				return
			default:
			}
			keys, vecs := docs(i, i+20, dim)
			if err := c.Put(keys, vecs); err != nil {
				t.Error(err)
				return
			}
			puts.Add(1)
		}
	})
	opens := 0
	for ; opens < 100 || puts.Load() < 50; opens++ {
		if _, err := Open(dir, modelA, dim); !errors.Is(err, ErrLocked) {
			t.Errorf("Open of a file in use: %v, want ErrLocked", err)
			break
		}
	}
	close(done)
	wg.Wait()
	c.Close()
	t.Logf("%d Opens during %d Puts", opens, puts.Load())
}

func TestConcurrent(t *testing.T) {
	const dim, writers, batches, batch, readers = 32, 4, 15, 10, 4
	c := mustOpen(t, t.TempDir(), modelA, dim)
	defer c.Close()
	total := writers * batches * batch
	keys, vecs := docs(0, total, dim)
	var wg sync.WaitGroup
	errs := make(chan error, writers+readers)
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				lo := (w*batches + b) * batch
				// Overlap with the previous batch: concurrent duplicate puts.
				if err := c.Put(keys[max(lo-3, 0):lo+batch], vecs[max(lo-3, 0):lo+batch]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	done := make(chan struct{})
	var rwg sync.WaitGroup
	for r := range readers {
		rwg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			for {
				select {
				case <-done:
					return
				default:
				}
				idx := make([]int, 20)
				ask := make([]Key, 20)
				for j := range idx {
					idx[j] = rng.IntN(total)
					ask[j] = keys[idx[j]]
				}
				out, _, err := c.Get(ask)
				if err != nil {
					errs <- err
					return
				}
				for j, v := range out {
					if v == nil {
						continue
					}
					if err := vecErr(fmt.Sprintf("doc %d", idx[j]), vecs[idx[j]], v); err != nil {
						errs <- err
						return
					}
				}
				if _, err := c.Len(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	rwg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	mustLen(t, c, total)
	if _, found, err := c.Get(keys); err != nil || found != total {
		t.Fatalf("found %d of %d, %v", found, total, err)
	}
	if err := c.Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestPageSizeFor(t *testing.T) {
	if os.Getpagesize() != 4096 {
		t.Skip("page sizes below assume 4 KiB OS pages")
	}
	for dim, want := range map[int]int{384: 4096, 768: 8192, 1024: 32768, 1536: 16384, 4096: 65536, 100000: 65536} {
		if got := pageSizeFor(dim); got != want {
			t.Errorf("pageSizeFor(%d) = %d, want %d", dim, got, want)
		}
	}
}

// Bytes on disk per stored document, 5,000 docs of dim 384 put in batches
// of 100 (how the indexer fills it).
func TestBytesPerDoc(t *testing.T) {
	const n, dim = 5000, 384
	dir := t.TempDir()
	c := mustOpen(t, dir, modelA, dim)
	keys, vecs := docs(0, n, dim)
	for i := 0; i < n; i += 100 {
		mustPut(t, c, keys[i:i+100], vecs[i:i+100])
	}
	var used int64
	c.db.View(func(tx *bolt.Tx) error { used = tx.Size(); return nil })
	c.Close()
	info, err := os.Stat(c.Path())
	if err != nil {
		t.Fatal(err)
	}
	perDoc := float64(info.Size()) / n
	t.Logf("dim %d, %d docs: file %d bytes = %.0f bytes/doc (pages in use %.0f bytes/doc; record %d; float32 would be %d; page size %d)",
		dim, n, info.Size(), perDoc, float64(used)/n, BytesPerVector(dim), 4*dim, pageSizeFor(dim))
	if perDoc >= 4*dim {
		t.Fatalf("%.0f bytes per doc: not smaller than float32 (%d)", perDoc, 4*dim)
	}
}

func BenchmarkGet100(b *testing.B) {
	const n, dim = 10000, 384
	c := mustOpen(b, b.TempDir(), modelA, dim)
	defer c.Close()
	keys, vecs := docs(0, n, dim)
	for i := 0; i < n; i += 500 {
		mustPut(b, c, keys[i:i+500], vecs[i:i+500])
	}
	rng := rand.New(rand.NewPCG(5, 6))
	ask := make([]Key, 100)
	b.ReportAllocs()
	for b.Loop() {
		for j := range ask {
			ask[j] = keys[rng.IntN(n)]
		}
		if _, found, err := c.Get(ask); err != nil || found != len(ask) {
			b.Fatal(found, err)
		}
	}
}

func BenchmarkPut(b *testing.B) {
	const dim = 384
	for _, batch := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			c := mustOpen(b, b.TempDir(), modelA, dim)
			defer c.Close()
			vec := docVec(0, dim)
			keys := make([]Key, batch)
			vecs := make([][]float32, batch)
			next := 0
			for b.Loop() {
				for j := range keys {
					keys[j] = KeyOf(docText(next))
					vecs[j] = vec
					next++
				}
				mustPut(b, c, keys, vecs)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(next), "ns/doc")
		})
	}
}
