package train

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/rerankloop/rerank/evalharness/metrics"
	"github.com/rerankloop/rerank/evalharness/trec"
	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
	"github.com/rerankloop/rerank/plugin/internal/bert"
	"github.com/rerankloop/rerank/plugin/internal/engine"
)

func TestTrainingLearnsSeparableTask(t *testing.T) {
	s := makeSynthetic(1, 60, 3, 12, true)
	req := s.request(t, contract.TrainConfig{Epochs: 6, LearningRate: 3e-3, EvalSteps: 30, Seed: 3, MaxLength: 32})
	var l stepLosses
	var messages []string
	res, err := finetune(t, req, func(p contract.FinetuneProgress) {
		l.observe(p)
		if p.Message != "" {
			messages = append(messages, p.Message)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// 240 pairs in batches of 8: 30 steps an epoch.
	if res.Stopped != contract.StopCompleted || res.Steps != 180 {
		t.Fatalf("stopped %q after %d steps: %s", res.Stopped, res.Steps, res.Message)
	}
	first, last := l.mean(1, 30), l.mean(151, 180)
	t.Logf("mean loss epoch 1 %.4f, epoch 6 %.4f; NDCG@10 base %.4f, best %.4f at step %d", first, last, res.Base.NDCG10, res.Best.NDCG10, res.BestStep)
	if !(last < 0.8*first) {
		t.Errorf("loss did not decrease: epoch 1 %.4f, epoch 6 %.4f", first, last)
	}
	if !(res.Best.NDCG10 > res.Base.NDCG10+0.1) {
		t.Errorf("validation NDCG@10 did not improve: base %.4f, best %.4f", res.Base.NDCG10, res.Best.NDCG10)
	}
	// Evaluations: the base, every 30 steps (= each epoch's end).
	if len(res.Curve) != 7 || res.Curve[0].Step != 0 || res.Curve[6].Step != 180 {
		t.Errorf("curve %+v", res.Curve)
	}
	// The start names the versions, the binary and the configuration.
	joined := strings.Join(messages, "\n")
	for _, want := range []string{"gotch v0.9.1", "libtorch 2.11", "binary ", "config {", `"LearningRate":0.003`, "learning rate 0.003 is outside"} {
		if !strings.Contains(joined, want) {
			t.Errorf("start messages lack %q:\n%s", want, joined)
		}
	}
	// Only the best and the last checkpoints are kept.
	steps, err := checkpoints(req.OutDir)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[int]bool{res.BestStep: true, 180: true}; len(steps) != len(want) || !want[steps[0]] || !want[steps[len(steps)-1]] {
		t.Errorf("checkpoints %v, want best %d and last 180", steps, res.BestStep)
	}
	for _, f := range []string{CardFile, ReportFile, StateFile, checkpoint.WeightsFile, checkpoint.ConfigFile, checkpoint.TokenizerFile} {
		if _, err := os.Stat(filepath.Join(res.BestCheckpoint, f)); err != nil {
			t.Errorf("best checkpoint: %v", err)
		}
	}
	card, _ := os.ReadFile(filepath.Join(req.OutDir, CardFile))
	for _, want := range []string{"synthetic topics", "| 180 | 6.00 |", "learning rate 0.003", "240 pairs over 60 queries; labels 0: 180, 1: 60"} {
		if !strings.Contains(string(card), want) {
			t.Errorf("model card lacks %q:\n%s", want, card)
		}
	}
	var rep report
	b, _ := os.ReadFile(res.ReportPath)
	if err := json.Unmarshal(b, &rep); err != nil || rep.Best.NDCG10 != res.Best.NDCG10 || rep.FirstStage == nil {
		t.Errorf("training_report.json: %v, %+v", err, rep)
	}
	// The saved best checkpoint is the model that was evaluated: the
	// engine, loading it, reranks the validation queries to the same NDCG.
	if got := engineNDCG(t, res.BestCheckpoint, req); math.Abs(got-res.Best.NDCG10) > 1e-9 {
		t.Errorf("best checkpoint reranked by the engine: NDCG@10 %.6f, recorded %.6f", got, res.Best.NDCG10)
	}
}

// engineNDCG serves a checkpoint with the engine and measures NDCG@10 on
// the request's validation queries.
func engineNDCG(t *testing.T, dir string, req contract.FinetuneRequest) float64 {
	t.Helper()
	e, err := engine.New(engine.Options{Device: "cpu", MaxLength: req.Config.MaxLength})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Load(context.Background(), contract.LoadRequest{Path: dir, Serve: true}); err != nil {
		t.Fatal(err)
	}
	run := trec.Run{}
	qrels := map[string]map[string]int{}
	for _, q := range req.Validation {
		rr := contract.RerankRequest{Query: q.Query}
		for _, d := range q.Candidates {
			rr.Documents = append(rr.Documents, req.Docs[d])
		}
		resp, err := e.Rerank(context.Background(), rr)
		if err != nil {
			t.Fatal(err)
		}
		run[q.QueryID] = map[string]float64{}
		for i, d := range rr.Documents {
			run[q.QueryID][d.ID] = float64(resp.Scores[i])
		}
		qrels[q.QueryID] = q.Judged
	}
	pq, err := metrics.Evaluate(run, qrels, ndcg10)
	if err != nil {
		t.Fatal(err)
	}
	return metrics.Mean(pq[ndcg10.String()])
}

func TestSameSeedSameWeights(t *testing.T) {
	s := makeSynthetic(2, 24, 3, 4, true)
	cfg := contract.TrainConfig{Epochs: 1, LearningRate: 1e-3, EvalSteps: 100, Seed: 5, MaxLength: 32}
	hash := func(seed uint64) string {
		cfg.Seed = seed
		res, err := finetune(t, s.request(t, cfg), nil)
		if err != nil {
			t.Fatal(err)
		}
		h, err := checkpoint.Hash(res.LastCheckpoint)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	a, b, c := hash(5), hash(5), hash(6)
	if a != b {
		t.Errorf("same seed, different weights: %s and %s", a, b)
	}
	if a == c {
		t.Error("seeds 5 and 6 gave the same weights: the seed does not reach the data order or dropout")
	}
}

func TestDivergenceGuardKeepsBest(t *testing.T) {
	s := makeSynthetic(3, 40, 3, 6, true)
	req := s.request(t, contract.TrainConfig{Epochs: 2, LearningRate: 1e3, EvalSteps: 4, Seed: 1, MaxLength: 32})
	res, err := finetune(t, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stopped != contract.StopDiverged {
		t.Fatalf("an absurd learning rate trained to the end: %s: %s", res.Stopped, res.Message)
	}
	if !strings.Contains(res.Message, "learning rate") || !strings.Contains(res.Message, "peak 1e+03") {
		t.Errorf("message does not name the learning rate: %s", res.Message)
	}
	if res.Steps >= 40 {
		t.Errorf("stopped after %d of 40 steps", res.Steps)
	}
	m, _, err := bert.Load(res.BestCheckpoint, gotch.CPU, 0)
	if err != nil {
		t.Fatalf("best checkpoint %s: %v", res.BestCheckpoint, err)
	}
	m.Free()
	t.Logf("%s (best: step %d)", res.Message, res.BestStep)
}

func TestResumeAfterCancel(t *testing.T) {
	s := makeSynthetic(4, 40, 3, 4, true)
	req := s.request(t, contract.TrainConfig{Epochs: 2, LearningRate: 3e-4, EvalSteps: 8, Seed: 1, MaxLength: 32})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc, err := NewService("cpu", 0)
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.Finetune(ctx, req, func(p contract.FinetuneProgress) {
		if p.Step == 13 && p.Eval == nil && p.Message == "" {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || res.Stopped != contract.StopCancelled || res.Steps != 13 {
		t.Fatalf("cancel: %v, %s after %d steps: %s", err, res.Stopped, res.Steps, res.Message)
	}
	if res.LastCheckpoint != checkpointDir(res.OutDir, 13) {
		t.Errorf("last checkpoint %s, want checkpoint-13", res.LastCheckpoint)
	}
	// The same folder without resume is refused.
	if _, err := finetune(t, req, nil); !errors.Is(err, contract.ErrInvalidRequest) || !strings.Contains(err.Error(), "already holds") {
		t.Errorf("a second run into the same folder: %v", err)
	}
	req.Resume = true
	firstStep := 0
	res2, err := finetune(t, req, func(p contract.FinetuneProgress) {
		if firstStep == 0 && p.Step > 0 && p.Message == "" && p.Eval == nil {
			firstStep = p.Step
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if firstStep != 14 || res2.Steps != 40 || res2.Stopped != contract.StopCompleted {
		t.Errorf("resumed at step %d, ended after %d (%s)", firstStep, res2.Steps, res2.Stopped)
	}
	// The curve continues the first run's: base, 8, 13 (cancelled, no
	// evaluation), then 16, 20 (epoch end), 24, 32, 40.
	var steps []int
	for _, p := range res2.Curve {
		steps = append(steps, p.Step)
	}
	if want := []int{0, 8, 16, 20, 24, 32, 40}; !equalInts(steps, want) {
		t.Errorf("curve steps %v, want %v", steps, want)
	}
	// Other data cannot resume this run.
	req.Train = req.Train[1:]
	if _, err := finetune(t, req, nil); err == nil || !strings.Contains(err.Error(), "data differ") {
		t.Errorf("resuming on other data: %v", err)
	}
}

// A run cancelled and resumed trains as the uninterrupted run does: AdamW's
// moments are saved at the cancel and restored, so every later loss and the
// final weights agree. (With the moments restarted, the first update after
// the resume moved each weight by about the learning rate.)
func TestResumeContinuesTheUninterruptedRun(t *testing.T) {
	s := makeSynthetic(5, 24, 3, 4, true)
	cfg := contract.TrainConfig{Epochs: 2, LearningRate: 3e-4, EvalSteps: 100, Seed: 3, MaxLength: 32}
	var whole stepLosses
	want, err := finetune(t, s.request(t, cfg), whole.observe)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(want.OutDir, OptimizerFile)); !os.IsNotExist(err) {
		t.Errorf("a completed run keeps %s: %v", OptimizerFile, err)
	}
	req := s.request(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc, err := NewService("cpu", 0)
	if err != nil {
		t.Fatal(err)
	}
	const at = 7
	if res, err := svc.Finetune(ctx, req, func(p contract.FinetuneProgress) {
		if p.Step == at && p.Eval == nil && p.Message == "" {
			cancel()
		}
	}); !errors.Is(err, context.Canceled) || res.Steps != at {
		t.Fatalf("cancel: %v after %d steps", err, res.Steps)
	}
	if _, err := os.Stat(filepath.Join(req.OutDir, OptimizerFile)); err != nil {
		t.Fatalf("the cancelled run saved no moments: %v", err)
	}
	req.Resume = true
	var resumed stepLosses
	got, err := finetune(t, req, resumed.observe)
	if err != nil || got.Steps != want.Steps {
		t.Fatalf("resumed: %v, %d steps of %d", err, got.Steps, want.Steps)
	}
	for step := at + 1; step <= want.Steps; step++ {
		if a, b := resumed.losses[step], whole.losses[step]; math.Abs(a-b) > 1e-5*math.Abs(b) {
			t.Errorf("step %d: loss %.7f resumed, %.7f uninterrupted", step, a, b)
		}
	}
	worst := maxWeightDifference(t, got.LastCheckpoint, want.LastCheckpoint)
	if worst > 1e-5 {
		t.Errorf("final weights differ by up to %.3g", worst)
	}
	t.Logf("final weights agree to %.3g", worst)
}

// maxWeightDifference is the largest absolute difference between two
// checkpoints' weights.
func maxWeightDifference(t *testing.T, a, b string) float64 {
	t.Helper()
	wa, wb := readWeights(t, a), readWeights(t, b)
	worst := 0.0
	for name, x := range wa {
		for i, v := range x.Data {
			worst = math.Max(worst, math.Abs(float64(v)-float64(wb[name].Data[i])))
		}
	}
	return worst
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestListwiseLossLearns(t *testing.T) {
	s := makeSynthetic(5, 60, 3, 8, true)
	req := s.request(t, contract.TrainConfig{Epochs: 4, LearningRate: 3e-3, EvalSteps: 1000, Seed: 3, MaxLength: 32, Loss: contract.LossListwise})
	var l stepLosses
	res, err := finetune(t, req, l.observe)
	if err != nil {
		t.Fatal(err)
	}
	// Each query's 4 pairs form one unit, two queries a batch: 30 steps an epoch.
	if res.Steps != 120 {
		t.Fatalf("%d steps, want 120", res.Steps)
	}
	first, last := l.mean(1, 30), l.mean(91, 120)
	t.Logf("listwise loss epoch 1 %.4f, epoch 4 %.4f; NDCG@10 %.4f -> %.4f", first, last, res.Base.NDCG10, res.Best.NDCG10)
	if !(last < 0.5*first) || !(res.Best.NDCG10 > res.Base.NDCG10+0.2) {
		t.Errorf("listwise training did not learn: loss %.4f -> %.4f, NDCG@10 %.4f -> %.4f", first, last, res.Base.NDCG10, res.Best.NDCG10)
	}
}

// TestPairWeightsScaleTheLoss: the first step (same model, same dropout)
// with every weight 2 has twice the loss, for both losses; pos_weight
// changes BCE's.
func TestPairWeightsScaleTheLoss(t *testing.T) {
	s := makeSynthetic(6, 4, 3, 2, true)
	firstLoss := func(cfg contract.TrainConfig, weight float64) float64 {
		req := s.request(t, cfg)
		req.Train = append([]contract.TrainPair(nil), req.Train...)
		for i := range req.Train {
			req.Train[i].Weight = weight
		}
		var l stepLosses
		if _, err := finetune(t, req, l.observe); err != nil {
			t.Fatal(err)
		}
		return l.losses[1]
	}
	for _, loss := range []string{contract.LossBCE, contract.LossListwise} {
		cfg := contract.TrainConfig{Epochs: 1, Seed: 1, MaxLength: 32, Loss: loss}
		one, two := firstLoss(cfg, 1), firstLoss(cfg, 2)
		if math.Abs(two-2*one) > 1e-5*one {
			t.Errorf("%s: loss %g with weights 1, %g with weights 2", loss, one, two)
		}
	}
	cfg := contract.TrainConfig{Epochs: 1, Seed: 1, MaxLength: 32}
	plain := firstLoss(cfg, 1)
	cfg.PosWeight = 3
	if weighted := firstLoss(cfg, 1); !(weighted > plain) {
		t.Errorf("pos_weight 3: loss %g, without %g", weighted, plain)
	}
}
