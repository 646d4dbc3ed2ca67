package train

/*
const char *rerank_optim_error();
int rerank_zero_grad(void **params, int n);
int rerank_clip_grad_norm(void **params, int n, double max_norm, double *norm, int *found);
int rerank_adamw_step(void **params, void **exp_avg, void **exp_avg_sq, int n, double lr, double beta1, double beta2,
                      double eps, double weight_decay, double step);
*/
import "C"

import (
	"errors"
	"fmt"
	"slices"
	"unsafe"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/internal/bert"
)

// AdamW's moment decay rates and epsilon (PyTorch's defaults).
const beta1, beta2, adamEps = 0.9, 0.999, 1e-8

// optimizer is AdamW as torch.optim.AdamW(fused=True) computes it, with
// weight decay on weights and none on biases and LayerNorm (transformers'
// grouping). Its moments are tensors of ours, so they are saved with the
// run and a resumed run continues with them.
type optimizer struct {
	params []*ts.Tensor
	decay  []bool
	// moments holds exp_avg and exp_avg_sq of params[i] at 2i and 2i+1.
	moments     []*ts.Tensor
	weightDecay float64
	// steps counts the updates applied (AdamW's bias correction).
	steps int
	// C pointers of the parameters (all), and per group (without and with
	// weight decay) of its parameters and their moments, index-aligned.
	ptrs   []unsafe.Pointer
	groups [2]adamGroup
}

type adamGroup struct {
	params, expAvg, expAvgSq []unsafe.Pointer
}

// newOptimizer makes the parameters trainable and gives each zero moments.
func newOptimizer(params []*ts.Tensor, decay []bool, weightDecay float64) (o *optimizer, err error) {
	o = &optimizer{params: params, decay: decay, weightDecay: weightDecay}
	defer func() {
		if err != nil {
			o.free()
		}
	}()
	defer bert.Guard(&err)
	for _, p := range params {
		t, err := p.SetRequiresGrad(true, false)
		bert.Check(err)
		t.Drop() // a second handle on the same parameter
		for range 2 {
			m, err := p.ZerosLike(false)
			bert.Check(err)
			o.moments = append(o.moments, m)
		}
	}
	o.link()
	return o, nil
}

// link collects the C pointers of the parameters and moments.
func (o *optimizer) link() {
	o.ptrs, o.groups = nil, [2]adamGroup{}
	for i, p := range o.params {
		g := &o.groups[0]
		if o.decay[i] {
			g = &o.groups[1]
		}
		g.params = append(g.params, p.Ctensor())
		g.expAvg = append(g.expAvg, o.moments[2*i].Ctensor())
		g.expAvgSq = append(g.expAvgSq, o.moments[2*i+1].Ctensor())
		o.ptrs = append(o.ptrs, p.Ctensor())
	}
}

func optimError(what string) error {
	return fmt.Errorf("%s: %s", what, C.GoString(C.rerank_optim_error()))
}

func (o *optimizer) zeroGrad() error {
	if C.rerank_zero_grad(&o.ptrs[0], C.int(len(o.ptrs))) != 0 {
		return optimError("zero_grad")
	}
	return nil
}

// clipGradNorm scales the gradients so that their global L2 norm is at most
// maxNorm, as torch.nn.utils.clip_grad_norm_ does, and returns the norm
// before clipping. A non-finite norm is returned as it is and nothing is
// scaled: the caller stops.
func (o *optimizer) clipGradNorm(maxNorm float64) (float64, error) {
	var norm C.double
	var found C.int
	if C.rerank_clip_grad_norm(&o.ptrs[0], C.int(len(o.ptrs)), C.double(maxNorm), &norm, &found) != 0 {
		return 0, optimError("clipping the gradients")
	}
	if found == 0 {
		return 0, errors.New("no parameter has a gradient")
	}
	return float64(norm), nil
}

// step applies the next update at learning rate lr (the schedule is the
// caller's) to every parameter with a gradient.
func (o *optimizer) step(lr float64) error {
	o.steps++
	for i, g := range o.groups {
		if len(g.params) == 0 {
			continue
		}
		wd := 0.0
		if i == 1 {
			wd = o.weightDecay
		}
		if C.rerank_adamw_step(&g.params[0], &g.expAvg[0], &g.expAvgSq[0], C.int(len(g.params)), C.double(lr),
			beta1, beta2, adamEps, C.double(wd), C.double(o.steps)) != 0 {
			return optimError("AdamW step")
		}
	}
	return nil
}

// stepsTensor names the update count in a saved state.
const stepsTensor = "steps"

// state copies the moments and the update count to host memory: exp_avg.<i>
// and exp_avg_sq.<i> for parameter i.
func (o *optimizer) state() (map[string]checkpoint.Tensor, error) {
	out := map[string]checkpoint.Tensor{stepsTensor: {Shape: []int64{1}, Data: []float32{float32(o.steps)}}}
	for i, t := range o.moments {
		c, err := bert.HostCopy(t)
		if err != nil {
			return nil, err
		}
		out[momentName(i)] = c
	}
	return out, nil
}

// restore sets the moments and update count from a saved state of the same
// parameters.
func (o *optimizer) restore(st map[string]checkpoint.Tensor) (err error) {
	defer bert.Guard(&err)
	steps, ok := st[stepsTensor]
	if !ok || len(steps.Data) != 1 || len(st) != len(o.moments)+1 {
		return fmt.Errorf("the saved state holds %d tensors, want %d moments and the step count", len(st), len(o.moments))
	}
	moments := make([]*ts.Tensor, len(o.moments))
	defer func() {
		if err != nil {
			for _, t := range moments {
				if t != nil {
					t.MustDrop()
				}
			}
		}
	}()
	for i, t := range o.moments {
		saved, ok := st[momentName(i)]
		if !ok || !slices.Equal(saved.Shape, t.MustSize()) {
			return fmt.Errorf("moment %s: saved shape %v, the parameter's %v", momentName(i), saved.Shape, t.MustSize())
		}
		m, err := ts.NewTensorFromData(saved.Data, saved.Shape)
		bert.Check(err)
		if dev := t.MustDevice(); dev != gotch.CPU {
			moved, err := m.To(dev, true)
			bert.Check(err)
			m = moved
		}
		moments[i] = m
	}
	for _, t := range o.moments {
		t.MustDrop()
	}
	o.moments, o.steps = moments, int(steps.Data[0])
	o.link()
	return nil
}

func momentName(i int) string {
	if i%2 == 0 {
		return fmt.Sprintf("exp_avg.%03d", i/2)
	}
	return fmt.Sprintf("exp_avg_sq.%03d", i/2)
}

func (o *optimizer) free() {
	for _, t := range o.moments {
		t.MustDrop()
	}
	o.moments, o.ptrs, o.groups = nil, nil, [2]adamGroup{}
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
