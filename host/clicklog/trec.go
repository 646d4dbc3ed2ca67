package clicklog

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
)

// TREC Session Track 2013 import. Each (session, interaction) becomes one
// impression, search id "trec2013-s<session>-i<interaction>", session id
// "trec2013-s<session>", model version "trec-session-2013", doc ids the
// ClueWeb12 ids at their displayed ranks; each click becomes one click with
// its dwell, event id "c<rank>-<k>" for the k-th click on that rank. Everything
// goes through LogSearch and LogClick, so an import is checked like live
// traffic, and importing the log again (in either layout) adds nothing: the
// search ids and click event ids repeat.
//
// Two layouts of the same log are read, told apart by the first byte:
//   - sessions.jsonl: one session per line with interaction start times and
//     per-click start/end times (seconds from the session's start). An
//     impression is at base + starttime, a click at base + its start, its
//     dwell end - start ("NA" ends give dwell 0).
//   - interactions.tsv: one row per displayed result with n_clicks and the
//     dwell summed over them; it has no times and omits interactions that
//     showed nothing. Interaction n is placed n seconds after base, its
//     clicks at the impression's time, and a summed dwell is split evenly
//     over the clicks.

const (
	trecModelVersion = "trec-session-2013"
	importWorkers    = 8 // concurrent writers, so the import rides group commit
)

var trecColumns = []string{"session", "topic", "interaction", "query", "rank", "clueweb12id", "url", "title", "snippet", "n_clicks", "dwell_seconds"}

// TRECStats counts what an import did.
type TRECStats struct {
	Impressions int // searches stored
	Results     int // results shown in them
	Clicks      int // clicks stored
	Skipped     int // interactions whose search was already in the log
	// ClicksPresent counts clicks already in the log (same search and event id).
	ClicksPresent int
}

type trecInteraction struct {
	imp    Impression
	clicks []Click
}

// ImportTREC loads a TREC Session 2013 log (either layout) into s. Times are
// laid out from base (see above), so retention treats the import as logged
// at base.
func ImportTREC(ctx context.Context, s *Store, r io.Reader, base time.Time) (TRECStats, error) {
	br := bufio.NewReader(r)
	first, err := br.Peek(1)
	if err != nil {
		return TRECStats{}, fmt.Errorf("trec import: empty input")
	}
	var ints []trecInteraction
	if first[0] == '{' {
		ints, err = readTRECSessions(br, base)
	} else {
		ints, err = readTRECTable(br, base)
	}
	if err != nil {
		return TRECStats{}, fmt.Errorf("trec import: %w", err)
	}
	return importInteractions(ctx, s, ints)
}

func importInteractions(ctx context.Context, s *Store, ints []trecInteraction) (TRECStats, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu    sync.Mutex
		stats TRECStats
		wg    sync.WaitGroup
		next  = make(chan *trecInteraction)
	)
	for range importWorkers {
		wg.Go(func() {
			for in := range next {
				err := s.LogSearch(ctx, in.imp)
				fresh := err == nil
				if err != nil && !errors.Is(err, ErrDuplicateSearch) {
					cancel(err)
					continue
				}
				// Clicks go in even when the search was there: their event ids
				// make them idempotent, so a re-run completes an interrupted import.
				added, present := 0, 0
				for _, c := range in.clicks {
					dup, err := s.logClick(ctx, c)
					if err != nil {
						cancel(err)
						break
					}
					if dup {
						present++
					} else {
						added++
					}
				}
				mu.Lock()
				if fresh {
					stats.Impressions++
					stats.Results += len(in.imp.Results)
				} else {
					stats.Skipped++
				}
				stats.Clicks += added
				stats.ClicksPresent += present
				mu.Unlock()
			}
		})
	}
feed:
	for i := range ints {
		select {
		case next <- &ints[i]:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return stats, fmt.Errorf("trec import: %w", err)
	}
	return stats, nil
}

func trecSearchID(session string, interaction int) string {
	return fmt.Sprintf("trec2013-s%s-i%d", session, interaction)
}

// readTRECSessions reads sessions.jsonl.
func readTRECSessions(r io.Reader, base time.Time) ([]trecInteraction, error) {
	type result struct {
		Rank string `json:"rank"`
		Doc  string `json:"clueweb12id"`
	}
	type click struct{ Rank, Start, End string }
	type session struct {
		Session      string `json:"session"`
		Interactions []struct {
			Num       string   `json:"num"`
			StartTime string   `json:"starttime"`
			Query     string   `json:"query"`
			Results   []result `json:"results"`
			Clicks    []click  `json:"clicks"`
		} `json:"interactions"`
	}
	var out []trecInteraction
	dec := json.NewDecoder(r)
	for n := 1; ; n++ {
		var s session
		if err := dec.Decode(&s); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("session %d of the file: %w", n, err)
		}
		if _, err := positiveInt(s.Session); err != nil {
			return nil, fmt.Errorf("session %d of the file: session %q: %w", n, s.Session, err)
		}
		for _, it := range s.Interactions {
			where := fmt.Sprintf("session %s interaction %s", s.Session, it.Num)
			num, err := positiveInt(it.Num)
			if err != nil {
				return nil, fmt.Errorf("%s: interaction number: %w", where, err)
			}
			start, err := seconds(it.StartTime)
			if err != nil {
				return nil, fmt.Errorf("%s: starttime: %w", where, err)
			}
			in := trecInteraction{imp: trecImpression(s.Session, num, it.Query, base.Add(start))}
			docAt := make(map[int]string, len(it.Results))
			for _, res := range it.Results {
				rank, err := positiveInt(res.Rank)
				if err != nil {
					return nil, fmt.Errorf("%s: rank: %w", where, err)
				}
				in.imp.Results = append(in.imp.Results, Shown{DocID: res.Doc, Position: rank})
				docAt[rank] = res.Doc
			}
			nth := map[int]int{} // clicks so far per rank
			for j, c := range it.Clicks {
				rank, err := positiveInt(c.Rank)
				if err != nil {
					return nil, fmt.Errorf("%s: click %d: rank: %w", where, j+1, err)
				}
				doc, ok := docAt[rank]
				if !ok {
					return nil, fmt.Errorf("%s: click %d on rank %d, which was not shown", where, j+1, rank)
				}
				from, err := seconds(c.Start)
				if err != nil {
					return nil, fmt.Errorf("%s: click %d: start: %w", where, j+1, err)
				}
				var dwell time.Duration
				if c.End != "NA" { // the log has no end for a click it saw no return from
					to, err := seconds(c.End)
					if err != nil || to < from {
						return nil, fmt.Errorf("%s: click %d: end %q before start %q or not a time", where, j+1, c.End, c.Start)
					}
					dwell = to - from
				}
				nth[rank]++
				in.clicks = append(in.clicks, Click{
					SearchID: in.imp.SearchID, DocID: doc, Position: rank,
					DwellMS: dwell.Milliseconds(), Time: base.Add(from), EventID: clickEventID(rank, nth[rank]),
				})
			}
			out = append(out, in)
		}
	}
}

// readTRECTable reads interactions.tsv (tab-separated, CSV quoting).
func readTRECTable(r io.Reader, base time.Time) ([]trecInteraction, error) {
	cr := csv.NewReader(r)
	cr.Comma = '\t'
	cr.LazyQuotes = true
	cr.FieldsPerRecord = len(trecColumns)
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if !slices.Equal(header, trecColumns) {
		return nil, fmt.Errorf("header %q, want %q", header, trecColumns)
	}
	var out []trecInteraction
	index := map[string]int{} // search id -> position in out; rows of one interaction may be apart
	for {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		session, query := row[0], row[3]
		if _, err := positiveInt(session); err != nil {
			return nil, fmt.Errorf("line %d: session %q: %w", line, session, err)
		}
		num, err1 := positiveInt(row[2])
		rank, err2 := positiveInt(row[4])
		clicks, err3 := strconv.Atoi(row[9])
		dwell, err4 := seconds(row[10])
		if errors.Join(err1, err2, err3, err4) != nil || clicks < 0 || clicks > maxClicksPerSearch {
			return nil, fmt.Errorf("line %d: interaction %q, rank %q, n_clicks %q, dwell_seconds %q: want numbers, interaction and rank from 1, n_clicks 0 to %d",
				line, row[2], row[4], row[9], row[10], maxClicksPerSearch)
		}
		id := trecSearchID(session, num)
		i, seen := index[id]
		if !seen {
			i = len(out)
			index[id] = i
			out = append(out, trecInteraction{imp: trecImpression(session, num, query, base.Add(time.Duration(num)*time.Second))})
		}
		in := &out[i]
		if in.imp.Query != query {
			return nil, fmt.Errorf("line %d: %s has query %q here and %q earlier", line, id, query, in.imp.Query)
		}
		in.imp.Results = append(in.imp.Results, Shown{DocID: row[5], Position: rank})
		total := dwell.Milliseconds()
		for k := range clicks {
			share := total / int64(clicks)
			if k == 0 {
				share += total % int64(clicks) // the split keeps the row's total
			}
			in.clicks = append(in.clicks, Click{
				SearchID: id, DocID: row[5], Position: rank, DwellMS: share,
				Time: in.imp.Time, EventID: clickEventID(rank, k+1),
			})
		}
	}
}

func clickEventID(rank, k int) string { return fmt.Sprintf("c%d-%d", rank, k) }

func trecImpression(session string, num int, query string, at time.Time) Impression {
	return Impression{
		SearchID: trecSearchID(session, num), Time: at, Query: query,
		SessionID: "trec2013-s" + session, ModelVersion: trecModelVersion,
	}
}

func positiveInt(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%q is not a positive integer", s)
	}
	return n, nil
}

// seconds parses a non-negative number of seconds.
func seconds(s string) (time.Duration, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || f > 1e9 {
		return 0, fmt.Errorf("%q is not a number of seconds", s)
	}
	return time.Duration(math.Round(f * 1e9)), nil
}
