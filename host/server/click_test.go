package server

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestClickPOSTAndRedirect(t *testing.T) {
	e := start(t, setup{})
	var res SearchResponse
	do(t, "GET", e.url+"/search?q=stem+cells&size=5", "", &res)
	h := res.Hits[2]

	var ok map[string]any
	body := fmt.Sprintf(`{"search_id":%q,"doc_id":%q,"position":3,"dwell_ms":4200,"event_id":"e1"}`, res.SearchID, h.ID)
	if code, _ := do(t, "POST", e.url+"/click", body, &ok); code != 200 || ok["logged"] != true {
		t.Fatalf("click: %d %v", code, ok)
	}
	// A retried report of the same event counts once.
	do(t, "POST", e.url+"/click", body, nil)

	// The redirect link logs the click and lands on the document page.
	q := url.Values{"search_id": {res.SearchID}, "doc_id": {res.Hits[0].ID}, "position": {"1"}}
	code, hdr := do(t, "GET", e.url+"/click?"+q.Encode(), "", nil)
	loc := hdr.Get("Location")
	if code != http.StatusSeeOther || !strings.HasPrefix(loc, "/doc/"+res.Hits[0].ID+"?") {
		t.Fatalf("redirect: %d to %q", code, loc)
	}
	resp, err := http.Get(e.url + loc)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "<h1>") || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("doc page: %d %.200s", resp.StatusCode, page)
	}

	waitLogged(e)
	log := exportLog(t, e.store)
	if len(log) != 1 {
		t.Fatalf("%d impressions", len(log))
	}
	for i, r := range log[0].Results {
		wantClicks := map[int]int{0: 1, 2: 1}[i]
		if r.Clicks != wantClicks {
			t.Errorf("result %d (%s): %d clicks, want %d", i+1, r.DocID, r.Clicks, wantClicks)
		}
		if i == 2 && r.DwellMS != 4200 {
			t.Errorf("dwell %d, want 4200", r.DwellMS)
		}
	}
}

func TestClickRejections(t *testing.T) {
	e := start(t, setup{})
	var res SearchResponse
	do(t, "GET", e.url+"/search?q=stem+cells&size=5", "", &res)
	waitLogged(e)
	shown := res.Hits[0].ID
	for _, tc := range []struct {
		name, method, body, query string
		code                      int
		want                      string
	}{
		{"unknown search", "POST", `{"search_id":"0123abcd","doc_id":"1","position":1}`, "", 404, "unknown search_id"},
		{"unknown search via link", "GET", "", "search_id=0123abcd&doc_id=1&position=1", 404, "unknown search_id"},
		{"doc not shown", "POST", fmt.Sprintf(`{"search_id":%q,"doc_id":"not-a-doc","position":1}`, res.SearchID), "", 422, "not shown"},
		{"wrong position", "POST", fmt.Sprintf(`{"search_id":%q,"doc_id":%q,"position":4}`, res.SearchID, shown), "", 400, "showed it at 1"},
		{"no search id", "POST", `{"doc_id":"1","position":1}`, "", 400, "search_id is missing"},
		{"no doc id", "POST", `{"search_id":"abc","position":1}`, "", 400, "doc_id is missing"},
		{"negative position", "POST", `{"search_id":"abc","doc_id":"1","position":-1}`, "", 400, "position must be"},
		{"negative dwell", "POST", `{"search_id":"abc","doc_id":"1","position":1,"dwell_ms":-5}`, "", 400, "dwell_ms must be"},
		{"huge dwell", "POST", `{"search_id":"abc","doc_id":"1","position":1,"dwell_ms":99999999999}`, "", 400, "dwell_ms must be"},
		{"dwell not a number", "POST", `{"search_id":"abc","doc_id":"1","dwell_ms":"long"}`, "", 400, `"dwell_ms" must be a number`},
		{"position not a number in link", "GET", "", "search_id=abc&doc_id=1&position=x", 400, "position must be an integer"},
		{"bad search id characters", "POST", `{"search_id":"a b/c","doc_id":"1","position":1}`, "", 400, "search id"},
		{"unknown field", "POST", `{"search_id":"abc","doc_id":"1","pos":1}`, "", 400, `unknown field "pos"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out map[string]string
			u := e.url + "/click"
			if tc.query != "" {
				u += "?" + tc.query
			}
			code, _ := do(t, tc.method, u, tc.body, &out)
			if code != tc.code || !strings.Contains(out["error"], tc.want) {
				t.Fatalf("got %d %q, want %d containing %q", code, out["error"], tc.code, tc.want)
			}
		})
	}
	if log := exportLog(t, e.store); log[0].Results[0].Clicks != 0 {
		t.Fatal("a rejected click was stored")
	}
}

func TestClickWithoutLog(t *testing.T) {
	e := start(t, setup{noLog: true})
	var res SearchResponse
	do(t, "GET", e.url+"/search?q=stem+cells", "", &res)
	if res.Logged {
		t.Fatal("logged without a log")
	}
	var out map[string]string
	if code, _ := do(t, "POST", e.url+"/click", `{"search_id":"abc","doc_id":"1","position":1}`, &out); code != 503 {
		t.Fatalf("%d %v", code, out)
	}
}

func TestDocEndpoints(t *testing.T) {
	e := start(t, setup{})
	var d docJSON
	if code, _ := do(t, "GET", e.url+"/docs/5836", "", &d); code != 200 || d.ID != "5836" || !strings.HasPrefix(d.Title, "Induction of myelodysplasia") || d.Text == "" {
		t.Fatalf("%d %+v", code, d)
	}
	var out map[string]string
	if code, _ := do(t, "GET", e.url+"/docs/nope", "", &out); code != 404 || !strings.Contains(out["error"], "no document") {
		t.Fatalf("%d %v", code, out)
	}
	if code, _ := do(t, "GET", e.url+"/doc/nope", "", &out); code != 404 {
		t.Fatalf("%d %v", code, out)
	}
}
