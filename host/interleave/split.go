package interleave

import (
	"crypto/sha256"
	"encoding/binary"
	"math"

	"github.com/rerankloop/rerank/finetune/impression"
)

// Assign puts a unit (a user id, or a session id for anonymous traffic) into
// an arm of experiment expID: the same unit always lands in the same arm.
// traffic is the fraction of units in the experiment, split evenly between
// the arms; ok is false for a unit outside it (it sees the serving model and
// is not counted) and for an empty unit, which cannot be assigned stably.
// Enrolment and arm come from separate bits of the hash, so raising traffic
// only adds units: nobody already enrolled changes arm.
func Assign(expID, unit string, traffic float64) (arm Team, ok bool) {
	if unit == "" || !(traffic > 0) {
		return "", false
	}
	h := sha256.Sum256([]byte(expID + "\x00" + unit))
	u := float64(binary.BigEndian.Uint64(h[:8])>>11) / (1 << 53) // uniform in [0, 1)
	if u >= traffic {
		return "", false
	}
	if h[8]&1 == 0 {
		return Control, true
	}
	return Treatment, true
}

// ArmMetrics are the click metrics of one arm of a split test. Positions are
// the ranks shown (1-based).
type ArmMetrics struct {
	Searches int `json:"searches"`
	Shown    int `json:"shown"`   // results shown
	Clicked  int `json:"clicked"` // results clicked (each once)
	// CTR is clicked results over shown results.
	CTR float64 `json:"ctr"`
	// ClicksAtK is the mean number of clicked results at ranks 1..K per search.
	ClicksAtK float64 `json:"clicks_at_k"`
	K         int     `json:"k"`
	// MRR is the mean over searches of 1/rank of the first click (0 without one).
	MRR float64 `json:"mrr"`
	// Abandonment is the fraction of searches without a click.
	Abandonment float64 `json:"abandonment"`

	rrSum, rrSq float64
	atK         int
	abandoned   int
}

func (m *ArmMetrics) add(results []impression.Result) {
	m.Searches++
	m.Shown += len(results)
	first := 0
	for _, r := range results {
		if !r.Clicked {
			continue
		}
		m.Clicked++
		if r.Position <= m.K {
			m.atK++
		}
		if first == 0 || r.Position < first {
			first = r.Position
		}
	}
	if first == 0 {
		m.abandoned++
		return
	}
	rr := 1 / float64(first)
	m.rrSum += rr
	m.rrSq += rr * rr
}

func (m *ArmMetrics) finish() {
	if m.Shown > 0 {
		m.CTR = float64(m.Clicked) / float64(m.Shown)
	}
	if m.Searches > 0 {
		n := float64(m.Searches)
		m.ClicksAtK = float64(m.atK) / n
		m.MRR = m.rrSum / n
		m.Abandonment = float64(m.abandoned) / n
	}
}

// rrVariance is the sample variance of the per-search reciprocal ranks.
func (m *ArmMetrics) rrVariance() float64 {
	if m.Searches < 2 {
		return 0
	}
	n := float64(m.Searches)
	mean := m.rrSum / n
	return math.Max(0, (m.rrSq-n*mean*mean)/(n-1))
}
