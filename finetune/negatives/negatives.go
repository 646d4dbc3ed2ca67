// Package negatives adds label-0 pairs to a training set: hard negatives
// mined from the BM25 index (highly ranked documents nobody labelled for the
// query, the ones a reranker must learn to push down) mixed with random
// documents from the corpus (easy ones that keep scores calibrated).
package negatives

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"

	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/evalharness/runner"
	"github.com/rerankloop/rerank/finetune/pairs"
)

// Options says how many negatives each query gets.
type Options struct {
	// Hard negatives per query, drawn from the Depth best BM25 results not
	// labelled for the query. Depth equal to Hard takes exactly those; a deeper pool trades difficulty for fewer unjudged
	// relevant documents among the negatives.
	Hard, Depth int
	// Random negatives per query, drawn from the corpus.
	Random int
	Seed   uint64
}

// Report counts what Mine added.
type Report struct {
	Queries int `json:"queries"`
	Hard    int `json:"hard"`
	Random  int `json:"random"`
	// ShortQueries got fewer hard negatives than asked: BM25 matched too
	// few unlabelled documents.
	ShortQueries int    `json:"short_queries"`
	Depth        int    `json:"depth"`
	Seed         uint64 `json:"seed"`
}

func (r *Report) Text() string {
	return fmt.Sprintf("negatives: %d hard (from BM25's top %d) and %d random for %d queries, seed %d; %d queries had fewer unlabelled BM25 results than asked\n",
		r.Hard, r.Depth, r.Random, r.Queries, r.Seed, r.ShortQueries)
}

// Mine returns label-0 pairs for every query of labeled. Documents labelled
// for a query (any label) are never its negatives, and no document is picked
// twice for one query. Each query draws from its own random stream, derived
// from the seed and the normalised query, so the result does not depend on
// the order of labeled. idx may be nil when opt.Hard is 0, corpus empty when
// opt.Random is 0.
func Mine(ctx context.Context, labeled []pairs.Pair, idx runner.FirstStage, corpus []dataset.Doc, opt Options) ([]pairs.Pair, *Report, error) {
	if opt.Hard < 0 || opt.Random < 0 || opt.Depth < 0 {
		return nil, nil, fmt.Errorf("negatives: counts must not be negative (hard %d, depth %d, random %d)", opt.Hard, opt.Depth, opt.Random)
	}
	if opt.Depth == 0 {
		opt.Depth = max(30, opt.Hard)
	}
	if opt.Depth < opt.Hard {
		return nil, nil, fmt.Errorf("negatives: depth %d is less than the %d hard negatives asked", opt.Depth, opt.Hard)
	}
	if opt.Hard > 0 && idx == nil {
		return nil, nil, errors.New("negatives: hard negatives need a BM25 index")
	}
	if opt.Random > 0 && len(corpus) == 0 {
		return nil, nil, errors.New("negatives: random negatives need a corpus")
	}

	type query struct {
		first   pairs.Pair
		labeled docSet
	}
	var order []string
	queries := map[string]*query{}
	for _, p := range labeled {
		nq := pairs.NormalizeQuery(p.Query)
		q := queries[nq]
		if q == nil {
			q = &query{first: p, labeled: newDocSet()}
			queries[nq] = q
			order = append(order, nq)
		}
		q.labeled.add(p.DocID, p.Text)
	}

	rep := &Report{Queries: len(order), Depth: opt.Depth, Seed: opt.Seed}
	var out []pairs.Pair
	for _, nq := range order {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		q := queries[nq]
		h := fnv.New64a()
		h.Write([]byte(nq))
		rng := rand.New(rand.NewPCG(opt.Seed, h.Sum64()))
		taken := newDocSet()
		usable := func(id, text string) bool {
			return strings.TrimSpace(text) != "" && !q.labeled.has(id, text) && !taken.has(id, text)
		}
		neg := func(id, text string) pairs.Pair {
			taken.add(id, text)
			return pairs.Pair{QueryID: q.first.QueryID, Query: q.first.Query, DocID: id, Text: text, Label: 0, Weight: 1}
		}

		if opt.Hard > 0 {
			hits, err := idx.Search(ctx, q.first.Query, opt.Depth+len(q.labeled.ids))
			if err != nil {
				return nil, nil, fmt.Errorf("negatives for query %s %q: %w", q.first.QueryID, q.first.Query, err)
			}
			type cand struct{ id, text string }
			var pool []cand
			inPool := newDocSet()
			for _, h := range hits {
				if len(pool) < opt.Depth && usable(h.ID, h.Text) && !inPool.has(h.ID, h.Text) {
					inPool.add(h.ID, h.Text)
					pool = append(pool, cand{h.ID, h.Text})
				}
			}
			if len(pool) < opt.Hard {
				rep.ShortQueries++
			}
			// A partial Fisher-Yates shuffle draws min(Hard, len(pool)) of them.
			for i := 0; i < opt.Hard && i < len(pool); i++ {
				j := i + rng.IntN(len(pool)-i)
				pool[i], pool[j] = pool[j], pool[i]
				out = append(out, neg(pool[i].id, pool[i].text))
				rep.Hard++
			}
		}

		// Rejection sampling: the corpus is far larger than what a query excludes;
		// the attempt bound only matters for a tiny corpus.
		for added, tries := 0, 0; added < opt.Random && tries < 20*opt.Random+100; tries++ {
			d := corpus[rng.IntN(len(corpus))]
			if text := dataset.DocText(d.Title, d.Text); usable(d.ID, text) {
				out = append(out, neg(d.ID, text))
				added++
				rep.Random++
			}
		}
	}
	return out, rep, nil
}

// docSet holds documents by id and by text: corpora hold duplicates under
// different ids, and a duplicate of a labelled document is no negative.
type docSet struct{ ids, texts map[string]bool }

func newDocSet() docSet { return docSet{map[string]bool{}, map[string]bool{}} }

func (s docSet) add(id, text string) { s.ids[id], s.texts[strings.TrimSpace(text)] = true, true }

func (s docSet) has(id, text string) bool { return s.ids[id] || s.texts[strings.TrimSpace(text)] }
