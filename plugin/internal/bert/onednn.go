package bert

/*
int rerank_linear(void *x, void *w, void *b, int act, void **out);
void rerank_linear_backends(int *forward, int *backward);
const char *rerank_onednn_error();
*/
import "C"

import (
	"errors"
	"unsafe"

	"github.com/sugarme/gotch/ts"
)

// activation follows a dense layer: on CPU it is fused into oneDNN's product.
type activation C.int

const (
	noActivation activation = iota
	geluExact
	geluTanh
)

// linear is x·wᵀ + b then act, kept in s; on CPU in float32 the products
// run in oneDNN (onednn.cpp says why), elsewhere as ts.Linear and Gelu.
func linear(s *Scope, x, w, b *ts.Tensor, act activation) *ts.Tensor {
	return keepResult(s, func(out *unsafe.Pointer) C.int {
		return C.rerank_linear(x.Ctensor(), w.Ctensor(), optional(b), C.int(act), out)
	}, func() string { return C.GoString(C.rerank_onednn_error()) })
}

// optional is t's C tensor, or null for nil (an absent optional argument).
func optional(t *ts.Tensor) unsafe.Pointer {
	if t == nil {
		return nil
	}
	return t.Ctensor()
}

// keepResult runs a rerank_* call and keeps the tensor it writes to out, or
// panics with the error lastError reads (Guard turns that into the error
// returned); each C++ file keeps its own.
func keepResult(s *Scope, call func(out *unsafe.Pointer) C.int, lastError func() string) *ts.Tensor {
	var out unsafe.Pointer
	if call(&out) != 0 {
		panic(torchError{errors.New(lastError())})
	}
	return s.Keep(ts.FromCtensor(out), nil)
}

// OneDNN reports whether float32 products on CPU run in oneDNN rather than
// MKL: the dense layers' forward, and mkldnn_matmul (backward).
func OneDNN() (forward, backward bool) {
	var f, b C.int
	C.rerank_linear_backends(&f, &b)
	return f != 0, b != 0
}

// Linear is x·wᵀ + b (b may be nil) as the model's dense layers compute it;
// the caller frees the result.
func Linear(x, w, b *ts.Tensor) (y *ts.Tensor, err error) {
	defer Guard(&err)
	var s Scope
	return linear(&s, x, w, b, noActivation), nil
}
