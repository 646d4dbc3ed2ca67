package server

import (
	"encoding/json"
	"strings"
	"testing"
)

// OpenSearch's cohere.rerank post-process function casts each score to a
// Java Double, and ML Commons parses a number with more digits than a double
// holds exactly (17 significant) as a BigDecimal: the search then fails with
// a ClassCastException. A float32 score written with float32's shortest form
// (at most 9 digits) parses as a Double and loses nothing.
func TestCohereScoresFitADouble(t *testing.T) {
	e := start(t, setup{reranker: &overlapReranker{}})
	var raw json.RawMessage
	code, _ := do(t, "POST", e.url+"/v1/rerank", `{"query":"stem cell therapy","documents":["Weather in Paris.","Stem cell therapy trials.","A stem of a flower."]}`, &raw)
	if code != 200 {
		t.Fatalf("%d %s", code, raw)
	}
	var res struct {
		Results []struct {
			Score json.Number `json:"relevance_score"`
		} `json:"results"`
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&res); err != nil || len(res.Results) != 3 {
		t.Fatalf("%v %s", err, raw)
	}
	for _, r := range res.Results {
		digits := strings.TrimLeft(strings.NewReplacer(".", "", "-", "").Replace(strings.Split(strings.ToLower(string(r.Score)), "e")[0]), "0")
		if len(digits) > 9 {
			t.Errorf("relevance_score %s has %d significant digits; OpenSearch refuses more than a double's exact ones", r.Score, len(digits))
		}
	}
}
