package simulate

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/rerankloop/rerank/evalharness/dataset"
)

// Config is one simulation run.
type Config struct {
	// Host is the base URL of the host, e.g. http://127.0.0.1:8080. Only
	// loopback addresses are accepted: the simulator is a load generator.
	Host    string
	Queries []dataset.Query
	Qrels   dataset.Qrels
	// Users is how many distinct users issue the searches (ids
	// "sim<seed>-u<i>", so split tests can assign them).
	Users int
	// Searches is how many searches to run; 0 runs every query once. Queries
	// are taken in a seeded random order, reshuffled after each pass.
	Searches int
	// Concurrency is how many users search at once (default 4).
	Concurrency int
	// Size is the results asked per search (default 10).
	Size      int
	Seed      uint64
	Behaviour Behaviour
	// Progress, when set, is called after each search with the count done.
	Progress func(done int)
}

// Summary is what a run did.
type Summary struct {
	Searches       int `json:"searches"`        // answered
	FailedSearches int `json:"failed_searches"` // refused or unreachable
	NotLogged      int `json:"not_logged"`      // answered with "logged": false (no clicks possible)
	Reranked       int `json:"reranked"`
	Clicks         int `json:"clicks"`
	FailedClicks   int `json:"failed_clicks"`
	RelevantClicks int `json:"relevant_clicks"`
	// SearchesWithClicks counts searches with at least one click.
	SearchesWithClicks int `json:"searches_with_clicks"`
	// ShownByRank and ClicksByRank are indexed by rank - 1.
	ShownByRank  []int `json:"shown_by_rank"`
	ClicksByRank []int `json:"clicks_by_rank"`
	// Versions counts searches per model version named in the response
	// ("" for BM25 order).
	Versions map[string]int `json:"versions"`
	// Search latency seen by the users.
	LatencyP50 time.Duration `json:"latency_p50"`
	LatencyP99 time.Duration `json:"latency_p99"`
	LatencyMax time.Duration `json:"latency_max"`
	Elapsed    time.Duration `json:"elapsed"`
	// FirstError describes the first failed request, if any.
	FirstError string `json:"first_error,omitempty"`
}

// CTR is clicks over results shown.
func (s Summary) CTR() float64 {
	shown := 0
	for _, n := range s.ShownByRank {
		shown += n
	}
	if shown == 0 {
		return 0
	}
	return float64(s.Clicks) / float64(shown)
}

// Failed is the number of failed requests.
func (s Summary) Failed() int { return s.FailedSearches + s.FailedClicks }

// planned is one search decided up front, so that a seed gives the same
// queries, users and click decisions whatever the concurrency.
type planned struct {
	n     int
	query dataset.Query
	user  string
	seed  uint64
}

// Run simulates the users. It returns the summary of what was done even when
// it also returns an error: ctx ended, or not one search succeeded. Failed
// requests are counted, not fatal (a load test wants to know how many).
func Run(ctx context.Context, cfg Config) (Summary, error) {
	if err := cfg.check(); err != nil {
		return Summary{}, err
	}
	base, err := LoopbackURL(cfg.Host)
	if err != nil {
		return Summary{}, err
	}
	maxGrade := 0
	for _, docs := range cfg.Qrels {
		for _, g := range docs {
			maxGrade = max(maxGrade, g)
		}
	}
	conc := cmp.Or(cfg.Concurrency, 4)
	r := &runner{
		cfg: cfg, base: base, maxGrade: maxGrade, size: cmp.Or(cfg.Size, 10),
		client: LoopbackClient(conc),
		sum:    Summary{Versions: map[string]int{}},
	}
	r.sum.ShownByRank = make([]int, r.size)
	r.sum.ClicksByRank = make([]int, r.size)

	plan := cfg.plan()
	work := make(chan planned)
	var wg sync.WaitGroup
	start := time.Now()
	for range min(conc, len(plan)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				r.search(ctx, p)
			}
		}()
	}
feed:
	for _, p := range plan {
		select {
		case work <- p:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	r.sum.Elapsed = time.Since(start)
	r.finishLatency()
	switch {
	case ctx.Err() != nil:
		return r.sum, fmt.Errorf("simulation stopped after %d searches: %w", r.sum.Searches+r.sum.FailedSearches, ctx.Err())
	case r.sum.Searches == 0:
		return r.sum, fmt.Errorf("no search succeeded (%d failed): %s", r.sum.FailedSearches, r.sum.FirstError)
	}
	return r.sum, nil
}

func (c Config) check() error {
	switch {
	case c.Host == "":
		return errors.New("no host URL")
	case len(c.Queries) == 0:
		return errors.New("no queries")
	case c.Users < 1:
		return fmt.Errorf("users %d: want at least 1", c.Users)
	case c.Searches < 0:
		return fmt.Errorf("searches %d: want 0 (each query once) or more", c.Searches)
	case c.Concurrency < 0 || c.Concurrency > 256:
		return fmt.Errorf("concurrency %d: want 1 to 256", c.Concurrency)
	case c.Size < 0 || c.Size > 100:
		return fmt.Errorf("size %d: want 1 to 100", c.Size)
	}
	return c.Behaviour.Check()
}

// plan draws every search's query, user and click seed from the run's seed.
func (c Config) plan() []planned {
	rng := rand.New(rand.NewPCG(c.Seed, 0x5eed))
	n := c.Searches
	if n == 0 {
		n = len(c.Queries)
	}
	out := make([]planned, n)
	var order []int
	for i := range out {
		if i%len(c.Queries) == 0 {
			order = rng.Perm(len(c.Queries))
		}
		out[i] = planned{
			n:     i,
			query: c.Queries[order[i%len(c.Queries)]],
			user:  fmt.Sprintf("sim%d-u%d", c.Seed, rng.IntN(c.Users)),
			seed:  rng.Uint64(),
		}
	}
	return out
}

type runner struct {
	cfg      Config
	base     *url.URL
	client   *http.Client
	maxGrade int
	size     int

	mu        sync.Mutex
	sum       Summary
	latencies []time.Duration
}

// searchResponse is the part of the host's /search answer the users read.
type searchResponse struct {
	SearchID     string `json:"search_id"`
	Reranked     bool   `json:"reranked"`
	ModelVersion string `json:"model_version"`
	Logged       bool   `json:"logged"`
	Hits         []struct {
		ID   string `json:"id"`
		Rank int    `json:"rank"`
	} `json:"hits"`
}

func (r *runner) search(ctx context.Context, p planned) {
	t := time.Now()
	var resp searchResponse
	err := r.post(ctx, "/search", map[string]any{"query": p.query.Text, "size": r.size, "user": p.user}, &resp)
	lat := time.Since(t)
	if err != nil {
		r.fail(&r.sum.FailedSearches, fmt.Errorf("search %q: %w", p.query.ID, err))
		r.progress()
		return
	}
	judged := r.cfg.Qrels[p.query.ID]
	grades := make([]int, len(resp.Hits))
	for i, h := range resp.Hits {
		grades[i] = judged[h.ID]
	}
	var clicks []Click
	if resp.Logged {
		clicks = r.cfg.Behaviour.Clicks(grades, r.maxGrade, rand.New(rand.NewPCG(p.seed, uint64(p.n))))
	}
	clicked := make([]bool, len(clicks))
	for i, c := range clicks {
		h := resp.Hits[c.Index]
		body := map[string]any{
			"search_id": resp.SearchID, "doc_id": h.ID, "position": h.Rank, "dwell_ms": c.Dwell.Milliseconds(),
			"event_id": fmt.Sprintf("sim%d-%d-%d", r.cfg.Seed, p.n, h.Rank),
		}
		if err := r.post(ctx, "/click", body, nil); err != nil {
			r.fail(&r.sum.FailedClicks, fmt.Errorf("click on %s in search %s: %w", h.ID, resp.SearchID, err))
			continue
		}
		clicked[i] = true
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	s := &r.sum
	s.Searches++
	r.latencies = append(r.latencies, lat)
	if !resp.Logged {
		s.NotLogged++
	}
	if resp.Reranked {
		s.Reranked++
	}
	s.Versions[resp.ModelVersion]++
	for i := range resp.Hits {
		if i < len(s.ShownByRank) {
			s.ShownByRank[i]++
		}
	}
	some := false
	for i, c := range clicks {
		if !clicked[i] {
			continue
		}
		some = true
		s.Clicks++
		if c.Index < len(s.ClicksByRank) {
			s.ClicksByRank[c.Index]++
		}
		if grades[c.Index] > 0 {
			s.RelevantClicks++
		}
	}
	if some {
		s.SearchesWithClicks++
	}
	if r.cfg.Progress != nil {
		r.cfg.Progress(s.Searches + s.FailedSearches)
	}
}

func (r *runner) fail(counter *int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*counter++
	if r.sum.FirstError == "" {
		r.sum.FirstError = err.Error()
	}
}

func (r *runner) progress() {
	if r.cfg.Progress == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cfg.Progress(r.sum.Searches + r.sum.FailedSearches)
}

func (r *runner) finishLatency() {
	if len(r.latencies) == 0 {
		return
	}
	slices.Sort(r.latencies)
	at := func(q float64) time.Duration { return r.latencies[int(q*float64(len(r.latencies)-1))] }
	r.sum.LatencyP50, r.sum.LatencyP99, r.sum.LatencyMax = at(0.5), at(0.99), r.latencies[len(r.latencies)-1]
}

// post sends body as JSON to path and decodes a 200 answer into out (nil:
// discard). A non-200 answer is an error carrying the host's message; a 429
// (the host's click rate limit) is waited out as its Retry-After says, as a
// real client's retry would.
func (r *runner) post(ctx context.Context, path string, body, out any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base.JoinPath(path).String(), bytes.NewReader(raw))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := r.client.Do(req)
		if err != nil {
			return err
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode == http.StatusTooManyRequests && attempt < 30 {
			wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			select {
			case <-time.After(time.Duration(max(wait, 1)) * time.Second):
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if resp.StatusCode != http.StatusOK {
			var e struct {
				Error string `json:"error"`
			}
			if json.Unmarshal(data, &e) == nil && e.Error != "" {
				return fmt.Errorf("%s: %s", resp.Status, e.Error)
			}
			return fmt.Errorf("%s", resp.Status)
		}
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("unreadable answer: %w", err)
		}
		return nil
	}
}

// LoopbackURL parses a host base URL and refuses anything but http(s) to a
// loopback address or localhost.
func LoopbackURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("host URL %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("host URL %q: want http://HOST:PORT", raw)
	}
	h := u.Hostname()
	if ip := net.ParseIP(h); h != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("host URL %q: the simulator only targets loopback (127.0.0.1, ::1, localhost)", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("host URL %q: want only scheme, host, port and path", raw)
	}
	return u, nil
}

// LoopbackClient is an HTTP client that can only connect to loopback
// addresses: no proxy from the environment, no redirects, and a dial check
// on the resolved address (so "localhost" cannot lead elsewhere).
func LoopbackClient(conns int) *http.Client {
	d := &net.Dialer{
		Timeout: 5 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
				return fmt.Errorf("refusing to connect to %s: not a loopback address", address)
			}
			return nil
		},
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = d.DialContext
	t.MaxIdleConnsPerHost = conns
	return &http.Client{
		Transport:     t,
		Timeout:       60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
