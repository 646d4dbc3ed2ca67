package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/host/simulate"
)

// TestLoopCommandsThroughTheHost drives a running host's loop from the
// command line: models list, retrain (following its progress), experiment
// start, status and stop, and rollback, all with --host and --token.
func TestLoopCommandsThroughTheHost(t *testing.T) {
	plugin := buildPlugin(t)
	cfg := sampleConfig(t, t.TempDir())
	cfg.AdminToken = "s3cret"
	cfg.Rerank.ModelPath, cfg.Rerank.PluginPath, cfg.Rerank.MaxLength, cfg.Rerank.Deadline = "../../plugin/testdata/tiny-ce", plugin, 64, 30*time.Second
	cfg.Retrain.MinClicks, cfg.Retrain.LearningRate, cfg.Retrain.MaxLength, cfg.Retrain.EvalDepth = 10, 1e-3, 64, 10
	h, _ := serveInProcess(t, cfg)
	host := "http://" + h.Addr
	run := func(args ...string) string {
		t.Helper()
		out, err := evalCLI(t, append(args, "--host", host, "--token", "s3cret")...)
		if err != nil {
			t.Fatalf("rerank %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	if out := run("models", "list"); !strings.Contains(out, "*  v1") || !strings.Contains(out, "serving") {
		t.Fatalf("models list:\n%s", out)
	}
	if _, err := evalCLI(t, "models", "list", "--host", host, "--token", "wrong"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("a wrong token: %v", err)
	}
	if _, err := evalCLI(t, "rollback", "--host", host, "--token", "s3cret"); err == nil || !strings.Contains(err.Error(), "no earlier version") {
		t.Fatalf("rollback with nothing to return to: %v", err)
	}

	b, err := dataset.OpenBEIR(scifactSample)
	if err != nil {
		t.Fatal(err)
	}
	qs, qrels, err := b.SplitQueries("train")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := simulate.Run(context.Background(), simulate.Config{Host: host, Queries: qs, Qrels: qrels, Users: 10, Searches: 100, Seed: 3, Behaviour: simulate.DefaultBehaviour(simulate.PBM)}); err != nil {
		t.Fatal(err)
	}
	out := run("retrain")
	for _, want := range []string{"retrain r", "fine-tuning v1 on", "finished in", "candidate v2 (parent v1", "ndcg@10 on"} {
		if !strings.Contains(out, want) {
			t.Errorf("retrain output lacks %q:\n%s", want, out)
		}
	}
	if out := run("models", "show", "v2"); !strings.Contains(out, "parent") || !strings.Contains(out, "v1") || !strings.Contains(out, "gate") {
		t.Errorf("models show v2:\n%s", out)
	}

	out = run("experiment", "start", "--control", "v1", "--treatment", "v2", "--method", "split", "--traffic", "1", "--min-searches", "20")
	if !strings.Contains(out, "started e1: split, control v1 vs treatment v2, 100% of users") {
		t.Fatalf("experiment start: %s", out)
	}
	if _, err := evalCLI(t, "experiment", "start", "--control", "v1", "--treatment", "v2", "--host", host, "--token", "s3cret"); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("a second experiment: %v", err)
	}
	if _, err := simulate.Run(context.Background(), simulate.Config{Host: host, Queries: qs, Qrels: qrels, Users: 10, Searches: 40, Seed: 4, Behaviour: simulate.DefaultBehaviour(simulate.PBM)}); err != nil {
		t.Fatal(err)
	}
	if out := run("experiment", "status"); !strings.Contains(out, "e1 (running): split") || !strings.Contains(out, "control v1") || !strings.Contains(out, "MRR difference") {
		t.Fatalf("experiment status:\n%s", out)
	}
	if out := run("experiment", "stop", "--reason", "enough"); !strings.Contains(out, "e1 (stopped)") || !strings.Contains(out, "(enough)") {
		t.Fatalf("experiment stop:\n%s", out)
	}
	if out := run("experiment", "list"); !strings.Contains(out, "e1 (stopped)") {
		t.Fatalf("experiment list:\n%s", out)
	}
	if _, err := evalCLI(t, "experiment", "status", "--host", host, "--token", "s3cret"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("status with none running: %v", err)
	}
}
