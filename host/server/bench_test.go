package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/host/search"
)

// The load benchmark runs against full SciFact (5,183 documents) when the
// shared data folder is present; set RERANK_BENCH_SCIFACT to point elsewhere.
//
//	go test ./host/server -run '^$' -bench SearchLoopback -benchtime 3000x
//
// Three hosts run side by side on loopback: bm25 (no click log), log (the
// impression is queued for the next group commit, the default) and
// durable-log (the answer waits for the impression's fsync). Requests go to
// them in blocks of 100, rotating, so a noisy neighbour slows all three
// alike; b.N is the searches per host. Loads: closed loop with 1 and 8
// clients, and open loop at a fixed arrival rate (latency counted from the
// scheduled arrival, so queueing cannot hide). Reported per host: p50 and p99
// latency and searches/s, and the log's added p50 latency in percent.
func scifactDir() string {
	if d := os.Getenv("RERANK_BENCH_SCIFACT"); d != "" {
		return d
	}
	return "../../../shared/datasets/scifact"
}

var (
	benchOnce    sync.Once
	benchIx      *search.Index
	benchQueries []string
	benchErr     error
)

func benchSetup(b *testing.B) (*search.Index, []string) {
	dir := scifactDir()
	if _, err := os.Stat(filepath.Join(dir, "corpus.jsonl")); err != nil {
		b.Skipf("SciFact not found at %s (set RERANK_BENCH_SCIFACT)", dir)
	}
	benchOnce.Do(func() {
		if benchErr = search.SetBM25(0.9, 0.4); benchErr != nil {
			return
		}
		tmp, err := os.MkdirTemp("", "bench-index-")
		if err != nil {
			benchErr = err
			return
		}
		idx := filepath.Join(tmp, "index")
		benchErr = search.Build(context.Background(), idx, func(fn func(dataset.Doc) error) error {
			return dataset.ReadCorpus(filepath.Join(dir, "corpus.jsonl"), fn)
		}, search.Options{}, nil)
		if benchErr != nil {
			return
		}
		if benchIx, benchErr = search.Open(idx); benchErr != nil {
			return
		}
		b, err := dataset.OpenBEIR(dir)
		if err != nil {
			benchErr = err
			return
		}
		qs, _, err := b.SplitQueries("test")
		for _, q := range qs {
			benchQueries = append(benchQueries, q.Text)
		}
		benchErr = err
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchIx, benchQueries
}

const benchBlock = 100

func BenchmarkSearchLoopback(b *testing.B) {
	ix, queries := benchSetup(b)
	modes := []struct {
		name         string
		log, durable bool
	}{{"bm25", false, false}, {"log", true, false}, {"durable", true, true}}
	for _, load := range []string{"clients=1", "clients=8", "rate=150/s"} {
		b.Run(load, func(b *testing.B) {
			urls := make([]string, len(modes))
			for m, mode := range modes {
				urls[m] = start(b, setup{ix: ix, noLog: !mode.log, config: func(c *configs.Config) { c.ClickLog.DurableSearches = mode.durable }}).url
			}
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			var failed atomic.Int64
			get := func(base string, i int) {
				resp, err := client.Get(base + "/search?" + url.Values{"q": {queries[i%len(queries)]}, "size": {"10"}}.Encode())
				if err != nil {
					failed.Add(1)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
			}
			for _, u := range urls { // warm connections and caches
				for i := range benchBlock {
					get(u, i)
				}
			}
			lat := make([][]time.Duration, len(modes))
			busy := make([]time.Duration, len(modes))
			b.ResetTimer()
			for done := 0; done < b.N; done += benchBlock {
				n := min(benchBlock, b.N-done)
				for m, u := range urls {
					block := make([]time.Duration, n)
					began := time.Now()
					runBlock(load, n, func(i int, since time.Time) {
						get(u, done+i)
						block[i] = time.Since(since)
					})
					busy[m] += time.Since(began)
					lat[m] = append(lat[m], block...)
				}
			}
			b.StopTimer()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d searches failed", n)
			}
			p50 := make([]float64, len(modes))
			for m, mode := range modes {
				slices.Sort(lat[m])
				p50[m] = float64(lat[m][len(lat[m])/2].Microseconds()) / 1000
				b.ReportMetric(p50[m], mode.name+"_p50_ms")
				b.ReportMetric(float64(lat[m][len(lat[m])*99/100].Microseconds())/1000, mode.name+"_p99_ms")
				b.ReportMetric(float64(len(lat[m]))/busy[m].Seconds(), mode.name+"_searches/s")
			}
			b.ReportMetric(100*(p50[1]/p50[0]-1), "log_added_p50_%")
			b.ReportMetric(100*(p50[2]/p50[0]-1), "durable_added_p50_%")
			b.ReportMetric(0, "ns/op") // wall time over three hosts means nothing here
		})
	}
}

// runBlock sends n requests with the load's pattern; do gets the request's
// number and the time its latency counts from.
func runBlock(load string, n int, do func(i int, since time.Time)) {
	var clients, rate int
	var wg sync.WaitGroup
	if _, err := fmt.Sscanf(load, "clients=%d", &clients); err == nil {
		var next atomic.Int64
		for range clients {
			wg.Go(func() {
				for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
					do(i, time.Now())
				}
			})
		}
		wg.Wait()
		return
	}
	fmt.Sscanf(load, "rate=%d/s", &rate)
	began := time.Now()
	for i := range n {
		due := began.Add(time.Duration(i) * time.Second / time.Duration(rate))
		time.Sleep(time.Until(due))
		wg.Go(func() { do(i, due) })
	}
	wg.Wait()
}
