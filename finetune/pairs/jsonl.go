package pairs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/rerankloop/rerank/evalharness/dataset"
)

// WriteJSONL writes one pair per line with the fields of Pair. The file is
// also a valid judgments file (query, text, label, query_id, doc_id).
func WriteJSONL(w io.Writer, ps []Pair) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, p := range ps {
		if err := enc.Encode(p); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// ReadJSONL reads what WriteJSONL wrote, naming the line of a bad pair.
func ReadJSONL(path string) ([]Pair, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	var out []Pair
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var p struct {
			Pair
			Label *float64 `json:"label"` // a missing label is an error, not 0
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, n, err)
		}
		if p.Query == "" || p.Text == "" || p.Label == nil {
			return nil, fmt.Errorf("%s:%d: a pair needs a query, a text and a label", path, n)
		}
		p.Pair.Label = *p.Label
		out = append(out, p.Pair)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// Qrels returns the pairs' labels by query id and document id, for scoring
// a reranking of the validation queries.
func Qrels(ps []Pair) dataset.Qrels {
	q := dataset.Qrels{}
	for _, p := range ps {
		if q[p.QueryID] == nil {
			q[p.QueryID] = map[string]int{}
		}
		q[p.QueryID][p.DocID] = int(p.Label)
	}
	return q
}

// Queries lists the pairs' queries once each, in order of first appearance,
// for running them through BM25 and the reranker.
func Queries(ps []Pair) []dataset.Query {
	var out []dataset.Query
	seen := map[string]bool{}
	for _, p := range ps {
		if !seen[p.QueryID] {
			seen[p.QueryID] = true
			out = append(out, dataset.Query{ID: p.QueryID, Text: p.Query})
		}
	}
	return out
}
