package interleave

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/rerankloop/rerank/finetune/impression"
	"github.com/rerankloop/rerank/host/clicklog"
)

// world is a seeded simulation: queries with candidate documents, a few of
// them relevant, rankers of chosen quality and position-biased users.
type world struct {
	rng     *rand.Rand
	queries [][]string        // candidates per query
	rel     []map[string]bool // relevant candidates per query
}

func newWorld(seed uint64, queries, candidates, relevant int) *world {
	w := &world{rng: rand.New(rand.NewPCG(seed, 99))}
	for q := range queries {
		ds := docs(fmt.Sprintf("q%d-d", q), candidates)
		rel := map[string]bool{}
		for _, i := range w.rng.Perm(candidates)[:relevant] {
			rel[ds[i]] = true
		}
		w.queries, w.rel = append(w.queries, ds), append(w.rel, rel)
	}
	return w
}

// rank orders query q's candidates by noise plus boost for relevant ones: a
// larger boost is a better ranker.
func (w *world) rank(q int, boost float64) []string {
	type scored struct {
		id string
		s  float64
	}
	var ss []scored
	for _, d := range w.queries[q] {
		s := w.rng.NormFloat64()
		if w.rel[q][d] {
			s += boost
		}
		ss = append(ss, scored{d, s})
	}
	slices.SortFunc(ss, func(a, b scored) int { return cmp.Compare(b.s, a.s) })
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.id
	}
	return out
}

// clicks returns the positions a position-biased user clicks on shown:
// examined with probability 1/rank, clicked 0.9 if relevant, 0.05 if not.
func (w *world) clicks(q int, shown []string) []int {
	var out []int
	for i, d := range shown {
		if w.rng.Float64() >= 1/float64(i+1) {
			continue
		}
		p := 0.05
		if w.rel[q][d] {
			p = 0.9
		}
		if w.rng.Float64() < p {
			out = append(out, i)
		}
	}
	return out
}

// search is one simulated search to log.
type search struct {
	id, user, arm string
	shown         []Pick
	clicked       []int
}

// logAll writes the searches and their clicks to the click log from several
// goroutines, as a server would (their commits are grouped).
func logAll(t *testing.T, log *clicklog.Store, searches []search) {
	t.Helper()
	ctx := context.Background()
	work := make(chan search)
	errs := make(chan error, len(searches))
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range work {
				errs <- logOne(ctx, log, s)
			}
		}()
	}
	for _, s := range searches {
		work <- s
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func logOne(ctx context.Context, log *clicklog.Store, s search) error {
	imp := clicklog.Impression{SearchID: s.id, Query: "q " + s.id, UserID: s.user, Arm: s.arm}
	for i, p := range s.shown {
		imp.Results = append(imp.Results, clicklog.Shown{DocID: p.DocID, Position: i + 1, BM25: 1, Team: string(p.Team)})
	}
	if err := log.LogSearch(ctx, imp); err != nil {
		return err
	}
	for _, i := range s.clicked {
		c := clicklog.Click{SearchID: s.id, DocID: s.shown[i].DocID, DwellMS: 30000, EventID: fmt.Sprintf("%s-%d", s.id, i)}
		if err := log.LogClick(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

func openLog(t *testing.T, dir string) *clicklog.Store {
	t.Helper()
	s, err := clicklog.Open(dir, clicklog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// runInterleaved simulates searches interleaving a control ranker with
// boost bc against a treatment with boost bt, logs them under experiment e
// and returns its evaluation.
func runInterleaved(t *testing.T, log *clicklog.Store, e Experiment, w *world, searches int, bc, bt float64) Result {
	t.Helper()
	var ss []search
	for s := range searches {
		q := s % len(w.queries)
		shown := TeamDraft(w.rank(q, bc), w.rank(q, bt), 10, w.rng)
		ids := make([]string, len(shown))
		for i, p := range shown {
			ids[i] = p.DocID
		}
		ss = append(ss, search{fmt.Sprintf("%s-s%d", e.ID, s), "", ArmLabel(e.ID, ArmInterleaved), shown, w.clicks(q, ids)})
	}
	logAll(t, log, ss)
	res, err := Evaluate(context.Background(), log, e, 10)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestInterleavingPicksTheBetterRanker(t *testing.T) {
	log := openLog(t, t.TempDir())
	x, err := OpenExperiments(log)
	if err != nil {
		t.Fatal(err)
	}
	rule := StopRule{MinSearches: 50, Alpha: 0.05}
	w := newWorld(1, 100, 40, 4)

	e, err := x.Start(Experiment{Control: "v1", Treatment: "v2", Method: MethodInterleave, Traffic: 1, Rule: rule})
	if err != nil {
		t.Fatal(err)
	}
	res := runInterleaved(t, log, e, w, 200, 1.0, 1.8)
	il := res.Interleave
	t.Logf("better treatment: %+v, verdict %+v", *il, res.Verdict)
	if il.Searches != 200 || il.Clicked == 0 || il.TreatmentWins <= il.ControlWins || il.Delta <= 0 {
		t.Fatalf("tally %+v", *il)
	}
	if !(il.PValue < 0.05) || !res.Verdict.Stop || res.Verdict.Winner != Treatment {
		t.Fatalf("a clearly better treatment was not detected: p = %v, verdict %+v", il.PValue, res.Verdict)
	}
	if _, err := x.Stop(e.ID, res.Verdict.Reason, &res); err != nil {
		t.Fatal(err)
	}

	// Swapped roles: the better ranker as control wins as control.
	e, err = x.Start(Experiment{Control: "v2", Treatment: "v1", Method: MethodInterleave, Traffic: 1, Rule: rule})
	if err != nil {
		t.Fatal(err)
	}
	res = runInterleaved(t, log, e, w, 200, 1.8, 1.0)
	if res.Verdict.Winner != Control {
		t.Fatalf("better control not detected: %+v %+v", *res.Interleave, res.Verdict)
	}
	x.Stop(e.ID, "", &res)

	// Two rankers of equal quality: no significant difference (fixed seed).
	e, err = x.Start(Experiment{Control: "v1", Treatment: "v3", Method: MethodInterleave, Traffic: 1, Rule: rule})
	if err != nil {
		t.Fatal(err)
	}
	res = runInterleaved(t, log, e, w, 200, 1.4, 1.4)
	t.Logf("equal rankers: %+v, verdict %+v", *res.Interleave, res.Verdict)
	if res.Interleave.PValue < 0.05 || res.Verdict.Winner != "" || res.Verdict.Stop {
		t.Fatalf("equal rankers judged different: %+v %+v", *res.Interleave, res.Verdict)
	}
	if res.Interleave.Searches != 200 {
		t.Fatalf("evaluation mixed experiments: %d searches", res.Interleave.Searches)
	}
}

// Clicks that ignore the teams favour neither, even where the treatment is
// the control shifted by one (b's top is a's second): an agreement check on
// every pick instead of at round starts hands the control a result there
// that the treatment never gets back.
func TestInterleavingUnbiasedUnderRandomClicks(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	var r InterleaveResult
	for range 4000 {
		a := docs("d", 12)
		b := append(slices.Clone(a[1:]), a[0])
		var res []impression.Result
		for i, p := range TeamDraft(a, b, 10, rng) {
			res = append(res, impression.Result{Position: i + 1, Team: string(p.Team), Clicked: rng.Float64() < 0.3})
		}
		r.Add(impression.Impression{Results: res})
	}
	r.Finish()
	if r.PValue < 0.01 {
		t.Fatalf("random clicks favour a team: %+v", r)
	}
	ratio := float64(r.ClicksControl) / float64(r.ClicksTreatment)
	if ratio < 0.95 || ratio > 1.05 {
		t.Fatalf("clicked results per team %d vs %d", r.ClicksControl, r.ClicksTreatment)
	}
}

func TestSplitPicksTheBetterRanker(t *testing.T) {
	log := openLog(t, t.TempDir())
	x, err := OpenExperiments(log)
	if err != nil {
		t.Fatal(err)
	}
	e, err := x.Start(Experiment{Control: "v1", Treatment: "v2", Method: MethodSplit, Traffic: 0.8, Rule: StopRule{MinSearches: 100, Alpha: 0.05}})
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(2, 100, 40, 4)
	var ss []search
	for u := range 500 {
		user := fmt.Sprintf("user-%d", u)
		arm, ok := Assign(e.ID, user, e.Traffic)
		if !ok {
			continue // sees the serving model, not logged under the experiment
		}
		boost := 1.0
		if arm == Treatment {
			boost = 1.8
		}
		q := u % len(w.queries)
		ranked := w.rank(q, boost)[:10]
		shown := make([]Pick, len(ranked))
		for i, d := range ranked {
			shown[i] = Pick{DocID: d}
		}
		ss = append(ss, search{fmt.Sprintf("s%d", u), user, ArmLabel(e.ID, string(arm)), shown, w.clicks(q, ranked)})
	}
	logAll(t, log, ss)
	n := len(ss)
	res, err := Evaluate(context.Background(), log, e, 3)
	if err != nil {
		t.Fatal(err)
	}
	s := res.Split
	t.Logf("split: control %+v treatment %+v diff %.3f p %.3g", s.Control, s.Treatment, s.MRRDiff, s.PValue)
	if s.Control.Searches+s.Treatment.Searches != n || n < 350 {
		t.Fatalf("%d searches counted, %d logged", s.Control.Searches+s.Treatment.Searches, n)
	}
	if s.Treatment.MRR <= s.Control.MRR || s.Treatment.CTR <= s.Control.CTR || s.Treatment.Abandonment >= s.Control.Abandonment {
		t.Fatalf("treatment not better on clicks: %+v vs %+v", s.Treatment, s.Control)
	}
	if !(s.PValue < 0.05) || res.Verdict.Winner != Treatment {
		t.Fatalf("better arm not detected: p %v verdict %+v", s.PValue, res.Verdict)
	}
}

func TestExperimentStore(t *testing.T) {
	dir := t.TempDir()
	log := openLog(t, dir)
	x, err := OpenExperiments(log)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Experiment{
		{Control: "v1", Method: MethodSplit, Traffic: 0.5},
		{Control: "v1", Treatment: "v1", Method: MethodSplit, Traffic: 0.5},
		{Control: "v1", Treatment: "v2", Method: "coinflip", Traffic: 0.5},
		{Control: "v1", Treatment: "v2", Method: MethodSplit, Traffic: 0},
		{Control: "v1", Treatment: "v2", Method: MethodSplit, Traffic: 1.5},
		{Control: "v1", Treatment: "v2", Method: MethodSplit, Traffic: 0.5, Rule: StopRule{Alpha: 2}},
	} {
		if _, err := x.Start(bad); err == nil {
			t.Errorf("started %+v", bad)
		}
	}
	e1, err := x.Start(Experiment{Control: "v1", Treatment: "v2", Method: MethodInterleave, Traffic: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if e1.ID != "e1" || e1.Status != Running || e1.Rule != DefaultStopRule() || e1.Started.IsZero() {
		t.Fatalf("started %+v", e1)
	}
	if _, err := x.Start(Experiment{Control: "v1", Treatment: "v3", Method: MethodSplit, Traffic: 0.5}); !errors.Is(err, ErrRunning) {
		t.Fatalf("second start: %v", err)
	}
	res := &Result{Method: MethodInterleave, Interleave: &InterleaveResult{Searches: 9, TreatmentWins: 5, PValue: 0.06}, Verdict: Verdict{Reason: "stopped by hand"}}
	if _, err := x.Stop("e1", "stopped by hand", res); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Stop("e1", "", nil); err == nil {
		t.Fatal("stopped twice")
	}
	if _, err := x.Stop("e9", "", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stop unknown: %v", err)
	}
	e2, err := x.Start(Experiment{Control: "v1", Treatment: "v3", Method: MethodSplit, Traffic: 0.5})
	if err != nil || e2.ID != "e2" {
		t.Fatalf("start after stop: %+v %v", e2, err)
	}
	log.Close()

	x, err = OpenExperiments(openLog(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	all, err := x.List()
	if err != nil || len(all) != 2 {
		t.Fatalf("list %+v %v", all, err)
	}
	got := all[0]
	if got.Status != Stopped || got.StopReason != "stopped by hand" || got.Result == nil || got.Result.Interleave.TreatmentWins != 5 || got.Stopped.Before(got.Started) {
		t.Fatalf("stopped experiment after reopen: %+v", got)
	}
	run, ok, err := x.Running()
	if err != nil || !ok || run.ID != "e2" || run.Method != MethodSplit {
		t.Fatalf("running after reopen: %+v %v %v", run, ok, err)
	}
	if _, err := x.Get("e7"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get unknown: %v", err)
	}
}
