package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/evalharness/compare"
	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/evalharness/fusion"
	"github.com/rerankloop/rerank/evalharness/metrics"
	"github.com/rerankloop/rerank/evalharness/report"
	"github.com/rerankloop/rerank/evalharness/runner"
	"github.com/rerankloop/rerank/evalharness/trec"
	"github.com/rerankloop/rerank/host/pluginclient"
	"github.com/rerankloop/rerank/host/search"
	"github.com/rerankloop/rerank/plugin/contract"
)

type evalFlags struct {
	dataset, split, metric string
	depth                  int
	json                   bool
	html, runs             string
	model, baseline        string
	index, analyzer        string
	k1, b                  float64
	k1Set, bSet            bool
	resamples              int
	seed                   uint64
	plugin                 pluginclient.Options
	// fuse: "" (the model's fusion.json if any), "none", "auto" or a weight.
	fuse, fuseMethod, fitSplit string
	fitQueries                 int
	saveFusion                 bool
	// cascadeModel reranks the candidate's top cascadeTop (a cross-encoder
	// after a fused bi-encoder).
	cascadeModel string
	cascadeTop   int
}

func init() {
	var f evalFlags
	cmd := &cobra.Command{
		Use:   "eval --dataset DIR|FILE [--split test] [--metric ndcg@10] [--model DIR [--baseline-model DIR]]",
		Short: "Evaluate BM25, and optionally reranking models, on a BEIR folder or a flat judgments file",
		Long: `Evaluate the first stage and optional cross-encoders on judged queries.

--dataset is a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv): the
first stage is BM25 over a bleve index of the corpus (--index DIR reuses or
builds one there; without it one is built in a temporary folder). Or it is a flat
judgments file (JSONL {"query","text","label"} or TSV query/text/label): each
query's candidates are its rows, first-stage order is the file's order.

--model reranks the first stage's top --depth; --baseline-model scores the same
candidates with a second checkpoint, and the two are compared (mean difference,
95% CI by paired bootstrap, p by paired randomization, wins/ties/losses).
Measures follow trec_eval: ndcg@k, mrr@k, map@k, recall@k, p@k.

A model's score is fused with BM25's as serving does it (per-query min-max,
weight a on BM25; or --fuse-method rrf): with the fusion.json beside the
checkpoint by default, --fuse none for the model alone, --fuse 0.3 for a given
a, or --fuse auto to fit a on the --fit-split queries of a BEIR folder (never
the evaluated split) and, with --save-fusion, keep it beside the checkpoint.
A fused model is reported twice: alone (role <role>_model) and fused (<role>).

--cascade-model adds a stage after --model, as serving's rerank.cascade does:
it rescores the top --cascade-top of the candidate's (fused) order and orders
them by its own scores; the rest keep the candidate's order below them. It is
reported as role cascade, beside the candidate alone. The time per query of
each stage measured in the run (mean, p50, p99) follows the table.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			f.k1Set, f.bSet = cmd.Flags().Changed("k1"), cmd.Flags().Changed("b")
			res, err := runEval(ctx, f, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if f.html != "" {
				if err := writeFileWith(f.html, res.WriteHTML); err != nil {
					return err
				}
			}
			if f.json {
				return res.WriteJSON(cmd.OutOrStdout())
			}
			if err := res.WriteTable(cmd.OutOrStdout()); err != nil {
				return err
			}
			if f.html != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "\nreport: %s\n", f.html)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dataset, "dataset", "", "BEIR folder or flat judgments file (required)")
	fl.StringVar(&f.split, "split", "test", "qrels split of a BEIR folder")
	fl.StringVar(&f.metric, "metric", "ndcg@10", "primary measure (ndcg@k, mrr@k, map@k, recall@k, p@k); all defaults are computed too")
	fl.IntVar(&f.depth, "depth", 100, "first-stage candidates per query (what a model reranks)")
	fl.BoolVar(&f.json, "json", false, "print one JSON object (every measure, per-query values, comparisons) instead of the table")
	fl.StringVar(&f.html, "report", "", "write a self-contained HTML report with plots to this file")
	fl.StringVar(&f.runs, "runs", "", "write each system's ranking as a TREC run file (<role>.run) into this folder")
	fl.StringVar(&f.model, "model", "", "checkpoint folder of the candidate cross-encoder")
	fl.StringVar(&f.baseline, "baseline-model", "", "checkpoint folder to compare the candidate with, on the same candidates")
	fl.StringVar(&f.index, "index", "", "bleve index folder of the corpus: used if present, built there if not")
	fl.StringVar(&f.analyzer, "analyzer", "", "analyzer when building the index: en or standard (default from the configuration: en)")
	fl.Float64Var(&f.k1, "k1", 0.9, "BM25 k1 (unset: the configuration's bm25.k1)")
	fl.Float64Var(&f.b, "b", 0.4, "BM25 b (unset: the configuration's bm25.b)")
	fl.IntVar(&f.resamples, "resamples", compare.DefaultResamples, "bootstrap resamples and randomization rounds")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of the bootstrap and randomization test")
	fl.StringVar(&f.fuse, "fuse", "", "fusion with BM25: none, auto, or the weight a on BM25 in [0,1] (default: the model's fusion.json, else none)")
	fl.StringVar(&f.fuseMethod, "fuse-method", fusion.MinMax, "minmax (weighted sum of per-query min-max scores), zscore (of per-query standardised scores) or rrf (reciprocal rank fusion)")
	fl.StringVar(&f.fitSplit, "fit-split", "train", "BEIR split whose queries --fuse auto fits a on")
	fl.IntVar(&f.fitQueries, "fit-queries", 0, "fit on this many of them, a seeded sample (0: all)")
	fl.BoolVar(&f.saveFusion, "save-fusion", false, "write the fitted fusion to fusion.json beside the checkpoint(s)")
	fl.StringVar(&f.cascadeModel, "cascade-model", "", "checkpoint folder of a next stage (a cross-encoder) that reranks the top --cascade-top of --model's order")
	fl.IntVar(&f.cascadeTop, "cascade-top", 20, "how many of --model's top candidates --cascade-model reranks")
	fl.StringVar(&f.plugin.EmbeddingCache, "embedding-cache", "", "folder of bi-encoders' document embeddings, kept for later runs (default: a temporary one: every run embeds afresh)")
	pluginFlags(fl, &f.plugin)
	rootCmd.AddCommand(cmd)
}

func runEval(ctx context.Context, f evalFlags, stderr io.Writer) (*report.Result, error) {
	if f.dataset == "" {
		return nil, fmt.Errorf("--dataset is required")
	}
	if _, err := metrics.Parse(f.metric); err != nil {
		return nil, fmt.Errorf("--metric: %w", err)
	}
	if f.depth < 1 {
		return nil, fmt.Errorf("--depth must be at least 1, got %d", f.depth)
	}
	if f.baseline != "" && f.model == "" {
		return nil, fmt.Errorf("--baseline-model needs --model: it is what the candidate is compared with")
	}
	if f.cascadeModel != "" && f.model == "" {
		return nil, fmt.Errorf("--cascade-model needs --model: it reranks the top of the model's order")
	}
	if f.cascadeModel != "" && f.cascadeTop < 1 {
		return nil, fmt.Errorf("--cascade-top must be at least 1, got %d", f.cascadeTop)
	}
	fuse, err := parseFuse(f)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(f.dataset)
	if err != nil {
		return nil, fmt.Errorf("--dataset: %w", err)
	}
	var (
		pool  *runner.Pool
		qrels dataset.Qrels
		first = "file order"
		meta  = report.Meta{Dataset: filepath.Base(filepath.Clean(f.dataset)), Depth: f.depth}
	)
	var fit *fitData
	if st.IsDir() {
		meta.Split = f.split
		pool, qrels, first, fit, err = bm25Pool(ctx, f, fuse.auto && f.model != "", stderr)
	} else {
		if fuse.auto {
			return nil, fmt.Errorf("--fuse auto needs a BEIR folder: a flat judgments file has no split to fit on")
		}
		var js []dataset.Judgment
		js, err = dataset.ReadJudgments(f.dataset)
		if err == nil {
			pool, qrels = runner.FromJudgments(js)
			meta.Depth = 0
			for _, c := range pool.Candidates {
				meta.Depth = max(meta.Depth, len(c))
			}
		}
	}
	if err != nil {
		return nil, err
	}
	systems := []report.System{{Role: report.FirstStage, Name: first, Run: pool.Run()}}
	var latency []report.Latency
	if pool.Took != nil {
		latency = append(latency, report.Latencies("bm25", pool.Took))
	}

	if f.model != "" {
		models := []struct{ role, path string }{{report.Baseline, f.baseline}, {report.Candidate, f.model}}
		client, err := pluginclient.Start(ctx, f.plugin)
		if err != nil {
			return nil, err
		}
		defer client.Close()
		for _, m := range models {
			if m.path == "" {
				continue
			}
			// Both load unserved under their role's name, so one can never evict the other.
			if _, err := client.Load(ctx, contract.LoadRequest{Path: m.path, Version: m.role}); err != nil {
				return nil, fmt.Errorf("load %s model %s: %w", m.role, m.path, err)
			}
			scorer := pluginclient.Scorer{Reranker: client, Model: m.role}
			var took []time.Duration
			run, err := runner.Rerank(ctx, pool, runner.TimedScorer{Scorer: scorer, Took: &took}, m.role, stderr)
			if err != nil {
				return nil, err
			}
			latency = append(latency, report.Latencies(m.role, took))
			name := filepath.Base(filepath.Clean(m.path))
			p, fused, err := fuse.params(ctx, m.path, scorer, fit, stderr)
			if err != nil {
				return nil, err
			}
			if !fused {
				systems = append(systems, report.System{Role: m.role, Name: name, Run: run})
				continue
			}
			systems = append(systems, report.System{Role: m.role + report.ModelAlone, Name: name + " alone", Run: run},
				report.System{Role: m.role, Name: fmt.Sprintf("%s fused (%s)", name, p), Run: pool.Fuse(run, p.Fuse)})
		}
		if f.cascadeModel != "" {
			s, l, err := evalCascade(ctx, client, pool, systems[len(systems)-1], f, stderr)
			if err != nil {
				return nil, err
			}
			systems, latency = append(systems, s), append(latency, l)
		}
	}

	if f.runs != "" {
		if err := os.MkdirAll(f.runs, 0o755); err != nil {
			return nil, err
		}
		for _, s := range systems {
			if err := trec.WriteFile(filepath.Join(f.runs, s.Role+".run"), s.Run, s.Role); err != nil {
				return nil, err
			}
		}
	}
	res, err := report.Compute(meta, qrels, systems, f.metric, compare.Options{Resamples: f.resamples, Seed: f.seed})
	if err == nil {
		res.Latency = latency
	}
	return res, err
}

// evalCascade reranks the top --cascade-top of prev (the candidate's ranking)
// with --cascade-model, loaded under the cascade role's name.
func evalCascade(ctx context.Context, client *pluginclient.Client, pool *runner.Pool, prev report.System, f evalFlags, stderr io.Writer) (report.System, report.Latency, error) {
	if _, err := client.Load(ctx, contract.LoadRequest{Path: f.cascadeModel, Version: report.Cascade}); err != nil {
		return report.System{}, report.Latency{}, fmt.Errorf("load the cascade model %s: %w", f.cascadeModel, err)
	}
	var took []time.Duration
	scorer := runner.TimedScorer{Scorer: pluginclient.Scorer{Reranker: client, Model: report.Cascade}, Took: &took}
	run, err := runner.Cascade(ctx, pool, prev.Run, scorer, f.cascadeTop, report.Cascade, stderr)
	if err != nil {
		return report.System{}, report.Latency{}, err
	}
	name := fmt.Sprintf("%s on the top %d of %s", filepath.Base(filepath.Clean(f.cascadeModel)), f.cascadeTop, prev.Role)
	return report.System{Role: report.Cascade, Name: name, Run: run}, report.Latencies(report.Cascade, took), nil
}

// fitData is what --fuse auto fits on: the fit split's BM25 candidates.
type fitData struct {
	pool  *runner.Pool
	qrels dataset.Qrels
	name  string
}

// bm25Pool retrieves the candidates of a BEIR split's queries with BM25 and,
// with fit set, those of the --fit-split queries too.
func bm25Pool(ctx context.Context, f evalFlags, fit bool, stderr io.Writer) (*runner.Pool, dataset.Qrels, string, *fitData, error) {
	b, err := dataset.OpenBEIR(f.dataset)
	if err != nil {
		return nil, nil, "", nil, err
	}
	queries, qrels, err := b.SplitQueries(f.split)
	if err != nil {
		return nil, nil, "", nil, err
	}
	var fd *fitData
	if fit {
		if f.fitSplit == f.split {
			return nil, nil, "", nil, fmt.Errorf("--fit-split %s is the evaluated split: fit the fusion on other queries", f.split)
		}
		fq, fqrels, err := b.SplitQueries(f.fitSplit)
		if err != nil {
			return nil, nil, "", nil, fmt.Errorf("--fuse auto: %w", err)
		}
		fq = sampleQueries(fq, f.fitQueries, f.seed)
		fd = &fitData{pool: &runner.Pool{Queries: fq}, qrels: fqrels, name: fmt.Sprintf("%s %s (%d queries)", filepath.Base(filepath.Clean(f.dataset)), f.fitSplit, len(fq))}
	}
	cfg, err := configs.Load(nil)
	if err != nil {
		return nil, nil, "", nil, err
	}
	if !f.k1Set {
		f.k1 = cfg.BM25.K1
	}
	if !f.bSet {
		f.b = cfg.BM25.B
	}
	if err := search.SetBM25(f.k1, f.b); err != nil {
		return nil, nil, "", nil, err
	}
	idx, cleanup, err := evalIndex(ctx, b, f, cfg.BM25.Analyzer, stderr)
	if err != nil {
		return nil, nil, "", nil, err
	}
	defer cleanup()
	name := fmt.Sprintf("bm25 (%s, k1 %g, b %g)", idx.Meta().Analyzer, f.k1, f.b)
	stage := search.Stage{Index: idx}
	if fd != nil {
		if fd.pool, err = runner.Retrieve(ctx, fd.pool.Queries, stage, f.depth, stderr); err != nil {
			return nil, nil, "", nil, err
		}
	}
	pool, err := runner.Retrieve(ctx, queries, stage, f.depth, stderr)
	return pool, qrels, name, fd, err
}

// evalIndex opens --index if it holds an index, else builds one there or, with
// no --index, in a temporary folder. cleanup closes the index and removes a
// temporary one.
func evalIndex(ctx context.Context, b *dataset.BEIR, f evalFlags, defaultAnalyzer string, stderr io.Writer) (idx *search.Index, cleanup func(), err error) {
	if f.index != "" {
		if idx, err := search.Open(f.index); err == nil {
			if f.analyzer != "" && f.analyzer != idx.Meta().Analyzer {
				idx.Close()
				return nil, nil, fmt.Errorf("index %s was built with the %s analyzer, not %s: pass another --index to build one", f.index, idx.Meta().Analyzer, f.analyzer)
			}
			return idx, func() { idx.Close() }, nil
		}
	}
	analyzer := f.analyzer
	if analyzer == "" {
		analyzer = defaultAnalyzer
	}
	dir, tmp := f.index, ""
	if dir == "" {
		if tmp, err = os.MkdirTemp("", "rerank-eval-index-"); err != nil {
			return nil, nil, err
		}
		dir = filepath.Join(tmp, "index")
	}
	removeTmp := func() {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
	}
	bar := progressbar.NewOptions(-1, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("indexing "+b.CorpusPath()),
		progressbar.OptionShowCount(), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionOnCompletion(func() { fmt.Fprintln(stderr) }))
	err = search.Build(ctx, dir, func(fn func(dataset.Doc) error) error { return dataset.ReadCorpus(b.CorpusPath(), fn) },
		search.Options{Analyzer: analyzer}, func(done, _ int) { bar.Set(done) })
	bar.Finish()
	if err == nil {
		idx, err = search.Open(dir)
	}
	if err != nil {
		removeTmp()
		return nil, nil, err
	}
	return idx, func() { idx.Close(); removeTmp() }, nil
}

// writeFileWith creates path and fills it with write.
func writeFileWith(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
