package clickmodel

import (
	"fmt"

	"github.com/rerankloop/rerank/finetune/impression"
	"github.com/rerankloop/rerank/finetune/pairs"
)

// KeyBy chooses what documents share attractiveness across impressions.
type KeyBy string

const (
	// KeyQuery (default): the normalised query text. Labels are per query,
	// ready to train on.
	KeyQuery KeyBy = "query"
	// KeySession: the user session. Reformulations of one need show the same
	// document at different ranks, which is what separates position bias
	// from relevance in a log where each query was issued once; use it to
	// estimate propensities, not to label (a session has many query texts).
	KeySession KeyBy = "session"
)

// ExportOptions configures reading the host's click-log export.
type ExportOptions struct {
	KeyBy KeyBy
	// MinDwellMS: a click whose summed dwell is shorter does not count as a
	// click (0 counts every click). Short dwells are often bounces.
	MinDwellMS int64
}

// FromExport turns one exported search into an impression.
func FromExport(e impression.Impression, opt ExportOptions) (Impression, error) {
	im := Impression{Query: e.Query}
	switch opt.KeyBy {
	case "", KeyQuery:
		im.Key = pairs.NormalizeQuery(e.Query)
	case KeySession:
		if e.Session == "" {
			return Impression{}, fmt.Errorf("search %s has no session id to key by", e.SearchID)
		}
		im.Key = "session:" + e.Session
	default:
		return Impression{}, fmt.Errorf("click model key %q: want query or session", opt.KeyBy)
	}
	for _, r := range e.Results {
		clicked := r.Clicked && r.DwellMS >= opt.MinDwellMS
		im.Results = append(im.Results, Result{DocID: r.DocID, Position: r.Position, Clicked: clicked})
	}
	return im, nil
}

// FromExports turns exported searches into impressions.
func FromExports(es []impression.Impression, opt ExportOptions) ([]Impression, error) {
	out := make([]Impression, 0, len(es))
	for _, e := range es {
		im, err := FromExport(e, opt)
		if err != nil {
			return nil, err
		}
		out = append(out, im)
	}
	return out, nil
}

// ReadExport reads an export file (`rerank logs export`) into impressions.
func ReadExport(path string, opt ExportOptions) ([]Impression, error) {
	es, err := impression.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out, err := FromExports(es, opt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}
