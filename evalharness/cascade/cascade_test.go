package cascade

import (
	"math"
	"slices"
	"testing"
)

func TestOrder(t *testing.T) {
	prev := []string{"a", "b", "c", "d", "e"}
	for _, tc := range []struct {
		name   string
		scores []float64
		want   []string
	}{
		{"top reordered, rest kept", []float64{0.1, 0.9, 0.5}, []string{"b", "c", "a", "d", "e"}},
		{"ties keep the previous order", []float64{1, 2, 2, 1}, []string{"b", "c", "a", "d", "e"}},
		{"all rescored", []float64{5, 4, 3, 2, 6}, []string{"e", "a", "b", "c", "d"}},
		{"none rescored", nil, prev},
		{"infinities order", []float64{math.Inf(-1), math.Inf(1)}, []string{"b", "a", "c", "d", "e"}},
	} {
		got, err := Order(prev, tc.scores)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	if !slices.Equal(prev, []string{"a", "b", "c", "d", "e"}) {
		t.Errorf("Order changed its input: %v", prev)
	}
}

func TestOrderRejectsBadScores(t *testing.T) {
	if _, err := Order([]int{1, 2}, []float64{1, 2, 3}); err == nil {
		t.Error("more scores than items: no error")
	}
	if _, err := Order([]int{1, 2}, []float64{1, math.NaN()}); err == nil {
		t.Error("NaN score: no error")
	}
}

func TestTop(t *testing.T) {
	for _, tc := range []struct{ n, k, want int }{{100, 20, 20}, {5, 20, 5}, {0, 20, 0}, {10, 0, 0}} {
		if got := Top(tc.n, tc.k); got != tc.want {
			t.Errorf("Top(%d, %d) = %d, want %d", tc.n, tc.k, got, tc.want)
		}
	}
}
