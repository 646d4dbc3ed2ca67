package bert

import (
	"fmt"
	"math"
	"runtime"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// The fused attention must equal libtorch's scaled_dot_product_attention,
// with a padding mask and without one, with scores as large as a diverging
// model's (about 1e17), and with a float mask added to the scores (which the
// kernel leaves to SDPA). T (700) leaves a partial block of query
// rows and a partial vector of keys; the head sizes take 1, 2, 4 and 5
// vectors, the first and last with a partial one.
func TestAttentionMatchesSDPA(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if !FusedAttention() {
		t.Skip("this CPU has no AVX-512F: attention is libtorch's")
	}
	const B, nh, T = 3, 3, 700
	for _, dh := range []int64{8, 32, 64, 72} {
		t.Run(fmt.Sprintf("dh=%d", dh), func(t *testing.T) {
			var s Scope
			defer s.Free()
			err := func() (err error) {
				defer Guard(&err)
				ManualSeed(2)
				// q, k and v strided as the model's are: views of one [B, T, 3, nh, dh] projection.
				qkv := s.Keep(s.Keep(ts.Randn([]int64{B, T, 3, nh, dh}, gotch.Float, gotch.CPU)).Permute([]int64{2, 0, 3, 1, 4}, false))
				mask := keyMask(Batch{Size: B, Len: T, Lengths: []int{T, 5, 333}})
				padded := s.Keep(ts.NewTensorFromData(mask, []int64{B, 1, 1, T}))
				// The same mask as SDPA also takes it, added to the scores: not
				// the kernel's kind, so it must reach SDPA unchanged.
				additive := s.Keep(s.Keep(ts.Zeros([]int64{B, 1, 1, T}, gotch.Float, gotch.CPU)).MaskedFill(s.Keep(padded.LogicalNot(false)), ts.FloatScalar(math.Inf(-1)), false))
				for _, c := range []struct {
					name  string
					mask  *ts.Tensor
					scale float64 // of q and k
				}{{"padded", padded, 1}, {"unpadded", nil, 1}, {"large scores", padded, 1e8}, {"additive mask", additive, 1}} {
					q := s.Keep(s.Keep(qkv.Select(0, 0, false)).MulScalar(ts.FloatScalar(c.scale), false))
					k := s.Keep(s.Keep(qkv.Select(0, 1, false)).MulScalar(ts.FloatScalar(c.scale), false))
					v := s.Keep(qkv.Select(0, 2, false))
					ts.NoGrad(func() {
						ours := values(t, attention(&s, q, k, v, c.mask, 0))
						ref := c.mask
						if ref == nil {
							ref = s.Keep(ts.Ones([]int64{B, 1, 1, T}, gotch.Bool, gotch.CPU))
						}
						want := values(t, s.Keep(ts.ScaledDotProductAttention(q, k, v, ref, 0, false, nil)))
						if d := maxAbsDiff(ours, want); !(d <= 1e-5) { // NaN fails too
							t.Errorf("%s: attention differs from scaled_dot_product_attention by %g", c.name, d)
						}
					})
				}
				return nil
			}()
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
