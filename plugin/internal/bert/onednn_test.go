package bert

import (
	"math"
	"runtime"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// The dense layers' oneDNN path must compute what at::linear and at::gelu
// compute, forward and backward, with and without bias.
func TestLinearMatchesATen(t *testing.T) {
	runtime.LockOSThread() // grad mode is per thread
	defer runtime.UnlockOSThread()
	forward, backward := OneDNN()
	if !forward {
		t.Fatal("the PyPI libtorch carries oneDNN: float32 dense layers on CPU should run in it")
	}
	t.Logf("oneDNN backward products: %v", backward)
	ManualSeed(1)
	x := ts.MustRandn([]int64{3, 5, 16}, gotch.Float, gotch.CPU)
	w := ts.MustRandn([]int64{24, 16}, gotch.Float, gotch.CPU)
	b := ts.MustRandn([]int64{24}, gotch.Float, gotch.CPU)
	up := ts.MustRandn([]int64{3, 5, 24}, gotch.Float, gotch.CPU) // weights the sum whose gradient is compared
	for _, act := range []activation{noActivation, geluExact, geluTanh} {
		for _, bias := range []*ts.Tensor{b, nil} {
			ours := run(t, x, w, bias, up, func(s *Scope, x, w, b *ts.Tensor) *ts.Tensor { return linear(s, x, w, b, act) })
			want := run(t, x, w, bias, up, func(s *Scope, x, w, b *ts.Tensor) *ts.Tensor {
				y := s.Keep(x.Matmul(s.Keep(w.Transpose(0, 1, false)), false))
				if b != nil {
					y = s.Keep(y.Add(b, false))
				}
				if act == noActivation {
					return y
				}
				return s.Keep(y.Gelu(map[activation]string{geluExact: "none", geluTanh: "tanh"}[act], false))
			})
			for i := range want {
				if d := maxAbsDiff(ours[i], want[i]); !(d <= 1e-5) { // NaN fails too
					t.Errorf("activation %d, bias %v: output/gradient %d differs from at::linear by %g", act, bias != nil, i, d)
				}
			}
		}
	}
}

// run computes f at inference and under autograd, returning the output and
// the gradients of sum(f * up) with respect to x, w and (when given) b.
func run(t *testing.T, x, w, b, up *ts.Tensor, f func(s *Scope, x, w, b *ts.Tensor) *ts.Tensor) (out [][]float32) {
	t.Helper()
	var s Scope
	defer s.Free()
	err := func() (err error) {
		defer Guard(&err)
		ts.NoGrad(func() { out = append(out, values(t, f(&s, x, w, b))) })
		leaf := func(t *ts.Tensor) *ts.Tensor {
			if t == nil {
				return nil
			}
			l := s.Keep(t.Detach(false))
			s.Keep(l.SetRequiresGrad(true, false))
			return l
		}
		params := []*ts.Tensor{leaf(x), leaf(w), leaf(b)}
		y := f(&s, params[0], params[1], params[2])
		Check(s.Keep(s.Keep(y.Mul(up, false)).Sum(gotch.Float, false)).Backward())
		for _, p := range params {
			if p != nil {
				out = append(out, values(t, s.Keep(p.Grad(false))))
			}
		}
		return nil
	}()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func values(t *testing.T, x *ts.Tensor) []float32 {
	c, err := HostCopy(x)
	if err != nil {
		t.Fatal(err)
	}
	return c.Data
}

func maxAbsDiff(a, b []float32) float64 {
	worst := math.Inf(1)
	if len(a) == len(b) {
		worst = 0
		for i := range a {
			worst = max(worst, math.Abs(float64(a[i]-b[i])))
		}
	}
	return worst
}
