// Package trec holds retrieval runs as trec_eval sees them: per query, a
// score per document, ranked by score descending and, on equal scores, by
// document ID descending (trec_eval's order, which pytrec_eval inherits),
// and the TREC run file format `qid Q0 docid rank score tag`.
package trec

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Run maps query ID -> document ID -> score. A query present with no
// documents was searched and found nothing; it still counts in evaluation.
type Run map[string]map[string]float64

// Add records a score, creating the query's entry if needed.
func (r Run) Add(qid, docid string, score float64) {
	m := r[qid]
	if m == nil {
		m = map[string]float64{}
		r[qid] = m
	}
	m[docid] = score
}

// Ranked returns a query's documents in trec_eval order: score descending,
// then document ID descending. The ranks written in a run file are ignored by
// trec_eval, so this order is what every measure sees.
func Ranked(scores map[string]float64) []string {
	ids := make([]string, 0, len(scores))
	for id := range scores {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		if c := cmp.Compare(scores[b], scores[a]); c != 0 {
			return c
		}
		return strings.Compare(b, a)
	})
	return ids
}

// Write writes r as a TREC run file, queries in ID order, documents in
// trec_eval order with ranks from 1. Queries without documents are omitted
// (the format cannot express them).
func Write(w io.Writer, r Run, tag string) error {
	if tag == "" || strings.ContainsAny(tag, " \t\r\n") {
		return fmt.Errorf("run tag %q must be one non-empty word", tag)
	}
	bw := bufio.NewWriter(w)
	qids := make([]string, 0, len(r))
	for q := range r {
		qids = append(qids, q)
	}
	slices.Sort(qids)
	for _, q := range qids {
		if err := checkWord("query ID", q); err != nil {
			return err
		}
		for i, d := range Ranked(r[q]) {
			if err := checkWord("document ID", d); err != nil {
				return err
			}
			s := r[q][d]
			if math.IsNaN(s) || math.IsInf(s, 0) {
				return fmt.Errorf("query %q document %q: score %v cannot be written", q, d, s)
			}
			fmt.Fprintf(bw, "%s Q0 %s %d %s %s\n", q, d, i+1, strconv.FormatFloat(s, 'g', -1, 64), tag)
		}
	}
	return bw.Flush()
}

func checkWord(what, s string) error {
	if s == "" || strings.ContainsAny(s, " \t\r\n") {
		return fmt.Errorf("%s %q cannot be written to a run file (empty or holds white space)", what, s)
	}
	return nil
}

// WriteFile writes r to path.
func WriteFile(path string, r Run, tag string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := Write(f, r, tag); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

// Read reads a TREC run file (`qid Q0 docid rank score tag`, white-space
// separated). As in trec_eval the rank column is not used for ordering; a
// document listed twice for a query is an error.
func Read(r io.Reader, name string) (Run, error) {
	run := Run{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 6 {
			return nil, fmt.Errorf("%s:%d: want 6 fields (qid Q0 docid rank score tag), got %d", name, n, len(f))
		}
		if _, err := strconv.Atoi(f[3]); err != nil {
			return nil, fmt.Errorf("%s:%d: rank %q is not an integer", name, n, f[3])
		}
		score, err := strconv.ParseFloat(f[4], 64)
		if err != nil || math.IsNaN(score) {
			return nil, fmt.Errorf("%s:%d: score %q is not a number", name, n, f[4])
		}
		if _, dup := run[f[0]][f[2]]; dup {
			return nil, fmt.Errorf("%s:%d: query %q lists document %q twice", name, n, f[0], f[2])
		}
		run.Add(f[0], f[2], score)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return run, nil
}

// ReadFile reads a TREC run file from path.
func ReadFile(path string) (Run, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Read(f, path)
}
