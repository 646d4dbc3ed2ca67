package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rerankloop/rerank/evalharness/fusion"
)

// TestFinetuneWithTeacher distils a tiny cross-encoder from a tiny
// bi-encoder fused with BM25 on the SciFact sample: the teacher scores each
// training query's BM25 top 10, the student trains on its soft targets with
// the listwise loss, and validation stays on the judgments.
func TestFinetuneWithTeacher(t *testing.T) {
	plugin := buildPlugin(t)
	dir := t.TempDir()
	teacher := tinyBiEncoder(t, filepath.Join(dir, "tiny-bi"))
	if err := fusion.Write(teacher, fusion.Params{Method: fusion.MinMax, BM25Weight: 0.4}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "student")
	args := []string{"finetune", "--model", "../../plugin/testdata/tiny-ce", "--train", scifactSample, "--out", out,
		"--teacher", teacher, "--teacher-depth", "10", "--label-weight", "0.3",
		"--epochs", "1", "--lr", "1e-3", "--max-length", "64", "--batch-size", "10", "--eval-depth", "10", "--eval-queries", "8",
		"--plugin", plugin, "--device", "cpu"}
	stdout, err := evalCLI(t, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	for _, want := range []string{"distillation: teacher " + teacher + " (bi-encoder) fused with BM25 (minmax a=0.40", "BM25's top 10 per query, temperature 1, label weight 0.3",
		"training pairs (soft targets from the teacher)", "listwise", "best checkpoint:"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	// 80 training queries, each with BM25's top 10 and its relevant
	// abstracts: at least 800 pairs, none of them mined negatives.
	m := regexp.MustCompile(`(\d+) queries, (\d+) pairs; 0 queries skipped`).FindStringSubmatch(stdout)
	if m == nil || m[1] != "80" {
		t.Errorf("distillation counts: %v\n%s", m, stdout)
	}
	card, err := os.ReadFile(filepath.Join(out, "data", "data_report.json"))
	if err != nil || !strings.Contains(string(card), `"distillation"`) {
		t.Errorf("the data report does not record the distillation: %v", err)
	}
}

// A teacher that cannot teach is refused before anything trains, by name.
func TestFinetuneTeacherErrors(t *testing.T) {
	plugin := buildPlugin(t)
	dir := t.TempDir()
	// A bi-encoder folder without modules.json is a plain BertModel.
	encoder := tinyBiEncoder(t, filepath.Join(dir, "encoder"))
	if err := os.Remove(filepath.Join(encoder, "modules.json")); err != nil {
		t.Fatal(err)
	}
	badFusion := tinyBiEncoder(t, filepath.Join(dir, "bad-fusion"))
	if err := os.WriteFile(filepath.Join(badFusion, "fusion.json"), []byte(`{"method": "minmax", "bm25_weight": 7}`), 0o644); err != nil {
		t.Fatal(err)
	}
	unknown := filepath.Join(dir, "unknown")
	os.MkdirAll(unknown, 0o755)
	os.WriteFile(filepath.Join(unknown, "config.json"), []byte(`{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}`), 0o644)
	noWeights := filepath.Join(dir, "no-weights")
	if _, err := evalCLI(t, "model", "init", "--tiny", "--kind", "cross-encoder", "--out", noWeights); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(noWeights, "model.safetensors"))
	for _, c := range []struct{ teacher, want string }{
		{filepath.Join(dir, "missing"), "--teacher"},
		{encoder, "plain encoder"},
		{badFusion, "bm25_weight 7"},
		{unknown, "model_type \"gpt2\""},
		{noWeights, "--teacher"},
	} {
		out := filepath.Join(t.TempDir(), "out")
		_, err := evalCLI(t, "finetune", "--model", "../../plugin/testdata/tiny-ce", "--train", scifactSample, "--out", out,
			"--teacher", c.teacher, "--epochs", "1", "--max-length", "32", "--plugin", plugin, "--device", "cpu")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("teacher %s: error %v, want one containing %q", filepath.Base(c.teacher), err, c.want)
		}
		if ckpts, _ := filepath.Glob(filepath.Join(out, "checkpoint-*")); len(ckpts) > 0 {
			t.Errorf("teacher %s: a failed run trained %v", filepath.Base(c.teacher), ckpts)
		}
	}
	if _, err := evalCLI(t, "finetune", "--model", "m", "--train", scifactSample, "--out", t.TempDir(), "--teacher", badFusion, "--loss", "bce"); err == nil || !strings.Contains(err.Error(), "listwise") {
		t.Errorf("--teacher with --loss bce: %v", err)
	}
}
