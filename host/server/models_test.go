package server

import (
	"strings"
	"testing"

	"github.com/rerankloop/rerank/configs"
)

// Without a reranker there is no loop: its admin endpoints and the /models
// page say so; the bearer token is checked first. (host/retrain's tests run
// them against a real plugin.)
func TestLoopEndpointsWithoutReranker(t *testing.T) {
	e := start(t, setup{config: func(c *configs.Config) { c.AdminToken = "t0k3n" }})
	for _, c := range []struct{ method, path string }{
		{"POST", "/admin/retrain"}, {"GET", "/admin/retrain"}, {"DELETE", "/admin/retrain"}, {"GET", "/admin/models"},
		{"POST", "/admin/swap"}, {"POST", "/admin/rollback"}, {"GET", "/admin/experiments"}, {"POST", "/admin/experiments"},
		{"GET", "/admin/experiments/current"}, {"POST", "/admin/experiments/e1/stop"},
	} {
		var out map[string]string
		if code, _ := do(t, c.method, e.url+c.path, "", &out); code != 401 {
			t.Errorf("%s %s without a token: %d %v", c.method, c.path, code, out)
		}
		if code, _ := do(t, c.method, e.url+c.path, "", &out, "Authorization", "Bearer t0k3n"); code != 503 || !strings.Contains(out["error"], "rerank.model_path") {
			t.Errorf("%s %s: %d %v", c.method, c.path, code, out)
		}
	}
	var out map[string]string
	if code, _ := do(t, "GET", e.url+"/models", "", &out); code != 503 {
		t.Errorf("/models: %d %v", code, out)
	}
	if code, _ := do(t, "PUT", e.url+"/admin/swap", "", &out, "Authorization", "Bearer t0k3n"); code != 405 {
		t.Errorf("PUT /admin/swap: %d %v", code, out)
	}
}
