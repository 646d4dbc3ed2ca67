package bert

/*
int rerank_autocast_enter(int cuda, int dtype, int *prev);
int rerank_autocast_exit(int cuda, int prev);
int rerank_set_tf32(int on);
const char *rerank_precision_error();
*/
import "C"

import (
	"fmt"

	"github.com/sugarme/gotch"
)

// Precision is the arithmetic of a model's forward passes.
type Precision string

const (
	// FP32 computes everything in float32.
	FP32 Precision = "fp32"
	// BF16 and FP16 run libtorch's autocast: matrix products (linear,
	// attention) in that type, reductions (softmax, layer norm, losses) in
	// float32, as torch.autocast does; the weights stay float32.
	BF16 Precision = "bf16"
	FP16 Precision = "fp16"
)

// ParsePrecision reads a precision setting: "" or "auto" is BF16 on CUDA
// (tensor cores) and FP32 on CPU (where bf16 is slower without AMX).
func ParsePrecision(s string, device gotch.Device) (Precision, error) {
	switch p := Precision(s); p {
	case "", "auto":
		if device == gotch.CPU {
			return FP32, nil
		}
		return BF16, nil
	case FP32, BF16, FP16:
		return p, nil
	}
	return "", fmt.Errorf("unknown precision %q (want auto, fp32, bf16 or fp16)", s)
}

func (p Precision) code() C.int {
	switch p {
	case BF16:
		return 1
	case FP16:
		return 2
	}
	return 0
}

func cudaFlag(device gotch.Device) C.int {
	if device == gotch.CPU {
		return 0
	}
	return 1
}

func precisionError(what string) error {
	return fmt.Errorf("libtorch: %s: %s", what, C.GoString(C.rerank_precision_error()))
}

// withAutocast runs fn with autocast to p on device's type, FP32 meaning
// autocast off (also inside an autocast region), and restores the state
// after. The state is the calling thread's, as libtorch keeps it.
func withAutocast(device gotch.Device, p Precision, fn func() error) error {
	var prev C.int
	if C.rerank_autocast_enter(cudaFlag(device), p.code(), &prev) != 0 {
		return precisionError("entering autocast")
	}
	err := fn()
	if C.rerank_autocast_exit(cudaFlag(device), prev) != 0 && err == nil {
		err = precisionError("leaving autocast")
	}
	return err
}

// SetTF32 lets CUDA's float32 matrix products and convolutions use TF32
// tensor cores (process-wide; libtorch's default is off). No effect on CPU.
func SetTF32(on bool) error {
	v := C.int(0)
	if on {
		v = 1
	}
	if C.rerank_set_tf32(v) != 0 {
		return precisionError("setting TF32")
	}
	return nil
}
