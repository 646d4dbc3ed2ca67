package retrain_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/finetune/negatives"
	"github.com/rerankloop/rerank/finetune/trainset"
	"github.com/rerankloop/rerank/host/clicklog"
	"github.com/rerankloop/rerank/host/interleave"
	"github.com/rerankloop/rerank/host/lifecycle"
	"github.com/rerankloop/rerank/host/pluginclient"
	"github.com/rerankloop/rerank/host/registry"
	"github.com/rerankloop/rerank/host/retrain"
	"github.com/rerankloop/rerank/host/search"
	"github.com/rerankloop/rerank/host/server"
	"github.com/rerankloop/rerank/host/simulate"
	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
)

const (
	sample   = "../../testdata/scifact-sample"
	tinyBase = "../../plugin/testdata/tiny-ce"
	token    = "test-admin-token"
)

// pluginBin builds the plugin once for the package's tests; the cgo flags
// come from the environment `make test` sets.
var pluginBin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "rerank-plugin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "rerank-plugin")
	if out, err := exec.Command("go", "build", "-o", bin, "../../plugin/cmd/rerank-plugin").CombinedOutput(); err != nil {
		return "", errors.New(string(out))
	}
	return bin, nil
})

// sampleIndex builds the SciFact sample's index once; each host copies it.
var sampleIndex = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "rerank-retrain-index")
	if err != nil {
		return "", err
	}
	ix := filepath.Join(dir, "index")
	err = search.Build(context.Background(), ix, func(fn func(dataset.Doc) error) error {
		return dataset.ReadCorpus(filepath.Join(sample, "corpus.jsonl"), fn)
	}, search.Options{}, nil)
	return ix, err
})

// host is a real host in the test process: index, click log, registry,
// plugin process, the loop and the HTTP server.
type host struct {
	t     testing.TB
	dir   string
	cfg   configs.Config
	ix    *search.Index
	store *clicklog.Store
	reg   *registry.Registry
	pc    *pluginclient.Client
	loop  *retrain.Controller
	http  *httptest.Server
}

// testConfig is the built-in configuration sized for the tiny model.
func testConfig(t testing.TB) configs.Config {
	t.Helper()
	t.Setenv("RERANK_CONFIG", "")
	cfg, err := configs.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AdminToken = token
	cfg.Rerank.Deadline, cfg.Rerank.Window, cfg.Rerank.MaxLength = 30*time.Second, 10, 64
	r := &cfg.Retrain
	r.MinClicks, r.LearningRate, r.MaxLength, r.EvalDepth, r.HardNegatives = 10, 1e-3, 64, 10, 2
	cfg.Experiment.AutoStop = false
	return cfg
}

// copyIndex gives dir the sample's index (once) and returns its folder.
func copyIndex(t testing.TB, dir string) string {
	t.Helper()
	idx, err := sampleIndex()
	if err != nil {
		t.Fatal(err)
	}
	ix := filepath.Join(dir, "index")
	if _, err := os.Stat(ix); err != nil {
		if err := os.CopyFS(ix, os.DirFS(idx)); err != nil {
			t.Fatal(err)
		}
	}
	return ix
}

// startHost starts a host on dir, whose registry decides what serves
// (tinyBase on the first start).
func startHost(t testing.TB, dir string, cfg configs.Config) *host {
	t.Helper()
	bin, err := pluginBin()
	if err != nil {
		t.Fatalf("building the plugin (run through `make test` or eval \"$(make -s env)\", which set the cgo flags): %v", err)
	}
	cfg.DataDir, cfg.IndexDir = dir, copyIndex(t, dir)
	h := &host{t: t, dir: dir, cfg: cfg}
	if h.ix, err = search.Open(cfg.IndexDir); err != nil {
		t.Fatal(err)
	}
	if h.store, err = clicklog.Open(dir, clicklog.Options{}); err != nil {
		t.Fatal(err)
	}
	if h.reg, err = registry.Open(h.store); err != nil {
		t.Fatal(err)
	}
	exps, err := interleave.OpenExperiments(h.store)
	if err != nil {
		t.Fatal(err)
	}
	v, err := lifecycle.Bootstrap(h.reg, tinyBase, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if h.pc, err = pluginclient.Start(ctx, pluginclient.Options{PluginPath: bin, ModelPath: v.Checkpoint, ModelVersion: v.ID, Device: "cpu", MaxLength: 64}); err != nil {
		t.Fatal(err)
	}
	h.loop, err = retrain.New(ctx, retrain.Options{Trainer: h.pc, Options: lifecycle.Options{Config: cfg, Index: h.ix, Log: h.store, Registry: h.reg, Experiments: exps, Plugin: h.pc}})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Index: h.ix, Reranker: h.pc, Log: h.store, Config: cfg, Loop: h.loop})
	if err != nil {
		t.Fatal(err)
	}
	h.http = httptest.NewServer(srv.Handler())
	t.Cleanup(h.close)
	return h
}

func (h *host) close() {
	if h.http == nil {
		return
	}
	h.http.Close()
	h.loop.Close()
	h.pc.Close()
	h.store.Close()
	h.ix.Close()
	h.http = nil
}

// call sends an admin request and decodes the answer into out; it returns
// the status code.
func (h *host) call(method, path string, body, out any) int {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, h.http.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(raw, out); err != nil {
			h.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	if resp.StatusCode/100 != 2 {
		h.t.Logf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode
}

// search is one POST /search.
func (h *host) search(query, user string) server.SearchResponse {
	h.t.Helper()
	var r server.SearchResponse
	if code := h.call(http.MethodPost, "/search", map[string]any{"query": query, "user": user}, &r); code != http.StatusOK {
		h.t.Fatalf("search: %d", code)
	}
	return r
}

// loaded lists the versions the plugin holds, the serving one first.
func (h *host) loaded() []string {
	h.t.Helper()
	infos, err := h.pc.Info(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	var vs []string
	for _, in := range infos {
		vs = append(vs, in.Version)
	}
	return vs
}

// servingVersion checks that the registry, the plugin and a search agree on
// the serving version, and returns it.
func (h *host) servingVersion() string {
	h.t.Helper()
	v, ok, err := h.reg.Serving()
	if err != nil || !ok {
		h.t.Fatalf("registry serving: %v %v", ok, err)
	}
	infos, err := h.pc.Info(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	if len(infos) == 0 || !infos[0].Serving || infos[0].Version != v.ID {
		h.t.Fatalf("registry serves %s, the plugin %+v", v.ID, infos)
	}
	if got := h.search("vitamin d bone density", "").ModelVersion; got != v.ID {
		h.t.Fatalf("registry serves %s, a search was ranked by %q", v.ID, got)
	}
	return v.ID
}

func splitQueries(t testing.TB, split string) ([]dataset.Query, dataset.Qrels) {
	t.Helper()
	b, err := dataset.OpenBEIR(sample)
	if err != nil {
		t.Fatal(err)
	}
	qs, qrels, err := b.SplitQueries(split)
	if err != nil {
		t.Fatal(err)
	}
	return qs, qrels
}

// simulate runs simulated users and waits until the click log holds every
// search they made (a search is answered before its impression commits).
func (h *host) simulate(split string, searches, users int, seed uint64) simulate.Summary {
	h.t.Helper()
	qs, qrels := splitQueries(h.t, split)
	before := h.logged()
	sum, err := simulate.Run(context.Background(), simulate.Config{Host: h.http.URL, Queries: qs, Qrels: qrels, Users: users,
		Searches: searches, Seed: seed, Behaviour: simulate.DefaultBehaviour(simulate.PBM)})
	if err != nil || sum.Failed() > 0 {
		h.t.Fatalf("simulation: %v, %+v", err, sum)
	}
	h.waitLogged(before + sum.Searches)
	return sum
}

// logged counts the searches in the click log.
func (h *host) logged() int {
	h.t.Helper()
	var buf bytes.Buffer
	if err := h.store.Export(context.Background(), time.Time{}, &buf); err != nil {
		h.t.Fatal(err)
	}
	return bytes.Count(buf.Bytes(), []byte("\n"))
}

func (h *host) waitLogged(n int) {
	h.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); h.logged() < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			h.t.Fatalf("the click log holds %d searches, want %d", h.logged(), n)
		}
	}
}

// TestRetrainFromClicks runs the loop through the admin API: a retrain
// without clicks fails clearly, one after simulated users registers a
// candidate with its parent, data window, hyperparameters, held-out metrics
// and the gate's decision, and the serving version is the one the gate says.
func TestRetrainFromClicks(t *testing.T) {
	h := startHost(t, t.TempDir(), testConfig(t))
	if code := h.call(http.MethodGet, "/admin/retrain", nil, nil); code != http.StatusNotFound {
		t.Fatalf("status before any run: %d", code)
	}
	var st retrain.Status
	if code := h.call(http.MethodPost, "/admin/retrain", nil, &st); code != http.StatusAccepted {
		t.Fatalf("start: %d", code)
	}
	if st, _ = h.loop.WaitRetrain(context.Background()); st.State != retrain.StateFailed || !strings.Contains(st.Error, "not enough clicks") {
		t.Fatalf("a retrain without clicks: %+v", st)
	}

	sum := h.simulate("train", 120, 10, 1)
	if code := h.call(http.MethodPost, "/admin/retrain", map[string]string{"trigger": "test"}, &st); code != http.StatusAccepted {
		t.Fatalf("start: %d", code)
	}
	if code := h.call(http.MethodPost, "/admin/retrain", nil, nil); code != http.StatusConflict {
		t.Errorf("a second retrain while one runs: %d, want 409", code)
	}
	if st, _ = h.loop.WaitRetrain(context.Background()); st.State != retrain.StateDone {
		t.Fatalf("retrain: %+v", st)
	}
	var got retrain.Status
	if h.call(http.MethodGet, "/admin/retrain", nil, &got); got.ID != st.ID || got.State != retrain.StateDone || got.Training == nil || got.Training.TotalSteps == 0 || got.Training.Step != got.Training.TotalSteps {
		t.Fatalf("GET /admin/retrain: %+v", got)
	}
	for _, want := range []string{"exporting every search logged", "fine-tuning v1", "trainer: gotch", "evaluating v2 against v1", "gate: "} {
		if !strings.Contains(strings.Join(got.Log, "\n"), want) {
			t.Errorf("the run's log lacks %q:\n%s", want, strings.Join(got.Log, "\n"))
		}
	}
	o := st.Outcome
	v2, err := h.reg.Get("v2")
	if err != nil {
		t.Fatal(err)
	}
	if o.Candidate != "v2" || v2.Parent != "v1" || v2.Data.Searches != sum.Searches || v2.Data.Clicks != sum.Clicks || v2.Data.Examples == 0 ||
		!v2.Data.Since.IsZero() || v2.Data.Until.IsZero() || v2.Hyperparameters["learning_rate"] != 1e-3 {
		t.Fatalf("registered candidate %+v, outcome %+v, simulated %d searches, %d clicks", v2, o, sum.Searches, sum.Clicks)
	}
	d, err := v2.GateDecision()
	if err != nil || d == nil || d.Queries == 0 || v2.Metrics["ndcg@10"] != d.CandidateMean || v2.Metrics["ndcg@10_bm25"] != d.BM25Mean {
		t.Fatalf("gate record %+v %v, metrics %v", d, err, v2.Metrics)
	}
	t.Logf("held out: %s; %s", o.HeldOut, d.Reason)
	// Judged on click labels only (no retrain.judgments): never swapped in
	// automatically, accepted or not.
	if o.Swapped || h.servingVersion() != "v1" || (d.Accepted && !strings.Contains(o.Note, "click labels only")) {
		t.Fatalf("gate accepted=%v, swapped=%v, serving %s, note %q", d.Accepted, o.Swapped, h.servingVersion(), o.Note)
	}
	if !d.Accepted && v2.Status != registry.Rejected {
		t.Fatalf("a rejected candidate is %s", v2.Status)
	}
}

// TestSwapAndRollback swaps a version in through the admin API and rolls
// back: the registry, the plugin and the searches change together, and the
// registry's serving version is what a restarted host serves.
func TestSwapAndRollback(t *testing.T) {
	dir := t.TempDir()
	h := startHost(t, dir, testConfig(t))
	if h.servingVersion() != "v1" {
		t.Fatal("the first start does not serve the base model as v1")
	}
	other := filepath.Join(dir, "other")
	if err := checkpoint.WriteTiny(other, 7); err != nil {
		t.Fatal(err)
	}
	hash, _ := checkpoint.Hash(other)
	if _, err := h.reg.Register(registry.Version{Checkpoint: other, CheckpointHash: hash, Parent: "v1"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		body any
		code int
	}{
		{"/admin/swap", map[string]string{"version": "v9"}, http.StatusNotFound},
		{"/admin/swap", map[string]string{"version": "v1"}, http.StatusConflict}, // already serving
		{"/admin/swap", map[string]string{}, http.StatusBadRequest},
		{"/admin/rollback", map[string]string{}, http.StatusConflict}, // nothing served before
	} {
		if code := h.call(http.MethodPost, c.path, c.body, nil); code != c.code {
			t.Errorf("%s %v: %d, want %d", c.path, c.body, code, c.code)
		}
	}
	var sw registry.Swap
	if code := h.call(http.MethodPost, "/admin/swap", map[string]string{"version": "v2", "reason": "test"}, &sw); code != http.StatusOK || sw.From != "v1" || sw.To != "v2" {
		t.Fatalf("swap: %d %+v", code, sw)
	}
	if h.servingVersion() != "v2" {
		t.Fatal("v2 does not serve after the swap")
	}
	if code := h.call(http.MethodPost, "/admin/rollback", nil, &sw); code != http.StatusOK || sw.To != "v1" || sw.Kind != registry.Rollback {
		t.Fatalf("rollback: %d %+v", code, sw)
	}
	if h.servingVersion() != "v1" {
		t.Fatal("v1 does not serve after the rollback")
	}
	var m lifecycle.Models
	h.call(http.MethodGet, "/admin/models", nil, &m)
	if m.Serving != "v1" || len(m.Versions) != 2 || len(m.Swaps) != 3 {
		t.Fatalf("GET /admin/models: %+v", m)
	}

	// Swap again, restart: the registry's choice survives.
	h.call(http.MethodPost, "/admin/swap", map[string]string{"version": "v2"}, nil)
	h.close()
	h = startHost(t, dir, testConfig(t))
	if h.servingVersion() != "v2" {
		t.Fatal("a restarted host does not serve the registry's serving version")
	}
	h.call(http.MethodPost, "/admin/rollback", map[string]string{"version": "v1"}, nil)
	h.close()
	h = startHost(t, dir, testConfig(t))
	if h.servingVersion() != "v1" {
		t.Fatal("a rollback does not survive a restart")
	}
}

// trainData is the sample's train judgments with BM25 negatives, built from
// dir's index before a host opens it.
func trainData(t *testing.T, dir string) *trainset.Result {
	t.Helper()
	ix, err := search.Open(copyIndex(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	data, err := trainset.Build(context.Background(), trainset.Options{Train: sample, Kind: trainset.KindBEIR, Split: "train", Retriever: search.Stage{Index: ix},
		ValFraction: 0.1, Seed: 3, Negatives: negatives.Options{Hard: 4, Depth: 20, Random: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// betterModel fine-tunes the tiny base on data (8 epochs): on those queries
// it ranks far better than the untrained base.
func betterModel(t *testing.T, h *host, data *trainset.Result) string {
	t.Helper()
	ctx := context.Background()
	out := filepath.Join(h.dir, "better")
	req, err := data.Request(ctx, trainset.RequestOptions{Base: tinyBase, Out: out, Config: contract.TrainConfig{Epochs: 8, LearningRate: 2e-3, MaxLength: 64, Seed: 3}, Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.pc.Finetune(ctx, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res.LastCheckpoint
}

// TestInterleavingPicksTheBetterModel interleaves the untrained base with a
// model trained on the queries the simulated users issue: every interleaved
// search is reranked by both versions of the one plugin, its teams logged,
// and the experiment finds the better model with p < 0.05. A split
// experiment serves each user their arm's version.
func TestInterleavingPicksTheBetterModel(t *testing.T) {
	dir := t.TempDir()
	data := trainData(t, dir)
	cfg := testConfig(t)
	// A window of 30: the models' differences reach the page of 10.
	cfg.Rerank.Window = 30
	cfg.Retrain.Judgments, cfg.Retrain.JudgmentsSplit, cfg.Retrain.EvalDepth = sample, "train", 30
	h := startHost(t, dir, cfg)
	better := betterModel(t, h, data)
	hash, _ := checkpoint.Hash(better)
	if _, err := h.reg.Register(registry.Version{Checkpoint: better, CheckpointHash: hash, Parent: "v1"}); err != nil {
		t.Fatal(err)
	}
	// Offline, on the queries the users will issue, v2 is the better model.
	ctx := context.Background()
	e1, err := h.loop.Evaluate(ctx, "v1")
	if err != nil {
		t.Fatal(err)
	}
	e2, err := h.loop.Evaluate(ctx, "v2")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("NDCG@10 on the train queries: BM25 %.4f, v1 %.4f, v2 %.4f", e1.BM25, e1.NDCG10, e2.NDCG10)
	if got := h.loaded(); !slices.Equal(got, []string{"v1"}) {
		t.Fatalf("after evaluating v2 the plugin holds %v, want only the serving v1", got)
	}
	if e2.NDCG10 < e1.NDCG10+0.1 {
		t.Fatalf("the trained model is not clearly better: v1 %.4f, v2 %.4f", e1.NDCG10, e2.NDCG10)
	}

	for _, bad := range []map[string]any{
		{"control": "v1", "treatment": "v1", "method": "interleave"},
		{"control": "v1", "treatment": "v2", "method": "coin"},
		{"control": "v1", "treatment": "v2", "method": "split", "traffic": 2},
		{"control": "v1", "method": "split"},
	} {
		if code := h.call(http.MethodPost, "/admin/experiments", bad, nil); code != http.StatusBadRequest {
			t.Errorf("start %v: %d, want 400", bad, code)
		}
	}
	if code := h.call(http.MethodPost, "/admin/experiments", map[string]any{"control": "v1", "treatment": "v7", "method": "split"}, nil); code != http.StatusNotFound {
		t.Errorf("an unknown version: %d, want 404", code)
	}

	var e interleave.Experiment
	start := map[string]any{"control": "v1", "treatment": "v2", "method": "interleave", "traffic": 1, "min_searches": 30, "alpha": 0.05}
	if code := h.call(http.MethodPost, "/admin/experiments", start, &e); code != http.StatusCreated {
		t.Fatalf("start: %d", code)
	}
	r := h.search("vitamin d bone density", "u1")
	if x := r.Experiment; x == nil || x.ID != e.ID || x.Arm != "interleaved" || x.Control != "v1" || x.Treatment != "v2" || r.ModelVersion != "" || !r.Reranked {
		t.Fatalf("an interleaved search answered %+v (experiment %+v)", r, r.Experiment)
	}
	teams := map[string]int{}
	for _, hit := range r.Hits {
		teams[hit.Team]++
	}
	if teams["control"]+teams["treatment"]+teams["shared"] != len(r.Hits) || teams["control"] == 0 || teams["treatment"] == 0 {
		t.Fatalf("teams of the hits: %v", teams)
	}

	h.simulate("train", 300, 20, 5)
	// A search is answered before its impression commits (milliseconds
	// later), so the tally may lag the last answers briefly.
	var v lifecycle.ExperimentView
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if code := h.call(http.MethodGet, "/admin/experiments/current", nil, &v); code != http.StatusOK || v.Live == nil {
			t.Fatalf("status: %d %+v", code, v)
		}
		if v.Live.Interleave.Searches == 301 || time.Now().After(deadline) {
			break
		}
	}
	il := v.Live.Interleave
	t.Logf("interleaving: %+v; %s", *il, v.Live.Verdict.Reason)
	if il.Searches != 301 || il.TreatmentWins <= il.ControlWins || !(il.PValue < 0.05) || v.Live.Verdict.Winner != interleave.Treatment {
		t.Fatalf("the better model did not win: %+v, verdict %+v", *il, v.Live.Verdict)
	}
	if code := h.call(http.MethodPost, "/admin/experiments/current/stop", nil, &v); code != http.StatusOK || v.Status != interleave.Stopped || v.Result == nil || v.Result.Verdict.Winner != interleave.Treatment {
		t.Fatalf("stop: %d %+v", code, v)
	}
	if r := h.search("vitamin d bone density", "u1"); r.Experiment != nil || r.ModelVersion != "v1" {
		t.Fatalf("after the stop a search answered %+v", r)
	}
	if got := h.loaded(); !slices.Equal(got, []string{"v1"}) {
		t.Fatalf("after the stop the plugin holds %v, want only the serving v1 (the arm v2 unloaded)", got)
	}

	// Split: each user sees their arm's version, logged under the arm.
	start = map[string]any{"control": "v1", "treatment": "v2", "method": "split", "traffic": 1}
	if code := h.call(http.MethodPost, "/admin/experiments", start, &e); code != http.StatusCreated {
		t.Fatalf("start split: %d", code)
	}
	arms, armOf := map[string]bool{}, map[string]string{}
	before := h.logged()
	for _, u := range []string{"u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8"} {
		r := h.search("aspirin heart attack", u)
		x := r.Experiment
		want := map[string]string{"control": "v1", "treatment": "v2"}
		if x == nil || want[x.Arm] != r.ModelVersion {
			t.Fatalf("user %s: %+v experiment %+v", u, r, x)
		}
		if again := h.search("aspirin", u); again.Experiment.Arm != x.Arm {
			t.Fatalf("user %s changed arm", u)
		}
		arms[x.Arm], armOf[u] = true, x.Arm
	}
	if len(arms) != 2 {
		t.Fatalf("8 users all in one arm: %v", arms)
	}
	h.waitLogged(before + 16)
	h.call(http.MethodGet, "/admin/experiments/current", nil, &v)
	if s := v.Live.Split; s.Control.Searches+s.Treatment.Searches != 16 {
		t.Fatalf("split tally %+v", s)
	}
	// A restarted host resumes the running experiment: v2, not serving, is
	// loaded again and the users keep their arms.
	h.close()
	h = startHost(t, dir, cfg)
	for _, u := range []string{"u1", "u2", "u3"} {
		r := h.search("aspirin heart attack", u)
		want := map[string]string{"control": "v1", "treatment": "v2"}[armOf[u]]
		if r.Experiment == nil || r.Experiment.ID != e.ID || r.Experiment.Arm != armOf[u] || r.ModelVersion != want {
			t.Fatalf("after a restart user %s (arm %s) got %+v (experiment %+v)", u, armOf[u], r, r.Experiment)
		}
	}
	resp, err := http.Get(h.http.URL + "/models")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"<strong>v2</strong>", e.ID, "split", "treatment wins"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("/models lacks %q", want)
		}
	}
}

// TestScheduledRetrain: with retrain.every_clicks the host retrains by
// itself once that many clicks arrived, and not again without new clicks.
func TestScheduledRetrain(t *testing.T) {
	cfg := testConfig(t)
	cfg.Retrain.EveryClicks, cfg.Retrain.CheckInterval = 20, 50*time.Millisecond
	h := startHost(t, t.TempDir(), cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go h.loop.RunSchedule(ctx)
	time.Sleep(200 * time.Millisecond)
	if _, ok := h.loop.RetrainStatus(); ok {
		t.Fatal("a retrain started without clicks")
	}
	// Users click while the schedule is paused, so that one run takes them all.
	cancel()
	if sum := h.simulate("train", 80, 10, 9); sum.Clicks < 20 {
		t.Fatalf("only %d clicks", sum.Clicks)
	}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go h.loop.RunSchedule(ctx)
	var st retrain.Status
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		var ok bool
		if st, ok = h.loop.RetrainStatus(); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no scheduled retrain within a minute of the clicks")
		}
	}
	if !strings.HasPrefix(st.Trigger, "schedule: ") || !strings.Contains(st.Trigger, "new clicks") {
		t.Fatalf("trigger %q", st.Trigger)
	}
	if st, _ = h.loop.WaitRetrain(ctx); st.State != retrain.StateDone || st.Outcome.Candidate != "v2" {
		t.Fatalf("scheduled retrain: %+v", st)
	}
	time.Sleep(500 * time.Millisecond) // ten checks
	if again, _ := h.loop.RetrainStatus(); again.ID != st.ID {
		t.Fatalf("retrained again without new clicks: %s (%s)", again.ID, again.Trigger)
	}
}
