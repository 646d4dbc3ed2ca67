package train

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/sugarme/gotch"

	"github.com/rerankloop/rerank/plugin/contract"
	"github.com/rerankloop/rerank/plugin/internal/bert"
)

// Service implements contract.Trainer: one fine-tune at a time, each on an
// OS thread of its own, beside the engine's inference thread (libtorch's
// grad mode is per thread, so the engine keeps serving without autograd).
type Service struct {
	device    gotch.Device
	threads   int
	precision bert.Precision
	busy      atomic.Bool
}

// NewService trains on device ("cpu" or "cuda:N", as engine.Engine.Device
// names it) with threads ATen intra-op threads (0: libtorch's default).
func NewService(device string, threads int) (*Service, error) {
	d, err := parseDevice(device)
	if err != nil {
		return nil, err
	}
	s := &Service{device: d, threads: threads}
	return s, s.SetPrecision("auto")
}

// SetPrecision chooses the arithmetic of training steps and evaluations
// (see bert.ParsePrecision; auto is bf16 autocast on CUDA, fp32 on CPU).
// fp16 is refused: without loss scaling its gradients underflow.
func (s *Service) SetPrecision(name string) error {
	p, err := bert.ParsePrecision(name, s.device)
	if err != nil {
		return err
	}
	if p == bert.FP16 {
		return fmt.Errorf("precision fp16: training needs loss scaling for it; use bf16")
	}
	s.precision = p
	return nil
}

func parseDevice(name string) (gotch.Device, error) {
	if name == "cpu" {
		return gotch.CPU, nil
	}
	if n, ok := strings.CutPrefix(name, "cuda:"); ok {
		if i, err := strconv.Atoi(n); err == nil && i >= 0 {
			return gotch.CudaBuilder(uint(i)), nil
		}
	}
	return gotch.CPU, fmt.Errorf("device %q: want cpu or cuda:N", name)
}

// Finetune trains as req says; see contract.Trainer. progress is called on
// the training goroutine.
func (s *Service) Finetune(ctx context.Context, req contract.FinetuneRequest, progress func(contract.FinetuneProgress)) (contract.FinetuneResult, error) {
	if !s.busy.CompareAndSwap(false, true) {
		return contract.FinetuneResult{}, contract.ErrBusy
	}
	defer s.busy.Store(false)
	type outcome struct {
		res contract.FinetuneResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		// Never unlocked: the thread, whose grad mode and ATen thread count
		// were changed, ends with the goroutine.
		runtime.LockOSThread()
		bert.SetThreads(s.threads)
		res, err := run(ctx, req, s.device, s.precision, progress)
		done <- outcome{res, err}
	}()
	o := <-done
	return o.res, o.err
}
