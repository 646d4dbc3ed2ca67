package clicklog

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Durable-write benchmarks. Each op is one LogSearch (a 10-result page) or
// LogClick acknowledged after fsync, so the numbers depend on the disk:
// CLICKLOG_BENCH_DIR picks the folder (default: the test's temp folder; a
// tmpfs there would make fsync free and the numbers meaningless).
//
//	go test -run '^$' -bench . -benchtime 2000x ./host/clicklog/
//
// ns/op is wall time per event over all writers (1/throughput); p50/p99 are
// per-call latencies; events/commit shows how much group commit folded.
// "each" is a transaction per event, "boltbatch" bbolt's timer-based Batch
// (default 10 ms window), "group" this package's committer.

func benchDir(b *testing.B) string {
	if d := os.Getenv("CLICKLOG_BENCH_DIR"); d != "" {
		dir, err := os.MkdirTemp(d, "clicklog-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return b.TempDir()
}

var benchModes = []struct {
	name string
	mode commitMode
}{{"group", commitGroup}, {"each", commitEach}, {"boltbatch", commitBoltBatch}}

func BenchmarkLogSearch(b *testing.B) {
	for _, m := range benchModes {
		for _, writers := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/writers=%d", m.name, writers), func(b *testing.B) {
				var seq atomic.Int64
				runWriters(b, m.mode, writers, func(s *Store) error {
					i := seq.Add(1)
					return s.LogSearch(context.Background(), benchImpression(fmt.Sprintf("b%d", i)))
				})
			})
		}
	}
}

// BenchmarkSubmitSearch times what a server that answers before the fsync
// pays per search: checking, encoding and queueing the impression. The
// commits are awaited off the clock, after the loop.
func BenchmarkSubmitSearch(b *testing.B) {
	for _, writers := range []int{1, 16} {
		b.Run(fmt.Sprintf("group/writers=%d", writers), func(b *testing.B) {
			var seq atomic.Int64
			pending := make(chan *Pending, b.N)
			runWriters(b, commitGroup, writers, func(s *Store) error {
				p, err := s.SubmitSearch(context.Background(), benchImpression(fmt.Sprintf("b%d", seq.Add(1))))
				pending <- p
				return err
			})
			close(pending)
			for p := range pending {
				if err := p.Wait(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkLogClick(b *testing.B) {
	for _, writers := range []int{1, 16} {
		b.Run(fmt.Sprintf("group/writers=%d", writers), func(b *testing.B) {
			var seq atomic.Int64
			runWriters(b, commitGroup, writers, func(s *Store) error {
				// 10 clicks per search, spread over its results, as a busy page might get.
				i := seq.Add(1)
				return s.LogClick(context.Background(), Click{
					SearchID: fmt.Sprintf("b%d", i/10), DocID: fmt.Sprintf("doc-%d", i%10),
					DwellMS: 1200, EventID: fmt.Sprintf("e%d", i),
				})
			}, func(s *Store) { // the searches clicked on, not timed
				var wg sync.WaitGroup
				for w := range 16 {
					wg.Go(func() {
						for i := w; i <= b.N/10; i += 16 {
							if err := s.LogSearch(context.Background(), benchImpression(fmt.Sprintf("b%d", i))); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
			})
		})
	}
}

func benchImpression(id string) Impression {
	imp := Impression{SearchID: id, Query: "what causes heart attacks in young adults", UserID: "user-1234",
		SessionID: "session-5678", ModelVersion: "v7", Arm: "control", Reranked: true}
	for p := range 10 {
		imp.Results = append(imp.Results, Shown{DocID: fmt.Sprintf("doc-%d", p), Position: p + 1,
			BM25: 12.5 - float64(p), Rerank: 3.25 - float64(p)/4, HasRerank: true, Team: "control"})
	}
	return imp
}

// runWriters runs b.N calls of op from the given number of goroutines and
// reports throughput, latency percentiles and events per commit. setup runs
// before the clock starts.
func runWriters(b *testing.B, mode commitMode, writers int, op func(*Store) error, setup ...func(*Store)) {
	var commits, committed atomic.Int64
	s, err := Open(benchDir(b), Options{commit: mode, OnCommit: func(c CommitStat) {
		commits.Add(1)
		committed.Add(int64(c.Events))
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for _, f := range setup {
		f(s)
	}
	commits.Store(0)
	committed.Store(0)
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	for range writers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t := time.Now()
				if err := op(s); err != nil {
					failed.Store(err)
					return
				}
				lat[i] = time.Since(t)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	if c := commits.Load(); c > 0 {
		b.ReportMetric(float64(committed.Load())/float64(c), "events/commit")
	}
}
