package engine

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
)

// The CUDA tests need a libtorch with CUDA and a GPU. Elsewhere (CPU builds,
// CI) they skip; plugin/libtorch/gpu-check.sh runs them on the GPU machine
// with RERANK_REQUIRE_CUDA=1, where a skip would hide a build that lost CUDA
// (libtorch_cuda dropped at link time makes CUDA report unavailable).

// cudaTolerance bounds |GPU logit - CPU logit|: both run fp32 (precision fp32
// leaves TF32 off for matmuls), so only summation order differs.
const cudaTolerance = 1e-3

func requireCUDA(t *testing.T) {
	t.Helper()
	if gotch.CUDA.IsAvailable() {
		return
	}
	msg := "libtorch reports no CUDA device (a CPU libtorch, or no GPU); the CUDA tests run on the GPU machine: plugin/libtorch/gpu-check.sh"
	if os.Getenv("RERANK_REQUIRE_CUDA") == "1" {
		t.Fatal(msg + " (RERANK_REQUIRE_CUDA=1 makes this a failure)")
	}
	t.Skip(msg)
}

// TestCUDAMatchesCPU scores the parity pairs on both devices: the tiny
// reference model (also against transformers' logits) and a random model of
// MiniLM-L6's shape, whose weights are drawn at range 0.1 so that its logits
// depend on the input (at the default 0.02 they are almost constant and the
// comparison could not fail; a check below keeps it so).
func TestCUDAMatchesCPU(t *testing.T) {
	requireCUDA(t)
	ps := readPairs(t)
	cfg := checkpoint.MiniLMConfig()
	cfg.InitializerRange = 0.1
	miniLM := t.TempDir()
	if err := checkpoint.WriteRandom(miniLM, cfg, 7); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct{ name, dir string }{{"tiny-ce", "../../testdata/tiny-ce"}, {"minilm-sized", miniLM}} {
		t.Run(m.name, func(t *testing.T) {
			scores := map[string][]float32{}
			for _, device := range []string{"cpu", "cuda"} {
				e := newEngine(t, Options{Device: device, Precision: "fp32", MaxLength: 512, BatchSize: 32})
				info, err := e.Load(context.Background(), contract.LoadRequest{Path: m.dir, Serve: true})
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(info.Device, device) {
					t.Fatalf("asked for %s, the model was loaded on %q", device, info.Device)
				}
				scores[device] = scoreAll(t, e, ps)
			}
			cpu := scores["cpu"]
			if spread := slices.Max(cpu) - slices.Min(cpu); spread < 100*cudaTolerance {
				t.Fatalf("CPU logits spread only %.3g: too flat for a comparison at %g to mean anything", spread, cudaTolerance)
			}
			assertClose(t, m.name+" cuda vs cpu", scores["cuda"], func(i int) float32 { return cpu[i] }, cudaTolerance)
			if m.name == "tiny-ce" {
				assertClose(t, "tiny-ce cuda vs transformers", scores["cuda"], func(i int) float32 { return ps[i].TinyLogit512 }, cudaTolerance)
			}
		})
	}
}
