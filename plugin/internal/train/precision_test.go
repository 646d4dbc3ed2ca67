package train

import (
	"context"
	"strings"
	"testing"

	"github.com/rerankloop/rerank/plugin/contract"
)

// TestTrainingUnderAutocast trains the same task in fp32 and under bf16
// autocast (the CUDA default; on CPU here): both learn, and bf16's best
// validation NDCG@10 is within noise of fp32's. fp16 is refused.
func TestTrainingUnderAutocast(t *testing.T) {
	s := makeSynthetic(1, 60, 3, 12, true)
	best := map[string]float64{}
	for _, prec := range []string{"fp32", "bf16"} {
		svc, err := NewService("cpu", 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.SetPrecision(prec); err != nil {
			t.Fatal(err)
		}
		var messages []string
		req := s.request(t, contract.TrainConfig{Epochs: 4, LearningRate: 3e-3, EvalSteps: 30, Seed: 3, MaxLength: 32})
		res, err := svc.Finetune(context.Background(), req, func(p contract.FinetuneProgress) {
			if p.Message != "" {
				messages = append(messages, p.Message)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(messages, "\n"), "precision "+prec) {
			t.Errorf("%s: the start messages do not name the precision", prec)
		}
		t.Logf("%s: NDCG@10 base %.4f, best %.4f at step %d", prec, res.Base.NDCG10, res.Best.NDCG10, res.BestStep)
		if !(res.Best.NDCG10 > res.Base.NDCG10+0.1) {
			t.Errorf("%s: validation NDCG@10 did not improve: base %.4f, best %.4f", prec, res.Base.NDCG10, res.Best.NDCG10)
		}
		best[prec] = res.Best.NDCG10
	}
	if best["bf16"] < best["fp32"]-0.05 {
		t.Errorf("best validation NDCG@10 under bf16 %.4f, fp32 %.4f", best["bf16"], best["fp32"])
	}
	svc, err := NewService("cpu", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.SetPrecision("fp16"); err == nil {
		t.Error("fp16 training was accepted")
	}
}
