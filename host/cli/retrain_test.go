package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/host/simulate"
)

// TestRetrainCommandLocal retrains on a stopped host's data folder: the
// command starts the plugin itself and the registry keeps the outcome.
func TestRetrainCommandLocal(t *testing.T) {
	plugin := buildPlugin(t)
	data := t.TempDir()
	for k, v := range map[string]string{
		"RERANK_CONFIG": "", "RERANK_RERANK_MODEL_PATH": "../../plugin/testdata/tiny-ce", "RERANK_RERANK_PLUGIN_PATH": plugin,
		"RERANK_RERANK_MAX_LENGTH": "64", "RERANK_RERANK_DEADLINE": "30s", "RERANK_RETRAIN_MIN_CLICKS": "10",
		"RERANK_RETRAIN_LEARNING_RATE": "0.001", "RERANK_RETRAIN_MAX_LENGTH": "64", "RERANK_RETRAIN_EVAL_DEPTH": "10",
	} {
		t.Setenv(k, v)
	}

	// Users search and click on a running host, which then stops.
	h, stop := serveInProcess(t, sampleConfig(t, data))
	b, _ := dataset.OpenBEIR(scifactSample)
	qs, qrels, _ := b.SplitQueries("train")
	_, err := simulate.Run(context.Background(), simulate.Config{Host: "http://" + h.Addr, Queries: qs, Qrels: qrels, Users: 5, Searches: 80, Seed: 2, Behaviour: simulate.DefaultBehaviour(simulate.PBM)})
	// stop waits while serve drains the impressions answered before their commit
	if serr := stop(); err != nil || serr != nil {
		t.Fatal(err, serr)
	}

	out, err := evalCLI(t, "retrain", "--data-dir", data)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"retrain r", "started on " + data, "trainer: step 0/", "finished in", "candidate v2 (parent v1, 80 searches"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if out, err := evalCLI(t, "models", "show", "v2", "--data-dir", data); err != nil || !strings.Contains(out, "80 searches") {
		t.Errorf("models show v2: %v\n%s", err, out)
	}
	if _, err := evalCLI(t, "retrain", "--no-wait", "--data-dir", data); err == nil || !strings.Contains(err.Error(), "--host") {
		t.Errorf("--no-wait without --host: %v", err)
	}
}
