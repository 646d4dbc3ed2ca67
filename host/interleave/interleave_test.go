package interleave

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/rerankloop/rerank/finetune/impression"
)

func docs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// checkTeamDraft replays an interleaving and checks the algorithm's rules at
// every step: a shared pick is both rankings' top unplaced document at the
// start of a round, a team's pick is its ranking's top unplaced document, the
// team behind picks, and the list stops only when a ranking runs out or n is
// reached.
func checkTeamDraft(t *testing.T, a, b []string, n int, got []Pick) {
	t.Helper()
	placed := map[string]bool{}
	top := func(r []string) string {
		for _, d := range r {
			if !placed[d] {
				return d
			}
		}
		return ""
	}
	var na, nb int
	for i, p := range got {
		ta, tb := top(a), top(b)
		if placed[p.DocID] {
			t.Fatalf("step %d: %s placed twice", i, p.DocID)
		}
		switch p.Team {
		case Shared:
			if p.DocID != ta || p.DocID != tb || na != nb {
				t.Fatalf("step %d: shared %s but tops are %s and %s, picks %d and %d", i, p.DocID, ta, tb, na, nb)
			}
		case Control, Treatment:
			if ta == tb && na == nb {
				t.Fatalf("step %d: a round starts with both tops %s, want a shared pick, got %v", i, ta, p)
			}
			want := ta
			if p.Team == Treatment {
				want = tb
			}
			if p.DocID != want {
				t.Fatalf("step %d: %s picked %s, its top unplaced is %s", i, p.Team, p.DocID, want)
			}
			if (p.Team == Control && na > nb) || (p.Team == Treatment && nb > na) {
				t.Fatalf("step %d: %s picked while ahead (%d vs %d)", i, p.Team, na, nb)
			}
			if p.Team == Control {
				na++
			} else {
				nb++
			}
		default:
			t.Fatalf("step %d: team %q", i, p.Team)
		}
		placed[p.DocID] = true
	}
	if len(got) < n && top(a) != "" && top(b) != "" {
		t.Fatalf("stopped at %d of %d with both rankings holding more", len(got), n)
	}
}

func TestTeamDraftRules(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pool := docs("d", 30)
	for trial := range 500 {
		a := slices.Clone(pool[:10+rng.IntN(20)])
		b := slices.Clone(pool[rng.IntN(10) : 10+rng.IntN(20)])
		rng.Shuffle(len(a), func(i, j int) { a[i], a[j] = a[j], a[i] })
		if trial%3 == 0 { // b agrees with a on a prefix, then differs
			b = append(slices.Clone(a[:3]), b...)
		} else {
			rng.Shuffle(len(b), func(i, j int) { b[i], b[j] = b[j], b[i] })
		}
		n := 5 + rng.IntN(20)
		checkTeamDraft(t, a, b, n, TeamDraft(a, b, n, rng))
	}
}

func TestTeamDraftSharedCreditsNoOne(t *testing.T) {
	a := []string{"d1", "d2", "d3", "d4"}
	b := []string{"d1", "d3", "d2", "d4"}
	orders := map[string]bool{}
	for seed := range uint64(40) {
		got := TeamDraft(a, b, 0, rand.New(rand.NewPCG(seed, 0)))
		if len(got) != 4 || got[0] != (Pick{"d1", Shared}) || got[3] != (Pick{"d4", Shared}) {
			t.Fatalf("seed %d: %v", seed, got)
		}
		mid := fmt.Sprint(got[1:3])
		if mid != "[{d2 control} {d3 treatment}]" && mid != "[{d3 treatment} {d2 control}]" {
			t.Fatalf("seed %d: middle %s", seed, mid)
		}
		orders[mid] = true
	}
	if len(orders) != 2 {
		t.Fatalf("the coin never changed who picks first: %v", orders)
	}

	// Identical rankings: everything is shared, so clicks are ties.
	same := TeamDraft(a, a, 0, rand.New(rand.NewPCG(1, 1)))
	var res []impression.Result
	for i, p := range same {
		if p.Team != Shared {
			t.Fatalf("identical rankings gave %v", same)
		}
		res = append(res, impression.Result{DocID: p.DocID, Position: i + 1, Team: string(p.Team), Clicked: i < 2, Clicks: 1})
	}
	if c := CreditOf(res); c != (Credit{Shared: 2}) || c.Outcome() != Tie {
		t.Fatalf("credit %+v outcome %v", c, c.Outcome())
	}
}

func TestTeamDraftCoinIsFair(t *testing.T) {
	a, b := docs("a", 10), docs("b", 10)
	rng := rand.New(rand.NewPCG(7, 7))
	first := 0
	const trials = 4000
	for range trials {
		got := TeamDraft(a, b, 10, rng)
		if got[0].Team == Control {
			first++
		}
		na := 0
		for _, p := range got {
			if p.Team == Control {
				na++
			}
		}
		if na != 5 {
			t.Fatalf("10 results from disjoint rankings gave control %d", na)
		}
	}
	if f := float64(first) / trials; math.Abs(f-0.5) > 0.03 {
		t.Fatalf("control picked first in %.3f of searches", f)
	}
}

func TestCredit(t *testing.T) {
	r := func(team string, clicks int) impression.Result {
		return impression.Result{Team: team, Clicked: clicks > 0, Clicks: clicks}
	}
	for _, tc := range []struct {
		res  []impression.Result
		want Credit
		out  Outcome
	}{
		{[]impression.Result{r("control", 0), r("treatment", 0)}, Credit{}, NoClicks},
		{[]impression.Result{r("control", 3), r("treatment", 1), r("treatment", 1)}, Credit{1, 2, 0}, TreatmentWins},
		{[]impression.Result{r("control", 1), r("shared", 1), r("treatment", 0)}, Credit{1, 0, 1}, ControlWins},
		{[]impression.Result{r("control", 1), r("treatment", 1)}, Credit{1, 1, 0}, Tie},
		{[]impression.Result{r("", 1), r("shared", 1)}, Credit{0, 0, 1}, Tie},
	} {
		c := CreditOf(tc.res)
		if c != tc.want || c.Outcome() != tc.out {
			t.Errorf("%+v: credit %+v outcome %v, want %+v %v", tc.res, c, c.Outcome(), tc.want, tc.out)
		}
	}
}

func TestSignTest(t *testing.T) {
	for _, tc := range []struct {
		w, l int
		want float64
	}{
		{0, 0, 1}, {5, 5, 1}, {1, 0, 1}, {10, 0, 2.0 / 1024}, {2, 8, 0.109375},
		{60, 40, 0.05688793364098079}, {520, 480, 0.21744829320414094},
	} {
		if got := SignTest(tc.w, tc.l); math.Abs(got-tc.want) > 1e-9*math.Max(1, tc.want) {
			t.Errorf("SignTest(%d, %d) = %v, want %v", tc.w, tc.l, got, tc.want)
		}
	}
	if p := SignTest(100000, 99000); !(p > 0 && p < 0.05) {
		t.Errorf("large n: p = %v", p)
	}
}

func TestStopRule(t *testing.T) {
	rule := StopRule{MinSearches: 100, Alpha: 0.05, MaxSearches: 1000}
	for _, tc := range []struct {
		n      int
		p      float64
		ahead  bool
		stop   bool
		winner Team
	}{
		{50, 0.0001, true, false, ""},
		{100, 0.01, true, false, ""}, // an interim look needs p < InterimAlpha
		{100, 0.0005, true, true, Treatment},
		{100, 0.0005, false, true, Control},
		{500, 0.2, true, false, ""},
		{1000, 0.01, true, true, Treatment}, // the final look uses Alpha
		{1000, 0.2, true, true, ""},
	} {
		v := rule.Decide(tc.n, tc.p, tc.ahead)
		if v.Stop != tc.stop || v.Winner != tc.winner || v.Reason == "" {
			t.Errorf("Decide(%d, %v, %v) = %+v", tc.n, tc.p, tc.ahead, v)
		}
	}
	for _, bad := range []StopRule{{Alpha: 0}, {Alpha: 1}, {MinSearches: -1, Alpha: 0.05}, {MinSearches: 10, MaxSearches: 5, Alpha: 0.05}} {
		if bad.Check() == nil {
			t.Errorf("rule %+v accepted", bad)
		}
	}
}

func TestAssign(t *testing.T) {
	const users = 20000
	in, treat := 0, 0
	for i := range users {
		u := fmt.Sprintf("user-%d", i)
		arm, ok := Assign("e1", u, 0.3)
		if again, ok2 := Assign("e1", u, 0.3); again != arm || ok2 != ok {
			t.Fatalf("%s: assignment not stable", u)
		}
		if wide, okWide := Assign("e1", u, 0.6); ok && (!okWide || wide != arm) {
			t.Fatalf("%s: raising traffic moved it from %s to %s (%v)", u, arm, wide, okWide)
		}
		if ok {
			in++
			if arm == Treatment {
				treat++
			}
		}
	}
	if f := float64(in) / users; math.Abs(f-0.3) > 0.015 {
		t.Fatalf("traffic 0.3 enrolled %.3f", f)
	}
	if f := float64(treat) / float64(in); math.Abs(f-0.5) > 0.03 {
		t.Fatalf("treatment share %.3f", f)
	}
	if _, ok := Assign("e1", "", 1); ok {
		t.Fatal("empty unit assigned")
	}
	if _, ok := Assign("e1", "u", 0); ok {
		t.Fatal("zero traffic assigned")
	}
	diff := 0
	for i := range 1000 {
		a, _ := Assign("e1", fmt.Sprint(i), 1)
		b, _ := Assign("e2", fmt.Sprint(i), 1)
		if a != b {
			diff++
		}
	}
	if diff < 400 || diff > 600 {
		t.Fatalf("experiments e1 and e2 disagree on %d of 1000 users: arms are not independent", diff)
	}
}

func TestSplitMetrics(t *testing.T) {
	res := func(clickedAt ...int) impression.Impression {
		e := impression.Impression{}
		for p := 1; p <= 10; p++ {
			e.Results = append(e.Results, impression.Result{Position: p, Clicked: slices.Contains(clickedAt, p)})
		}
		return e
	}
	s := NewSplitResult(3)
	s.Add(ArmControl, res(2, 5))
	s.Add(ArmControl, res())
	s.Add(ArmTreatment, res(1))
	s.Add("other", res(1, 2, 3))
	s.Finish()
	c := s.Control
	if c.Searches != 2 || c.Shown != 20 || c.Clicked != 2 || c.CTR != 0.1 || c.ClicksAtK != 0.5 || c.MRR != 0.25 || c.Abandonment != 0.5 {
		t.Fatalf("control %+v", c)
	}
	if tr := s.Treatment; tr.Searches != 1 || tr.MRR != 1 || tr.Abandonment != 0 || s.MRRDiff != 0.75 {
		t.Fatalf("treatment %+v diff %v", tr, s.MRRDiff)
	}
}

// aaRun is one A/A interleaving experiment as the demo runs it: each search
// shows a team draft of two independent random shuffles of the same top 10
// (rankers of equal quality by construction), a position-biased user
// clicks, and the stopping rule is looked at every look searches up to
// searches. It reports whether a winner was declared.
func aaRun(seed uint64, rule StopRule, searches, look int) bool {
	w := newWorld(seed, 100, 10, 3)
	var r InterleaveResult
	for s := 1; s <= searches; s++ {
		q := w.rng.IntN(len(w.queries))
		a, b := slices.Clone(w.queries[q]), slices.Clone(w.queries[q])
		w.rng.Shuffle(len(a), func(i, j int) { a[i], a[j] = a[j], a[i] })
		w.rng.Shuffle(len(b), func(i, j int) { b[i], b[j] = b[j], b[i] })
		picks := TeamDraft(a, b, 10, w.rng)
		shown := make([]string, len(picks))
		for i, p := range picks {
			shown[i] = p.DocID
		}
		clicked := map[int]bool{}
		for _, i := range w.clicks(q, shown) {
			clicked[i] = true
		}
		var res []impression.Result
		for i, p := range picks {
			res = append(res, impression.Result{Position: i + 1, Team: string(p.Team), Clicked: clicked[i]})
		}
		r.Add(impression.Impression{Results: res})
		if s%look == 0 {
			r.Finish()
			if v := r.Verdict(rule); v.Stop {
				return v.Winner != ""
			}
		}
	}
	return false
}

// An A/A experiment must not find a winner more often than alpha says:
// measured over 200 seeded runs with the demo's protocol (300 searches, a
// look every 50, at least 40 searches with clicks, alpha 0.05), without and
// with a final look (MaxSearches 150 informative searches). Before the
// interim threshold, 23 of 200 runs (11.5%) declared a winner.
func TestAAInterleavingFalsePositiveRate(t *testing.T) {
	for _, rule := range []StopRule{{MinSearches: 40, Alpha: 0.05}, {MinSearches: 40, Alpha: 0.05, MaxSearches: 150}} {
		const runs = 200
		winners := 0
		for seed := range uint64(runs) {
			if aaRun(seed, rule, 300, 50) {
				winners++
			}
		}
		rate := float64(winners) / runs
		t.Logf("A/A, rule %+v: a winner declared in %d of %d runs (%.1f%%)", rule, winners, runs, 100*rate)
		// 200 runs at a true 5% exceed 9% with p < 0.01.
		if rate > 0.09 {
			t.Errorf("rule %+v: A/A experiments declare a winner in %.1f%% of runs, want about 5%% at most", rule, 100*rate)
		}
	}
}
