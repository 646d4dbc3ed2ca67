package bert

// libtch (compiled into every gotch binary) exports these, but gotch v0.9.1
// has no Go wrappers for them.

/*
#include <stdint.h>
void at_set_num_threads(int n_threads);
int at_get_num_threads();
void at_manual_seed(int64_t seed);
*/
import "C"

import (
	"fmt"
	"strings"

	"github.com/sugarme/gotch/ts"
)

// SetThreads sets ATen's intra-op thread count (0 leaves libtorch's default).
func SetThreads(n int) {
	if n > 0 {
		C.at_set_num_threads(C.int(n))
	}
}

// Threads reports ATen's intra-op thread count.
func Threads() int { return int(C.at_get_num_threads()) }

// ManualSeed seeds libtorch's generator (dropout masks during training).
func ManualSeed(seed int64) { C.at_manual_seed(C.int64_t(seed)) }

// torchError carries a libtorch error up through a forward pass; see Scope.
type torchError struct{ err error }

// Scope owns the tensors one computation creates so they are freed
// deterministically (gotch otherwise frees them in finalizers, which can race
// with cgo calls still using them). Operations go through Keep, which turns a
// libtorch error into a panic that Guard turns back into an error.
type Scope struct{ held []*ts.Tensor }

func (s *Scope) Keep(t *ts.Tensor, err error) *ts.Tensor {
	if err != nil {
		panic(torchError{err})
	}
	s.held = append(s.held, t)
	return t
}

// Check is Keep for operations that return no tensor (in-place ones, backward).
func Check(err error) {
	if err != nil {
		panic(torchError{err})
	}
}

// Free drops every held tensor except those in keep.
func (s *Scope) Free(keep ...*ts.Tensor) {
	for _, t := range s.held {
		kept := false
		for _, k := range keep {
			kept = kept || t == k
		}
		if !kept {
			t.Drop()
		}
	}
	s.held = s.held[:0]
}

// Guard, deferred, converts a torchError panic raised by Keep into *err.
// The trainer shares Scope and Guard.
func Guard(err *error) {
	if r := recover(); r != nil {
		te, ok := r.(torchError)
		if !ok {
			panic(r)
		}
		// gotch appends a goroutine dump to libtorch's message: keep the message.
		msg, _, _ := strings.Cut(te.err.Error(), "\n")
		*err = fmt.Errorf("libtorch: %s", strings.TrimPrefix(msg, "Libtorch API Error: "))
	}
}
