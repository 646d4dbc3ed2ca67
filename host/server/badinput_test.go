package server

import (
	"net/http"
	"strings"
	"testing"

	"github.com/rerankloop/rerank/configs"
)

// Every bad request gets a 4xx with a JSON error that says what is wrong.
func TestBadInput(t *testing.T) {
	e := start(t, setup{config: func(c *configs.Config) {
		c.Search.MaxQueryBytes = 64
		c.HTTP.MaxBodyBytes = 2048
	}})
	long := strings.Repeat("cell ", 20)
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{"empty query", "GET", "/search?q=", "", 400, "query is empty"},
		{"blank query", "GET", "/search?q=+%09+", "", 400, "query is empty"},
		{"no query", "POST", "/search", `{"size":3}`, 400, "query is empty"},
		{"over-long query", "GET", "/search?q=" + strings.ReplaceAll(long, " ", "+"), "", 400, "over the 64-byte limit"},
		{"invalid UTF-8 in GET", "GET", "/search?q=%ff%fe", "", 400, "not valid UTF-8"},
		{"invalid UTF-8 in body", "POST", "/search", "{\"query\":\"\xff\xfe\"}", 400, "not valid UTF-8"},
		{"size zero", "GET", "/search?q=x&size=0", "", 400, "size must be 1 to 100"},
		{"size too big", "GET", "/search?q=x&size=101", "", 400, "size must be 1 to 100"},
		{"size not a number", "GET", "/search?q=x&size=ten", "", 400, "size must be an integer"},
		{"size overflow", "GET", "/search?q=x&size=99999999999999999999", "", 400, "size must be an integer"},
		{"negative from", "GET", "/search?q=x&from=-1", "", 400, "from must be 0 to 1000"},
		{"from too deep", "POST", "/search", `{"query":"x","from":5000}`, 400, "from must be 0 to 1000"},
		{"k too big", "GET", "/search?q=x&k=201", "", 400, "k (rerank window) must be 0 to 200"},
		{"negative k", "POST", "/search", `{"query":"x","k":-3}`, 400, "k (rerank window)"},
		{"size as string", "POST", "/search", `{"query":"x","size":"10"}`, 400, `"size" must be a number`},
		{"size as float", "POST", "/search", `{"query":"x","size":2.5}`, 400, `"size" must be a number`},
		{"query as number", "POST", "/search", `{"query":42}`, 400, `"query" must be a string`},
		{"malformed JSON", "POST", "/search", `{"query":"x",}`, 400, "malformed JSON"},
		{"truncated JSON", "POST", "/search", `{"query":"x"`, 400, "malformed JSON"},
		{"two values", "POST", "/search", `{"query":"x"}{"query":"y"}`, 400, "more than one value"},
		{"array body", "POST", "/search", `["x"]`, 400, "malformed JSON"},
		{"null body", "POST", "/search", `null`, 400, "query is empty"},
		{"empty body without a type", "POST", "/search", ``, 415, "Content-Type: application/json"},
		{"unknown field", "POST", "/search", `{"query":"x","sise":3}`, 400, `unknown field "sise"`},
		{"oversized body", "POST", "/search", `{"query":"` + strings.Repeat("a", 3000) + `"}`, 413, "over the 2048-byte limit"},
		{"long user", "GET", "/search?q=x&user=" + strings.Repeat("u", 300), "", 400, "user is 300 bytes long"},
		{"wrong method", "DELETE", "/search", "", 405, "method DELETE not allowed"},
		{"wrong method on click", "PUT", "/click", "{}", 405, "use GET or POST"},
		{"doc without id", "GET", "/docs/", "", 400, "document id is missing"},
		{"v1 rerank by GET", "GET", "/v1/rerank", "", 405, "use POST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out map[string]string
			code, hdr := do(t, tc.method, e.url+tc.path, tc.body, &out)
			if code != tc.code || !strings.Contains(out["error"], tc.want) {
				t.Fatalf("got %d %q, want %d containing %q", code, out["error"], tc.code, tc.want)
			}
			if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("content type %q", ct)
			}
			if code == http.StatusMethodNotAllowed && hdr.Get("Allow") == "" {
				t.Fatal("405 without an Allow header")
			}
		})
	}
	waitLogged(e)
	if log := exportLog(t, e.store); len(log) != 0 {
		t.Fatalf("rejected searches were logged: %d", len(log))
	}
}

// A web page cannot make its visitors' browsers log searches or clicks: a
// JSON body needs Content-Type application/json (which a cross-site page
// cannot send without permission), and what the browser marks cross-site is
// refused. Same-origin pages and non-browser clients go through.
func TestCrossSiteSearchesAndClicksAreRefused(t *testing.T) {
	e := start(t, setup{})
	for _, c := range []struct {
		name, method, path, body string
		header                   []string
		code                     int
		want                     string
	}{
		{"text/plain body", "POST", "/search", `{"query":"stem cells"}`, []string{"Content-Type", "text/plain"}, 415, "application/json"},
		{"form body", "POST", "/click", `{"search_id":"x","doc_id":"y"}`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "application/json"},
		{"cross-site GET search", "GET", "/search?q=stem+cells", "", []string{"Sec-Fetch-Site", "cross-site"}, 403, "cross-site"},
		{"cross-site GET click", "GET", "/click?search_id=x&doc_id=y", "", []string{"Sec-Fetch-Site", "cross-site"}, 403, "cross-site"},
		{"cross-site JSON search", "POST", "/search", `{"query":"stem cells"}`, []string{"Content-Type", "application/json", "Sec-Fetch-Site", "cross-site"}, 403, "cross-site"},
		{"empty JSON body", "POST", "/search", ``, []string{"Content-Type", "application/json"}, 400, "empty request body"},
	} {
		var out map[string]string
		code, _ := do(t, c.method, e.url+c.path, c.body, &out, c.header...)
		if code != c.code || !strings.Contains(out["error"], c.want) {
			t.Errorf("%s: %d %q, want %d with %q", c.name, code, out["error"], c.code, c.want)
		}
	}
	for _, c := range []struct{ name, site, ctype string }{
		{"same origin, charset", "same-origin", "application/json; charset=utf-8"},
		{"no browser", "", "application/json"},
	} {
		var res SearchResponse
		code, _ := do(t, "POST", e.url+"/search", `{"query":"stem cells"}`, &res, "Content-Type", c.ctype, "Sec-Fetch-Site", c.site)
		if code != 200 || len(res.Hits) == 0 {
			t.Errorf("%s: %d %+v", c.name, code, res)
		}
	}
	waitLogged(e)
	if log := exportLog(t, e.store); len(log) != 2 {
		t.Errorf("%d searches logged, want the 2 allowed ones", len(log))
	}
}
