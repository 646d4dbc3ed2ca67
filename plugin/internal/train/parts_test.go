package train

import (
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/rerankloop/rerank/plugin/contract"
)

func TestScheduleWarmsUpThenDecays(t *testing.T) {
	s := newSchedule(1e-3, 0.1, 95) // warm-up ceil(9.5) = 10 updates
	if s.Warmup != 10 {
		t.Fatalf("warm-up %d, want 10", s.Warmup)
	}
	for _, c := range []struct {
		k    int
		want float64
	}{{0, 0}, {1, 1e-4}, {5, 5e-4}, {9, 9e-4}, {10, 1e-3}, {11, 1e-3 * 84 / 85}, {52, 1e-3 * 43 / 85}, {94, 1e-3 / 85}, {95, 0}, {120, 0}} {
		if got := s.LR(c.k); math.Abs(got-c.want) > 1e-15 {
			t.Errorf("LR(%d) = %g, want %g", c.k, got, c.want)
		}
	}
	if got := (Schedule{Peak: 2e-5, Total: 4}).LR(0); got != 2e-5 {
		t.Errorf("no warm-up: LR(0) = %g, want the peak", got)
	}
}

func TestSettle(t *testing.T) {
	c, warn, err := settle(contract.TrainConfig{}, []float64{0, 1, 1})
	if err != nil || len(warn) != 0 {
		t.Fatal(err, warn)
	}
	want := contract.TrainConfig{Epochs: 2, LearningRate: 3e-5, BatchSize: 8, MaxLength: 256, EvalSteps: 100, EvalBatchSize: 32,
		Loss: contract.LossBCE, LabelMax: 1, WarmupRatio: 0.1, WeightDecay: 0.01, MaxGradNorm: 1, DivergenceFactor: 10}
	if c != want {
		t.Errorf("defaults %+v\nwant %+v", c, want)
	}
	if c, _, _ := settle(contract.TrainConfig{}, []float64{0, 2, 4}); c.LabelMax != 4 {
		t.Errorf("graded labels: label max %g", c.LabelMax)
	}
	_, warn, _ = settle(contract.TrainConfig{LearningRate: 1e-4, Epochs: 5}, []float64{1})
	if len(warn) != 2 || !strings.Contains(warn[0], "learning rate 0.0001") || !strings.Contains(warn[1], "5 epochs") {
		t.Errorf("warnings %q", warn)
	}
	for _, bad := range []struct {
		c      contract.TrainConfig
		labels []float64
		want   string
	}{
		{contract.TrainConfig{LearningRate: -1}, nil, "learning rate"},
		{contract.TrainConfig{LearningRate: math.NaN()}, nil, "learning rate"},
		{contract.TrainConfig{Epochs: -1}, nil, "epochs"},
		{contract.TrainConfig{Loss: "hinge"}, nil, "loss"},
		{contract.TrainConfig{WarmupRatio: 1}, nil, "warm-up"},
		{contract.TrainConfig{MaxLength: 4}, nil, "max length"},
		{contract.TrainConfig{PosWeight: -2}, nil, "positive weight"},
		{contract.TrainConfig{LabelMax: 1}, []float64{0, 2}, "label 2 outside"},
		{contract.TrainConfig{}, []float64{-1}, "label -1 outside"},
	} {
		if _, _, err := settle(bad.c, bad.labels); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: error %v, want one naming %q", bad.c, err, bad.want)
		}
	}
}

func examples(groups, perGroup int) []example {
	var ex []example
	for g := 0; g < groups; g++ {
		for i := 0; i < perGroup; i++ {
			ex = append(ex, example{group: g, target: float32(min(i, 1)) * float32(i%2), weight: 1})
		}
	}
	return ex
}

func TestPlanBCE(t *testing.T) {
	ex := examples(5, 7) // 35 pairs
	c := contract.TrainConfig{Epochs: 2, BatchSize: 8, Seed: 1, Loss: contract.LossBCE}
	p := plan(ex, c)
	if len(p) != 2 || len(p[0]) != 5 || p[0][4].size() != 3 {
		t.Fatalf("plan of 35 pairs in batches of 8: %d epochs, %d steps", len(p), len(p[0]))
	}
	for e := range p {
		seen := map[int]bool{}
		for _, s := range p[e] {
			for _, i := range s[0] {
				seen[i] = true
			}
		}
		if len(seen) != len(ex) {
			t.Errorf("epoch %d covers %d of %d pairs", e, len(seen), len(ex))
		}
	}
	if equalInts(p[0][0][0], p[1][0][0]) {
		t.Error("both epochs start with the same batch")
	}
	if again := plan(ex, c); !equalInts(again[1][2][0], p[1][2][0]) {
		t.Error("the same seed planned another order")
	}
	c.Seed = 2
	if other := plan(ex, c); equalInts(other[0][0][0], p[0][0][0]) {
		t.Error("another seed planned the same order")
	}
}

func TestPlanListwise(t *testing.T) {
	ex := examples(6, 11) // 11 pairs a query: units of 8 and 3
	c := contract.TrainConfig{Epochs: 1, BatchSize: 8, Seed: 1, Loss: contract.LossListwise}
	for _, s := range plan(ex, c)[0] {
		if s.size() > 8 {
			t.Errorf("batch of %d pairs", s.size())
		}
		for _, u := range s {
			positive := false
			for _, i := range u {
				positive = positive || ex[i].target > 0
				if ex[i].group != ex[u[0]].group {
					t.Errorf("unit mixes queries %d and %d", ex[i].group, ex[u[0]].group)
				}
			}
			if !positive {
				t.Errorf("unit %v has no positive pair", u)
			}
		}
	}
}

// TestClipGradNorm checks clipping against gradients known in closed form:
// the loss sum(p * c) has gradient c.
func TestClipGradNorm(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if _, err := ts.GradSetEnabled(true); err != nil {
		t.Fatal(err)
	}
	grads := func(coef [][]float32) []*ts.Tensor {
		var params []*ts.Tensor
		for _, c := range coef {
			p, err := ts.NewTensorFromData(make([]float32, len(c)), []int64{int64(len(c))})
			if err != nil {
				t.Fatal(err)
			}
			r, err := p.SetRequiresGrad(true, false)
			if err != nil {
				t.Fatal(err)
			}
			r.Drop()
			ct, _ := ts.NewTensorFromData(c, []int64{int64(len(c))})
			prod, _ := p.Mul(ct, false)
			loss, _ := prod.Sum(p.DType(), false)
			if err := loss.Backward(); err != nil {
				t.Fatal(err)
			}
			ct.Drop()
			prod.Drop()
			loss.Drop()
			params = append(params, p)
		}
		return params
	}
	read := func(p *ts.Tensor) []float32 {
		g, err := p.Grad(false)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Drop()
		v := make([]float32, g.Numel())
		if err := g.CopyData(v, g.Numel()); err != nil {
			t.Fatal(err)
		}
		return v
	}
	clipGradNorm := func(params []*ts.Tensor, maxNorm float64) (float64, error) {
		o, err := newOptimizer(params, make([]bool, len(params)), 0)
		if err != nil {
			t.Fatal(err)
		}
		defer o.free()
		return o.clipGradNorm(maxNorm)
	}
	// Global norm sqrt(9 + 16 + 144) = 13: scaled by 1/13.
	params := grads([][]float32{{3, 4}, {12}})
	norm, err := clipGradNorm(params, 1)
	if err != nil || math.Abs(norm-13) > 1e-5 {
		t.Fatalf("norm %g (%v), want 13", norm, err)
	}
	if g := append(read(params[0]), read(params[1])...); math.Abs(float64(g[0])-3.0/13) > 1e-6 || math.Abs(float64(g[2])-12.0/13) > 1e-6 {
		t.Errorf("clipped gradients %v, want (3, 4, 12)/13", g)
	}
	// A norm under the limit is left alone.
	params = grads([][]float32{{0.3, 0.4}})
	if norm, err := clipGradNorm(params, 1); err != nil || math.Abs(norm-0.5) > 1e-6 {
		t.Fatalf("norm %g (%v), want 0.5", norm, err)
	}
	if g := read(params[0]); g[0] != 0.3 || g[1] != 0.4 {
		t.Errorf("gradients under the limit changed to %v", g)
	}
	// Parameters without gradients are an error, not a zero norm.
	p, _ := ts.NewTensorFromData([]float32{1}, []int64{1})
	if _, err := clipGradNorm([]*ts.Tensor{p}, 1); err == nil {
		t.Error("no gradients: no error")
	}
}

// The optimizer's saved state restores into an optimizer of the same
// parameters, and one of other parameters is refused rather than half read.
func TestOptimizerStateRoundTrip(t *testing.T) {
	params := func(shapes ...[]int64) []*ts.Tensor {
		var ps []*ts.Tensor
		for _, s := range shapes {
			p, err := ts.Ones(s, gotch.Float, gotch.CPU)
			if err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		return ps
	}
	a, err := newOptimizer(params([]int64{2, 3}, []int64{3}), []bool{true, false}, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	defer a.free()
	// One update with a known gradient gives every moment a value.
	for _, p := range a.params {
		sum, _ := p.Sum(gotch.Float, false)
		if err := sum.Backward(); err != nil {
			t.Fatal(err)
		}
		sum.Drop()
	}
	if err := a.step(1e-3); err != nil {
		t.Fatal(err)
	}
	st, err := a.state()
	if err != nil || len(st) != 5 || st[stepsTensor].Data[0] != 1 || st["exp_avg.000"].Data[0] != 0.1 {
		t.Fatalf("state %v (%v)", st, err)
	}
	b, err := newOptimizer(params([]int64{2, 3}, []int64{3}), []bool{true, false}, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	defer b.free()
	if err := b.restore(st); err != nil {
		t.Fatal(err)
	}
	if back, _ := b.state(); b.steps != 1 || back["exp_avg_sq.001"].Data[2] != st["exp_avg_sq.001"].Data[2] {
		t.Errorf("restored %d steps, exp_avg_sq.001 %v, want %v", b.steps, back["exp_avg_sq.001"].Data, st["exp_avg_sq.001"].Data)
	}
	other, err := newOptimizer(params([]int64{3, 2}, []int64{3}), []bool{true, false}, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	defer other.free()
	if err := other.restore(st); err == nil || !strings.Contains(err.Error(), "exp_avg.000") {
		t.Errorf("moments of another shape: %v", err)
	}
	delete(st, "exp_avg_sq.001")
	if err := b.restore(st); err == nil || !strings.Contains(err.Error(), "holds 4 tensors") {
		t.Errorf("a moment missing: %v", err)
	}
}

// TestDivergenceGuardOutlastsOneHardBatch: a contrastive loss near zero makes
// one hard batch look like a tenfold jump; only a run of them, or a loss
// that is not finite, is divergence.
func TestDivergenceGuardOutlastsOneHardBatch(t *testing.T) {
	tr := &trainer{cfg: contract.TrainConfig{DivergenceFactor: 10}}
	for i := 0; i < 20; i++ {
		tr.st.RecentLosses = append(tr.st.RecentLosses, 0.04+0.001*float64(i))
	}
	for i, c := range []struct {
		loss float64
		want string
	}{
		{0.51, ""}, {0.05, ""}, // one hard batch, then back to normal
		{0.6, ""}, {0.7, ""}, {0.8, "for 3 steps in a row (now 0.8 against 0.05)"},
	} {
		got := tr.diverging(c.loss)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("loss %d (%g): %q, want %q", i, c.loss, got, c.want)
		}
	}
	if got := tr.diverging(math.NaN()); !strings.Contains(got, "the loss is NaN") {
		t.Errorf("NaN: %q", got)
	}
}
