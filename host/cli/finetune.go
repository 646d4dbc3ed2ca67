package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/finetune/clickmodel"
	"github.com/rerankloop/rerank/finetune/impression"
	"github.com/rerankloop/rerank/finetune/pairs"
	"github.com/rerankloop/rerank/finetune/trainset"
	"github.com/rerankloop/rerank/host/pluginclient"
	"github.com/rerankloop/rerank/host/search"
	"github.com/rerankloop/rerank/plugin/contract"
)

type finetuneFlags struct {
	model, out, index, analyzer string
	data                        trainset.Options
	kind, valKind, scale        string
	conflicts, clickMode        string
	evalDepth, evalQueries      int
	fusionDepth                 int
	resume                      bool
	train                       contract.TrainConfig
	plugin                      pluginclient.Options
	teacher                     teacherFlags
}

func init() {
	var f finetuneFlags
	cmd := &cobra.Command{
		Use:   "finetune --model BASE --train FILE|DIR|LOGS [--val FILE] --out DIR",
		Short: "Fine-tune a cross-encoder on judgments, a BEIR folder or click logs",
		Long: `Fine-tune a cross-encoder checkpoint in the plugin process.

--train is a judgments file (JSONL {"query","text","label"} or TSV), a BEIR
folder (qrels/<split>.tsv with its corpus) or a click-log export (rerank logs
export; labels from a position-bias click model). The data are checked, split
80/20 by query unless --val is given, and completed with hard negatives from
BM25 and random ones; the report is printed and written to OUT/data.

Validation reranks each validation query's BM25 top --eval-depth (the index at
--index, built there from the corpus if missing; a BEIR source brings its
corpus) and measures NDCG@10 and MRR@10 every --eval-steps and at each epoch's
end. Without an index, a query's candidates are its judged documents.

--teacher distils instead: the teacher checkpoint (a bi-encoder fused with BM25
by the fusion.json beside it, or any cross-encoder or bi-encoder) scores each
training query's BM25 top --teacher-depth and labelled documents, and the
student learns the softmax of those standardised scores with the listwise
loss, optionally mixed with the labels (--label-weight). Validation stays on
the judged labels.

A bi-encoder is validated fused with BM25, its weight fitted on the validation
queries at every evaluation; the kept checkpoint's fusion is then fitted again
over BM25's top --fusion-depth (default: rerank.window, the depth it will
serve at) when that differs from --eval-depth.

OUT receives checkpoint-<step> folders (the best and the last), a model card
(README.md) and training_report.json. Ctrl-C stops after the current step and
keeps a checkpoint; --resume continues from the last one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runFinetune(ctx, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.model, "model", "", "base checkpoint folder (rerank model init makes one from an encoder)")
	fl.StringVar(&f.data.Train, "train", "", "training data: judgments file, BEIR folder or click-log export")
	fl.StringVar(&f.out, "out", "", "output folder")
	fl.StringVar(&f.data.Val, "val", "", "validation data (default: 20% of --train's queries)")
	fl.StringVar(&f.kind, "kind", "", "format of --train: judgments, beir or clicks (default: detected)")
	fl.StringVar(&f.valKind, "val-kind", "", "format of --val (default: detected)")
	fl.StringVar(&f.data.Split, "split", trainset.DefaultSplit, "qrels split of a BEIR --train")
	fl.StringVar(&f.data.ValSplit, "val-split", trainset.DefaultValSplit, "qrels split of a BEIR --val")
	fl.Float64Var(&f.data.ValFraction, "val-fraction", 0.2, "share of --train's queries held out for validation")
	fl.StringVar(&f.scale, "scale", "auto", "label scale: binary, graded or auto")
	fl.StringVar(&f.conflicts, "conflicts", string(pairs.ConflictMajority), "conflicting labels: majority or drop")
	fl.StringVar(&f.data.Corpus, "corpus", "", "corpus JSONL: random negatives, click-log document texts, the index when one is built")
	fl.StringVar(&f.index, "index", "", "BM25 index folder: used if present, built there from the corpus if not")
	fl.StringVar(&f.analyzer, "analyzer", "", "analyzer when building the index (default: bm25.analyzer)")
	fl.IntVar(&f.data.Negatives.Hard, "hard-negatives", trainset.DefaultHard, "hard negatives per query from BM25")
	fl.IntVar(&f.data.Negatives.Depth, "hard-depth", trainset.DefaultHardDepth, "BM25 depth the hard negatives are drawn from")
	fl.IntVar(&f.data.Negatives.Random, "random-negatives", trainset.DefaultRandom, "random negatives per query")
	fl.StringVar(&f.clickMode, "click-labels", string(clickmodel.Graded), "click-log labels: graded (0-4) or ipw (binary, inverse-propensity weighted)")
	fl.Float64Var(&f.data.Clicks.MaxWeight, "max-weight", 10, "cap on inverse-propensity weights")
	fl.Int64Var(&f.data.Clicks.MinDwellMS, "min-dwell-ms", 0, "clicks with a shorter dwell do not count")
	fl.IntVar(&f.evalDepth, "eval-depth", 100, "BM25 candidates reranked per validation query")
	fl.IntVar(&f.fusionDepth, "fusion-depth", 0, "BM25 candidates per validation query the kept bi-encoder's fusion is fitted on at the end (0: rerank.window)")
	fl.IntVar(&f.evalQueries, "eval-queries", 0, "validate on at most this many validation queries, drawn by the seed (0: all)")
	fl.BoolVar(&f.resume, "resume", false, "continue the run in --out from its last checkpoint")
	fl.StringVar(&f.teacher.path, "teacher", "", "distil from this checkpoint's scores (fused with BM25 when it has a fusion.json)")
	fl.IntVar(&f.teacher.depth, "teacher-depth", 20, "BM25 candidates per training query the teacher scores")
	fl.Float64Var(&f.teacher.opt.Temperature, "teacher-temperature", 1, "divides the teacher's standardised scores before the softmax (lower: sharper)")
	fl.Float64Var(&f.teacher.opt.LabelWeight, "label-weight", 0, "share of the target taken from the labels (0: the teacher alone)")

	t := &f.train
	fl.IntVar(&t.Epochs, "epochs", 2, "passes over the training pairs (1-3 recommended)")
	fl.Float64Var(&t.LearningRate, "lr", 3e-5, "peak learning rate of AdamW")
	fl.IntVar(&t.BatchSize, "batch-size", 8, "pairs per training step")
	fl.IntVar(&t.MaxLength, "max-length", 256, "tokens per (query, document) pair; longer pairs are truncated")
	fl.BoolVar(&t.Window, "window", false, "train on a long document's first window and validate by its best window")
	fl.IntVar(&t.EvalSteps, "eval-steps", 100, "evaluate every this many steps")
	fl.IntVar(&t.EvalBatchSize, "eval-batch-size", 32, "pairs per forward pass when evaluating")
	fl.IntVar(&t.Patience, "patience", 0, "stop after this many evaluations without improvement (0: never)")
	fl.Uint64Var(&t.Seed, "seed", 42, "seed of the split, negatives, data order, dropout and a fresh head")
	fl.StringVar(&t.Loss, "loss", "", "cross-encoder: bce (binary cross-entropy on label/max, the default) or listwise (softmax per query); bi-encoder: contrastive (in-batch and hard negatives, the default)")
	fl.Float64Var(&t.PosWeight, "pos-weight", 0, "BCE weight of positive pairs (0: none)")
	fl.Float64Var(&t.WarmupRatio, "warmup-ratio", 0.1, "share of the steps the learning rate warms up over")
	fl.Float64Var(&t.WeightDecay, "weight-decay", 0.01, "AdamW weight decay (not on biases and LayerNorm)")
	fl.Float64Var(&t.MaxGradNorm, "max-grad-norm", 1, "clip gradients to this global L2 norm")

	fl.StringVar(&f.plugin.PluginPath, "plugin", "", "plugin binary (default: rerank-plugin beside rerank)")
	fl.StringVar(&f.plugin.Device, "device", "auto", "auto, cpu or cuda")
	fl.StringVar(&f.plugin.Precision, "precision", "auto", "auto (bf16 autocast and TF32 on CUDA, fp32 on CPU), fp32 or bf16")
	fl.IntVar(&f.plugin.Threads, "threads", 0, "CPU threads for the model (0: libtorch default)")
	rootCmd.AddCommand(cmd)
}

func runFinetune(ctx context.Context, f finetuneFlags, stdout, stderr io.Writer) error {
	switch {
	case f.model == "":
		return errors.New("--model is required")
	case f.data.Train == "":
		return errors.New("--train is required")
	case f.out == "":
		return errors.New("--out is required")
	case f.evalDepth < 1:
		return fmt.Errorf("--eval-depth must be at least 1, got %d", f.evalDepth)
	case f.fusionDepth < 0:
		return fmt.Errorf("--fusion-depth must not be negative, got %d", f.fusionDepth)
	}
	var err error
	if f.teacher.path != "" {
		if err := checkTeacherLoss(&f.train); err != nil {
			return err
		}
		// The teacher's candidates replace mined negatives.
		f.data.Negatives.Hard, f.data.Negatives.Random = 0, 0
	}
	if f.data.Scale, err = pairs.ParseScale(f.scale); err != nil {
		return err
	}
	if f.data.Clicks.Mode, err = clickmodel.ParseMode(f.clickMode); err != nil {
		return err
	}
	f.data.Kind, f.data.ValKind = trainset.Kind(f.kind), trainset.Kind(f.valKind)
	f.data.Conflicts, f.data.Seed = pairs.ConflictPolicy(f.conflicts), f.train.Seed
	cfg, err := configs.Load(nil)
	if err != nil {
		return err
	}
	if err := search.SetBM25(cfg.BM25.K1, cfg.BM25.B); err != nil {
		return err
	}
	if f.analyzer == "" {
		f.analyzer = cfg.BM25.Analyzer
	}
	if f.fusionDepth == 0 {
		f.fusionDepth = cfg.Rerank.Window
	}

	// A resumed run trains on exactly the data of the first one: they are
	// read back, not rebuilt (the index or the logs may have changed since).
	reqPath := filepath.Join(f.out, "data", requestFile)
	var (
		req      contract.FinetuneRequest
		client   *pluginclient.Client // started early when the teacher scores
		indexDir string               // the BM25 index, kept for the fusion's final fit
	)
	if f.resume {
		if req, err = readFinetuneRequest(reqPath); err != nil {
			return fmt.Errorf("--resume reads the data the first run prepared: %w", err)
		}
		fmt.Fprintf(stdout, "resuming with the data the first run prepared (%s)\n", reqPath)
		req.BaseModel, req.OutDir, req.Resume, req.Config = f.model, f.out, true, f.train
		if ix, err := search.Open(f.index); err == nil {
			ix.Close()
			indexDir = f.index
		}
	} else {
		if old, _ := filepath.Glob(filepath.Join(f.out, "checkpoint-*")); len(old) > 0 {
			return fmt.Errorf("%s already holds a training run (%s): continue it with --resume or choose another --out", f.out, filepath.Base(old[0]))
		}
		dir, cleanup, err := finetuneIndex(ctx, &f, stdout, stderr)
		if err != nil {
			return err
		}
		defer cleanup()
		indexDir = dir
		if req, client, err = prepareFinetune(ctx, f, indexDir, stdout, stderr); err != nil {
			return err
		}
		if err := writeFileWith(reqPath, func(w io.Writer) error { return json.NewEncoder(w).Encode(req) }); err != nil {
			return err
		}
	}

	if client == nil {
		if client, err = pluginclient.Start(ctx, f.plugin); err != nil {
			return err
		}
	}
	defer client.Close()
	p := newFinetuneProgress(stdout, stderr)
	res, err := client.Finetune(ctx, req, p.update)
	p.finish()
	if res.Stopped == "" { // no result at all
		return err
	}
	if res.BestCheckpoint != "" {
		fmt.Fprintf(stdout, "best checkpoint: %s (step %d)\n", res.BestCheckpoint, res.BestStep)
		if len(req.Validation) > 0 {
			fmt.Fprintf(stdout, "validation NDCG@10: base %.4f (step 0), best %.4f (step %d); MRR@10 %.4f -> %.4f\n",
				res.Base.NDCG10, res.Best.NDCG10, res.BestStep, res.Base.MRR10, res.Best.MRR10)
		}
	}
	fmt.Fprintf(stdout, "training: %d steps, %.2f pairs/s; report %s\n", res.Steps, res.PairsPerSecond, res.ReportPath)
	if err == nil && res.BestCheckpoint != "" && indexDir != "" && f.fusionDepth != f.evalDepth {
		if err := refitFusion(ctx, client, res.BestCheckpoint, req.Validation, indexDir, f.fusionDepth, stdout); err != nil {
			return fmt.Errorf("fitting the kept checkpoint's fusion over BM25's top %d: %w", f.fusionDepth, err)
		}
	}
	switch {
	case err != nil && errors.Is(err, context.Canceled):
		return fmt.Errorf("cancelled at step %d: continue with the same command and --resume", res.Steps)
	case err != nil:
		return err
	case res.Stopped == contract.StopDiverged:
		return errors.New("training diverged; the best checkpoint so far is kept")
	}
	return nil
}

// requestFile keeps the prepared request in OUT/data for --resume.
const requestFile = "request.json"

func readFinetuneRequest(path string) (contract.FinetuneRequest, error) {
	var req contract.FinetuneRequest
	b, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(b, &req)
	}
	return req, err
}

// prepareFinetune builds, checks and reports the training data (written to
// OUT/data) and the validation candidates; with --teacher it starts the
// plugin to score the candidates and returns it for the training.
func prepareFinetune(ctx context.Context, f finetuneFlags, indexDir string, stdout, stderr io.Writer) (req contract.FinetuneRequest, client *pluginclient.Client, err error) {
	defer func() {
		if err != nil && client != nil {
			client.Close()
			client = nil
		}
	}()
	// The index, opened here by path, is what the data's sources read.
	var idx *search.Index
	if indexDir != "" {
		if idx, err = search.Open(indexDir); err != nil {
			return req, nil, err
		}
		defer idx.Close()
		f.data.Retriever, f.data.Docs = search.Stage{Index: idx}, idx.DocText
	} else if f.data.Negatives.Hard > 0 {
		fmt.Fprintln(stdout, "no BM25 index (give --index or --corpus): no hard negatives")
		f.data.Negatives.Hard = 0
	}
	data, err := trainset.Build(ctx, f.data)
	if err != nil {
		return req, nil, err
	}
	if f.teacher.path != "" {
		if client, err = pluginclient.Start(ctx, f.plugin); err != nil {
			return req, nil, err
		}
		if err := distil(ctx, f.teacher, data, idx, client, stdout); err != nil {
			return req, client, err
		}
	}
	fmt.Fprint(stdout, data.Report.Text())
	if err := data.WriteDir(filepath.Join(f.out, "data")); err != nil {
		return req, client, err
	}
	req, err = finetuneRequest(ctx, f, data, idx, stdout)
	return req, client, err
}

// finetuneIndex finds the BM25 index for hard negatives, click-log texts and
// validation candidates: --index if it holds one, else one built (at
// --index, or in a temporary folder) from --corpus or a BEIR source's
// corpus. With neither there is no index ("").
func finetuneIndex(ctx context.Context, f *finetuneFlags, stdout, stderr io.Writer) (string, func(), error) {
	none := func() {}
	if f.index != "" {
		if idx, err := search.Open(f.index); err == nil {
			idx.Close()
			return f.index, none, nil
		}
	}
	corpus := f.data.Corpus
	if corpus == "" {
		for _, src := range []string{f.data.Train, f.data.Val} {
			if st, err := os.Stat(src); err == nil && st.IsDir() && (f.kind == "" || f.kind == string(trainset.KindBEIR)) {
				if b, err := dataset.OpenBEIR(src); err == nil {
					corpus = b.CorpusPath()
					break
				}
			}
		}
	}
	if corpus == "" {
		if f.index != "" {
			return "", none, fmt.Errorf("--index %s holds no index and there is no corpus to build one from (give --corpus)", f.index)
		}
		return "", none, nil
	}
	dir, cleanup := f.index, none
	if dir == "" {
		tmp, err := os.MkdirTemp("", "rerank-finetune-index-")
		if err != nil {
			return "", none, err
		}
		dir, cleanup = filepath.Join(tmp, "index"), func() { os.RemoveAll(tmp) }
	}
	if err := buildIndex(ctx, corpus, dir, f.analyzer, 1000, stderr, stdout); err != nil {
		cleanup()
		return "", none, err
	}
	return dir, cleanup, nil
}

// finetuneRequest turns the prepared pairs into the plugin's request, with
// each validation query's candidates: BM25's top --eval-depth when there is
// an index, else the query's judged documents.
func finetuneRequest(ctx context.Context, f finetuneFlags, data *trainset.Result, idx *search.Index, stdout io.Writer) (contract.FinetuneRequest, error) {
	val := pairs.LimitQueries(data.Validation, f.evalQueries, f.train.Seed)
	o := trainset.RequestOptions{Base: f.model, Out: f.out, Config: f.train, Source: dataSource(f, data.Report), Validation: val, Depth: f.evalDepth}
	if idx != nil {
		o.FirstStage = search.Stage{Index: idx}
	}
	req, err := data.Request(ctx, o)
	if err != nil {
		return req, err
	}
	req.Resume = f.resume
	if len(val) < len(data.Validation) {
		fmt.Fprintf(stdout, "validating on %d validation queries (--eval-queries, seed %d)\n", len(req.Validation), f.train.Seed)
	}
	if idx == nil {
		fmt.Fprintf(stdout, "validation: %d queries, each reranking its judged documents (no BM25 index)\n", len(req.Validation))
		return req, nil
	}
	withRelevant := 0
	for _, q := range req.Validation {
		if slices.ContainsFunc(q.Candidates, func(c int) bool { return q.Judged[req.Docs[c].ID] > 0 }) {
			withRelevant++
		}
	}
	fmt.Fprintf(stdout, "validation: %d queries; BM25's top %d holds a relevant document for %d of them\n", len(req.Validation), f.evalDepth, withRelevant)
	if len(req.Validation) > 0 && withRelevant == 0 {
		fmt.Fprintln(stdout, "WARNING: no validation query finds a judged relevant document in the index: do the judgments' doc_id values name the index's documents?")
	}
	return req, nil
}

// dataSource describes the data for the model card.
func dataSource(f finetuneFlags, r *trainset.Report) string {
	s := fmt.Sprintf("%s %s", r.Train.Kind, r.Train.Path)
	if r.Train.Split != "" {
		s += ", split " + r.Train.Split
	}
	if r.Train.Kind == trainset.KindClicks {
		if from, to, err := exportWindow(r.Train.Path); err == nil {
			s += fmt.Sprintf(", searches from %s to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
		}
	}
	if r.Val != nil {
		s += fmt.Sprintf("; validation %s %s", r.Val.Kind, r.Val.Path)
	} else {
		s += fmt.Sprintf("; validation: %.0f%% of the queries, split by query with seed %d", 100*f.data.ValFraction, f.data.Seed)
	}
	if n := r.Negatives; n != nil {
		s += fmt.Sprintf("; negatives: %d hard from BM25's top %d, %d random", n.Hard, n.Depth, n.Random)
	}
	if d := r.Distillation; d != nil {
		s += "; " + strings.TrimSuffix(d.Text(), "\n")
	}
	return s
}

// exportWindow is the time span of a click-log export.
func exportWindow(path string) (from, to time.Time, err error) {
	fh, err := os.Open(path)
	if err != nil {
		return from, to, err
	}
	defer fh.Close()
	err = impression.Read(fh, func(e impression.Impression) error {
		if from.IsZero() || e.Time.Before(from) {
			from = e.Time
		}
		if e.Time.After(to) {
			to = e.Time
		}
		return nil
	})
	return from, to, err
}

// finetuneProgress draws the progress bar (on a terminal) and prints the
// plugin's messages and every evaluation.
type finetuneProgress struct {
	stdout, stderr io.Writer
	bar            *progressbar.ProgressBar
}

func newFinetuneProgress(stdout, stderr io.Writer) *finetuneProgress {
	return &finetuneProgress{stdout: stdout, stderr: stderr}
}

func (p *finetuneProgress) println(format string, args ...any) {
	if p.bar != nil {
		p.bar.Clear()
	}
	fmt.Fprintf(p.stdout, format+"\n", args...)
}

func (p *finetuneProgress) update(u contract.FinetuneProgress) {
	switch {
	case u.Message != "":
		p.println("%s", u.Message)
	case u.Eval != nil:
		e := *u.Eval
		best := ""
		if e.Best {
			best = " (best)"
		}
		loss := "base model"
		if e.Step > 0 {
			loss = fmt.Sprintf("train loss %.4f", e.TrainLoss)
		}
		p.println("step %d/%d, epoch %.2f: NDCG@10 %.4f, MRR@10 %.4f%s, %s [evaluated in %.0f s; eta %s]",
			e.Step, u.TotalSteps, e.Epoch, e.NDCG10, e.MRR10, best, loss, e.Seconds, u.ETA.Round(time.Second))
	default:
		if p.bar == nil {
			p.bar = progressbar.NewOptions(u.TotalSteps, progressbar.OptionSetWriter(p.stderr), progressbar.OptionSetVisibility(isTerminal(p.stderr)),
				progressbar.OptionShowCount(), progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.stderr) }))
		}
		p.bar.Describe(fmt.Sprintf("epoch %d, loss %.4f, lr %.2e, %.1f pairs/s, eta %s", u.Epoch, u.Loss, u.LearningRate, u.PairsPerSecond, u.ETA.Round(time.Second)))
		p.bar.Set(u.Step)
	}
}

func (p *finetuneProgress) finish() {
	if p.bar != nil {
		p.bar.Exit()
	}
}
