package app

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/host/search"
	"github.com/rerankloop/rerank/host/server"
	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
)

// hostConfig is the built-in configuration with the SciFact sample's index,
// the tiny cross-encoder serving and a freshly built plugin, in a temporary folder.
func hostConfig(t *testing.T) configs.Config {
	t.Helper()
	t.Setenv("RERANK_CONFIG", "")
	cfg, err := configs.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg.DataDir, cfg.IndexDir = dir, filepath.Join(dir, "index")
	if err := search.Build(context.Background(), cfg.IndexDir, func(fn func(dataset.Doc) error) error {
		return dataset.ReadCorpus("../../testdata/scifact-sample/corpus.jsonl", fn)
	}, search.Options{}, nil); err != nil {
		t.Fatal(err)
	}
	cfg.Rerank.PluginPath = filepath.Join(dir, "rerank-plugin")
	if out, err := exec.Command("go", "build", "-o", cfg.Rerank.PluginPath, "../../plugin/cmd/rerank-plugin").CombinedOutput(); err != nil {
		t.Fatalf("building the plugin (run through `make test`, which sets the cgo flags): %v\n%s", err, out)
	}
	cfg.Rerank.ModelPath, cfg.Rerank.Device, cfg.Rerank.MaxLength = "../../plugin/testdata/tiny-ce", "cpu", 64
	return cfg
}

// The cascade checkpoint loads beside the serving version under its fixed
// name, with its hash, and comes back after the plugin is killed.
func TestCascadeModelLoadsAndSurvivesARestart(t *testing.T) {
	cfg := hostConfig(t)
	cfg.Rerank.Cascade.ModelPath = filepath.Join(t.TempDir(), "cascade-ce")
	if err := checkpoint.WriteTiny(cfg.Rerank.Cascade.ModelPath, 7); err != nil {
		t.Fatal(err)
	}
	hash, err := checkpoint.Hash(cfg.Rerank.Cascade.ModelPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h, err := Open(ctx, Options{Config: cfg, Reranker: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.Cascade != CascadeModel {
		t.Fatalf("Host.Cascade %q, want %q", h.Cascade, CascadeModel)
	}
	infos, err := h.Plugin.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, in := range infos {
		if in.Version == CascadeModel {
			found = true
			if in.Serving || in.CheckpointHash != hash {
				t.Errorf("cascade model %+v: want not serving, hash %s", in, hash)
			}
		}
	}
	if !found {
		t.Fatalf("no cascade model in the plugin: %+v", infos)
	}
	req := contract.RerankRequest{Query: "aspirin", Model: CascadeModel, Documents: []contract.Document{{ID: "a", Text: "aspirin and the heart"}}}
	if res, err := h.Plugin.Rerank(ctx, req); err != nil || res.ModelVersion != CascadeModel {
		t.Fatalf("cascade rerank: %+v, %v", res, err)
	}
	// Searches through the real plugin: the cascade reorders the top 5, or,
	// past a timeout it cannot meet, the search says so and keeps the order.
	for _, tc := range []struct {
		timeout  time.Duration
		fallback string
	}{{time.Minute, ""}, {time.Microsecond, "deadline"}} {
		c := cfg
		c.Rerank.Window, c.Rerank.Deadline, c.Rerank.Cascade.Top, c.Rerank.Cascade.Timeout = 10, time.Minute, 5, tc.timeout
		res := searchOnce(t, h, c, "aspirin reduces the risk of heart attacks")
		want := server.SearchCascade{Model: CascadeModel, Top: 5, Applied: tc.fallback == "", Fallback: tc.fallback}
		if !res.Reranked || res.Cascade == nil || *res.Cascade != want || (res.Hits[0].CascadeScore != nil) != want.Applied {
			t.Fatalf("timeout %s: reranked %v, cascade %+v, first hit %+v; want %+v", tc.timeout, res.Reranked, res.Cascade, res.Hits[0], want)
		}
	}

	pid := h.Plugin.PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for h.Plugin.PID() == pid || h.Plugin.PID() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("plugin not restarted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if res, err := h.Plugin.Rerank(ctx, req); err != nil || res.ModelVersion != CascadeModel {
		t.Fatalf("cascade rerank after a plugin restart: %+v, %v", res, err)
	}
	if res, err := h.Plugin.Rerank(ctx, contract.RerankRequest{Query: "aspirin", Documents: req.Documents}); err != nil || res.ModelVersion == CascadeModel {
		t.Fatalf("the serving model after a restart: %+v, %v", res, err)
	}
}

// searchOnce asks a server over h's index and plugin, configured by cfg, for query.
func searchOnce(t *testing.T, h *Host, cfg configs.Config, query string) server.SearchResponse {
	t.Helper()
	srv, err := server.New(server.Options{Index: h.Index, Reranker: h.Plugin, Config: cfg, Cascade: h.Cascade})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	resp, err := http.Get(hs.URL + "/search?" + url.Values{"q": {query}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res server.SearchResponse
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || resp.StatusCode != http.StatusOK || len(res.Hits) == 0 {
		t.Fatalf("search: status %d, %+v, %v", resp.StatusCode, res, err)
	}
	return res
}

// A cascade checkpoint that is not there stops the start, naming the key.
func TestCascadeMissingCheckpointIsAnError(t *testing.T) {
	cfg := hostConfig(t)
	cfg.Rerank.Cascade.ModelPath = filepath.Join(t.TempDir(), "no-such-model")
	h, err := Open(context.Background(), Options{Config: cfg, Reranker: true})
	if err == nil {
		h.Close()
		t.Fatal("no error")
	}
	if !strings.Contains(err.Error(), "rerank.cascade.model_path") || !strings.Contains(err.Error(), "no-such-model") {
		t.Fatalf("error %q does not name the key and the folder", err)
	}
}
