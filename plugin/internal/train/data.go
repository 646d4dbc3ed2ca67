package train

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/plugin/contract"
	"github.com/rerankloop/rerank/plugin/internal/tokenize"
)

// example is one encoded training pair.
type example struct {
	enc    tokenize.Pair // the pair; for a bi-encoder, the document alone
	query  tokenize.Pair // a bi-encoder's query alone
	target float32       // label / LabelMax, the BCE target
	label  float64
	weight float32
	group  int // the query, for the listwise loss
}

// step is one batch: units of example indexes. The listwise loss takes a
// softmax over each unit (one query's pairs); BCE sees one unit.
type step [][]int

func (s step) size() int {
	n := 0
	for _, u := range s {
		n += len(u)
	}
	return n
}

// encodePair truncates a pair to maxLen tokens; with window it keeps the
// first window instead (the query cut to half the budget, the document
// filling the rest), as windowed scoring's first window.
func encodePair(tok *tokenize.Encoder, query, doc string, maxLen int, window bool) (tokenize.Pair, error) {
	if !window {
		return tok.EncodePair(query, doc, maxLen)
	}
	ws, err := tok.EncodePairWindows(query, doc, maxLen, 0)
	if err != nil {
		return tokenize.Pair{}, err
	}
	return ws[0], nil
}

// parallel runs fn(i) for i in [0, n) on every CPU; the first error wins.
func parallel(n int, fn func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// encodeTrain tokenizes the training pairs; with textLen > 0 (a
// bi-encoder) query and document apart, each cut to textLen tokens. Pairs
// that cannot be encoded (a query without any token) are skipped and
// reported.
func encodeTrain(tok *tokenize.Encoder, req contract.FinetuneRequest, c contract.TrainConfig, textLen int) ([]example, []string, error) {
	for i, p := range req.Train {
		if p.Doc < 0 || p.Doc >= len(req.Docs) {
			return nil, nil, fmt.Errorf("%w: training pair %d names document %d of %d", contract.ErrInvalidRequest, i, p.Doc, len(req.Docs))
		}
		if !(p.Weight >= 0) || math.IsInf(p.Weight, 0) {
			return nil, nil, fmt.Errorf("%w: training pair %d has weight %g", contract.ErrInvalidRequest, i, p.Weight)
		}
	}
	encs := make([]tokenize.Pair, len(req.Train))
	queries := make([]tokenize.Pair, len(req.Train))
	errs := make([]error, len(req.Train))
	parallel(len(req.Train), func(i int) error {
		p := req.Train[i]
		if textLen > 0 {
			queries[i], errs[i] = encodeQueryText(tok, p.Query, textLen)
			if errs[i] == nil {
				encs[i], errs[i] = tok.EncodeText(req.Docs[p.Doc].Text, textLen)
			}
			return nil
		}
		encs[i], errs[i] = encodePair(tok, p.Query, req.Docs[p.Doc].Text, c.MaxLength, c.Window)
		return nil
	})
	groups := map[string]int{}
	var out []example
	var skipped []string
	for i, p := range req.Train {
		if errs[i] != nil {
			skipped = append(skipped, fmt.Sprintf("pair %d (query %q): %v", i, p.QueryID, errs[i]))
			continue
		}
		g := groupOf(groups, p)
		w := p.Weight
		if w == 0 {
			w = 1
		}
		out = append(out, example{enc: encs[i], query: queries[i], target: float32(p.Label / c.LabelMax), label: p.Label, weight: float32(w), group: g})
	}
	var warn []string
	if len(skipped) > 0 {
		warn = append(warn, fmt.Sprintf("%d training pairs could not be encoded and were skipped: %s", len(skipped), strings.Join(skipped[:min(3, len(skipped))], "; ")))
	}
	if len(out) == 0 {
		return nil, warn, fmt.Errorf("%w: no training pair could be encoded", contract.ErrInvalidRequest)
	}
	return out, warn, nil
}

// plan fixes every epoch's batches from the seed, so a resumed run sees the
// same order. BCE shuffles the pairs; the listwise loss shuffles each
// query's pairs, cuts them into units of at most a batch, drops units
// without a positive label (they carry no listwise signal) and packs
// shuffled units into batches.
func plan(ex []example, c contract.TrainConfig) [][]step {
	if c.Loss == contract.LossContrastive {
		return planContrastive(ex, c)
	}
	epochs := make([][]step, c.Epochs)
	var byGroup [][]int
	if c.Loss == contract.LossListwise {
		for i, e := range ex {
			for len(byGroup) <= e.group {
				byGroup = append(byGroup, nil)
			}
			byGroup[e.group] = append(byGroup[e.group], i)
		}
	}
	for e := range epochs {
		rng := rand.New(rand.NewPCG(c.Seed, uint64(e)+1))
		if c.Loss != contract.LossListwise {
			perm := rng.Perm(len(ex))
			for s := 0; s < len(perm); s += c.BatchSize {
				epochs[e] = append(epochs[e], step{perm[s:min(s+c.BatchSize, len(perm))]})
			}
			continue
		}
		var units [][]int
		for _, g := range byGroup {
			g = append([]int(nil), g...)
			rng.Shuffle(len(g), func(i, j int) { g[i], g[j] = g[j], g[i] })
			for s := 0; s < len(g); s += c.BatchSize {
				u := g[s:min(s+c.BatchSize, len(g))]
				for _, i := range u {
					if ex[i].target > 0 {
						units = append(units, u)
						break
					}
				}
			}
		}
		rng.Shuffle(len(units), func(i, j int) { units[i], units[j] = units[j], units[i] })
		var cur step
		for _, u := range units {
			if cur.size()+len(u) > c.BatchSize {
				epochs[e] = append(epochs[e], cur)
				cur = nil
			}
			cur = append(cur, u)
		}
		if len(cur) > 0 {
			epochs[e] = append(epochs[e], cur)
		}
	}
	return epochs
}

// valPair is one (validation query, candidate) input; a windowed document
// has several.
type valPair struct {
	enc   tokenize.Pair
	query int
	doc   string
}

// valSet is the encoded validation data.
type valSet struct {
	queries []contract.ValQuery
	docIDs  []string // of FinetuneRequest.Docs
	pairs   []valPair
	order   []int // pairs longest first: batches pad little
	qrels   dataset.Qrels
	// A bi-encoder's texts: each query, and each candidate document (by
	// index into FinetuneRequest.Docs; docOrder lists the candidates).
	queryTexts, docTexts []tokenize.Pair
	docOrder             []int
}

// newValSet checks the validation queries and their judgments.
func newValSet(req contract.FinetuneRequest) (*valSet, error) {
	v := &valSet{queries: req.Validation, qrels: dataset.Qrels{}, docIDs: make([]string, len(req.Docs))}
	for i, d := range req.Docs {
		v.docIDs[i] = d.ID
	}
	for qi, q := range req.Validation {
		if q.QueryID == "" {
			return nil, fmt.Errorf("%w: validation query %d has no id", contract.ErrInvalidRequest, qi)
		}
		if _, dup := v.qrels[q.QueryID]; dup {
			return nil, fmt.Errorf("%w: validation query %q appears twice", contract.ErrInvalidRequest, q.QueryID)
		}
		v.qrels[q.QueryID] = q.Judged
		for _, d := range q.Candidates {
			if d < 0 || d >= len(req.Docs) {
				return nil, fmt.Errorf("%w: validation query %q names document %d of %d", contract.ErrInvalidRequest, q.QueryID, d, len(req.Docs))
			}
		}
	}
	return v, nil
}

func encodeVal(tok *tokenize.Encoder, req contract.FinetuneRequest, c contract.TrainConfig) (*valSet, error) {
	v, err := newValSet(req)
	if err != nil {
		return nil, err
	}
	type job struct {
		query int
		doc   int
	}
	var jobs []job
	for qi, q := range req.Validation {
		seen := map[int]bool{}
		for _, d := range q.Candidates {
			if !seen[d] {
				seen[d] = true
				jobs = append(jobs, job{qi, d})
			}
		}
	}
	encs := make([][]tokenize.Pair, len(jobs))
	err = parallel(len(jobs), func(i int) (err error) {
		j := jobs[i]
		q, d := req.Validation[j.query], req.Docs[j.doc]
		if c.Window {
			encs[i], err = tok.EncodePairWindows(q.Query, d.Text, c.MaxLength, min(evalStride, c.MaxLength/4))
		} else {
			var p tokenize.Pair
			p, err = tok.EncodePair(q.Query, d.Text, c.MaxLength)
			encs[i] = []tokenize.Pair{p}
		}
		if err != nil {
			return fmt.Errorf("%w: validation query %q, document %q: %v", contract.ErrInvalidRequest, q.QueryID, d.ID, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, j := range jobs {
		for _, p := range encs[i] {
			v.pairs = append(v.pairs, valPair{enc: p, query: j.query, doc: req.Docs[j.doc].ID})
		}
	}
	v.order = make([]int, len(v.pairs))
	for i := range v.order {
		v.order[i] = i
	}
	sortByLength(v.order, func(i int) int { return len(v.pairs[i].enc.IDs) })
	return v, nil
}

// sortByLength orders indexes longest first (stable), so batches pad little.
func sortByLength(idx []int, length func(i int) int) {
	sort.SliceStable(idx, func(a, b int) bool { return length(idx[a]) > length(idx[b]) })
}

// fingerprint identifies the training and validation data, so a resumed
// run can refuse data that changed.
func fingerprint(req contract.FinetuneRequest) string {
	h := sha256.New()
	str := func(s string) {
		binary.Write(h, binary.LittleEndian, int64(len(s)))
		h.Write([]byte(s))
	}
	num := func(f float64) { binary.Write(h, binary.LittleEndian, f) }
	for _, p := range req.Train {
		str(p.QueryID)
		str(p.Query)
		str(req.Docs[p.Doc].ID)
		str(req.Docs[p.Doc].Text)
		num(p.Label)
		num(p.Weight)
	}
	for _, q := range req.Validation {
		str(q.QueryID)
		str(q.Query)
		for _, d := range q.Candidates {
			str(req.Docs[d].ID)
			str(req.Docs[d].Text)
		}
		ids := make([]string, 0, len(q.Judged))
		for id := range q.Judged {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			str(id)
			num(float64(q.Judged[id]))
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// groupOf numbers the training queries in order of first appearance, by id
// (by text where a pair has none).
func groupOf(groups map[string]int, p contract.TrainPair) int {
	key := p.QueryID
	if key == "" {
		key = p.Query
	}
	g, ok := groups[key]
	if !ok {
		g = len(groups)
		groups[key] = g
	}
	return g
}
