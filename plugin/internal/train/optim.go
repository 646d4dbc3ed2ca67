package train

import (
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/rerankloop/rerank/plugin/internal/bert"
)

// AdamW's moment decay rates (PyTorch's defaults; eps is libtorch's 1e-8).
const beta1, beta2 = 0.9, 0.999

// optimizer is libtorch's AdamW over two groups: weights with weight decay,
// biases and LayerNorm without. gotch's param groups clone the first group's
// options and cannot set a weight decay of their own, so each group is its
// own optimizer (AdamW keeps per-parameter state, so this is the same
// algorithm). Its moments live in libtorch and are not checkpointed.
type optimizer struct {
	groups []*ts.COptimizer
	params []*ts.Tensor
}

// newOptimizer makes the parameters trainable and builds AdamW over them.
func newOptimizer(params []*ts.Tensor, decay []bool, lr, weightDecay float64) (o *optimizer, err error) {
	var withDecay, without []*ts.Tensor
	for i, p := range params {
		t, err := p.SetRequiresGrad(true, false)
		if err != nil {
			return nil, err
		}
		t.Drop() // a second handle on the same parameter
		if decay[i] {
			withDecay = append(withDecay, p)
		} else {
			without = append(without, p)
		}
	}
	o = &optimizer{params: params}
	for _, g := range []struct {
		params []*ts.Tensor
		decay  float64
	}{{withDecay, weightDecay}, {without, 0}} {
		if len(g.params) == 0 {
			continue
		}
		c, err := ts.AdamW(lr, beta1, beta2, g.decay)
		if err != nil {
			o.free()
			return nil, err
		}
		o.groups = append(o.groups, c)
		if err := c.AddParameters(g.params); err != nil {
			o.free()
			return nil, err
		}
	}
	return o, nil
}

func (o *optimizer) zeroGrad() error {
	for _, g := range o.groups {
		if err := g.ZeroGrad(); err != nil {
			return err
		}
	}
	return nil
}

// step sets the learning rate of this update (the schedule is applied here,
// not by a gotch scheduler) and updates the parameters.
func (o *optimizer) step(lr float64) error {
	for _, g := range o.groups {
		if err := g.SetLearningRate(lr); err != nil {
			return err
		}
		if err := g.Step(); err != nil {
			return err
		}
	}
	return nil
}

func (o *optimizer) free() {
	for _, g := range o.groups {
		g.Drop()
	}
	o.groups = nil
}

// clipGradNorm scales the gradients so that their global L2 norm is at most
// maxNorm, as torch.nn.utils.clip_grad_norm_ does (gotch's own clipping
// deadlocks), and returns the norm before clipping. A non-finite norm is
// returned as it is and nothing is scaled: the caller stops.
func clipGradNorm(params []*ts.Tensor, maxNorm float64) (norm float64, err error) {
	defer bert.Guard(&err)
	var s bert.Scope
	defer s.Free()
	var grads, norms []*ts.Tensor
	for _, p := range params {
		g := s.Keep(p.Grad(false))
		defined, err := g.Defined()
		bert.Check(err)
		if defined {
			grads = append(grads, g)
			norms = append(norms, s.Keep(g.Norm(false)))
		}
	}
	if len(grads) == 0 {
		return 0, fmt.Errorf("no parameter has a gradient")
	}
	norm = scalar(s.Keep(s.Keep(ts.Stack(norms, 0)).Norm(false)))
	if coef := maxNorm / (norm + 1e-6); coef < 1 {
		c := ts.FloatScalar(coef)
		defer c.Drop()
		for _, g := range grads {
			bert.Check(g.MulScalar_(c))
		}
	}
	return norm, nil
}

// scalar reads a one-element float tensor (on any device).
func scalar(t *ts.Tensor) float64 {
	v := make([]float32, 1)
	bert.Check(t.CopyData(v, 1))
	return float64(v[0])
}

// onDevice makes a tensor of data on device, held by s.
func onDevice(s *bert.Scope, device gotch.Device, data any, shape []int64) *ts.Tensor {
	t := s.Keep(ts.NewTensorFromData(data, shape))
	if device != gotch.CPU {
		t = s.Keep(t.To(device, false))
	}
	return t
}
