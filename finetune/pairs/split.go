package pairs

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
)

// DefaultValFraction is the share of queries held out for validation.
const DefaultValFraction = 0.2

// SplitReport describes a train/validation split.
type SplitReport struct {
	Seed         uint64  `json:"seed"`
	ValFraction  float64 `json:"val_fraction"` // 0 when the validation set was given
	TrainQueries int     `json:"train_queries"`
	ValQueries   int     `json:"val_queries"`
	TrainPairs   int     `json:"train_pairs"`
	ValPairs     int     `json:"val_pairs"`
	// ValQueriesWithPositive counts validation queries that have a pair
	// labelled above 0: only those can move NDCG or MRR.
	ValQueriesWithPositive int     `json:"val_queries_with_positive"`
	Leakage                Leakage `json:"leakage"`
}

// Leakage is the result of checking that no query is on both sides.
type Leakage struct {
	OK           bool `json:"ok"`
	TrainQueries int  `json:"train_queries"` // distinct normalised queries
	ValQueries   int  `json:"val_queries"`
	// Shared lists normalised queries found on both sides (at most 20).
	Shared      []string `json:"shared,omitempty"`
	SharedCount int      `json:"shared_count"`
	// SharedPairs counts (query, document text) pairs present on both sides.
	SharedPairs int `json:"shared_pairs"`
}

func (l Leakage) String() string {
	if l.OK {
		return fmt.Sprintf("leakage check passed: none of the %d validation queries appears (after normalisation) among the %d training queries", l.ValQueries, l.TrainQueries)
	}
	return fmt.Sprintf("leakage check FAILED: %d of %d validation queries also in training (%d identical pairs), e.g. %q", l.SharedCount, l.ValQueries, l.SharedPairs, l.Shared)
}

// CheckLeakage compares the two sides from scratch: every pair's query is
// normalised again, whatever ids or splits produced them.
func CheckLeakage(train, val []Pair) Leakage {
	trainQ := map[string]bool{}
	trainPair := map[string]bool{}
	for _, p := range train {
		nq := NormalizeQuery(p.Query)
		trainQ[nq] = true
		trainPair[nq+"\x00"+strings.TrimSpace(p.Text)] = true
	}
	valQ := map[string]bool{}
	var shared []string
	l := Leakage{TrainQueries: len(trainQ)}
	for _, p := range val {
		nq := NormalizeQuery(p.Query)
		if trainPair[nq+"\x00"+strings.TrimSpace(p.Text)] {
			l.SharedPairs++
		}
		if valQ[nq] {
			continue
		}
		valQ[nq] = true
		if trainQ[nq] {
			shared = append(shared, nq)
		}
	}
	sort.Strings(shared)
	l.ValQueries, l.SharedCount = len(valQ), len(shared)
	l.Shared = shared[:min(len(shared), 20)]
	l.OK = l.SharedCount == 0 && l.SharedPairs == 0
	return l
}

// Split holds out frac of the distinct normalised queries (rounded, at least
// one on each side) for validation, chosen by seed: the same pairs and seed
// give the same split whatever their order. Pairs keep their input order on
// each side. The result is re-checked for leakage before it is returned.
func Split(ps []Pair, frac float64, seed uint64) (train, val []Pair, rep *SplitReport, err error) {
	if frac == 0 {
		frac = DefaultValFraction
	}
	if !(frac > 0 && frac < 1) {
		return nil, nil, nil, fmt.Errorf("validation fraction %g: want a number between 0 and 1", frac)
	}
	seen := map[string]bool{}
	var queries []string
	for _, p := range ps {
		if nq := NormalizeQuery(p.Query); !seen[nq] {
			seen[nq] = true
			queries = append(queries, nq)
		}
	}
	if len(queries) < 2 {
		return nil, nil, nil, fmt.Errorf("%d distinct query(ies): a split by query needs at least 2", len(queries))
	}
	sort.Strings(queries) // independent of input order
	rng := rand.New(rand.NewPCG(seed, 0x5eed5011))
	rng.Shuffle(len(queries), func(i, j int) { queries[i], queries[j] = queries[j], queries[i] })
	nVal := int(math.Round(frac * float64(len(queries))))
	nVal = max(1, min(nVal, len(queries)-1))
	inVal := map[string]bool{}
	for _, q := range queries[:nVal] {
		inVal[q] = true
	}
	for _, p := range ps {
		if inVal[NormalizeQuery(p.Query)] {
			val = append(val, p)
		} else {
			train = append(train, p)
		}
	}
	rep = Report(train, val)
	rep.Seed, rep.ValFraction = seed, frac
	if !rep.Leakage.OK {
		return nil, nil, rep, errors.New(rep.Leakage.String())
	}
	return train, val, rep, nil
}

// RemoveLeaks drops from train every pair whose normalised query is also in
// val, for a validation set given from outside; it returns how many queries
// and pairs it removed.
func RemoveLeaks(train, val []Pair) (kept []Pair, queries, pairs int) {
	inVal := map[string]bool{}
	for _, p := range val {
		inVal[NormalizeQuery(p.Query)] = true
	}
	dropped := map[string]bool{}
	for _, p := range train {
		nq := NormalizeQuery(p.Query)
		if inVal[nq] {
			dropped[nq] = true
			pairs++
			continue
		}
		kept = append(kept, p)
	}
	return kept, len(dropped), pairs
}

// Report counts both sides of a split and checks them for leakage.
func Report(train, val []Pair) *SplitReport {
	rep := &SplitReport{TrainPairs: len(train), ValPairs: len(val), Leakage: CheckLeakage(train, val)}
	rep.TrainQueries, rep.ValQueries = rep.Leakage.TrainQueries, rep.Leakage.ValQueries
	pos := map[string]bool{}
	for _, p := range val {
		if p.Label > 0 {
			pos[NormalizeQuery(p.Query)] = true
		}
	}
	rep.ValQueriesWithPositive = len(pos)
	return rep
}

// Text renders the report for people.
func (r *SplitReport) Text() string {
	var b strings.Builder
	if r.ValFraction > 0 {
		fmt.Fprintf(&b, "split: %.0f/%.0f by query, seed %d\n", 100*(1-r.ValFraction), 100*r.ValFraction, r.Seed)
	} else {
		b.WriteString("split: validation set given\n")
	}
	fmt.Fprintf(&b, "  train: %d pairs, %d queries\n", r.TrainPairs, r.TrainQueries)
	fmt.Fprintf(&b, "  validation: %d pairs, %d queries (%d with a relevant document)\n", r.ValPairs, r.ValQueries, r.ValQueriesWithPositive)
	fmt.Fprintf(&b, "  %s\n", r.Leakage)
	return b.String()
}

// QueryKey identifies p's query: its id, or else its normalised text.
func QueryKey(p Pair) string {
	if p.QueryID != "" {
		return p.QueryID
	}
	return NormalizeQuery(p.Query)
}

// LimitQueries keeps the pairs of at most n queries (0: all), drawn by seed.
func LimitQueries(ps []Pair, n int, seed uint64) []Pair {
	var ids []string
	seen := map[string]bool{}
	for _, p := range ps {
		if id := QueryKey(p); !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if n <= 0 || n >= len(ids) {
		return ps
	}
	keep := map[string]bool{}
	for _, i := range rand.New(rand.NewPCG(seed, 0xe7a1)).Perm(len(ids))[:n] {
		keep[ids[i]] = true
	}
	var out []Pair
	for _, p := range ps {
		if keep[QueryKey(p)] {
			out = append(out, p)
		}
	}
	return out
}
