package dataset

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
)

// Judgment is one row of the flat format: a query, a document's text and its
// relevance label (0-4, or 0/1).
type Judgment struct {
	QueryID, Query, DocID, Text string
	Label                       int
}

// ReadJudgments reads the flat judgments format, JSONL or TSV (chosen by the
// extension .jsonl/.json/.tsv, else by the first byte):
//
//	{"query": "...", "text": "...", "label": 1, "query_id": "q1", "doc_id": "d7"}
//	query<TAB>text<TAB>label[<TAB>query_id][<TAB>doc_id]   (first line is this header, any column order)
//
// query_id and doc_id are optional. Without query_id, rows with the same query
// text form one query, numbered q1, q2, ... in order of first appearance;
// without doc_id a row's document is named after its line (L12). Either every
// row has a query_id or none does. One query_id with two different query texts,
// a negative or fractional label, or a missing column is an error naming the
// file, line and column.
func ReadJudgments(path string) ([]Judgment, error) {
	var js []Judgment
	err := withFile(path, func(r io.Reader) error {
		data, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		js, err = readJudgments(data, path)
		return err
	})
	return js, err
}

// row is a judgment as read, before query IDs are settled.
type row struct {
	j          Judgment
	line       int
	hasQueryID bool
}

func readJudgments(data []byte, name string) ([]Judgment, error) {
	var rows []row
	var err error
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jsonl", ".json", ".ndjson":
		rows, err = judgmentsJSONL(data, name)
	case ".tsv", ".txt":
		rows, err = judgmentsTSV(data, name)
	default:
		if t := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), " \t\r\n"); len(t) > 0 && t[0] == '{' {
			rows, err = judgmentsJSONL(data, name)
		} else {
			rows, err = judgmentsTSV(data, name)
		}
	}
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: no judgments", name)
	}
	return settleIDs(rows, name)
}

func judgmentsJSONL(data []byte, name string) ([]row, error) {
	var rows []row
	err := eachLine(bytes.NewReader(data), name, func(line []byte, n int) error {
		fail := func(col string, err error) error { return &LineError{File: name, Line: n, Column: col, Err: err} }
		obj, err := jsonObject(line)
		if err != nil {
			return fail("", err)
		}
		r := row{line: n}
		for _, f := range []struct {
			key string
			dst *string
		}{{"query", &r.j.Query}, {"text", &r.j.Text}} {
			s, ok, err := jsonString(obj, f.key)
			if err != nil {
				return fail(f.key, err)
			}
			if !ok {
				return fail(f.key, errors.New("missing"))
			}
			*f.dst = s
		}
		for _, f := range []struct {
			key string
			dst *string
			has *bool
		}{{"query_id", &r.j.QueryID, &r.hasQueryID}, {"doc_id", &r.j.DocID, nil}} {
			s, ok, err := jsonID(obj, f.key)
			if err != nil {
				return fail(f.key, err)
			}
			*f.dst = s
			if f.has != nil {
				*f.has = ok
			}
		}
		raw, ok := obj["label"]
		if !ok {
			return fail("label", errors.New("missing"))
		}
		if r.j.Label, err = parseLabel(string(raw)); err != nil {
			return fail("label", err)
		}
		if err := checkRow(&r.j); err != nil {
			return fail(err.col, err.err)
		}
		rows = append(rows, r)
		return nil
	})
	return rows, err
}

func judgmentsTSV(data []byte, name string) ([]row, error) {
	var rows []row
	var header []string
	col := map[string]int{}
	err := eachLine(bytes.NewReader(data), name, func(line []byte, n int) error {
		fields := strings.Split(string(line), "\t")
		if header == nil {
			header = fields
			for i, h := range fields {
				h = strings.ToLower(strings.TrimSpace(h))
				if _, dup := col[h]; dup {
					return &LineError{File: name, Line: n, Column: h, Err: errors.New("header names the column twice")}
				}
				col[h] = i
			}
			for _, need := range []string{"query", "text", "label"} {
				if _, ok := col[need]; !ok {
					return &LineError{File: name, Line: n, Column: need, Err: fmt.Errorf("header lacks the column (want query<TAB>text<TAB>label, optional query_id, doc_id; got %q)", short(line))}
				}
			}
			return nil
		}
		if len(fields) != len(header) {
			return &LineError{File: name, Line: n, Err: fmt.Errorf("%d tab-separated fields, header has %d", len(fields), len(header))}
		}
		r := row{line: n}
		r.j.Query = fields[col["query"]]
		r.j.Text = fields[col["text"]]
		label, err := parseLabel(fields[col["label"]])
		if err != nil {
			return &LineError{File: name, Line: n, Column: "label", Err: err}
		}
		r.j.Label = label
		if i, ok := col["query_id"]; ok {
			r.j.QueryID, r.hasQueryID = strings.TrimSpace(fields[i]), true
		}
		if i, ok := col["doc_id"]; ok {
			r.j.DocID = strings.TrimSpace(fields[i])
		}
		if err := checkRow(&r.j); err != nil {
			return &LineError{File: name, Line: n, Column: err.col, Err: err.err}
		}
		rows = append(rows, r)
		return nil
	})
	if err == nil && header == nil {
		return nil, fmt.Errorf("%s: empty file", name)
	}
	return rows, err
}

type colErr struct {
	col string
	err error
}

func checkRow(j *Judgment) *colErr {
	switch {
	case strings.TrimSpace(j.Query) == "":
		return &colErr{"query", errors.New("empty")}
	case strings.TrimSpace(j.Text) == "":
		return &colErr{"text", errors.New("empty")}
	case j.Label < 0:
		return &colErr{"label", fmt.Errorf("negative label %d", j.Label)}
	}
	return nil
}

// settleIDs fills in missing query and document IDs and checks consistency.
func settleIDs(rows []row, name string) ([]Judgment, error) {
	withID := rows[0].hasQueryID && rows[0].j.QueryID != ""
	queryOf := map[string]string{} // query_id -> query text
	idOf := map[string]string{}    // query text -> generated id
	seenDoc := map[[2]string]int{}
	out := make([]Judgment, len(rows))
	for i, r := range rows {
		j := r.j
		has := r.hasQueryID && j.QueryID != ""
		if has != withID {
			return nil, &LineError{File: name, Line: r.line, Column: "query_id",
				Err: fmt.Errorf("present on some rows and missing on others (line %d %s one)", rows[0].line, map[bool]string{true: "has", false: "lacks"}[withID])}
		}
		if withID {
			if q, ok := queryOf[j.QueryID]; ok && q != j.Query {
				return nil, &LineError{File: name, Line: r.line, Column: "query", Err: fmt.Errorf("query_id %q was %q earlier", j.QueryID, short([]byte(q)))}
			}
			queryOf[j.QueryID] = j.Query
		} else {
			id, ok := idOf[j.Query]
			if !ok {
				id = "q" + strconv.Itoa(len(idOf)+1)
				idOf[j.Query] = id
			}
			j.QueryID = id
		}
		if j.DocID == "" {
			j.DocID = "L" + strconv.Itoa(r.line)
		}
		key := [2]string{j.QueryID, j.DocID}
		if first, dup := seenDoc[key]; dup {
			return nil, &LineError{File: name, Line: r.line, Column: "doc_id", Err: fmt.Errorf("document %q already judged for this query on line %d", j.DocID, first)}
		}
		seenDoc[key] = r.line
		out[i] = j
	}
	return out, nil
}

// Group is one query's judgments.
type Group struct {
	QueryID, Query string
	Items          []Judgment
}

// GroupByQuery groups judgments by QueryID, in order of first appearance.
func GroupByQuery(js []Judgment) []Group {
	var groups []Group
	at := map[string]int{}
	for _, j := range js {
		i, ok := at[j.QueryID]
		if !ok {
			i = len(groups)
			at[j.QueryID] = i
			groups = append(groups, Group{QueryID: j.QueryID, Query: j.Query})
		}
		groups[i].Items = append(groups[i].Items, j)
	}
	return groups
}

// JudgmentQrels turns judgments into qrels for scoring a ranking of them.
func JudgmentQrels(js []Judgment) Qrels {
	q := Qrels{}
	for _, j := range js {
		if q[j.QueryID] == nil {
			q[j.QueryID] = map[string]int{}
		}
		q[j.QueryID][j.DocID] = j.Label
	}
	return q
}
