package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
)

// searchDeadline is the host's production rerank deadline; a model thread
// that cannot answer a health call within it has failed every search.
const searchDeadline = 500 * time.Millisecond

func loadTiny(t *testing.T, opts Options) *Engine {
	t.Helper()
	e := newEngine(t, opts)
	if _, err := e.Load(context.Background(), contract.LoadRequest{Path: "../../testdata/tiny-ce", Version: "tiny", Serve: true}); err != nil {
		t.Fatal(err)
	}
	return e
}

func assertResponsive(t *testing.T, e *Engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), searchDeadline)
	defer cancel()
	if err := e.Health(ctx); err != nil {
		t.Fatalf("model thread not responsive within %v: %v", searchDeadline, err)
	}
	if _, err := e.Rerank(ctx, contract.RerankRequest{Query: "aspirin", Documents: []contract.Document{{ID: "a", Text: "aspirin and the heart"}}}); err != nil {
		t.Fatalf("rerank after the batch: %v", err)
	}
}

// A cancelled request and a live one for the same model in one batch: each
// is answered once and the model thread goes on serving.
func TestCancelledAndLiveRequestsInOneBatch(t *testing.T) {
	// The long wait makes the model thread collect both queued requests.
	e := loadTiny(t, Options{MaxLength: 64, BatchSize: 64, MaxWait: 200 * time.Millisecond})
	for round := range 20 {
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		l := e.models["tiny"]
		dead := &request{ctx: cancelled, want: l, scores: []float32{0}, done: make(chan error, 1)}
		live := &request{ctx: context.Background(), want: l, scores: []float32{0}, done: make(chan error, 1)}
		for _, r := range []*request{dead, live} {
			p, err := l.tok.EncodePair("query", fmt.Sprint("document ", round), 64)
			if err != nil {
				t.Fatal(err)
			}
			r.pairs = []pair{{enc: p, req: r}}
		}
		if round%2 == 1 { // either order in the batch
			dead, live = live, dead
		}
		e.queue <- dead
		e.queue <- live
		if round%2 == 1 {
			dead, live = live, dead
		}
		if err := <-dead.done; !errors.Is(err, context.Canceled) {
			t.Fatalf("round %d: cancelled request answered %v", round, err)
		}
		if err := <-live.done; err != nil || live.version != "tiny" {
			t.Fatalf("round %d: live request answered %v (version %q)", round, err, live.version)
		}
		assertResponsive(t, e)
	}
}

// Many concurrent callers, a random half of whom give up at random times:
// afterwards the model thread still answers within the search deadline.
func TestRandomCancellationsNeverWedgeTheModelThread(t *testing.T) {
	e := loadTiny(t, Options{MaxLength: 64, BatchSize: 8, MaxWait: 5 * time.Millisecond})
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 10 {
		var wg sync.WaitGroup
		for i := range 40 {
			timeout := time.Hour
			if rng.IntN(2) == 0 {
				timeout = time.Duration(rng.IntN(3000)) * time.Microsecond
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				docs := []contract.Document{{ID: "a", Text: fmt.Sprint("text ", i)}, {ID: "b", Text: "other text"}}
				_, err := e.Rerank(ctx, contract.RerankRequest{Query: "q", Documents: docs})
				if err != nil && !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("round %d call %d: %v", round, i, err)
				}
			}()
		}
		wg.Wait()
		assertResponsive(t, e)
	}
}

// longWindow is an engine scoring one pair a forward pass, and 1,000
// documents of 512 tokens: seconds of work for the tiny model, far above
// the default token budget.
func longWindow(t *testing.T) (*Engine, []contract.Document) {
	e := loadTiny(t, Options{MaxLength: 512, BatchSize: 1, MaxPendingTokens: 1 << 30})
	docs := make([]contract.Document, 1000)
	for i := range docs {
		docs[i] = contract.Document{ID: fmt.Sprint(i), Text: strings.Repeat(fmt.Sprint("word", i, " "), 600)}
	}
	return e, docs
}

// A window nobody waits for any more is dropped between forward passes, so
// the model thread is free again within the search deadline instead of
// scoring a thousand documents one by one.
func TestCancelledWindowStopsBetweenForwardPasses(t *testing.T) {
	e, docs := longWindow(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := e.Rerank(ctx, contract.RerankRequest{Query: "q", Documents: docs})
		errc <- err
	}()
	waitBusy(t, e)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call returned %v", err)
	}
	assertResponsive(t, e)
}

// waitBusy returns once the model thread is scoring: it no longer takes a
// call at once.
func waitBusy(t *testing.T, e *Engine) {
	t.Helper()
	for start := time.Now(); time.Since(start) < time.Minute; time.Sleep(5 * time.Millisecond) {
		select {
		case e.calls <- func() {}:
		case <-time.After(5 * time.Millisecond):
			return
		}
	}
	t.Fatal("the model thread never got busy")
}

// A model thread busy with a long window is healthy while it finishes
// forward passes: the host's probe must not kill a plugin for being busy.
func TestHealthWhileBusy(t *testing.T) {
	e, docs := longWindow(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.Rerank(ctx, contract.RerankRequest{Query: "q", Documents: docs})
	waitBusy(t, e)
	hctx, hcancel := context.WithTimeout(context.Background(), time.Second) // the host's probe timeout
	defer hcancel()
	if err := e.Health(hctx); err != nil {
		t.Fatalf("a busy, progressing model thread failed its health check: %v", err)
	}
}

// A Load the caller gave up on does not switch the serving model, and
// weights other than the registry's are refused: the serving version and
// the weights never disagree.
func TestLoadNeverServesWhatTheCallerDidNotGet(t *testing.T) {
	e := loadTiny(t, Options{MaxLength: 64})
	other := t.TempDir()
	if err := checkpoint.WriteRandom(other, checkpoint.TinyConfig(), 9); err != nil {
		t.Fatal(err)
	}
	gaveUp, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Load(gaveUp, contract.LoadRequest{Path: other, Version: "late", Serve: true}); !errors.Is(err, context.Canceled) {
		t.Errorf("a load whose caller gave up: %v", err)
	}
	hash, _ := checkpoint.Hash("../../testdata/tiny-ce")
	_, err := e.Load(context.Background(), contract.LoadRequest{Path: other, Version: "changed", Serve: true, CheckpointHash: hash})
	if !errors.Is(err, contract.ErrInvalidRequest) || !strings.Contains(err.Error(), hash[:12]) {
		t.Errorf("weights other than the expected ones: %v", err)
	}
	infos, _ := e.Info(context.Background())
	if len(infos) != 1 || infos[0].Version != "tiny" || !infos[0].Serving {
		t.Fatalf("after the refused loads the engine holds %+v", infos)
	}
	if _, err := e.Load(context.Background(), contract.LoadRequest{Path: "../../testdata/tiny-ce", Version: "same", CheckpointHash: hash}); err != nil {
		t.Errorf("the expected weights: %v", err)
	}
}

// Work is admitted by a token budget: a request above it alone is too
// large, and one that would overflow it while the model thread is busy is
// refused as overloaded at once instead of waiting behind the queue.
func TestPendingTokenBudget(t *testing.T) {
	e := loadTiny(t, Options{MaxLength: 64, MaxPendingTokens: 100})
	doc := func(n int) []contract.Document {
		return []contract.Document{{ID: "d", Text: strings.Repeat("word ", n)}}
	}
	if _, err := e.Rerank(context.Background(), contract.RerankRequest{Query: "q", Documents: append(doc(50), doc(50)...)}); !errors.Is(err, contract.ErrTooLarge) {
		t.Errorf("a request of ~110 tokens against a budget of 100: %v", err)
	}
	release := make(chan struct{})
	held := make(chan struct{})
	go e.onThread(func() { close(held); <-release }) // the model thread is busy
	<-held
	first := make(chan error, 1)
	go func() {
		_, err := e.Rerank(context.Background(), contract.RerankRequest{Query: "q", Documents: doc(55)})
		first <- err
	}()
	for e.pending.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// ~59 tokens each: the two together pass the budget. (Were it admitted,
	// the call would wait behind the held thread: the deadline ends it.)
	ctx, cancel := context.WithTimeout(context.Background(), searchDeadline)
	defer cancel()
	if _, err := e.Rerank(ctx, contract.RerankRequest{Query: "q", Documents: doc(55)}); !errors.Is(err, contract.ErrOverloaded) {
		t.Errorf("a second request over the budget while the first waits: %v", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("the admitted request: %v", err)
	}
	if n := e.pending.Load(); n != 0 {
		t.Errorf("%d tokens still counted as pending", n)
	}
	if _, err := e.Rerank(context.Background(), contract.RerankRequest{Query: "q", Documents: doc(40)}); err != nil {
		t.Errorf("once the queue drained: %v", err)
	}
}
