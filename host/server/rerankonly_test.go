package server

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A rerank-only host answers the cluster's calls and refuses, by name, what
// belongs to the cluster.
func TestRerankOnlyRoutes(t *testing.T) {
	cfg := testConfig(t)
	cfg.RerankOnly = true
	srv, err := New(Options{Index: sampleIndex(t), Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/search?q=vitamin", 404, "serves only /v1/rerank"},
		{"POST", "/click", 404, "serves only /v1/rerank"},
		{"GET", "/docs/5836", 404, "serves only /v1/rerank"},
		{"GET", "/", 404, "search through the cluster"},
		{"POST", "/v1/rerank", 503, "no"},
		{"GET", "/healthz", 200, ""},
		{"GET", "/readyz", 200, "ready"},
		{"GET", "/metrics", 200, "rerank_http_requests_total"},
	} {
		req, _ := http.NewRequest(tc.method, ts.URL+tc.path, strings.NewReader(`{"query":"q","documents":["a"]}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(b.String(), tc.body) {
			t.Errorf("%s %s: %d %s; want %d containing %q", tc.method, tc.path, resp.StatusCode, b.String(), tc.code, tc.body)
		}
	}
}
