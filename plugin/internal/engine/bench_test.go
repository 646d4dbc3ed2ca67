package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
	"github.com/rerankloop/rerank/plugin/internal/bert"
	"github.com/rerankloop/rerank/plugin/internal/tokenize"
)

// The speed benchmarks of the model. Run with
//
//	make bench PKGS=./plugin/internal/engine BENCHFLAGS='-run=^$ -bench=. -benchtime=3x'
//
// They use the real all-MiniLM-L6-v2 weights where RERANK_MINILM_DIR is set,
// else a random model of the same shape (6 layers, hidden 384, 12 heads,
// FFN 1536): the speed is the same. Pairs are the SciFact (claim, abstract)
// pairs of ../testdata/parity.
//
// The environment picks the device and batch sizes, so that the GPU check
// (plugin/libtorch/gpu-check.sh) runs these same benchmarks:
//
//	RERANK_BENCH_DEVICE   cpu (default) or cuda: where Forward and RerankLatency run
//	RERANK_BENCH_BATCHES  BenchmarkForward's batch sizes, comma-separated (default 8,32,64)
//	RERANK_BENCH_PRECISION  Options.Precision (default auto: fp32 on CPU, bf16 on CUDA)
//
// A row's batch is Options.BatchSize; the engine's default token budget
// (BatchTokens) applies as in Rerank, so on CPU a batch of 32 or 64 long
// pairs runs as several forward passes. make bench-model prints both sides.

func benchDevice() string {
	if d := os.Getenv("RERANK_BENCH_DEVICE"); d != "" {
		return d
	}
	return "cpu"
}

func benchBatches(b *testing.B) []int {
	v := os.Getenv("RERANK_BENCH_BATCHES")
	if v == "" {
		return []int{8, 32, 64}
	}
	var sizes []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("RERANK_BENCH_BATCHES=%q: %q is not a positive batch size", v, f)
		}
		sizes = append(sizes, n)
	}
	return sizes
}

func miniLMSized(b *testing.B) string {
	if enc := os.Getenv("RERANK_MINILM_DIR"); enc != "" {
		return miniLMCrossEncoder(b, enc)
	}
	dir := b.TempDir()
	if err := checkpoint.WriteRandom(dir, checkpoint.MiniLMConfig(), 1); err != nil {
		b.Fatal(err)
	}
	return dir
}

// forwardFLOPs counts the multiply-adds (x2) of one forward pass over a
// padded batch: the dense layers plus the two attention products.
func forwardFLOPs(c checkpoint.Config, batch, seqLen int) float64 {
	h, f, t := float64(c.HiddenSize), float64(c.IntermediateSize), float64(seqLen)
	perLayer := 2*t*(4*h*h+2*h*f) + 2*2*t*t*h
	return float64(batch) * float64(c.NumLayers) * perLayer
}

// cpuSeconds is the process's user + system CPU time: on a machine shared
// with other jobs, pairs per CPU-second is steadier than pairs per second.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func peakRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			kb, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkForward measures model throughput: batches of SciFact pairs,
// sorted by length and padded per batch, exactly as Rerank runs them.
func BenchmarkForward(b *testing.B) {
	dir := miniLMSized(b)
	ps := readPairs(b)
	tok, err := tokenize.Load(filepath.Join(dir, checkpoint.TokenizerFile))
	if err != nil {
		b.Fatal(err)
	}
	for _, maxLen := range []int{256, 512} {
		for _, bs := range benchBatches(b) {
			b.Run(fmt.Sprintf("len=%d/batch=%d", maxLen, bs), func(b *testing.B) {
				e := newEngine(b, Options{Device: benchDevice(), Precision: os.Getenv("RERANK_BENCH_PRECISION"), MaxLength: maxLen, BatchSize: bs, Threads: runtime.NumCPU()})
				if _, err := e.Load(context.Background(), contract.LoadRequest{Path: dir, Serve: true}); err != nil {
					b.Fatal(err)
				}
				l, _ := e.lookup("")
				r := &request{ctx: context.Background()}
				var pairs []pair
				for i, p := range ps {
					enc, err := tok.EncodePair(p.Query, p.Text, maxLen)
					if err != nil {
						b.Fatal(err)
					}
					pairs = append(pairs, pair{enc: enc, req: r, doc: i})
				}
				r.scores = make([]float32, len(pairs))
				r.pairs = pairs
				// The forward passes score makes: the same sort and batching.
				flops := 0.0
				sorted := append([]pair(nil), pairs...)
				sort.SliceStable(sorted, func(i, j int) bool { return len(sorted[i].enc.IDs) > len(sorted[j].enc.IDs) })
				for s := 0; s < len(sorted); {
					n := 1
					for s+n < len(sorted) && e.fits(sorted[s:s+n], sorted[s+n]) {
						n++
					}
					flops += forwardFLOPs(l.model.Cfg, n, len(sorted[s].enc.IDs))
					s += n
				}
				// The peak of this moment, on the model's thread: a shared
				// machine's load changes between rows.
				var peak float64
				e.onThread(func() { peak = matmulPeaks(b, 20).best() })
				if e.device != gotch.CPU {
					if err := bert.SetTF32(e.precision != bert.FP32); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				start, cpu := time.Now(), cpuSeconds()
				for i := 0; i < b.N; i++ {
					var err error
					e.onThread(func() { err = e.score(l, []*request{r}) })
					if err != nil {
						b.Fatal(err)
					}
				}
				sec := time.Since(start).Seconds()
				b.ReportMetric(float64(len(pairs)*b.N)/sec, "pairs/s")
				b.ReportMetric(float64(len(pairs)*b.N)/(cpuSeconds()-cpu), "pairs/cpu-s")
				b.ReportMetric(flops*float64(b.N)/sec/1e9, "GFLOP/s")
				b.ReportMetric(peak, "peak-GFLOP/s")
				b.ReportMetric(peakRSSMB(), "peakRSS-MB")
			})
		}
	}
}

// BenchmarkRerankLatency is one search's rerank stage: a query with its 50
// or 100 candidate abstracts, through the public Rerank call.
func BenchmarkRerankLatency(b *testing.B) {
	dir := miniLMSized(b)
	ps := readPairs(b)
	for _, maxLen := range []int{256, 512} {
		for _, n := range []int{50, 100} {
			b.Run(fmt.Sprintf("len=%d/docs=%d", maxLen, n), func(b *testing.B) {
				e := newEngine(b, Options{Device: benchDevice(), Precision: os.Getenv("RERANK_BENCH_PRECISION"), MaxLength: maxLen, BatchSize: 32, Threads: runtime.NumCPU()})
				if _, err := e.Load(context.Background(), contract.LoadRequest{Path: dir, Serve: true}); err != nil {
					b.Fatal(err)
				}
				req := contract.RerankRequest{Query: ps[0].Query}
				for i := 0; i < n; i++ {
					req.Documents = append(req.Documents, contract.Document{ID: strconv.Itoa(i), Text: ps[i%len(ps)].Text})
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := e.Rerank(context.Background(), req); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkMatmulPeak is the machine's fp32 matmul rate through libtorch on
// the benchmark device (TF32 off), the ceiling the forward pass is compared
// against: the faster of at::matmul (MKL on CPU) and, on CPU, oneDNN's
// product, which the model's dense layers use; each is reported too.
func BenchmarkMatmulPeak(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p := matmulPeaks(b, b.N)
	b.ReportMetric(p.best(), "GFLOP/s")
	b.ReportMetric(p.matmul, "matmul-GFLOP/s")
	if p.oneDNN > 0 {
		b.ReportMetric(p.oneDNN, "onednn-GFLOP/s")
	}
}

// peaks are the rates of the fp32 products libtorch offers, in GFLOP/s
// (oneDNN's 0 where the model does not use it).
type peaks struct{ matmul, oneDNN float64 }

func (p peaks) best() float64 { return max(p.matmul, p.oneDNN) }

// matmulPeaks times reps fp32 products of two 1024 x 1024 matrices after one
// warm-up product, as bench_st.py's matmul_peak does: x·y by at::matmul, and
// x·yᵀ as the model's dense layers compute it where that is oneDNN.
func matmulPeaks(b *testing.B, reps int) peaks {
	device := gotch.CPU
	if benchDevice() == "cuda" {
		device = gotch.CudaIfAvailable()
	}
	// An engine may have turned TF32 on (the caller restores it).
	if err := bert.SetTF32(false); err != nil {
		b.Fatal(err)
	}
	const n = 1024
	x := ts.MustRandn([]int64{n, n}, gotch.Float, device)
	y := ts.MustRandn([]int64{n, n}, gotch.Float, device)
	defer x.Drop()
	defer y.Drop()
	sync := func() {
		if device != gotch.CPU {
			if err := ts.CudaSynchronize(); err != nil {
				b.Fatal(err)
			}
		}
	}
	rate := func(product func() (*ts.Tensor, error)) float64 {
		run := func() {
			z, err := product()
			if err != nil {
				b.Fatal(err)
			}
			z.Drop()
		}
		run() // thread start-up and allocation
		sync()
		b.ResetTimer()
		start := time.Now()
		for range reps {
			run()
		}
		sync()
		return 2 * n * n * n * float64(reps) / time.Since(start).Seconds() / 1e9
	}
	p := peaks{matmul: rate(func() (*ts.Tensor, error) { return x.Matmul(y, false) })}
	if forward, _ := bert.OneDNN(); device == gotch.CPU && forward {
		p.oneDNN = rate(func() (*ts.Tensor, error) { return bert.Linear(x, y, nil) })
	}
	return p
}
