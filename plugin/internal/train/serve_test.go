package train

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
	"github.com/rerankloop/rerank/plugin/internal/engine"
)

// servingLatency reranks req with e repeatedly: n times while idle, then
// for as long as a fine-tune of train runs on svc. Every response must equal
// the idle one (training never touches the serving model).
func servingLatency(t testing.TB, e *engine.Engine, req contract.RerankRequest, train contract.FinetuneRequest, n int) (idle, busy []time.Duration, res contract.FinetuneResult) {
	t.Helper()
	rerank := func() (contract.RerankResponse, time.Duration) {
		start := time.Now()
		resp, err := e.Rerank(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		return resp, time.Since(start)
	}
	want, _ := rerank() // warm
	for i := 0; i < n; i++ {
		_, d := rerank()
		idle = append(idle, d)
	}
	svc, err := NewService(e.Device(), 0)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	var once sync.Once
	done := make(chan struct{})
	go func() {
		defer close(done)
		var err error
		res, err = svc.Finetune(context.Background(), train, func(p contract.FinetuneProgress) {
			if p.Step > 0 {
				once.Do(func() { close(started) })
			}
		})
		once.Do(func() { close(started) })
		if err != nil {
			t.Error(err)
		}
	}()
	<-started
	for {
		select {
		case <-done:
			return idle, busy, res
		default:
		}
		got, d := rerank()
		busy = append(busy, d)
		if !slices.Equal(got.Scores, want.Scores) || got.ModelVersion != want.ModelVersion {
			t.Fatalf("during training the serving model answered %v (%s), idle %v (%s)", got.Scores, got.ModelVersion, want.Scores, want.ModelVersion)
		}
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func rerankRequest(s synthetic, docs int) contract.RerankRequest {
	return contract.RerankRequest{Query: "about river", Documents: s.docs[:docs]}
}

func TestRerankKeepsServingDuringTraining(t *testing.T) {
	e, err := engine.New(engine.Options{Device: "cpu", MaxLength: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Load(context.Background(), contract.LoadRequest{Path: "../../testdata/tiny-ce", Serve: true}); err != nil {
		t.Fatal(err)
	}
	s := makeSynthetic(7, 120, 3, 8, true)
	train := s.request(t, contract.TrainConfig{Epochs: 2, LearningRate: 1e-3, EvalSteps: 20, Seed: 1, MaxLength: 32})
	idle, busy, res := servingLatency(t, e, rerankRequest(s, 20), train, 20)
	if res.Stopped != contract.StopCompleted {
		t.Errorf("training %s: %s", res.Stopped, res.Message)
	}
	if len(busy) < 5 {
		t.Errorf("only %d reranks answered during %d training steps", len(busy), res.Steps)
	}
	t.Logf("tiny model, 20 documents: rerank p50 %v idle, %v during training (%d calls, %d steps)", percentile(idle, 0.5), percentile(busy, 0.5), len(busy), res.Steps)
}

// BenchmarkRerankDuringTraining measures how much Rerank latency rises
// while a fine-tune runs in the same process, with all-MiniLM-L6-v2 where
// RERANK_MINILM_DIR names it (`make bench` sets it), else the tiny model:
//
//	go test ./plugin/internal/train/ -run '^$' -bench RerankDuringTraining -benchtime 1x
func BenchmarkRerankDuringTraining(b *testing.B) {
	model, maxLen, name := "../../testdata/tiny-ce", 128, "tiny"
	if enc := os.Getenv("RERANK_MINILM_DIR"); enc != "" {
		model, name = filepath.Join(b.TempDir(), "minilm-ce"), "MiniLM-L6"
		if _, err := checkpoint.Init(enc, model, checkpoint.CrossEncoder, 42); err != nil {
			b.Fatal(err)
		}
	}
	e, err := engine.New(engine.Options{Device: "cpu", MaxLength: maxLen})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Load(context.Background(), contract.LoadRequest{Path: model, Serve: true}); err != nil {
		b.Fatal(err)
	}
	// Documents of about 100 tokens, batches of 8 pairs.
	s := makeSynthetic(8, 8, 3, 1, true)
	for i := range s.docs {
		s.docs[i].Text = strings.Repeat(s.docs[i].Text+" ", 8)
	}
	for i := 0; i < b.N; i++ {
		train := contract.FinetuneRequest{BaseModel: model, OutDir: filepath.Join(b.TempDir(), "out"), Docs: s.docs, Train: s.train,
			Config: contract.TrainConfig{Epochs: 2, EvalSteps: 1000, MaxLength: maxLen, Seed: 1}}
		idle, busy, res := servingLatency(b, e, rerankRequest(s, 10), train, 10)
		if len(busy) == 0 {
			b.Fatal("no rerank answered during training")
		}
		b.ReportMetric(float64(percentile(idle, 0.5).Milliseconds()), "idle-p50-ms")
		b.ReportMetric(float64(percentile(busy, 0.5).Milliseconds()), "training-p50-ms")
		b.ReportMetric(float64(percentile(busy, 0.95).Milliseconds()), "training-p95-ms")
		b.ReportMetric(res.PairsPerSecond, "train-pairs/s")
		fmt.Printf("%s, rerank of 10 documents at %d tokens: p50 %v idle, p50 %v / p95 %v during training (%d calls); training %.2f pairs/s\n",
			name, maxLen, percentile(idle, 0.5), percentile(busy, 0.5), percentile(busy, 0.95), len(busy), res.PairsPerSecond)
	}
}
