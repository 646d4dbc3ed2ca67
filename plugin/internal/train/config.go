// Package train fine-tunes the BERT cross-encoder of plugin/internal/bert on gotch:
// AdamW with decoupled weight decay on weights only, linear warm-up then
// linear decay, gradient clipping by global norm, BCE or listwise loss with
// per-pair weights, evaluation on validation queries' first-stage candidates
// (NDCG@10, MRR@10), best and last checkpoints in the Hugging Face layout,
// early stopping, a divergence guard and resumption. Service runs it on its
// own OS thread beside the engine's inference thread.
package train

import (
	"fmt"
	"math"

	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
)

// Defaults of a zero contract.TrainConfig field.
const (
	DefaultEpochs           = 2
	DefaultLearningRate     = 3e-5
	DefaultBatchSize        = 8
	DefaultMaxLength        = 256
	DefaultEvalSteps        = 100
	DefaultEvalBatchSize    = 32
	DefaultWarmupRatio      = 0.1
	DefaultWeightDecay      = 0.01
	DefaultMaxGradNorm      = 1.0
	DefaultDivergenceFactor = 10
	// evalStride is the overlap of windows when Window scores validation
	// candidates, as the engine's default.
	evalStride = 64
)

// settle fills defaults and checks the configuration; it returns warnings
// for values outside the guide's ranges.
func settle(c contract.TrainConfig, labels []float64) (contract.TrainConfig, []string, error) {
	var warn []string
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defInt(&c.Epochs, DefaultEpochs)
	def(&c.LearningRate, DefaultLearningRate)
	defInt(&c.BatchSize, DefaultBatchSize)
	defInt(&c.MaxLength, DefaultMaxLength)
	defInt(&c.EvalSteps, DefaultEvalSteps)
	defInt(&c.EvalBatchSize, DefaultEvalBatchSize)
	def(&c.WarmupRatio, DefaultWarmupRatio)
	def(&c.WeightDecay, DefaultWeightDecay)
	def(&c.MaxGradNorm, DefaultMaxGradNorm)
	def(&c.DivergenceFactor, DefaultDivergenceFactor)
	if c.Loss == "" {
		c.Loss = contract.LossBCE // a bi-encoder's default is set once the model is loaded (lossFor)
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case c.Epochs < 1:
		return c, nil, fmt.Errorf("epochs must be at least 1, got %d", c.Epochs)
	case !(c.LearningRate > 0) || !finite(c.LearningRate):
		return c, nil, fmt.Errorf("learning rate must be positive, got %g", c.LearningRate)
	case c.BatchSize < 1 || c.EvalBatchSize < 1:
		return c, nil, fmt.Errorf("batch sizes must be at least 1, got %d and %d", c.BatchSize, c.EvalBatchSize)
	case c.MaxLength < 8:
		return c, nil, fmt.Errorf("max length %d is too short for a (query, document) pair", c.MaxLength)
	case c.EvalSteps < 1 || c.Patience < 0:
		return c, nil, fmt.Errorf("eval steps must be at least 1 and patience not negative, got %d and %d", c.EvalSteps, c.Patience)
	case c.Loss != contract.LossBCE && c.Loss != contract.LossListwise && c.Loss != contract.LossContrastive:
		return c, nil, fmt.Errorf("loss %q: want %s, %s or %s", c.Loss, contract.LossBCE, contract.LossListwise, contract.LossContrastive)
	case c.PosWeight < 0 || !finite(c.PosWeight):
		return c, nil, fmt.Errorf("positive weight must not be negative, got %g", c.PosWeight)
	case !(c.WarmupRatio >= 0 && c.WarmupRatio < 1):
		return c, nil, fmt.Errorf("warm-up ratio must be in [0, 1), got %g", c.WarmupRatio)
	case !(c.WeightDecay >= 0) || !finite(c.WeightDecay):
		return c, nil, fmt.Errorf("weight decay must not be negative, got %g", c.WeightDecay)
	case !(c.MaxGradNorm > 0) || !finite(c.MaxGradNorm):
		return c, nil, fmt.Errorf("max gradient norm must be positive, got %g", c.MaxGradNorm)
	case !(c.DivergenceFactor > 1):
		return c, nil, fmt.Errorf("divergence factor must exceed 1, got %g", c.DivergenceFactor)
	}
	if c.LabelMax == 0 {
		c.LabelMax = 1
		for _, l := range labels {
			if l != 0 && l != 1 {
				c.LabelMax = 4 // graded
			}
		}
	}
	for _, l := range labels {
		if !(l >= 0 && l <= c.LabelMax) {
			return c, nil, fmt.Errorf("label %g outside the scale 0..%g", l, c.LabelMax)
		}
	}
	if c.LearningRate < 2e-5 || c.LearningRate > 5e-5 {
		warn = append(warn, fmt.Sprintf("learning rate %g is outside the usual 2e-5..5e-5 for fine-tuning a cross-encoder", c.LearningRate))
	}
	if c.Epochs > 3 {
		warn = append(warn, fmt.Sprintf("%d epochs: more than 3 usually over-fits a pretrained cross-encoder", c.Epochs))
	}
	return c, warn, nil
}

// Schedule is transformers' get_linear_schedule_with_warmup: the learning
// rate rises linearly from 0 over Warmup updates, then falls linearly to 0
// at Total.
type Schedule struct {
	Peak          float64
	Warmup, Total int
}

func newSchedule(peak float64, ratio float64, total int) Schedule {
	return Schedule{Peak: peak, Warmup: int(math.Ceil(ratio * float64(total))), Total: total}
}

// LR is the learning rate of update k (0-based: the first update uses
// LR(0), which is 0 while warming up, as in transformers).
func (s Schedule) LR(k int) float64 {
	if k < s.Warmup {
		return s.Peak * float64(k) / float64(max(1, s.Warmup))
	}
	return s.Peak * max(0, float64(s.Total-k)/float64(max(1, s.Total-s.Warmup)))
}

// lossFor checks the loss against the model's kind: a bi-encoder trains
// contrastively (its default), a cross-encoder never does.
func lossFor(requested string, kind checkpoint.Kind) (string, error) {
	switch {
	case kind == checkpoint.BiEncoder && (requested == "" || requested == contract.LossContrastive):
		return contract.LossContrastive, nil
	case kind == checkpoint.BiEncoder:
		return "", fmt.Errorf("a bi-encoder trains with the %s loss, not %s", contract.LossContrastive, requested)
	case requested == contract.LossContrastive:
		return "", fmt.Errorf("the %s loss is for bi-encoders; this model is a %v", contract.LossContrastive, kind)
	case requested == "":
		return contract.LossBCE, nil
	}
	return requested, nil
}
