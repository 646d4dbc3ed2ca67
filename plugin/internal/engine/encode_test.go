package engine

import (
	"fmt"
	"testing"

	"github.com/rerankloop/rerank/plugin/internal/tokenize"
)

// encodeAll keeps the inputs' order across its goroutines and reports the
// error of the first failing input, as a loop would.
func TestEncodeAllKeepsOrder(t *testing.T) {
	for _, n := range []int{0, 1, 7, 100, 1000} {
		out, err := encodeAll(n, func(i int) ([]tokenize.Pair, error) {
			return make([]tokenize.Pair, i%3+1), nil
		})
		if err != nil || len(out) != n {
			t.Fatalf("n=%d: %d results, %v", n, len(out), err)
		}
		for i, ps := range out {
			if len(ps) != i%3+1 {
				t.Fatalf("n=%d: result %d holds %d pairs, want %d", n, i, len(ps), i%3+1)
			}
		}
	}
	_, err := encodeAll(500, func(i int) ([]tokenize.Pair, error) {
		if i == 37 || i == 480 {
			return nil, fmt.Errorf("input %d", i)
		}
		return nil, nil
	})
	if err == nil || err.Error() != "input 37" {
		t.Fatalf("got %v, want the error of input 37", err)
	}
}
