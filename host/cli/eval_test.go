package cli

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/evalharness/fusion"
	"github.com/rerankloop/rerank/evalharness/metrics"
	"github.com/rerankloop/rerank/evalharness/report"
	"github.com/rerankloop/rerank/evalharness/trec"
)

const scifactSample = "../../testdata/scifact-sample"

// evalCLI runs the command line with args, every flag of the command reset
// to its default first (cobra keeps values between runs in one process).
func evalCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd, _, err := rootCmd.Find(args)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		f.Value.Set(f.DefValue)
		f.Changed = false
	})
	var out, errOut bytes.Buffer
	rootCmd.SetOut(&out)
	rootCmd.SetErr(&errOut)
	rootCmd.SetArgs(args)
	err = rootCmd.Execute()
	return out.String(), err
}

func TestEvalBEIRSample(t *testing.T) {
	dir := t.TempDir()
	index, page, runs := filepath.Join(dir, "index"), filepath.Join(dir, "r.html"), filepath.Join(dir, "runs")
	out, err := evalCLI(t, "eval", "--dataset", scifactSample, "--split", "test", "--json", "--index", index, "--report", page, "--runs", runs)
	if err != nil {
		t.Fatal(err)
	}
	var res report.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, out)
	}
	qrels, err := dataset.ReadQrels(filepath.Join(scifactSample, "qrels", "test.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Queries != len(qrels) || res.Split != "test" || res.Dataset != "scifact-sample" || len(res.Systems) != 1 {
		t.Fatalf("result %+v", res)
	}
	bm25 := res.Systems[0]
	ndcg := bm25.Means["ndcg@10"]
	// BM25 on this sample measured 0.77; a broken index or analyzer falls far below.
	if ndcg < 0.7 || ndcg > 0.85 || !strings.Contains(bm25.Name, "en, k1 0.9, b 0.4") {
		t.Fatalf("BM25 %s NDCG@10 %v", bm25.Name, ndcg)
	}
	// The run written to disk scores the same.
	run, err := trec.ReadFile(filepath.Join(runs, "first_stage.run"))
	if err != nil {
		t.Fatal(err)
	}
	for q := range qrels {
		if run[q] == nil {
			run[q] = map[string]float64{} // nothing found: absent from the file
		}
	}
	per, err := metrics.Evaluate(run, qrels, metrics.Measure{Kind: metrics.NDCG, K: 10})
	if err != nil || math.Abs(metrics.Mean(per["ndcg@10"])-ndcg) > 1e-12 {
		t.Fatalf("run file gives %v, JSON %v (%v)", metrics.Mean(per["ndcg@10"]), ndcg, err)
	}
	if html, err := os.ReadFile(page); err != nil || !bytes.Contains(html, []byte("<svg")) {
		t.Fatalf("report: %v", err)
	}

	// The index is reused: asking for another analyzer is an error, not a silent rebuild.
	if _, err := evalCLI(t, "eval", "--dataset", scifactSample, "--index", index, "--analyzer", "standard"); err == nil || !strings.Contains(err.Error(), "built with the en analyzer") {
		t.Fatalf("analyzer mismatch: %v", err)
	}
	out, err = evalCLI(t, "eval", "--dataset", scifactSample, "--index", index, "--metric", "mrr@10", "--k1", "1.2", "--b", "0.75")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"scifact-sample (test): " + strconv.Itoa(len(qrels)) + " queries", "k1 1.2, b 0.75", "mrr@10", "ndcg@10"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestEvalFlatFile(t *testing.T) {
	// q1's relevant row comes second in the file, q2's first.
	path := filepath.Join(t.TempDir(), "flat.jsonl")
	os.WriteFile(path, []byte(`{"query":"aspirin","text":"statins","label":0}
{"query":"aspirin","text":"aspirin prevents heart attacks","label":1}
{"query":"vitamin d","text":"vitamin d and bones","label":2}
{"query":"vitamin d","text":"unrelated","label":0}
`), 0o644)
	out, err := evalCLI(t, "eval", "--dataset", path, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var res report.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	s := res.Systems[0]
	if res.Queries != 2 || res.Depth != 2 || s.Name != "file order" || s.PerQuery["mrr@10"]["q1"] != 0.5 || s.PerQuery["mrr@10"]["q2"] != 1 {
		t.Fatalf("result %+v", res)
	}
}

func TestEvalErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"eval"}, "--dataset is required"},
		{[]string{"eval", "--dataset", "no/such/dir"}, "no/such/dir"},
		{[]string{"eval", "--dataset", scifactSample, "--metric", "bleu"}, "--metric"},
		{[]string{"eval", "--dataset", scifactSample, "--depth", "0"}, "--depth"},
		{[]string{"eval", "--dataset", scifactSample, "--split", "dev"}, `no split "dev"`},
		{[]string{"eval", "--dataset", scifactSample, "--baseline-model", "x"}, "needs --model"},
		{[]string{"eval", "--dataset", scifactSample, "--cascade-model", "x"}, "--cascade-model needs --model"},
		{[]string{"eval", "--dataset", scifactSample, "--model", "m", "--cascade-model", "x", "--cascade-top", "0"}, "--cascade-top must be at least 1"},
		{[]string{"eval", "--dataset", scifactSample, "--model", "m", "--plugin", "/no/plugin"}, "plugin binary"},
	} {
		if _, err := evalCLI(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

// tinyBiEncoder makes a tiny bi-encoder (a sentence-transformers folder)
// at dir and returns dir.
func tinyBiEncoder(t *testing.T, dir string) string {
	t.Helper()
	if _, err := evalCLI(t, "model", "init", "--tiny", "--kind", "bi-encoder", "--out", dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// --fuse auto fits a on the train split, keeps it beside the model with
// --save-fusion, and reports the model alone and fused; a later eval of the
// same model fuses with the saved weight by default, --fuse none not at all.
func TestEvalFusesWithBM25(t *testing.T) {
	plugin := buildPlugin(t)
	dir := t.TempDir()
	model, index := tinyBiEncoder(t, filepath.Join(dir, "tiny-bi")), filepath.Join(dir, "index")
	common := []string{"eval", "--dataset", scifactSample, "--index", index, "--model", model, "--depth", "20",
		"--plugin", plugin, "--device", "cpu", "--max-length", "64", "--json"}
	for _, bad := range [][]string{{"--fuse", "1.5"}, {"--fuse", "auto", "--fit-split", "test"}, {"--save-fusion"}, {"--fuse", "0.3", "--fuse-method", "borda"}} {
		if _, err := evalCLI(t, append(common, bad...)...); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
	out, err := evalCLI(t, append(common, "--fuse", "auto", "--fit-queries", "20", "--save-fusion")...)
	if err != nil {
		t.Fatal(err)
	}
	var res report.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	saved, found, err := fusion.Read(model)
	if err != nil || !found || !strings.Contains(saved.FittedOn, "train (20 queries)") {
		t.Fatalf("fusion.json: %+v %v %v", saved, found, err)
	}
	var roles []string
	for _, s := range res.Systems {
		roles = append(roles, s.Role)
	}
	if strings.Join(roles, ",") != "first_stage,candidate_model,candidate" {
		t.Fatalf("systems %v", roles)
	}
	bm25, alone, fused := res.Systems[0].Means["ndcg@10"], res.Systems[1].Means["ndcg@10"], res.Systems[2].Means["ndcg@10"]
	// a = 1 is BM25 itself and a = 0 the model alone, so a fitted a is one of
	// them or in between; the tiny random model is far below BM25.
	if alone >= bm25 || (saved.BM25Weight == 1) != (fused == bm25) {
		t.Errorf("bm25 %.4f, model alone %.4f, fused %.4f at %s", bm25, alone, fused, saved)
	}
	// The saved weight is used by default; --fuse none reports the model alone.
	out, err = evalCLI(t, common...)
	if err != nil || !strings.Contains(out, "fused ("+saved.String()+")") {
		t.Errorf("default eval does not fuse with the saved weight: %v\n%s", err, out)
	}
	out, err = evalCLI(t, append(common, "--fuse", "none")...)
	if err != nil || strings.Contains(out, "fused") {
		t.Errorf("--fuse none: %v\n%s", err, out)
	}
}

// --cascade-model reranks the top --cascade-top of the fused bi-encoder's
// order with a cross-encoder: the report has BM25, the bi-encoder alone and
// fused, and the cascade, and the time per query of each stage; below the
// top k the cascade keeps the fused order.
func TestEvalCascade(t *testing.T) {
	plugin := buildPlugin(t)
	dir := t.TempDir()
	bi, index, runs := tinyBiEncoder(t, filepath.Join(dir, "tiny-bi")), filepath.Join(dir, "index"), filepath.Join(dir, "runs")
	const depth, top = 20, 5
	args := []string{"eval", "--dataset", scifactSample, "--index", index, "--model", bi, "--fuse", "0.5", "--depth", strconv.Itoa(depth),
		"--cascade-model", "../../plugin/testdata/tiny-ce", "--cascade-top", strconv.Itoa(top),
		"--plugin", plugin, "--device", "cpu", "--max-length", "64", "--runs", runs, "--embedding-cache", filepath.Join(dir, "emb")}
	out, err := evalCLI(t, append(args, "--json")...)
	if err != nil {
		t.Fatal(err)
	}
	// The bi-encoder's document embeddings are kept for later runs.
	if kept, _ := filepath.Glob(filepath.Join(dir, "emb", "*.emb")); len(kept) != 1 {
		t.Errorf("--embedding-cache holds %v, want one model's file", kept)
	}
	var res report.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	var roles, stages []string
	for _, s := range res.Systems {
		roles = append(roles, s.Role)
	}
	for _, l := range res.Latency {
		stages = append(stages, l.Stage)
		if l.Queries == 0 || l.Queries > res.Queries+1 || !(l.MeanMS > 0) || l.P99MS < l.P50MS {
			t.Errorf("latency %+v", l)
		}
	}
	if strings.Join(roles, ",") != "first_stage,candidate_model,candidate,cascade" || strings.Join(stages, ",") != "bm25,candidate,cascade" {
		t.Fatalf("systems %v, latency stages %v", roles, stages)
	}
	if c := res.Comparisons[len(res.Comparisons)-1]; c.Base != report.Candidate || c.Candidate != report.Cascade {
		t.Errorf("last comparison %s vs %s, want cascade vs candidate", c.Candidate, c.Base)
	}
	fused, err := trec.ReadFile(filepath.Join(runs, "candidate.run"))
	if err != nil {
		t.Fatal(err)
	}
	casc, err := trec.ReadFile(filepath.Join(runs, "cascade.run"))
	if err != nil {
		t.Fatal(err)
	}
	reordered := 0
	for q, scores := range fused {
		f, c := trec.Ranked(scores), trec.Ranked(casc[q])
		k := min(top, len(f))
		if len(c) != len(f) || !sameSet(f[:k], c[:k]) || strings.Join(f[k:], " ") != strings.Join(c[k:], " ") {
			t.Fatalf("query %s: fused %v, cascade %v: want the same top %d, reordered, and the rest in fused order", q, f, c, k)
		}
		if strings.Join(f[:k], " ") != strings.Join(c[:k], " ") {
			reordered++
		}
	}
	if reordered == 0 {
		t.Error("the cross-encoder reordered no query's top: was it called?")
	}
	out, err = evalCLI(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cascade (tiny-ce on the top 5 of candidate)", "latency per query", "cascade vs candidate on ndcg@10"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func sameSet(a, b []string) bool {
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return len(a) == len(b)
}
