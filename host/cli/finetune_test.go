package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rerankloop/rerank/evalharness/fusion"
)

// buildPlugin builds bin/rerank-plugin into a temporary folder; the cgo
// flags come from the environment `make test` sets.
func buildPlugin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rerank-plugin")
	if out, err := exec.Command("go", "build", "-o", bin, "../../plugin/cmd/rerank-plugin").CombinedOutput(); err != nil {
		t.Fatalf("building the plugin (run through `make test`, which sets the cgo flags): %v\n%s", err, out)
	}
	return bin
}

// TestFinetuneCommand fine-tunes the tiny model on the SciFact sample's
// train split (80/20 by query, BM25 negatives) and serves the result.
func TestFinetuneCommand(t *testing.T) {
	plugin := buildPlugin(t)
	out := filepath.Join(t.TempDir(), "out")
	args := []string{"finetune", "--model", "../../plugin/testdata/tiny-ce", "--train", scifactSample, "--out", out,
		"--epochs", "1", "--lr", "1e-3", "--max-length", "64", "--eval-steps", "20", "--eval-depth", "10", "--eval-queries", "8",
		"--hard-negatives", "2", "--random-negatives", "1", "--plugin", plugin, "--device", "cpu"}
	stdout, err := evalCLI(t, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	for _, want := range []string{"leakage check passed", "final: 329 training pairs", "validating on 8 validation queries", "validation: 8 queries; BM25's top 10 holds a relevant document for",
		"gotch v0.9.1", "step 0/42, epoch 0.00: NDCG@10", "step 42/42", "validation NDCG@10: base"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	best := regexp.MustCompile(`best checkpoint: (\S+)`).FindStringSubmatch(stdout)
	if best == nil {
		t.Fatalf("no best checkpoint in:\n%s", stdout)
	}
	for _, f := range []string{"README.md", "training_report.json", "trainer_state.json", "model.safetensors"} {
		if _, err := os.Stat(filepath.Join(best[1], f)); err != nil {
			t.Error(err)
		}
	}
	for _, f := range []string{"train.jsonl", "validation.jsonl", "data_report.json"} {
		if _, err := os.Stat(filepath.Join(out, "data", f)); err != nil {
			t.Error(err)
		}
	}
	// The checkpoint serves.
	pred, err := evalCLI(t, "predict", "--model", best[1], "--plugin", plugin, "--device", "cpu", "--max-length", "64", "vitamin d", "Vitamin D deficiency and bone density.")
	if err != nil || strings.Count(pred, "\n") != 1 {
		t.Errorf("predict with the fine-tuned checkpoint: %v\n%s", err, pred)
	}
	// The same folder again is refused; resuming the finished run is a no-op.
	if _, err := evalCLI(t, args...); err == nil || !strings.Contains(err.Error(), "already holds") {
		t.Errorf("a second run into %s: %v", out, err)
	}
	stdout, err = evalCLI(t, append(args, "--resume")...)
	if err != nil || !strings.Contains(stdout, "resuming at step 42 of 42") || !strings.Contains(stdout, "completed 42 steps") {
		t.Errorf("resuming a finished run: %v\n%s", err, stdout)
	}
}

// The guide's minimal fine-tune: a {query, text, label} file and nothing else
// (no corpus, no index) trains, with random negatives from the file itself.
func TestMinimalFinetune(t *testing.T) {
	plugin := buildPlugin(t)
	var lines []string
	for q := range 10 {
		lines = append(lines, fmt.Sprintf(`{"query": "claim %d about vitamins", "text": "Evidence on vitamin %d and bone density.", "label": 1}`, q, q),
			fmt.Sprintf(`{"query": "claim %d about vitamins", "text": "Unrelated text %d on tides.", "label": 0}`, q, q))
	}
	train := filepath.Join(t.TempDir(), "pairs.jsonl")
	if err := os.WriteFile(train, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "run")
	stdout, err := evalCLI(t, "finetune", "--model", "../../plugin/testdata/tiny-ce", "--train", train, "--out", out,
		"--epochs", "1", "--max-length", "32", "--plugin", plugin, "--device", "cpu")
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	for _, want := range []string{"random negatives drawn from the training data's own", "best checkpoint:"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestFinetuneCommandErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"finetune", "--train", scifactSample, "--out", "x"}, "--model is required"},
		{[]string{"finetune", "--model", "m", "--out", "x"}, "--train is required"},
		{[]string{"finetune", "--model", "m", "--train", scifactSample}, "--out is required"},
		{[]string{"finetune", "--model", "m", "--train", scifactSample, "--out", "x", "--eval-depth", "0"}, "--eval-depth"},
		{[]string{"finetune", "--model", "m", "--train", scifactSample, "--out", "x", "--scale", "0-9"}, "label scale"},
		{[]string{"finetune", "--model", "m", "--train", "/no/such/file", "--out", t.TempDir()}, "no such file"},
	} {
		if _, err := evalCLI(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one containing %q", c.args, err, c.want)
		}
	}
}

// A bi-encoder validated on BM25's top 5 (--eval-depth, for speed) keeps a
// fusion fitted again over BM25's top 20 (--fusion-depth), the depth it is
// served and evaluated at; with the two equal nothing is fitted again.
func TestFinetuneRefitsFusionAtServingDepth(t *testing.T) {
	plugin := buildPlugin(t)
	dir := t.TempDir()
	model, index := tinyBiEncoder(t, filepath.Join(dir, "tiny-bi")), filepath.Join(dir, "index")
	run := func(out, fusionDepth string) (string, fusion.Params) {
		t.Helper()
		stdout, err := evalCLI(t, "finetune", "--model", model, "--train", scifactSample, "--out", filepath.Join(dir, out), "--index", index,
			"--epochs", "1", "--lr", "1e-3", "--batch-size", "16", "--max-length", "64", "--eval-steps", "1000", "--eval-depth", "5",
			"--fusion-depth", fusionDepth, "--hard-negatives", "1", "--random-negatives", "0", "--plugin", plugin, "--device", "cpu")
		if err != nil {
			t.Fatalf("%v\n%s", err, stdout)
		}
		best := regexp.MustCompile(`best checkpoint: (\S+)`).FindStringSubmatch(stdout)
		if best == nil {
			t.Fatalf("no best checkpoint in:\n%s", stdout)
		}
		p, found, err := fusion.Read(best[1])
		if err != nil || !found {
			t.Fatalf("fusion.json of %s: %v %v", best[1], found, err)
		}
		return stdout, p
	}
	stdout, p := run("deep", "20")
	if !strings.Contains(stdout, "fusion re-fitted on validation (") || !strings.HasSuffix(p.FittedOn, "BM25's top 20") {
		t.Errorf("fusion %+v after:\n%s", p, stdout)
	}
	stdout, p = run("same", "5")
	if strings.Contains(stdout, "re-fitted") || strings.Contains(p.FittedOn, "BM25's top") {
		t.Errorf("fitted again at the validation depth: %+v\n%s", p, stdout)
	}
	if _, err := evalCLI(t, "finetune", "--model", model, "--train", scifactSample, "--out", filepath.Join(dir, "x"), "--fusion-depth", "-1"); err == nil ||
		!strings.Contains(err.Error(), "--fusion-depth") {
		t.Errorf("--fusion-depth -1: %v", err)
	}
}
