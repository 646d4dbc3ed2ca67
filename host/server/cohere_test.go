package server

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/plugin/contract"
)

func TestCohereRerank(t *testing.T) {
	e := start(t, setup{reranker: &overlapReranker{}})
	body := `{"model":"","query":"stem cell therapy","top_n":2,"return_documents":true,
		"documents":["Weather in Paris.", {"text":"Stem cell therapy trials."}, "A stem of a flower.", {"text":"cell walls","title":"ignored"}],
		"max_chunks_per_doc":10}`
	var res cohereResponse
	code, _ := do(t, "POST", e.url+"/v1/rerank", body, &res)
	if code != 200 || len(res.Results) != 2 || res.ID == "" {
		t.Fatalf("%d %+v", code, res)
	}
	if res.Results[0].Index != 1 || res.Results[0].Document == nil || res.Results[0].Document.Text != "Stem cell therapy trials." {
		t.Fatalf("best result %+v", res.Results[0])
	}
	for i, r := range res.Results {
		if r.RelevanceScore <= 0 || r.RelevanceScore >= 1 || (i > 0 && r.RelevanceScore > res.Results[i-1].RelevanceScore) {
			t.Fatalf("scores must be sigmoid values, best first: %+v", res.Results)
		}
	}
	if res.Meta["model_version"] != "overlap-v1" {
		t.Fatalf("meta %v", res.Meta)
	}

	// Without top_n every document comes back; without return_documents no texts.
	res = cohereResponse{}
	do(t, "POST", e.url+"/v1/rerank", `{"query":"flower","documents":["a","a flower","b"],"top_n":50}`, &res)
	if len(res.Results) != 3 || res.Results[0].Index != 1 || res.Results[0].Document != nil {
		t.Fatalf("%+v", res)
	}
	// Nothing is logged: the endpoint is stateless.
	waitLogged(e)
	if log := exportLog(t, e.store); len(log) != 0 {
		t.Fatalf("v1/rerank logged %d searches", len(log))
	}
}

func TestCohereRerankErrors(t *testing.T) {
	e := start(t, setup{reranker: &overlapReranker{}, config: func(c *configs.Config) { c.Rerank.MaxDocuments = 3 }})
	for _, tc := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"no query", `{"documents":["a"]}`, 400, "query is missing"},
		{"empty query", `{"query":" ","documents":["a"]}`, 400, "query is empty"},
		{"no documents", `{"query":"q"}`, 400, "documents is missing or empty"},
		{"empty documents", `{"query":"q","documents":[]}`, 400, "documents is missing or empty"},
		{"too many documents", `{"query":"q","documents":["a","b","c","d"]}`, 400, "4 documents, over the limit of 3"},
		{"number document", `{"query":"q","documents":["a",7]}`, 400, "documents[1]: want a string or an object"},
		{"object without text", `{"query":"q","documents":[{"body":"x"}]}`, 400, `documents[0]: object without a "text"`},
		{"text not a string", `{"query":"q","documents":[{"text":5}]}`, 400, `documents[0]: "text" must be a string`},
		{"top_n zero", `{"query":"q","documents":["a"],"top_n":0}`, 400, "top_n must be at least 1"},
		{"documents not an array", `{"query":"q","documents":"a"}`, 400, `"documents" must be an array`},
		{"malformed", `{"query":`, 400, "malformed JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out map[string]string
			code, _ := do(t, "POST", e.url+"/v1/rerank", tc.body, &out)
			if code != tc.code || !strings.Contains(out["error"], tc.want) {
				t.Fatalf("got %d %q, want %d containing %q", code, out["error"], tc.code, tc.want)
			}
		})
	}

	var out map[string]string
	none := start(t, setup{})
	if code, _ := do(t, "POST", none.url+"/v1/rerank", `{"query":"q","documents":["a"]}`, &out); code != 503 || !strings.Contains(out["error"], "no reranker configured") {
		t.Fatalf("without a reranker: %d %v", code, out)
	}
	down := start(t, setup{reranker: &overlapReranker{err: errUnavailable()}})
	if code, _ := do(t, "POST", down.url+"/v1/rerank", `{"query":"q","documents":["a"]}`, &out); code != 503 || !strings.Contains(out["error"], "unavailable") {
		t.Fatalf("reranker down: %d %v", code, out)
	}
}

func TestCohereAPIKey(t *testing.T) {
	e := start(t, setup{reranker: &overlapReranker{}, config: func(c *configs.Config) { c.Rerank.APIKey = "sekrit" }})
	body := `{"query":"q","documents":["a"]}`
	var out map[string]any
	if code, hdr := do(t, "POST", e.url+"/v1/rerank", body, &out); code != 401 || hdr.Get("WWW-Authenticate") == "" {
		t.Fatalf("no key: %d %v", code, out)
	}
	if code, _ := do(t, "POST", e.url+"/v1/rerank", body, &out, "Authorization", "Bearer wrong"); code != 401 {
		t.Fatalf("wrong key: %d %v", code, out)
	}
	if code, _ := do(t, "POST", e.url+"/v1/rerank", body, &out, "Authorization", "Bearer sekrit"); code != 200 {
		t.Fatalf("right key: %d %v", code, out)
	}
	// Search stays open.
	if code, _ := do(t, "GET", e.url+"/search?q=cell", "", &out); code != 200 {
		t.Fatalf("search: %d", code)
	}
}

// Cohere clients always send a model name: it is ignored (the serving model
// answers), so a client cannot reach a candidate or an experiment's arm.
// The reranker's own refusals are the client's 4xx, and a non-finite score
// is a clear 502, not a 500 from JSON encoding.
func TestCohereRerankModelFieldAndReranker(t *testing.T) {
	e := start(t, setup{reranker: &overlapReranker{}})
	var res cohereResponse
	for _, model := range []string{"rerank-english-v3.0", "candidate", "overlap-v1"} {
		code, _ := do(t, "POST", e.url+"/v1/rerank", `{"model":"`+model+`","query":"flower","documents":["a","a flower"]}`, &res)
		if code != 200 || res.Meta["model_version"] != "overlap-v1" {
			t.Errorf("model %q: %d %+v", model, code, res)
		}
	}
	for _, c := range []struct {
		r    *overlapReranker
		code int
		want string
	}{
		{&overlapReranker{err: fmt.Errorf("%w: document 0 is not valid UTF-8", contract.ErrInvalidRequest)}, 400, "document 0 is not valid UTF-8"},
		{&overlapReranker{err: fmt.Errorf("%w: 2000 documents", contract.ErrTooLarge)}, 413, "2000 documents"},
		{&overlapReranker{nan: true}, 502, "non-finite score"},
	} {
		e := start(t, setup{reranker: c.r})
		var body map[string]any
		code, _ := do(t, "POST", e.url+"/v1/rerank", `{"query":"flower","documents":["a","a flower"]}`, &body)
		if msg, _ := body["error"].(string); code != c.code || !strings.Contains(msg, c.want) {
			t.Errorf("%+v: %d %v; want %d with %q", c.r, code, body, c.code, c.want)
		}
	}
}
