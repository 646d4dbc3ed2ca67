package train

import (
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/rerankloop/rerank/plugin/contract"
	"github.com/rerankloop/rerank/plugin/internal/bert"
)

// maskedLogit excludes a pair from another unit's softmax: finite, so that
// its zero target weight gives 0 rather than NaN.
const maskedLogit = -1e9

// loss is the batch's mean loss over logits [B] (rows in st's order), each
// pair's term multiplied by its weight.
//
// BCE: mean_i w_i * BCEWithLogits(x_i, label_i / LabelMax) (with pos_weight
// on the positive term when set).
// Listwise: for each unit u (one query's pairs), with target distribution
// t_i = label_i / sum_u label, loss_u = -sum_i w_i t_i log softmax_u(x)_i;
// the batch loss is the mean over units.
func (t *trainer) loss(s *bert.Scope, logits *ts.Tensor, st step, ex []example) *ts.Tensor {
	var idx []int
	for _, u := range st {
		idx = append(idx, u...)
	}
	B := int64(len(idx))
	if t.cfg.Loss != contract.LossListwise {
		target := make([]float32, B)
		weight := make([]float32, B)
		for j, i := range idx {
			target[j], weight[j] = ex[i].target, ex[i].weight
		}
		posWeight := s.Keep(ts.NewTensor(), nil) // undefined: no pos_weight
		if t.cfg.PosWeight > 0 {
			posWeight = onDevice(s, t.device, []float32{float32(t.cfg.PosWeight)}, []int64{1})
		}
		return s.Keep(logits.BinaryCrossEntropyWithLogits(onDevice(s, t.device, target, []int64{B}),
			onDevice(s, t.device, weight, []int64{B}), posWeight, ts.ReductionMean, false))
	}
	G := int64(len(st))
	mask := make([]float32, G*B)
	target := make([]float32, G*B)
	for i := range mask {
		mask[i] = maskedLogit
	}
	pos := int64(0)
	for g, u := range st {
		sum := float32(0)
		for _, i := range u {
			sum += ex[i].target
		}
		for j, i := range u {
			k := int64(g)*B + pos + int64(j)
			mask[k] = 0
			target[k] = ex[i].weight * ex[i].target / sum
		}
		pos += int64(len(u))
	}
	x := s.Keep(logits.Unsqueeze(0, false)) // [1, B] + [G, B]
	x = s.Keep(x.Add(onDevice(s, t.device, mask, []int64{G, B}), false))
	x = s.Keep(x.LogSoftmax(1, gotch.Float, false))
	x = s.Keep(x.Mul(onDevice(s, t.device, target, []int64{G, B}), false))
	x = s.Keep(x.Sum(gotch.Float, false))
	c := ts.FloatScalar(-1 / float64(G))
	defer c.Drop()
	return s.Keep(x.MulScalar(c, false))
}
