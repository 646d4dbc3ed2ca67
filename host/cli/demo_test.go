package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/host/clicklog"
	"github.com/rerankloop/rerank/host/interleave"
	"github.com/rerankloop/rerank/host/registry"
)

// TestDemoCommand runs `rerank demo` small, with the tiny model: the whole
// loop (index, base model, host, simulated users, retrain, gate, swap or
// keep, interleaving experiment) in CI.
func TestDemoCommand(t *testing.T) {
	plugin := buildPlugin(t)
	dir := filepath.Join(t.TempDir(), "demo")
	out, err := evalCLI(t, "demo", "--tiny", "--dir", dir, "--dataset", scifactSample, "--plugin", plugin,
		"--max-length", "64", "--users", "10", "--searches", "120", "--experiment-searches", "100", "--experiment-chunk", "50", "--experiment-min", "30")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Log(out)
	for _, want := range []string{
		"== 1. index the corpus", "base model: a tiny model (--tiny), trained first", "host at http://127.0.0.1:",
		"100 queries: BM25 0.7717, base v1", "120 searches by 10 users", "POST /admin/retrain started",
		"fine-tuning v1 on", "evaluating v2 against v1 on 100 held-out queries", "started e1: every search reranked by v1 and v2",
		"== summary", "before: base v1", "after: retrained v2", "interleaving v1 vs v2: ", "wall time",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	swapped := strings.Contains(out, "-> v2 swapped in")
	if !swapped && !strings.Contains(out, "-> kept v1 serving") {
		t.Fatal("the summary says neither swapped nor kept")
	}
	if !regexp.MustCompile(`BM25 alone\s+0\.7717`).MatchString(out) {
		t.Error("the summary lacks BM25's NDCG@10")
	}

	// The registry and the experiment store record what the demo printed.
	store, reg := demoRegistry(t, dir)
	v2, err := reg.Get("v2")
	if err != nil {
		t.Fatal(err)
	}
	serving, _, _ := reg.Serving()
	d, _ := v2.GateDecision()
	// A search is answered a few milliseconds before its impression is
	// committed: the export right after the users may miss the last ones.
	if v2.Parent != "v1" || v2.Data.Searches < 110 || v2.Data.Searches > 120 || d == nil || d.Accepted != swapped || (serving.ID == "v2") != swapped {
		t.Fatalf("registry after the demo: v2 %+v, serving %s, decision %+v", v2, serving.ID, d)
	}
	// Clicks read for under --min-dwell (30 s by default) did not count.
	reports, _ := filepath.Glob(filepath.Join(dir, "data", "models", "*", "data", "data_report.txt"))
	if len(reports) != 1 {
		t.Fatalf("data reports %v, want the retrain's one", reports)
	}
	if b, err := os.ReadFile(reports[0]); err != nil || !strings.Contains(string(b), "clicks under 30000 ms ignored") {
		t.Errorf("the retrain's data report does not ignore short clicks (%v):\n%s", err, b)
	}
	exps, err := interleave.OpenExperiments(store)
	if err != nil {
		t.Fatal(err)
	}
	e, err := exps.Get("e1")
	if err != nil || e.Status != interleave.Stopped || e.Result == nil || e.Result.Interleave.Searches < 90 || e.Result.Interleave.Searches > 100 {
		t.Fatalf("experiment after the demo: %+v %v", e, err)
	}
}

// TestDemoFusedBiEncoderBase runs the demo's default path, a bi-encoder base
// fused with BM25 and a gate with its BM25 floor, on the tiny model as
// --encoder so that it is quick: the fusion is fitted on the train split and
// kept with v1, the retrain trains the bi-encoder contrastively, and the
// gate judges v2 fused.
func TestDemoFusedBiEncoderBase(t *testing.T) {
	plugin := buildPlugin(t)
	dir := filepath.Join(t.TempDir(), "demo")
	out, err := evalCLI(t, "demo", "--encoder", "../../plugin/testdata/tiny-ce", "--dir", dir, "--dataset", scifactSample, "--plugin", plugin,
		"--users", "10", "--searches", "120", "--train-max-length", "64", "--experiment-searches", "50", "--experiment-chunk", "50", "--experiment-min", "30")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Log(out)
	for _, want := range []string{
		"fused with BM25", "fusion fitted on scifact-sample train (100 queries), BM25's top 10: a = ",
		"a candidate not worse than BM25 alone", `"Loss":"contrastive"`, "validation fused with the first stage",
		"not worse than BM25", "== summary",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	_, reg := demoRegistry(t, dir)
	for _, id := range []string{"v1", "v2"} {
		v, err := reg.Get(id)
		if err != nil || v.Fusion == nil {
			t.Errorf("%s: %+v, %v: registered without its fusion", id, v, err)
		}
	}
}

// TestDemoDefaultDataset: `make demo` runs on the whole of SciFact, shipped
// in testdata: the 100 train claims of the tests' sample are too few for a
// retrain whose gain the gate can detect on held-out claims.
func TestDemoDefaultDataset(t *testing.T) {
	cmd, _, err := rootCmd.Find([]string{"demo"})
	if err != nil {
		t.Fatal(err)
	}
	dir := cmd.Flags().Lookup("dataset").DefValue
	docs := 0
	err = dataset.ReadCorpus(filepath.Join("..", "..", dir, "corpus.jsonl"), func(dataset.Doc) error { docs++; return nil })
	if err != nil || docs != 5183 {
		t.Fatalf("%s: %d documents, %v; want SciFact's 5183", dir, docs, err)
	}
	for split, want := range map[string]int{"train": 809, "test": 300} {
		q, err := dataset.ReadQrels(filepath.Join("..", "..", dir, "qrels", split+".tsv"))
		if err != nil || len(q) != want {
			t.Errorf("%s %s: %d judged queries, %v; want %d", dir, split, len(q), err, want)
		}
	}
}

// demoRegistry opens the click log and model registry a demo left in dir.
func demoRegistry(t *testing.T, dir string) (*clicklog.Store, *registry.Registry) {
	t.Helper()
	store, err := clicklog.Open(filepath.Join(dir, "data"), clicklog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	reg, err := registry.Open(store)
	if err != nil {
		t.Fatal(err)
	}
	return store, reg
}
