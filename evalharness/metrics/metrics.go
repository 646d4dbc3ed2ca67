// Package metrics computes ranking measures exactly as trec_eval (and so
// pytrec_eval, and BEIR, which calls it) does:
//
//   - documents are ranked by score descending, ties by document ID descending;
//   - a document is relevant when its label is >= 1; unjudged documents are not;
//   - NDCG gain is the label itself (linear), discount log2(rank+1), the ideal
//     ranking built from every judged document of the query, not only the
//     retrieved ones (trec_eval's ndcg_cut);
//   - MAP@k divides by the number of relevant documents of the query, not by
//     min(k, that number) (trec_eval's map_cut); P@k divides by k even when
//     fewer documents were retrieved; MRR@k is trec_eval's recip_rank on the
//     top k;
//   - a query is evaluated when it is in both the run and the qrels (a run
//     entry with no documents counts, and scores 0); a judged query without any
//     relevant document scores 0 on every measure.
package metrics

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/evalharness/trec"
)

// Kind is a family of measures.
type Kind string

// The measures. Their names are those accepted by Parse.
const (
	NDCG      Kind = "ndcg"
	MRR       Kind = "mrr"
	MAP       Kind = "map"
	Recall    Kind = "recall"
	Precision Kind = "p"
)

var kinds = map[string]Kind{
	"ndcg": NDCG, "mrr": MRR, "recip_rank": MRR, "map": MAP,
	"recall": Recall, "r": Recall, "p": Precision, "precision": Precision,
}

// Measure is a measure at a cutoff; K == 0 means the whole ranking.
type Measure struct {
	Kind Kind
	K    int
}

// String is the canonical name, e.g. "ndcg@10" or "map".
func (m Measure) String() string {
	if m.K == 0 {
		return string(m.Kind)
	}
	return string(m.Kind) + "@" + strconv.Itoa(m.K)
}

// Parse reads a measure name: ndcg@10, mrr@10, map@100, recall@100, p@10
// (also precision@10; case-insensitive). Without @k the measure covers the
// whole ranking. P needs a cutoff.
func Parse(s string) (Measure, error) {
	name, k, hasK := strings.Cut(strings.ToLower(strings.TrimSpace(s)), "@")
	kind, ok := kinds[name]
	if !ok {
		return Measure{}, fmt.Errorf("unknown measure %q (want ndcg, mrr, map, recall or p, with @k)", s)
	}
	m := Measure{Kind: kind}
	if hasK {
		n, err := strconv.Atoi(k)
		if err != nil || n < 1 {
			return Measure{}, fmt.Errorf("measure %q: cutoff must be a positive integer", s)
		}
		m.K = n
	} else if kind == Precision {
		return Measure{}, fmt.Errorf("measure %q needs a cutoff, e.g. p@10", s)
	}
	return m, nil
}

// Query computes m for one query: ranked document IDs (best first) against the
// query's judgements.
func (m Measure) Query(ranked []string, judged map[string]int) float64 {
	top := ranked
	if m.K > 0 && len(top) > m.K {
		top = top[:m.K]
	}
	numRel := 0
	for _, l := range judged {
		if l >= 1 {
			numRel++
		}
	}
	switch m.Kind {
	case NDCG:
		return ndcg(top, judged, m.K)
	case MRR:
		for i, d := range top {
			if judged[d] >= 1 {
				return 1 / float64(i+1)
			}
		}
		return 0
	case MAP:
		if numRel == 0 {
			return 0
		}
		hits, sum := 0, 0.0
		for i, d := range top {
			if judged[d] >= 1 {
				hits++
				sum += float64(hits) / float64(i+1)
			}
		}
		return sum / float64(numRel)
	case Recall:
		if numRel == 0 {
			return 0
		}
		return float64(countRel(top, judged)) / float64(numRel)
	case Precision:
		return float64(countRel(top, judged)) / float64(m.K)
	}
	return math.NaN() // Evaluate rejects unknown kinds before getting here
}

func countRel(top []string, judged map[string]int) int {
	n := 0
	for _, d := range top {
		if judged[d] >= 1 {
			n++
		}
	}
	return n
}

func ndcg(top []string, judged map[string]int, k int) float64 {
	dcg := 0.0
	for i, d := range top {
		if g := judged[d]; g > 0 {
			dcg += float64(g) / math.Log2(float64(i+2))
		}
	}
	var gains []int
	for _, l := range judged {
		if l > 0 {
			gains = append(gains, l)
		}
	}
	slices.Sort(gains)
	slices.Reverse(gains)
	if k > 0 && len(gains) > k {
		gains = gains[:k]
	}
	ideal := 0.0
	for i, g := range gains {
		ideal += float64(g) / math.Log2(float64(i+2))
	}
	if ideal == 0 {
		return 0
	}
	return dcg / ideal
}

// PerQuery holds, for each measure name, each evaluated query's value.
type PerQuery map[string]map[string]float64

// Evaluate computes every measure for every query present in both run and
// qrels. It is an error when no query is.
func Evaluate(run trec.Run, qrels dataset.Qrels, ms ...Measure) (PerQuery, error) {
	if len(ms) == 0 {
		return nil, fmt.Errorf("no measure to evaluate")
	}
	out := PerQuery{}
	for _, m := range ms {
		if _, err := Parse(m.String()); err != nil {
			return nil, err
		}
		out[m.String()] = map[string]float64{}
	}
	n := 0
	for qid, scores := range run {
		judged, ok := qrels[qid]
		if !ok {
			continue
		}
		n++
		ranked := trec.Ranked(scores)
		for _, m := range ms {
			out[m.String()][qid] = m.Query(ranked, judged)
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("no query of the run (%d) has judgements (%d judged queries)", len(run), len(qrels))
	}
	return out, nil
}

// Mean is the average over the evaluated queries of one measure, as
// trec_eval's "all" line (0 for no queries).
func Mean(values map[string]float64) float64 {
	if len(values) == 0 {
		return 0
	}
	// Sum in query order so the result does not depend on map iteration.
	qids := make([]string, 0, len(values))
	for q := range values {
		qids = append(qids, q)
	}
	slices.Sort(qids)
	sum := 0.0
	for _, q := range qids {
		sum += values[q]
	}
	return sum / float64(len(values))
}
