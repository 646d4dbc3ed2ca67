package negatives

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/evalharness/runner"
	"github.com/rerankloop/rerank/finetune/pairs"
	"github.com/rerankloop/rerank/host/search"
)

// corpus has 30 documents about vitamins, 30 about heart disease and one
// about tides: enough for BM25 to rank real candidates.
func corpus() []dataset.Doc {
	var docs []dataset.Doc
	for i := range 30 {
		docs = append(docs,
			dataset.Doc{ID: fmt.Sprint("vit", i), Title: fmt.Sprintf("Vitamin study %d", i), Text: fmt.Sprintf("Vitamin D supplements and bone density in cohort %d.", i)},
			dataset.Doc{ID: fmt.Sprint("heart", i), Title: fmt.Sprintf("Cardiology trial %d", i), Text: fmt.Sprintf("Aspirin and heart attack risk in trial arm %d.", i)})
	}
	return append(docs, dataset.Doc{ID: "tide", Title: "Tides", Text: "The moon drives ocean tides."})
}

// openIndex builds a real BM25 index of docs, the first stage hard negatives
// come from in production.
func openIndex(t *testing.T, docs []dataset.Doc) search.Stage {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "index")
	read := func(fn func(search.Doc) error) error {
		for _, d := range docs {
			if err := fn(d); err != nil {
				return err
			}
		}
		return nil
	}
	if err := search.Build(context.Background(), dir, read, search.Options{}, nil); err != nil {
		t.Fatal(err)
	}
	idx, err := search.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	return search.Stage{Index: idx}
}

func labeled() []pairs.Pair {
	return []pairs.Pair{
		{QueryID: "1", Query: "vitamin d bone density", DocID: "vit3", Text: "x", Label: 1},
		{QueryID: "1", Query: "vitamin d bone density", DocID: "vit7", Text: "x", Label: 0},
		{QueryID: "2", Query: "aspirin heart attack", DocID: "heart1", Text: "x", Label: 1},
		{QueryID: "3", Query: "ocean tides moon", DocID: "tide", Text: "x", Label: 1},
	}
}

func TestHardNegativesAreTopUnlabelledBM25Results(t *testing.T) {
	ctx := context.Background()
	idx := openIndex(t, corpus())
	got, rep, err := Mine(ctx, labeled(), idx, nil, Options{Hard: 5, Depth: 5})
	if err != nil {
		t.Fatal(err)
	}
	byQuery := map[string][]string{}
	for _, p := range got {
		if p.Label != 0 || p.Weight != 1 || p.Text == "" {
			t.Errorf("negative %+v: want label 0, weight 1, text", p)
		}
		byQuery[p.QueryID] = append(byQuery[p.QueryID], p.DocID)
	}
	// Depth equal to Hard: exactly the top unlabelled results, in some order.
	hits, err := idx.Search(ctx, "vitamin d bone density", 7)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, h := range hits {
		if h.ID != "vit3" && h.ID != "vit7" && len(want) < 5 {
			want = append(want, h.ID)
		}
	}
	gotIDs := slices.Clone(byQuery["1"])
	slices.Sort(gotIDs)
	slices.Sort(want)
	if !reflect.DeepEqual(gotIDs, want) {
		t.Errorf("query 1 negatives %v, want the top five unlabelled %v", gotIDs, want)
	}
	if n := len(byQuery["2"]); n != 5 {
		t.Errorf("query 2 got %d hard negatives, want 5", n)
	}
	// Only one document mentions tides, and it is labelled.
	if n := len(byQuery["3"]); n != 0 || rep.ShortQueries < 1 {
		t.Errorf("tides query got %d negatives, short queries %d", n, rep.ShortQueries)
	}
}

func TestNegativesNeverLabelledNorRepeated(t *testing.T) {
	docs := corpus()
	got, rep, err := Mine(context.Background(), labeled(), openIndex(t, docs), docs, Options{Hard: 4, Depth: 20, Random: 10, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Random != 30 || rep.Hard != 8 || rep.Queries != 3 {
		t.Errorf("report %+v, want 30 random, 8 hard, 3 queries", rep)
	}
	lab := map[[2]string]bool{}
	for _, p := range labeled() {
		lab[[2]string{p.QueryID, p.DocID}] = true
	}
	seen := map[[2]string]bool{}
	for _, p := range got {
		k := [2]string{p.QueryID, p.DocID}
		if lab[k] || seen[k] {
			t.Errorf("negative %v is labelled or repeated", k)
		}
		seen[k] = true
	}
}

func TestNegativesReproducibleBySeed(t *testing.T) {
	docs := corpus()
	idx := openIndex(t, docs)
	opt := Options{Hard: 3, Depth: 15, Random: 3, Seed: 11}
	a, _, err := Mine(context.Background(), labeled(), idx, docs, opt)
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := Mine(context.Background(), labeled(), idx, docs, opt)
	if !reflect.DeepEqual(a, b) {
		t.Error("same seed, different negatives")
	}
	rev := slices.Clone(labeled())
	slices.Reverse(rev)
	c, _, _ := Mine(context.Background(), rev, idx, docs, opt)
	if !reflect.DeepEqual(set(a), set(c)) {
		t.Error("reordered input, different negatives")
	}
	opt.Seed = 12
	d, _, _ := Mine(context.Background(), labeled(), idx, docs, opt)
	if reflect.DeepEqual(set(a), set(d)) {
		t.Error("seeds 11 and 12 gave the same negatives")
	}
}

func set(ps []pairs.Pair) map[[2]string]bool {
	m := map[[2]string]bool{}
	for _, p := range ps {
		m[[2]string{p.QueryID, p.DocID}] = true
	}
	return m
}

func TestMineBadOptions(t *testing.T) {
	ctx := context.Background()
	for name, c := range map[string]struct {
		idx    runner.FirstStage
		corpus []dataset.Doc
		opt    Options
	}{
		"hard without index":    {nil, corpus(), Options{Hard: 1}},
		"random without corpus": {nil, nil, Options{Random: 1}},
		"negative count":        {nil, corpus(), Options{Random: -1}},
		"shallow depth":         {nil, corpus(), Options{Hard: 5, Depth: 2}},
	} {
		if _, _, err := Mine(ctx, labeled(), c.idx, c.corpus, c.opt); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDuplicateOfLabelledDocumentIsNoNegative(t *testing.T) {
	docs := corpus()
	dup := docs[6] // vit3
	dup.ID = "vit3-copy"
	docs = append(docs, dup)
	lab := []pairs.Pair{{QueryID: "1", Query: "vitamin d bone density", DocID: "vit3", Text: dataset.DocText(docs[6].Title, docs[6].Text), Label: 1}}
	got, _, err := Mine(context.Background(), lab, openIndex(t, docs), docs, Options{Hard: 30, Depth: 40, Random: 40, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range got {
		if p.DocID == "vit3-copy" || p.DocID == "vit3" {
			t.Errorf("%s (same text as the labelled vit3) picked as a negative", p.DocID)
		}
	}
}
