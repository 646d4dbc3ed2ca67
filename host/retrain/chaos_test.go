package retrain_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rerankloop/rerank/finetune/impression"
	"github.com/rerankloop/rerank/host/clicklog"
	"github.com/rerankloop/rerank/host/registry"
	"github.com/rerankloop/rerank/plugin/checkpoint"
)

// BenchmarkChaos drives searches and clicks at a steady rate against a real
// host (bleve index, click log, registry, plugin process) while it kills the
// plugin with SIGKILL, freezes it with SIGSTOP, swaps the serving model and
// sends bursts of requests that give up at once, then prints what happened:
//
//	eval "$(make -s env)"; go test ./host/retrain -run '^$' -bench Chaos -benchtime 1x
//
// RERANK_CHAOS_SECONDS sets the length (default 40). No search may fail and
// every acknowledged click must be in the log afterwards.
func BenchmarkChaos(b *testing.B) {
	seconds := 40
	if v := os.Getenv("RERANK_CHAOS_SECONDS"); v != "" {
		fmt.Sscan(v, &seconds)
	}
	for range b.N {
		chaos(b, time.Duration(seconds)*time.Second)
	}
}

type chaosStats struct {
	sent, answered, reranked, failed atomic.Int64
	clicksAcked                      atomic.Int64
	lastReranked                     atomic.Int64 // unix nanoseconds
	longestGap                       atomic.Int64 // nanoseconds without a reranked search
}

func chaos(b *testing.B, length time.Duration) {
	cfg := testConfig(b)
	cfg.Rerank.Deadline = 500 * time.Millisecond // production's search deadline
	cfg.HTTP.ClickRate = 0                       // one address sends every click here
	h := startHost(b, b.TempDir(), cfg)
	// A second version to swap with.
	other := filepath.Join(b.TempDir(), "v2")
	if err := checkpoint.WriteRandom(other, checkpoint.TinyConfig(), 2); err != nil {
		b.Fatal(err)
	}
	hash, _ := checkpoint.Hash(other)
	if _, err := h.reg.Register(registry.Version{Checkpoint: other, CheckpointHash: hash, Parent: "v1", Note: "chaos"}); err != nil {
		b.Fatal(err)
	}

	var st chaosStats
	st.lastReranked.Store(time.Now().UnixNano())
	var mu sync.Mutex
	var acked []clicklog.Click
	queries := []string{"stem cells", "vitamin D", "cancer risk", "insulin resistance", "gene expression", "immune response"}
	client := &http.Client{Timeout: 10 * time.Second}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			tick := time.NewTicker(50 * time.Millisecond) // 4 x 20 searches a second
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				st.sent.Add(1)
				body, _ := json.Marshal(map[string]any{"query": queries[(w+i)%len(queries)], "size": 5, "k": 10})
				resp, err := client.Post(h.http.URL+"/search", "application/json", bytes.NewReader(body))
				if err != nil {
					st.failed.Add(1)
					continue
				}
				var res struct {
					SearchID string `json:"search_id"`
					Reranked bool   `json:"reranked"`
					Hits     []struct {
						ID string `json:"id"`
					} `json:"hits"`
				}
				err = json.NewDecoder(resp.Body).Decode(&res)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					st.failed.Add(1)
					continue
				}
				st.answered.Add(1)
				now := time.Now().UnixNano()
				if res.Reranked {
					st.reranked.Add(1)
					if gap := now - st.lastReranked.Swap(now); gap > st.longestGap.Load() {
						st.longestGap.Store(gap)
					}
				}
				if len(res.Hits) == 0 {
					continue
				}
				c := clicklog.Click{SearchID: res.SearchID, DocID: res.Hits[0].ID, Position: 1}
				cb, _ := json.Marshal(map[string]any{"search_id": c.SearchID, "doc_id": c.DocID, "position": 1})
				cr, err := client.Post(h.http.URL+"/click", "application/json", bytes.NewReader(cb))
				if err == nil {
					cr.Body.Close()
					if cr.StatusCode == http.StatusOK {
						st.clicksAcked.Add(1)
						mu.Lock()
						acked = append(acked, c)
						mu.Unlock()
					}
				}
			}
		})
	}

	actions := []struct {
		name string
		do   func() error
	}{
		{"kill -9 the plugin", func() error { return syscall.Kill(h.pc.PID(), syscall.SIGKILL) }},
		{"swap to v2", func() error { return h.swap("v2") }},
		{"SIGSTOP the plugin", func() error { return syscall.Kill(h.pc.PID(), syscall.SIGSTOP) }},
		{"swap to v1", func() error { return h.swap("v1") }},
		{"30 cancelled /v1/rerank calls", func() error {
			for range 30 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.http.URL+"/v1/rerank",
					strings.NewReader(`{"query":"stem cells","documents":["a stem cell study","weather in Paris"]}`))
				req.Header.Set("Content-Type", "application/json")
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
				cancel()
			}
			return nil
		}},
	}
	start := time.Now()
	for i := 0; time.Since(start) < length; i++ {
		time.Sleep(4 * time.Second)
		a := actions[i%len(actions)]
		for h.pc.PID() == 0 { // restarting: act on the next plugin
			time.Sleep(50 * time.Millisecond)
		}
		err := a.do()
		b.Logf("%5.1fs %s: %v", time.Since(start).Seconds(), a.name, err)
	}
	time.Sleep(6 * time.Second) // the last action settles
	close(stop)
	wg.Wait()
	if gap := time.Now().UnixNano() - st.lastReranked.Load(); gap > st.longestGap.Load() {
		st.longestGap.Store(gap)
	}

	// Every acknowledged click is in the log, with its search.
	h.waitLogged(int(st.answered.Load()))
	var buf bytes.Buffer
	if err := h.store.Export(context.Background(), time.Time{}, &buf); err != nil {
		b.Fatal(err)
	}
	found := map[[2]string]bool{}
	impression.Read(&buf, func(e impression.Impression) error {
		for _, r := range e.Results {
			if r.Clicked {
				found[[2]string{e.SearchID, r.DocID}] = true
			}
		}
		return nil
	})
	missing := 0
	for _, c := range acked {
		if !found[[2]string{c.SearchID, c.DocID}] {
			missing++
		}
	}
	b.Logf("searches sent %d, answered %d, reranked %d, failed %d; clicks acknowledged %d, found after the run %d; plugin restarts %d; longest time without reranking %v",
		st.sent.Load(), st.answered.Load(), st.reranked.Load(), st.failed.Load(), st.clicksAcked.Load(), len(acked)-missing,
		h.pc.Restarts(), time.Duration(st.longestGap.Load()).Round(time.Millisecond))
	b.ReportMetric(float64(st.failed.Load()), "failed")
	b.ReportMetric(float64(missing), "clicks-lost")
	b.ReportMetric(time.Duration(st.longestGap.Load()).Seconds(), "s-without-rerank")
	if st.failed.Load() > 0 || missing > 0 {
		b.Errorf("%d searches failed, %d acknowledged clicks lost", st.failed.Load(), missing)
	}
}

// swap serves version through the admin API.
func (h *host) swap(version string) error {
	if code := h.call(http.MethodPost, "/admin/swap", map[string]string{"version": version}, nil); code != http.StatusOK {
		return fmt.Errorf("swap to %s: status %d", version, code)
	}
	return nil
}
