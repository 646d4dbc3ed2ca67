package engine

import (
	"context"
	"os"
	"slices"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/rerankloop/rerank/plugin/contract"
	"github.com/rerankloop/rerank/plugin/internal/tokenize"
)

// bf16Tolerance bounds |autocast score - fp32 score| (the 1e-2).
const bf16Tolerance = 1e-2

// TestAutocastScoresMatchFP32 scores the same pairs in fp32 and under
// autocast: within bf16Tolerance, yet not identical (which would mean
// autocast never ran). On CPU here (bf16); where CUDA is available, its
// default precision (auto: bf16 and TF32) and fp16 too. The models: the
// tiny reference cross-encoder, and the pretrained all-MiniLM-L6-v2
// bi-encoder (its cosine scores) where it is installed: trained weights,
// as the tolerance is meant for (a random model at a wide init range
// amplifies rounding far more).
func TestAutocastScoresMatchFP32(t *testing.T) {
	ps := readPairs(t)[:64]
	models := map[string]string{"tiny-ce": "../../testdata/tiny-ce"}
	if enc := os.Getenv("RERANK_MINILM_DIR"); enc != "" {
		models["minilm-bi"] = enc
	}
	runs := [][2]string{{"cpu", "bf16"}}
	if gotch.CUDA.IsAvailable() {
		runs = append(runs, [2]string{"cuda", "auto"}, [2]string{"cuda", "fp16"})
	}
	for name, dir := range models {
		t.Run(name, func(t *testing.T) {
			score := func(device, precision string) []float32 {
				e := newEngine(t, Options{Device: device, Precision: precision, MaxLength: 256, BatchSize: 16})
				if _, err := e.Load(context.Background(), contract.LoadRequest{Path: dir, Serve: true}); err != nil {
					t.Fatal(err)
				}
				return scoreAll(t, e, ps)
			}
			fp32 := score("cpu", "fp32")
			if spread := slices.Max(fp32) - slices.Min(fp32); spread < 10*bf16Tolerance {
				t.Fatalf("fp32 scores spread only %.3g: too flat for a comparison at %g", spread, bf16Tolerance)
			}
			for _, r := range runs {
				got := score(r[0], r[1])
				assertClose(t, r[0]+" "+r[1]+" vs fp32", got, func(i int) float32 { return fp32[i] }, bf16Tolerance)
				if maxDiff(got, fp32) == 0 {
					t.Errorf("%s %s scores equal fp32's bit for bit: autocast did not run", r[0], r[1])
				}
			}
		})
	}
}

func TestAutoPrecisionIsFP32OnCPU(t *testing.T) {
	e := newEngine(t, Options{Device: "cpu"})
	if e.precision != "fp32" {
		t.Errorf("auto precision on CPU is %q, want fp32", e.precision)
	}
	if _, err := New(Options{Device: "cpu", Precision: "fp8"}); err == nil {
		t.Error("precision fp8 was accepted")
	}
}

// batchLengths batches pairs of these lengths (sorted longest first) as
// score does and returns each batch's lengths.
func batchLengths(e *Engine, lens []int) [][]int {
	var batches [][]int
	var chunk []pair
	for _, n := range lens {
		p := pair{enc: tokenize.Pair{IDs: make([]int64, n)}}
		if len(chunk) == 0 || !e.fits(chunk, p) {
			batches = append(batches, nil)
			chunk = chunk[:0]
		}
		chunk = append(chunk, p)
		batches[len(batches)-1] = append(batches[len(batches)-1], n)
	}
	return batches
}

// TestBatchTokens: a batch takes pairs (longest first) while it holds
// fewer than BatchSize and pairs x the longest stays within BatchTokens.
func TestBatchTokens(t *testing.T) {
	lens := []int{300, 300, 300, 300, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 20}
	for _, c := range []struct {
		size, tokens int
		want         [][]int
	}{
		{12, 1000, [][]int{{300, 300, 300}, {300, 100, 100}, {100, 100, 100, 100, 100, 100, 100, 100, 100, 20}}},
		{5, 1000, [][]int{{300, 300, 300}, {300, 100, 100}, {100, 100, 100, 100, 100}, {100, 100, 100, 100, 20}}},
		{8, -1, [][]int{{300, 300, 300, 300, 100, 100, 100, 100}, {100, 100, 100, 100, 100, 100, 100, 20}}},
	} {
		e := &Engine{opts: Options{BatchSize: c.size, BatchTokens: c.tokens}}
		if got := batchLengths(e, lens); !slices.EqualFunc(got, c.want, slices.Equal) {
			t.Errorf("BatchSize %d, BatchTokens %d: batches %v, want %v", c.size, c.tokens, got, c.want)
		}
	}
}

func TestBatchDefaults(t *testing.T) {
	e := newEngine(t, Options{Device: "cpu"})
	if e.opts.BatchSize != 32 || e.opts.BatchTokens != cpuBatchTokens {
		t.Errorf("CPU defaults: BatchSize %d, BatchTokens %d; want 32 and %d", e.opts.BatchSize, e.opts.BatchTokens, cpuBatchTokens)
	}
}
