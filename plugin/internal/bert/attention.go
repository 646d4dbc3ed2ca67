package bert

// attention.cpp splits heads among libtorch's OpenMP threads with
// at::parallel_for, which is inline: without -fopenmp it runs on one thread.
// The library this links is libtorch's own libgomp (same soname).

/*
#cgo CXXFLAGS: -fopenmp
#cgo LDFLAGS: -fopenmp
int rerank_attention(void *q, void *k, void *v, void *mask, double dropout, void **out);
const char *rerank_attention_error();
int rerank_attention_fused();
*/
import "C"

import (
	"unsafe"

	"github.com/sugarme/gotch/ts"
)

// attention is softmax(q·kᵀ/√dh + mask)·v for [B, nh, T, dh] views, with
// dropout p on the probabilities, kept in s; mask ([B, 1, 1, T] booleans, true
// where a key is a real token) may be nil. At inference on a CPU with AVX-512
// it runs fused (attention.cpp), elsewhere as libtorch's
// scaled_dot_product_attention.
func attention(s *Scope, q, k, v, mask *ts.Tensor, p float64) *ts.Tensor {
	return keepResult(s, func(out *unsafe.Pointer) C.int {
		return C.rerank_attention(q.Ctensor(), k.Ctensor(), v.Ctensor(), optional(mask), C.double(p), out)
	}, func() string { return C.GoString(C.rerank_attention_error()) })
}

// FusedAttention reports whether attention at inference on CPU runs the
// fused kernel of attention.cpp (it needs AVX-512F).
func FusedAttention() bool { return C.rerank_attention_fused() != 0 }
