package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/rerankloop/rerank/configs"
)

// fuzzServer serves in-process (no sockets) with a real index, click log and
// the overlap reranker, so every stage sees the fuzzed input.
// Only the admin target changes documents and gets an index of its own.
func fuzzServer(f *testing.F, ownIndex bool) *Server {
	f.Helper()
	su := setup{reranker: &overlapReranker{}, config: func(c *configs.Config) {
		c.AdminToken = "tok"
		c.HTTP.MaxBodyBytes = 64 << 10
	}}
	if ownIndex {
		su.ix = newIndex(f)
	}
	return start(f, su).srv
}

// check holds for every answer: no 5xx, a JSON body, and an error message
// on every 4xx. Redirects are the click link's 303 and the router's own
// redirects of unclean paths (/docs/a/../b), both with a Location.
func check(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if rec.Code >= 300 && rec.Code < 400 {
		if rec.Header().Get("Location") == "" {
			t.Fatalf("redirect %d without a Location", rec.Code)
		}
		return
	}
	if rec.Code == http.StatusOK && strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		return
	}
	var v map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("status %d, body not a JSON object: %v: %.200s", rec.Code, err, rec.Body)
	}
	if rec.Code >= 400 {
		if msg, _ := v["error"].(string); msg == "" {
			t.Fatalf("status %d without an error message: %s", rec.Code, rec.Body)
		}
	}
}

func serve(s *Server, method, path, rawQuery string, body []byte, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "/", bytes.NewReader(body))
	r.URL = &url.URL{Path: path, RawQuery: rawQuery}
	r.RequestURI = r.URL.RequestURI()
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, r)
	return rec
}

func FuzzSearchGET(f *testing.F) {
	for _, s := range []string{"q=stem+cells", "q=%ff&size=3", "query=a&from=-1&k=500", "q=the&size=100&from=1000", "q=" + strings.Repeat("x", 2000), "q=a%00b&user=%e2%82"} {
		f.Add(s)
	}
	s := fuzzServer(f, false)
	f.Fuzz(func(t *testing.T, raw string) {
		rec := serve(s, "GET", "/search", raw, nil)
		check(t, rec)
		if rec.Code == 200 {
			var res SearchResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || len(res.Hits) > res.Size {
				t.Fatalf("bad answer %v: %.200s", err, rec.Body)
			}
		}
	})
}

func FuzzSearchPOST(f *testing.F) {
	for _, s := range []string{`{"query":"stem cells","size":3}`, `{"query":"x","k":0,"from":5}`, `{"query":"\ud800"}`, `{"query":null}`, `[1,2]`, `{"size":1e400}`, "{\"query\":\"a\xff\"}"} {
		f.Add([]byte(s))
	}
	s := fuzzServer(f, false)
	f.Fuzz(func(t *testing.T, body []byte) {
		check(t, serve(s, "POST", "/search", "", body))
	})
}

func FuzzClick(f *testing.F) {
	f.Add([]byte(`{"search_id":"abc","doc_id":"5836","position":1,"dwell_ms":10}`), "search_id=abc&doc_id=1&position=2")
	f.Add([]byte(`{"search_id":"","doc_id":"","position":1e9}`), "position=99999999999999999999")
	s := fuzzServer(f, false)
	f.Fuzz(func(t *testing.T, body []byte, raw string) {
		check(t, serve(s, "POST", "/click", "", body))
		check(t, serve(s, "GET", "/click", raw, nil))
	})
}

func FuzzCohereRerank(f *testing.F) {
	for _, s := range []string{`{"query":"q","documents":["a",{"text":"b"}],"top_n":1,"return_documents":true}`, `{"query":"q","documents":[{"text":null}]}`, `{"query":"q","documents":[[]],"top_n":-1}`} {
		f.Add([]byte(s))
	}
	s := fuzzServer(f, false)
	f.Fuzz(func(t *testing.T, body []byte) {
		check(t, serve(s, "POST", "/v1/rerank", "", body))
	})
}

func FuzzAdminDocs(f *testing.F) {
	for _, s := range []string{`{"id":"a","title":"t","text":"x"}`, `[{"id":"a"},{"id":"b","text":"y"}]`, `[{"id":""}]`, `{"id":"a\u0000b"}`} {
		f.Add([]byte(s), "a")
	}
	s := fuzzServer(f, true)
	f.Fuzz(func(t *testing.T, body []byte, id string) {
		check(t, serve(s, "POST", "/admin/docs", "", body, "Authorization", "Bearer tok"))
		check(t, serve(s, "PUT", "/admin/docs/"+id, "", body, "Authorization", "Bearer tok"))
		check(t, serve(s, "GET", "/docs/"+id, "", nil))
		check(t, serve(s, "DELETE", "/admin/docs/"+id, "", nil, "Authorization", "Bearer tok"))
	})
}
