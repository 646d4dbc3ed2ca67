package clicklog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func TestSideBuckets(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	if err := s.ViewBucket("registry", func(Bucket) error { return nil }); !errors.Is(err, ErrNoBucket) {
		t.Fatalf("view before any write: %v, want ErrNoBucket", err)
	}
	for _, name := range []string{"", "searches", "by_time", "clicks"} {
		if err := s.UpdateBucket(name, func(Bucket) error { return nil }); err == nil {
			t.Errorf("UpdateBucket(%q) accepted", name)
		}
	}
	put := func(k, v string) error {
		return s.UpdateBucket("registry", func(b Bucket) error { return b.Put([]byte(k), []byte(v)) })
	}
	if err := put("a", "1"); err != nil {
		t.Fatal(err)
	}
	// A failing fn leaves nothing behind.
	boom := errors.New("boom")
	err := s.UpdateBucket("registry", func(b Bucket) error {
		if err := b.Put([]byte("b"), []byte("2")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("update error %v, want boom", err)
	}

	// Side writes and log writes interleave without loss.
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 20 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs <- s.LogSearch(context.Background(), search(fmt.Sprintf("s%d", i), t0, "d1"))
		}()
		go func() {
			defer wg.Done()
			errs <- put(fmt.Sprintf("k%02d", i), "x")
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := put("c", "3"); !errors.Is(err, ErrClosed) {
		t.Fatalf("update after close: %v, want ErrClosed", err)
	}

	s = openTest(t, dir, Options{})
	var keys []string
	err = s.ViewBucket("registry", func(b Bucket) error {
		return b.ForEach(func(k, _ []byte) error { keys = append(keys, string(k)); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 21 || keys[0] != "a" || keys[1] != "k00" {
		t.Fatalf("after reopen the bucket holds %v; want a and k00..k19", keys)
	}
	if n := len(exportAll(t, s, t0)); n != 20 {
		t.Fatalf("export after side writes: %d searches, want 20", n)
	}
}
