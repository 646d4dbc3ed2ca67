package cli

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/host/opensearch"
)

// TestOpenSearchLoad measures searches through OpenSearch alone and through
// its rerank pipeline (our server, tiny model, real plugin) at windows 20 and
// 50, on 127.0.0.1, and prints both sides and the ratio. It runs with
// RERANK_OPENSEARCH_LOAD=1 (make bench-opensearch): a bounded loop of
// RERANK_OPENSEARCH_LOAD_SEARCHES searches per side (default 300) for 1 and 4
// clients, the sides taking turns in blocks of 25 so that load from elsewhere
// on the machine hits them alike.
func TestOpenSearchLoad(t *testing.T) {
	if os.Getenv("RERANK_OPENSEARCH_LOAD") != "1" {
		t.Skip("set RERANK_OPENSEARCH_LOAD=1 (make bench-opensearch) to measure")
	}
	total := 300
	if v := os.Getenv("RERANK_OPENSEARCH_LOAD_SEARCHES"); v != "" {
		fmt.Sscan(v, &total)
	}
	nd, _, _ := rerankStage(t)
	c := nd.client
	queries, _ := testQueries(t)

	type side struct {
		name     string
		pipeline string
		window   int
	}
	var out strings.Builder
	fmt.Fprintf(&out, "OpenSearch 2.19.1 on 127.0.0.1, SciFact sample (1,000 documents), %d test queries in turn, %d searches per side, tiny cross-encoder\n", len(queries), total)
	fmt.Fprintf(&out, "%-8s %-26s %8s %8s %10s %22s\n", "clients", "side", "p50 ms", "p99 ms", "searches/s", "vs alone: p50, rate")
	for _, window := range []int{20, 50} {
		sides := []side{{"OpenSearch alone", "", window}, {fmt.Sprintf("+ rerank, window %d", window), "rerankloop", window}}
		for _, clients := range []int{1, 4} {
			lat := make([][]time.Duration, len(sides))
			busy := make([]time.Duration, len(sides))
			const block = 25
			next := 0
			for done := 0; done < total; done += block {
				n := min(block, total-done)
				for i, s := range sides {
					d, l := runBlock(t, c, s.pipeline, s.window, queries, next, n, clients)
					busy[i] += d
					lat[i] = append(lat[i], l...)
				}
				next += n
			}
			var aloneP50, aloneRate float64
			for i, s := range sides {
				p50, p99 := pct(lat[i], 0.50), pct(lat[i], 0.99)
				rate := float64(len(lat[i])) / busy[i].Seconds()
				ratio := ""
				if i == 0 {
					aloneP50, aloneRate = ms(p50), rate
				} else {
					ratio = fmt.Sprintf("x%.2f, x%.2f", ms(p50)/aloneP50, rate/aloneRate)
				}
				fmt.Fprintf(&out, "%-8d %-26s %8.1f %8.1f %10.1f %22s\n", clients, s.name, ms(p50), ms(p99), rate, ratio)
			}
		}
	}
	t.Log("\n" + out.String())
	fmt.Print(out.String())
}

// runBlock sends n searches (queries from start on, cyclically) with the given
// number of concurrent clients and returns the wall time and each latency.
func runBlock(t *testing.T, c *opensearch.Client, pipeline string, window int, qs []dataset.Query, start, n, clients int) (time.Duration, []time.Duration) {
	var (
		mu   sync.Mutex
		lat  []time.Duration
		wg   sync.WaitGroup
		next = make(chan int)
		errs = make(chan error, clients)
	)
	begin := time.Now()
	for range clients {
		wg.Go(func() {
			for i := range next {
				q := qs[i%len(qs)]
				t0 := time.Now()
				_, err := c.Search(context.Background(), osIndex, pipeline, opensearch.MatchQuery("text", q.Text, window, pipeline != ""))
				d := time.Since(t0)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		})
	}
	for i := start; i < start+n; i++ {
		select {
		case next <- i:
		case err := <-errs:
			close(next)
			wg.Wait()
			t.Fatal(err)
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	return time.Since(begin), lat
}

func pct(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
