// Package pairs holds the training pair of the fine-tuning pipeline, the checks
// a set of pairs must pass before training (label scale, duplicates,
// conflicting labels, size), query-level de-duplication and the seeded 80/20
// split by query with its leakage check.
package pairs

import (
	"fmt"
	"math"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Pair is one training example: a query, a document and the target label.
type Pair struct {
	QueryID string  `json:"query_id"`
	Query   string  `json:"query"`
	DocID   string  `json:"doc_id"`
	Text    string  `json:"text"`
	Label   float64 `json:"label"`
	// Weight scales the pair's loss (inverse-propensity weights from clicks,
	// 1 for explicit judgments). Zero is read as 1.
	Weight float64 `json:"weight"`
}

// Scale is the declared label scale of a training set.
type Scale string

const (
	// ScaleAuto infers binary when every label is 0 or 1, graded otherwise.
	ScaleAuto Scale = ""
	// ScaleBinary allows the labels 0 and 1.
	ScaleBinary Scale = "binary"
	// ScaleGraded allows the integer labels 0 to 4.
	ScaleGraded Scale = "graded"
)

// ParseScale reads a scale name as given on a command line.
func ParseScale(s string) (Scale, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return ScaleAuto, nil
	case "binary", "0-1":
		return ScaleBinary, nil
	case "graded", "0-4":
		return ScaleGraded, nil
	}
	return "", fmt.Errorf("label scale %q: want binary (0/1), graded (0-4) or auto", s)
}

// Max is the highest label of the scale (the divisor that maps it to [0, 1]).
func (s Scale) Max() float64 {
	if s == ScaleBinary {
		return 1
	}
	return 4
}

// Allows reports whether label is on the scale: an integer from 0 to Max.
func (s Scale) Allows(label float64) bool {
	return label >= 0 && label <= s.Max() && label == math.Trunc(label)
}

func (s Scale) String() string {
	switch s {
	case ScaleBinary:
		return "binary {0, 1}"
	case ScaleGraded:
		return "graded {0, 1, 2, 3, 4}"
	}
	return "auto"
}

// NormalizeQuery is the query identity used for de-duplication and for the
// leakage check: Unicode NFKC, lower case, punctuation removed, runs of
// white space collapsed to one space. A query that is nothing but
// punctuation keeps its punctuation so that it still has an identity.
func NormalizeQuery(q string) string {
	q = strings.ToLower(norm.NFKC.String(q))
	if n := collapse(q, true); n != "" {
		return n
	}
	return collapse(q, false)
}

func collapse(s string, dropPunct bool) string {
	var b strings.Builder
	gap := false
	for _, r := range s {
		switch {
		case dropPunct && unicode.IsPunct(r):
		case unicode.IsSpace(r):
			gap = b.Len() > 0
		default:
			if gap {
				b.WriteByte(' ')
				gap = false
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

// weight returns the pair's effective weight.
func (p Pair) weight() float64 {
	if p.Weight == 0 {
		return 1
	}
	return p.Weight
}
