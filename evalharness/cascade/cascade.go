// Package cascade orders a ranking stage that rescores only the top of the
// previous stage's order (e.g. a cross-encoder on a bi-encoder's top 20).
// Evaluation (`rerank eval --cascade-model`) and serving (/search with
// rerank.cascade) both use Order, so they rank alike.
package cascade

import (
	"fmt"
	"math"
	"sort"
)

// Top is how many of n items a stage of depth k rescores.
func Top(n, k int) int { return max(0, min(n, k)) }

// Order returns prev (best first) with its first len(scores) items sorted by
// scores, highest first, ties keeping prev's order; the rest follow in prev's
// order. scores has one entry per rescored item, at most len(prev), and none
// may be NaN (a NaN does not order).
func Order[T any](prev []T, scores []float64) ([]T, error) {
	k := len(scores)
	if k > len(prev) {
		return nil, fmt.Errorf("cascade: %d scores for %d items", k, len(prev))
	}
	for i, s := range scores {
		if math.IsNaN(s) {
			return nil, fmt.Errorf("cascade: NaN score for item %d", i)
		}
	}
	idx := make([]int, k)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	out := make([]T, 0, len(prev))
	for _, i := range idx {
		out = append(out, prev[i])
	}
	return append(out, prev[k:]...), nil
}
