// Package interleave compares two rankers online, from clicks: team-draft
// interleaving (both rankers' results merged into one list per search, clicks
// credited to the ranker that contributed the clicked result) and, as the
// alternative, a split A/B test (users hashed into arms, click metrics per
// arm). It also holds an experiment's state and keeps it in the click log's
// database beside the model registry.
package interleave

import (
	"math/rand/v2"

	"github.com/rerankloop/rerank/finetune/impression"
)

// Team is who contributed a shown result; it is what the click log's Team
// field records. For split tests the arms carry the same two names.
type Team string

const (
	Control   Team = "control"   // ranking A, the incumbent
	Treatment Team = "treatment" // ranking B, the challenger
	// Shared marks a result both rankings would have placed next: it credits
	// neither team.
	Shared Team = "shared"
)

// Pick is one result of an interleaved list.
type Pick struct {
	DocID string
	Team  Team
}

// TeamDraft merges control ranking a and treatment ranking b into at most n
// results (n <= 0: no limit) by team-draft interleaving (Radlinski, Kurup and
// Joachims, CIKM 2008): in every round a fair coin (rng) decides which team
// picks first, then the other picks; a team picks its highest-ranked result
// not yet placed. Variant for shared results: when a round starts and both
// teams' next picks are the same document, it is placed once, credited to no
// one (Shared), and the round starts again; agreement says nothing about
// which ranker is better. Only the round's start is checked: the second
// picker of a round always picks, even a document that is also the other
// ranking's next, so every completed round gives each team exactly one result
// and a user who clicks at random favours neither. As in the original, the
// list ends when either ranking has nothing left to place, so neither team
// fills the tail alone. Repeated ids in a ranking are placed once.
func TeamDraft(a, b []string, n int, rng *rand.Rand) []Pick {
	limit := len(a) + len(b)
	if n > 0 && n < limit {
		limit = n
	}
	out := make([]Pick, 0, limit)
	placed := make(map[string]bool, limit)
	var ia, ib, picksA, picksB int
	next := func(r []string, i int) int {
		for i < len(r) && placed[r[i]] {
			i++
		}
		return i
	}
	for len(out) < limit {
		ia, ib = next(a, ia), next(b, ib)
		if ia == len(a) || ib == len(b) {
			break
		}
		var p Pick
		roundStart := picksA == picksB
		switch {
		case roundStart && a[ia] == b[ib]:
			p = Pick{a[ia], Shared}
		case picksA < picksB || roundStart && rng.IntN(2) == 0:
			p = Pick{a[ia], Control}
			picksA++
		default:
			p = Pick{b[ib], Treatment}
			picksB++
		}
		placed[p.DocID] = true
		out = append(out, p)
	}
	return out
}

// Outcome is one interleaved search's verdict.
type Outcome int

const (
	NoClicks      Outcome = iota // nothing clicked: no evidence
	Tie                          // clicks, equal credit (shared-only clicks included)
	TreatmentWins                // more clicked results from the treatment's team
	ControlWins
)

// Credit counts the clicked results of one interleaved search per team. Each
// clicked result counts once, however often it was clicked.
type Credit struct {
	Control, Treatment, Shared int
}

// CreditOf reads the teams and clicks of one exported search.
func CreditOf(results []impression.Result) Credit {
	var c Credit
	for _, r := range results {
		if !r.Clicked {
			continue
		}
		switch Team(r.Team) {
		case Control:
			c.Control++
		case Treatment:
			c.Treatment++
		case Shared:
			c.Shared++
		}
	}
	return c
}

// Outcome is the search's verdict from its credit.
func (c Credit) Outcome() Outcome {
	switch {
	case c.Treatment > c.Control:
		return TreatmentWins
	case c.Control > c.Treatment:
		return ControlWins
	case c.Control+c.Treatment+c.Shared > 0:
		return Tie
	}
	return NoClicks
}
