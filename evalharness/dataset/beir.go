package dataset

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Doc is one corpus document.
type Doc struct {
	ID, Title, Text string
}

// ReadCorpus streams a JSONL corpus to fn, one document per line: BEIR's
// corpus.jsonl (`_id`, `title`, `text`) or any JSONL with `id` or `_id` and
// `text` (or `contents`). Unknown fields are ignored. fn's error stops the read
// and is returned as is.
func ReadCorpus(path string, fn func(Doc) error) error {
	return withFile(path, func(r io.Reader) error { return readCorpus(r, path, fn) })
}

func readCorpus(r io.Reader, name string, fn func(Doc) error) error {
	return eachLine(r, name, func(line []byte, n int) error {
		d, err := parseDoc(line)
		if err != nil {
			return &LineError{File: name, Line: n, Err: err}
		}
		return fn(d)
	})
}

func parseDoc(line []byte) (Doc, error) {
	obj, err := jsonObject(line)
	if err != nil {
		return Doc{}, err
	}
	var d Doc
	if d.ID, err = idField(obj); err != nil {
		return Doc{}, err
	}
	title, _, err := jsonString(obj, "title")
	if err != nil {
		return Doc{}, fmt.Errorf("field \"title\": %v", err)
	}
	text, hasText, err := jsonString(obj, "text")
	if err != nil {
		return Doc{}, fmt.Errorf("field \"text\": %v", err)
	}
	if !hasText {
		if text, hasText, err = jsonString(obj, "contents"); err != nil {
			return Doc{}, fmt.Errorf("field \"contents\": %v", err)
		}
	}
	if !hasText && title == "" {
		return Doc{}, errors.New(`document has neither "text" nor "title"`)
	}
	d.Title, d.Text = title, text
	return d, nil
}

// idField reads `_id` (BEIR) or `id`; one of them must hold a non-empty value.
func idField(obj map[string]json.RawMessage) (string, error) {
	for _, key := range []string{"_id", "id"} {
		id, ok, err := jsonID(obj, key)
		if err != nil {
			return "", fmt.Errorf("field %q: %v", key, err)
		}
		if ok {
			if strings.TrimSpace(id) == "" {
				return "", fmt.Errorf("field %q is empty", key)
			}
			return id, nil
		}
	}
	return "", errors.New(`missing "_id" (or "id")`)
}

// Query is one search query.
type Query struct {
	ID, Text string
}

// ReadQueries reads a JSONL file of queries (`_id` or `id`, `text` or `query`).
// A repeated ID is an error.
func ReadQueries(path string) ([]Query, error) {
	var qs []Query
	err := withFile(path, func(r io.Reader) (err error) {
		qs, err = readQueries(r, path)
		return err
	})
	return qs, err
}

func readQueries(r io.Reader, name string) ([]Query, error) {
	var qs []Query
	seen := map[string]int{}
	err := eachLine(r, name, func(line []byte, n int) error {
		fail := func(err error) error { return &LineError{File: name, Line: n, Err: err} }
		obj, err := jsonObject(line)
		if err != nil {
			return fail(err)
		}
		id, err := idField(obj)
		if err != nil {
			return fail(err)
		}
		text, ok, err := jsonString(obj, "text")
		if err == nil && !ok {
			text, ok, err = jsonString(obj, "query")
		}
		if err != nil {
			return fail(fmt.Errorf("query text: %v", err))
		}
		if !ok || strings.TrimSpace(text) == "" {
			return fail(fmt.Errorf("query %q has no text", id))
		}
		if first, dup := seen[id]; dup {
			return fail(fmt.Errorf("query id %q repeats line %d", id, first))
		}
		seen[id] = n
		qs = append(qs, Query{ID: id, Text: text})
		return nil
	})
	return qs, err
}

// Qrels holds relevance judgements: query ID -> document ID -> label.
type Qrels map[string]map[string]int

// ReadQrels reads BEIR's TSV qrels (header `query-id corpus-id score`, tab
// separated) or TREC qrels (`qid iteration docid rel`, whitespace separated).
// A pair judged twice with different labels is an error.
func ReadQrels(path string) (Qrels, error) {
	var q Qrels
	err := withFile(path, func(r io.Reader) (err error) {
		q, err = readQrels(r, path)
		return err
	})
	return q, err
}

func readQrels(r io.Reader, name string) (Qrels, error) {
	q := Qrels{}
	first := true
	err := eachLine(r, name, func(line []byte, n int) error {
		fields := strings.Fields(string(line))
		isFirst := first
		first = false
		var qid, did, rel string
		switch len(fields) {
		case 3:
			qid, did, rel = fields[0], fields[1], fields[2]
		case 4:
			qid, did, rel = fields[0], fields[2], fields[3]
		default:
			return &LineError{File: name, Line: n, Err: fmt.Errorf("want 3 fields (query-id corpus-id score) or 4 (qid iter docid rel), got %d", len(fields))}
		}
		label, err := parseLabel(rel)
		if err != nil {
			if isFirst && len(fields) == 3 {
				return nil // header line
			}
			col := "score"
			if len(fields) == 4 {
				col = "rel"
			}
			return &LineError{File: name, Line: n, Column: col, Err: err}
		}
		docs := q[qid]
		if docs == nil {
			docs = map[string]int{}
			q[qid] = docs
		}
		if old, dup := docs[did]; dup && old != label {
			return &LineError{File: name, Line: n, Err: fmt.Errorf("query %q document %q judged %d earlier and %d here", qid, did, old, label)}
		}
		docs[did] = label
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(q) == 0 {
		return nil, fmt.Errorf("%s: no judgements", name)
	}
	return q, nil
}

// BEIR is a dataset folder in BEIR's layout: corpus.jsonl, queries.jsonl and
// qrels/<split>.tsv.
type BEIR struct {
	Dir string
}

// OpenBEIR checks that dir holds a BEIR dataset.
func OpenBEIR(dir string) (*BEIR, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("BEIR dataset: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("BEIR dataset: %s is not a folder", dir)
	}
	b := &BEIR{Dir: dir}
	for _, p := range []string{b.CorpusPath(), b.queriesPath(), filepath.Join(dir, "qrels")} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("BEIR dataset %s: missing %s (want corpus.jsonl, queries.jsonl, qrels/<split>.tsv)", dir, filepath.Base(p))
		}
	}
	splits, err := b.Splits()
	if err != nil {
		return nil, err
	}
	if len(splits) == 0 {
		return nil, fmt.Errorf("BEIR dataset %s: qrels/ holds no <split>.tsv", dir)
	}
	return b, nil
}

// CorpusPath is the corpus.jsonl to pass to ReadCorpus.
func (b *BEIR) CorpusPath() string { return filepath.Join(b.Dir, "corpus.jsonl") }

func (b *BEIR) queriesPath() string { return filepath.Join(b.Dir, "queries.jsonl") }

// Splits lists the qrels splits present (e.g. "dev", "test", "train").
func (b *BEIR) Splits() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(b.Dir, "qrels"))
	if err != nil {
		return nil, fmt.Errorf("BEIR dataset %s: %w", b.Dir, err)
	}
	var out []string
	for _, e := range ents {
		if name, ok := strings.CutSuffix(e.Name(), ".tsv"); ok && !e.IsDir() {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Queries reads every query of the dataset (all splits).
func (b *BEIR) Queries() ([]Query, error) { return ReadQueries(b.queriesPath()) }

// Qrels reads the judgements of one split.
func (b *BEIR) Qrels(split string) (Qrels, error) {
	p := filepath.Join(b.Dir, "qrels", split+".tsv")
	if _, err := os.Stat(p); err != nil {
		splits, _ := b.Splits()
		return nil, fmt.Errorf("BEIR dataset %s has no split %q (have: %s)", b.Dir, split, strings.Join(splits, ", "))
	}
	return ReadQrels(p)
}

// SplitQueries returns the queries judged in split, in queries.jsonl order.
// A judged query missing from queries.jsonl is an error.
func (b *BEIR) SplitQueries(split string) ([]Query, Qrels, error) {
	qrels, err := b.Qrels(split)
	if err != nil {
		return nil, nil, err
	}
	all, err := b.Queries()
	if err != nil {
		return nil, nil, err
	}
	var qs []Query
	found := map[string]bool{}
	for _, q := range all {
		if _, ok := qrels[q.ID]; ok {
			qs = append(qs, q)
			found[q.ID] = true
		}
	}
	for id := range qrels {
		if !found[id] {
			return nil, nil, fmt.Errorf("BEIR dataset %s: split %q judges query %q, absent from queries.jsonl", b.Dir, split, id)
		}
	}
	return qs, qrels, nil
}
