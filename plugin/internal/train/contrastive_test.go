package train

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rerankloop/rerank/evalharness/fusion"
	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
	"github.com/rerankloop/rerank/plugin/internal/tokenize"
)

// biRequest is s's fine-tune of a tiny random bi-encoder; the validation
// candidates carry first-stage scores that favour nothing (descending in
// candidate order), so the fusion's fit can only come from the model.
func (s synthetic) biRequest(t *testing.T, cfg contract.TrainConfig) contract.FinetuneRequest {
	t.Helper()
	req := s.request(t, cfg)
	if _, err := checkpoint.Init(req.BaseModel, req.BaseModel, checkpoint.BiEncoder, 0); err != nil {
		t.Fatal(err)
	}
	for i := range req.Validation {
		q := &req.Validation[i]
		q.Scores = make([]float64, len(q.Candidates))
		for r := range q.Scores {
			q.Scores[r] = float64(len(q.Candidates) - r)
		}
	}
	return req
}

// A tiny bi-encoder learns the separable task with the contrastive loss;
// checkpoints are bi-encoder folders carrying the fusion fitted on the
// validation queries.
func TestContrastiveTrainingLearns(t *testing.T) {
	s := makeSynthetic(2, 60, 3, 12, true)
	req := s.biRequest(t, contract.TrainConfig{Epochs: 4, LearningRate: 3e-3, EvalSteps: 1000, Seed: 3, MaxLength: 32})
	var l stepLosses
	res, err := finetune(t, req, l.observe)
	if err != nil {
		t.Fatal(err)
	}
	// 60 positives (each with one hard negative), 8 queries a batch: 8 steps an epoch.
	if res.Stopped != contract.StopCompleted || res.Steps != 32 {
		t.Fatalf("stopped %q after %d steps: %s", res.Stopped, res.Steps, res.Message)
	}
	first, last := l.mean(1, 8), l.mean(25, 32)
	t.Logf("contrastive loss epoch 1 %.4f, epoch 4 %.4f; fused NDCG@10 %.4f -> %.4f", first, last, res.Base.NDCG10, res.Best.NDCG10)
	if !(last < 0.7*first) || !(res.Best.NDCG10 > res.Base.NDCG10+0.2) {
		t.Errorf("contrastive training did not learn: loss %.4f -> %.4f, NDCG@10 %.4f -> %.4f", first, last, res.Base.NDCG10, res.Best.NDCG10)
	}
	cfg, err := checkpoint.ReadConfig(res.BestCheckpoint)
	if err != nil || cfg.Kind != checkpoint.BiEncoder || cfg.Sentence.Pooling != checkpoint.PoolMean {
		t.Fatalf("best checkpoint: %+v, %v", cfg, err)
	}
	p, found, err := fusion.Read(res.BestCheckpoint)
	if err != nil || !found || p.NDCG10 != res.Best.NDCG10 {
		t.Errorf("fusion.json of the best checkpoint: %+v (found %v, %v); its NDCG@10 should be the best evaluation's %.4f", p, found, err, res.Best.NDCG10)
	}
}

// The contrastive loss is the bi-encoder's; the cross-encoder's losses are
// refused for it and the contrastive one for a cross-encoder.
func TestLossMustFitTheModelKind(t *testing.T) {
	s := makeSynthetic(3, 4, 1, 2, true)
	bi := s.biRequest(t, contract.TrainConfig{Epochs: 1, Loss: contract.LossBCE})
	if _, err := finetune(t, bi, nil); err == nil {
		t.Error("BCE accepted for a bi-encoder")
	}
	ce := s.request(t, contract.TrainConfig{Epochs: 1, Loss: contract.LossContrastive})
	if _, err := finetune(t, ce, nil); err == nil {
		t.Error("the contrastive loss accepted for a cross-encoder")
	}
}

// Every batch holds distinct queries, each positive once an epoch with one
// of its query's negatives.
func TestContrastivePlan(t *testing.T) {
	s := makeSynthetic(4, 10, 3, 0, true)
	s.train = append(s.train, contract.TrainPair{QueryID: "t0", Query: "apple facts 0", Doc: 0, Label: 2}) // a second positive of t0
	req := contract.FinetuneRequest{Docs: s.docs, Train: s.train}
	c := contract.TrainConfig{Epochs: 2, BatchSize: 4, Seed: 1, LabelMax: 4, MaxLength: 16, Loss: contract.LossContrastive}
	ex, _, err := encodeTrain(loadTok(t), req, c, 16)
	if err != nil {
		t.Fatal(err)
	}
	for e, steps := range planContrastive(ex, c) {
		seen := map[int]int{}
		for _, st := range steps {
			groups := map[int]bool{}
			for _, u := range st {
				g := ex[u[0]].group
				if groups[g] || ex[u[0]].target == 0 || len(u) != 2 || ex[u[1]].group != g || ex[u[1]].target != 0 {
					t.Fatalf("epoch %d: bad unit %v in %v", e, u, st)
				}
				groups[g] = true
				seen[u[0]]++
			}
		}
		if len(seen) != 11 {
			t.Errorf("epoch %d: %d positives seen, want 11", e, len(seen))
		}
		for i, n := range seen {
			if n != 1 {
				t.Errorf("epoch %d: positive %d seen %d times", e, i, n)
			}
		}
	}
}

func loadTok(t *testing.T) *tokenize.Encoder {
	t.Helper()
	tok, err := tokenize.Load(filepath.Join("..", "..", "testdata", "tiny-ce", checkpoint.TokenizerFile))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// With fewer validation queries than minFitQueries the base model's fusion
// weight is kept rather than refitted on a handful of queries.
func TestFewValidationQueriesKeepTheBaseFusion(t *testing.T) {
	s := makeSynthetic(6, 8, 1, 5, true)
	req := s.biRequest(t, contract.TrainConfig{Epochs: 1, LearningRate: 3e-5, EvalSteps: 1000, Seed: 3, MaxLength: 32})
	base := fusion.Params{Method: fusion.MinMax, BM25Weight: 0.4, FittedOn: "the base's train split"}
	if err := fusion.Write(req.BaseModel, base); err != nil {
		t.Fatal(err)
	}
	res, err := finetune(t, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{res.BestCheckpoint, res.LastCheckpoint} {
		if p, found, err := fusion.Read(dir); err != nil || !found || p.BM25Weight != base.BM25Weight || p.FittedOn != base.FittedOn {
			t.Errorf("%s: fusion %+v (found %v, %v), want the base's %+v", dir, p, found, err, base)
		}
	}
}

// The refit keeps the base's weight unless another beats it by more than a
// standard error: here weights under 1/3 rank 17 of 30 queries right, those
// over 0.41 the other 13 (+0.05 on average for the former, a standard error
// of 0.07).
func TestRefitMovesFromTheBaseWeightOnlyBeyondNoise(t *testing.T) {
	var judged []fusion.Query
	for i := range minFitQueries {
		// The relevant document r is the model's pick (first 17) or BM25's.
		q := fusion.Query{ID: strconv.Itoa(i), DocIDs: []string{"n", "r"}, First: []float64{1, 0}, Model: []float64{0.5, 1},
			Judged: map[string]int{"r": 1}}
		if i >= 17 {
			q.First, q.Model = []float64{0, 1}, []float64{1, 0.3}
		}
		judged = append(judged, q)
	}
	free, err := fitFusion(judged, nil)
	if err != nil || free.BM25Weight > 0.3 || free.FittedOn != "validation (30 queries)" {
		t.Fatalf("without a base: %+v %v, want a weight under 1/3, where the model's picks win", free, err)
	}
	base := &fusion.Params{Method: fusion.MinMax, BM25Weight: 0.6}
	p, err := fitFusion(judged, base)
	if err != nil || p.BM25Weight != 0.6 || !strings.Contains(p.FittedOn, "nearest the base's 0.60") {
		t.Fatalf("with the base at 0.6: %+v %v, want the base's weight", p, err)
	}
	if p, err := fitFusion(judged[:minFitQueries-1], base); err != nil || p != *base {
		t.Fatalf("%d queries: %+v %v, want the base's fusion as it is", minFitQueries-1, p, err)
	}
}
