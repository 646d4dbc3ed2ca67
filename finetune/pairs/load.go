package pairs

import (
	"fmt"
	"sort"
	"strings"

	"github.com/rerankloop/rerank/evalharness/dataset"
)

// FromJudgments turns rows of the flat judgments format into pairs.
func FromJudgments(js []dataset.Judgment) []Pair {
	out := make([]Pair, len(js))
	for i, j := range js {
		out[i] = Pair{QueryID: j.QueryID, Query: j.Query, DocID: j.DocID, Text: j.Text, Label: float64(j.Label), Weight: 1}
	}
	return out
}

// ReadJudgments reads a judgments file (JSONL or TSV, see dataset.ReadJudgments).
func ReadJudgments(path string) ([]Pair, error) {
	js, err := dataset.ReadJudgments(path)
	if err != nil {
		return nil, err
	}
	return FromJudgments(js), nil
}

// FromQrels turns the judged (query, document) pairs of one BEIR split into
// pairs, in queries' order and then by document id. text looks a document up;
// judged documents missing from the corpus are an error naming a few.
func FromQrels(queries []dataset.Query, qrels dataset.Qrels, text func(id string) (string, bool)) ([]Pair, error) {
	var out []Pair
	var missing []string
	nMissing := 0
	for _, q := range queries {
		docs := qrels[q.ID]
		ids := make([]string, 0, len(docs))
		for id := range docs {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			t, ok := text(id)
			if !ok {
				nMissing++
				if len(missing) < 5 {
					missing = append(missing, fmt.Sprintf("%s (query %s)", id, q.ID))
				}
				continue
			}
			out = append(out, Pair{QueryID: q.ID, Query: q.Text, DocID: id, Text: t, Label: float64(docs[id]), Weight: 1})
		}
	}
	if nMissing > 0 {
		return nil, fmt.Errorf("%d judged document(s) missing from the corpus: %s", nMissing, strings.Join(missing, ", "))
	}
	return out, nil
}
