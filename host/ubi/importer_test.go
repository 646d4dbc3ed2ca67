package ubi

import "testing"

// The cursor only moves forward: a page read again within the lookback
// must not set it back.
func TestBeyond(t *testing.T) {
	at := func(ms float64, id string) []any { return []any{ms, id} }
	for _, tc := range []struct {
		a, b []any
		want bool
	}{
		{at(2, "a"), nil, true},
		{at(2, "a"), at(1, "z"), true},
		{at(1, "z"), at(2, "a"), false},
		{at(2, "b"), at(2, "a"), true},
		{at(2, "a"), at(2, "a"), false},
		{at(2, "a"), at(2, "b"), false},
		{nil, at(2, "b"), false},
	} {
		if got := beyond(tc.a, tc.b); got != tc.want {
			t.Errorf("beyond(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
