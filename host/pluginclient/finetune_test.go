package pluginclient

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/rerankloop/rerank/plugin/contract"
)

// trainingRequest fine-tunes the tiny test model on n queries whose
// relevant document starts with "indeed", validated on 4 more.
func trainingRequest(t *testing.T, n int, cfg contract.TrainConfig) contract.FinetuneRequest {
	words := strings.Fields("apple river music garden doctor planet winter coffee horse bridge camera forest")
	req := contract.FinetuneRequest{BaseModel: "../../plugin/testdata/tiny-ce", OutDir: filepath.Join(t.TempDir(), "out"), Config: cfg}
	doc := func(text string) int {
		req.Docs = append(req.Docs, contract.Document{ID: fmt.Sprint("d", len(req.Docs)), Text: text})
		return len(req.Docs) - 1
	}
	for q := 0; q < n+4; q++ {
		w, other := words[q%len(words)], words[(q+1)%len(words)]
		pos := doc("indeed the " + w + " is here")
		negs := []int{doc("the " + other + " is here"), doc("a " + other + " was there"), doc("it is not " + other)}
		if q >= n {
			req.Validation = append(req.Validation, contract.ValQuery{QueryID: fmt.Sprint("v", q), Query: "about " + w,
				Candidates: append(negs, pos), Judged: map[string]int{req.Docs[pos].ID: 1}})
			continue
		}
		qid := fmt.Sprint("q", q)
		req.Train = append(req.Train, contract.TrainPair{QueryID: qid, Query: w, Doc: pos, Label: 1})
		for _, d := range negs {
			req.Train = append(req.Train, contract.TrainPair{QueryID: qid, Query: w, Doc: d, Label: 0})
		}
	}
	return req
}

func TestFinetuneThroughThePluginProcess(t *testing.T) {
	c := start(t, Options{ModelPath: "../../plugin/testdata/tiny-ce", ModelVersion: "tiny"})
	req := trainingRequest(t, 24, contract.TrainConfig{Epochs: 2, LearningRate: 3e-3, EvalSteps: 6, Seed: 1, MaxLength: 32})
	var steps, evals int
	var messages []string
	res, err := c.Finetune(context.Background(), req, func(p contract.FinetuneProgress) {
		switch {
		case p.Message != "":
			messages = append(messages, p.Message)
		case p.Eval != nil:
			evals++
		default:
			steps++
			if p.TotalSteps != 24 || p.LearningRate < 0 || p.Loss <= 0 {
				t.Errorf("progress %+v", p)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stopped != contract.StopCompleted || res.Steps != 24 || steps != 24 || evals != 5 || len(res.Curve) != 5 {
		t.Errorf("result %s after %d steps, %d progress steps, %d evaluations: %s", res.Stopped, res.Steps, steps, evals, res.Message)
	}
	if !strings.Contains(strings.Join(messages, "\n"), "gotch v0.9.1") {
		t.Errorf("the start does not name gotch's version: %q", messages)
	}
	// The best checkpoint serves.
	if _, err := c.Load(context.Background(), contract.LoadRequest{Path: res.BestCheckpoint, Version: "tuned"}); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Rerank(context.Background(), contract.RerankRequest{Query: "apple", Model: "tuned", Documents: docs})
	if err != nil || len(resp.Scores) != 2 {
		t.Fatalf("%+v, %v", resp, err)
	}
	// Training requests are checked in the plugin.
	req.OutDir = t.TempDir()
	req.Config.Loss = "hinge"
	if _, err := c.Finetune(context.Background(), req, nil); !errors.Is(err, contract.ErrInvalidRequest) {
		t.Errorf("bad loss: %v", err)
	}
}

// TestCancelledFinetuneKeepsItsCheckpoints: cancelling the host's context
// stops training at the next step; the plugin keeps a checkpoint and the
// result comes back with the cancellation.
func TestCancelledFinetuneKeepsItsCheckpoints(t *testing.T) {
	c := start(t, Options{})
	req := trainingRequest(t, 40, contract.TrainConfig{Epochs: 3, LearningRate: 3e-3, EvalSteps: 100, Seed: 1, MaxLength: 32})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res, err := c.Finetune(ctx, req, func(p contract.FinetuneProgress) {
		if p.Step == 5 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || res.Stopped != contract.StopCancelled {
		t.Fatalf("cancelled: %v, %+v", err, res)
	}
	if res.Steps < 5 || res.Steps >= 60 || res.LastCheckpoint == "" {
		t.Errorf("stopped after %d steps, last checkpoint %q", res.Steps, res.LastCheckpoint)
	}
	if _, err := os.Stat(filepath.Join(res.LastCheckpoint, "trainer_state.json")); err != nil {
		t.Error(err)
	}
}

// TestPluginCrashDuringFinetuneIsAnError: a plugin killed mid-training
// fails the call with ErrUnavailable; it is not retried.
func TestPluginCrashDuringFinetuneIsAnError(t *testing.T) {
	c := start(t, Options{})
	req := trainingRequest(t, 40, contract.TrainConfig{Epochs: 3, LearningRate: 3e-3, EvalSteps: 100, Seed: 1, MaxLength: 32})
	var killed atomic.Bool
	_, err := c.Finetune(context.Background(), req, func(p contract.FinetuneProgress) {
		if p.Step == 3 && !killed.Swap(true) {
			syscall.Kill(c.PID(), syscall.SIGKILL)
		}
	})
	if !errors.Is(err, contract.ErrUnavailable) || !strings.Contains(err.Error(), "resume") {
		t.Fatalf("plugin killed during training: %v", err)
	}
}
