package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/rerankloop/rerank/evalharness/fusion"
	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
	"github.com/rerankloop/rerank/plugin/internal/bert"
	"github.com/rerankloop/rerank/plugin/internal/tokenize"
)

// The divergence guard compares each loss with the median of the last
// lossWindow losses once it has minLossHistory of them, and stops training
// when highLossRun losses in a row exceed DivergenceFactor times it. One
// hard batch is not divergence: a contrastive loss falls near zero, and a
// batch at 0.51 against a median of 0.047 stopped a SciFact fine-tune at its
// last step, at a learning rate of 4e-7.
const (
	lossWindow     = 100
	minLossHistory = 5
	highLossRun    = 3
)

type trainer struct {
	req      contract.FinetuneRequest
	cfg      contract.TrainConfig
	device   gotch.Device
	prec     bert.Precision
	out      string
	progress func(contract.FinetuneProgress)

	tok     *tokenize.Encoder
	tokJSON []byte
	model   *bert.Model
	opt     *optimizer
	ex      []example
	plan    [][]step
	ends    []int // the global step that ends each epoch
	total   int
	sched   Schedule
	val     *valSet

	st        state
	lastSaved int
	// fusion is the last evaluation's fit with the first stage (a
	// bi-encoder's), saved as fusion.json with its checkpoint; baseFusion
	// the base model's own.
	fusion, baseFusion *fusion.Params
	rep                report

	// this session's time, for throughput and the ETA
	sessionSteps, sessionPairs int
	sessionTrain, evalTime     time.Duration
	evals                      int
	phases                     phaseTimes
}

// phaseTimes splits this session's training steps: forward pass and loss,
// backward pass, and the update (clipping and AdamW).
type phaseTimes struct {
	Forward  float64 `json:"forward"`
	Backward float64 `json:"backward"`
	Update   float64 `json:"update"`
}

// run trains as req says. It must run on a goroutine whose OS thread is
// locked (see Service). Divergence and early stopping end it without an
// error; cancellation returns the result so far with ctx's error.
func run(ctx context.Context, req contract.FinetuneRequest, device gotch.Device, prec bert.Precision, progress func(contract.FinetuneProgress)) (contract.FinetuneResult, error) {
	if progress == nil {
		progress = func(contract.FinetuneProgress) {}
	}
	// Grad mode is per thread: this one trains (the engine's thread stays off).
	if _, err := ts.GradSetEnabled(true); err != nil {
		return contract.FinetuneResult{}, err
	}
	t := &trainer{req: req, device: device, prec: prec, progress: progress}
	defer t.close()
	if err := t.setup(); err != nil {
		return contract.FinetuneResult{}, err
	}
	return t.train(ctx)
}

func (t *trainer) close() {
	if t.opt != nil {
		t.opt.free()
	}
	if t.model != nil {
		t.model.Free()
	}
}

func (t *trainer) log(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	t.rep.Log = append(t.rep.Log, msg)
	t.progress(contract.FinetuneProgress{TotalSteps: t.total, Step: t.st.Step, Message: msg})
}

func (t *trainer) warn(msg string) {
	t.rep.Warnings = append(t.rep.Warnings, msg)
	t.log("WARNING: %s", msg)
}

func (t *trainer) setup() error {
	req := t.req
	switch {
	case req.BaseModel == "":
		return fmt.Errorf("%w: no base model", contract.ErrInvalidRequest)
	case req.OutDir == "":
		return fmt.Errorf("%w: no output folder", contract.ErrInvalidRequest)
	case len(req.Train) == 0:
		return fmt.Errorf("%w: no training pairs", contract.ErrInvalidRequest)
	}
	labels := make([]float64, len(req.Train))
	for i, p := range req.Train {
		labels[i] = p.Label
	}
	cfg, warns, err := settle(req.Config, labels)
	if err != nil {
		return fmt.Errorf("%w: %v", contract.ErrInvalidRequest, err)
	}
	t.cfg = cfg
	if t.out, err = filepath.Abs(req.OutDir); err != nil {
		return err
	}
	v := readVersions(deviceName(t.device))
	t.rep.Environment = v
	t.log("gotch %s, libtorch %s (headers %s) from %s, BLAS %s, %s, device %s, precision %s", v.Gotch, v.TorchRuntime, v.TorchHeaders, v.TorchLibrary, v.BLAS, v.Go, v.Device, t.prec)
	t.log("binary %s", v.Binary)

	// Resume from the latest checkpoint, or refuse to mix two runs in one folder.
	modelDir := req.BaseModel
	steps, err := checkpoints(t.out)
	if err != nil {
		return err
	}
	if req.Resume {
		if len(steps) == 0 {
			return fmt.Errorf("%w: nothing to resume in %s (no checkpoint-<step> folder with %s)", contract.ErrInvalidRequest, t.out, StateFile)
		}
		modelDir = checkpointDir(t.out, slices.Max(steps))
		if t.st, err = readState(modelDir); err != nil {
			return err
		}
		t.rep.ResumedFrom = t.st.Step
	} else if len(steps) > 0 {
		return fmt.Errorf("%w: %s already holds a training run (checkpoint-%d); resume it or choose another output folder", contract.ErrInvalidRequest, t.out, slices.Max(steps))
	}
	if err := os.MkdirAll(t.out, 0o755); err != nil {
		return err
	}
	t.log("model %s (base %s), output %s", modelDir, req.BaseModel, t.out)

	tokPath := filepath.Join(modelDir, checkpoint.TokenizerFile)
	if t.tokJSON, err = os.ReadFile(tokPath); err != nil {
		return err
	}
	if t.tok, err = tokenize.Load(tokPath); err != nil {
		return err
	}
	model, lrep, err := bert.Load(modelDir, t.device, cfg.Seed)
	if err != nil {
		return err
	}
	model.Precision = t.prec
	t.model = model
	if p, found, err := fusion.Read(req.BaseModel); err != nil {
		return err
	} else if found {
		t.baseFusion = &p
	}
	if cfg.Loss, err = lossFor(req.Config.Loss, model.Cfg.Kind); err != nil {
		return fmt.Errorf("%w: %v", contract.ErrInvalidRequest, err)
	}
	t.cfg.Loss = cfg.Loss
	if len(lrep.Initialised) > 0 {
		t.rep.InitialisedHead = lrep.Initialised
		t.log("%s is a plain encoder: initialised %v from seed %d", modelDir, lrep.Initialised, cfg.Seed)
	}
	if limit := model.Cfg.MaxPositions; cfg.MaxLength > limit {
		warns = append(warns, fmt.Sprintf("max length %d exceeds the model's %d positions: using %d", cfg.MaxLength, limit, limit))
		t.cfg.MaxLength, cfg.MaxLength = limit, limit
	}
	if t.rep.BaseModelSHA256, err = checkpoint.Hash(req.BaseModel); err != nil {
		return err
	}

	var encWarn []string
	textLen := 0 // a bi-encoder embeds texts apart, at most this many tokens each
	if model.Cfg.Kind == checkpoint.BiEncoder {
		textLen = min(cfg.MaxLength, model.Cfg.Sentence.MaxSeqLength)
	}
	if t.ex, encWarn, err = encodeTrain(t.tok, req, cfg, textLen); err != nil {
		return err
	}
	warns = append(warns, encWarn...)
	if textLen > 0 {
		t.val, err = encodeValTexts(t.tok, req, textLen)
	} else {
		t.val, err = encodeVal(t.tok, req, cfg)
	}
	if err != nil {
		return err
	}
	if len(req.Validation) == 0 {
		warns = append(warns, "no validation queries: nothing is evaluated and the last checkpoint counts as the best")
	}
	t.plan = plan(t.ex, cfg)
	for _, e := range t.plan {
		t.total += len(e)
		t.ends = append(t.ends, t.total)
	}
	t.sched = newSchedule(cfg.LearningRate, cfg.WarmupRatio, t.total)
	hash := fingerprint(req)
	if req.Resume {
		if err := t.checkResume(hash); err != nil {
			return err
		}
	} else {
		t.st = state{Seed: cfg.Seed, BaseModel: req.BaseModel, Note: resumeNote}
	}
	t.st.DataHash, t.st.TotalSteps, t.st.Config = hash, t.total, cfg
	params, decay := model.Params()
	if t.opt, err = newOptimizer(params, decay, cfg.WeightDecay); err != nil {
		return err
	}
	if req.Resume && t.st.Step > 0 && t.st.Step < t.total { // a finished run has nothing left to update
		if err := t.restoreOptimizer(); err != nil {
			warns = append(warns, fmt.Sprintf("AdamW's moments restart at step %d: %v", t.st.Step, err))
		}
	}

	cj, _ := json.Marshal(cfg)
	t.log("config %s", cj)
	t.log("data: %d training pairs (%d queries), %d validation queries with %d candidate inputs; %d steps over %d epochs, warm-up %d steps",
		len(t.ex), countGroups(t.ex), len(req.Validation), len(t.val.pairs)+len(t.val.docOrder), t.total, cfg.Epochs, t.sched.Warmup)
	if req.Resume {
		t.log("resuming at step %d of %d (%s)", t.st.Step, t.total, resumeNote)
	}
	for _, w := range warns {
		t.warn(w)
	}
	return nil
}

// checkResume refuses to continue a run on other data or with settings
// that change the data order.
func (t *trainer) checkResume(hash string) error {
	old, now := t.st.Config, t.cfg
	switch {
	case t.st.DataHash != hash:
		return fmt.Errorf("%w: resume: the training or validation data differ from those of the checkpointed run", contract.ErrInvalidRequest)
	case old.Epochs != now.Epochs || old.BatchSize != now.BatchSize || old.Seed != now.Seed || old.Loss != now.Loss ||
		old.MaxLength != now.MaxLength || old.Window != now.Window || old.LabelMax != now.LabelMax:
		return fmt.Errorf("%w: resume: epochs, batch size, seed, loss, max length, window and label scale must stay as they were (%+v)", contract.ErrInvalidRequest, old)
	case t.st.TotalSteps != t.total || t.st.Step > t.total:
		return fmt.Errorf("%w: resume: the checkpointed run had %d steps, this one has %d", contract.ErrInvalidRequest, t.st.TotalSteps, t.total)
	}
	if old.LearningRate != now.LearningRate {
		t.rep.Warnings = append(t.rep.Warnings, fmt.Sprintf("resumed with learning rate %g instead of %g", now.LearningRate, old.LearningRate))
	}
	if _, err := os.Stat(checkpointDir(t.out, t.st.BestStep)); err != nil {
		return fmt.Errorf("resume: the best checkpoint is gone: %w", err)
	}
	t.lastSaved = t.st.Step
	return nil
}

func countGroups(ex []example) int {
	n := 0
	for _, e := range ex {
		n = max(n, e.group+1)
	}
	return n
}

// locate turns a global step (0-based) into its epoch and index there.
func (t *trainer) locate(s int) (epoch, index int) {
	start := 0
	for e, end := range t.ends {
		if s < end {
			return e, s - start
		}
		start = end
	}
	return len(t.ends) - 1, 0
}

// evaluated reports whether the state after global step s (1-based) is
// evaluated: every EvalSteps and at every epoch's end.
func (t *trainer) evaluated(s int) bool {
	return s%t.cfg.EvalSteps == 0 || slices.Contains(t.ends, s)
}

func (t *trainer) train(ctx context.Context) (contract.FinetuneResult, error) {
	if t.st.Step == 0 && len(t.st.Curve) == 0 {
		if err := t.evaluateAndSave(ctx); err != nil {
			return t.stopped(ctx, err)
		}
	}
	for t.st.Step < t.total {
		if ctx.Err() != nil {
			return t.stopped(ctx, ctx.Err())
		}
		e, i := t.locate(t.st.Step)
		st := t.plan[e][i]
		lr := t.sched.LR(t.st.Step)
		began := time.Now()
		gc := debug.SetGCPercent(-1) // no finalizer may run during a step (see the libtorch notes)
		loss, norm, diverged, err := t.step(st, lr)
		debug.SetGCPercent(gc)
		runtime.GC()
		if (t.st.Step+1)%trimEvery == 0 {
			releaseHeap()
		}
		if err != nil {
			return t.finish(contract.StopFailed, fmt.Sprintf("libtorch failed at step %d: %v", t.st.Step+1, err), err)
		}
		if diverged != "" {
			return t.finish(contract.StopDiverged, fmt.Sprintf("training diverged at step %d: %s, at learning rate %.3g (peak %.3g); kept the best checkpoint so far (%s); try a lower learning rate, e.g. %.0e",
				t.st.Step+1, diverged, lr, t.cfg.LearningRate, checkpointDir(t.out, t.st.BestStep), min(t.cfg.LearningRate/10, DefaultLearningRate)), nil)
		}
		took := time.Since(began)
		n := st.size()
		t.st.Step++
		t.st.Epoch = float64(e) + float64(i+1)/float64(len(t.plan[e]))
		t.st.RecentLosses = append(t.st.RecentLosses, loss)
		if len(t.st.RecentLosses) > lossWindow {
			t.st.RecentLosses = t.st.RecentLosses[1:]
		}
		t.st.LossSum += loss
		t.st.LossN++
		t.st.TrainSeconds += took.Seconds()
		t.st.PairsSeen += n
		t.sessionSteps++
		t.sessionPairs += n
		t.sessionTrain += took
		t.progress(contract.FinetuneProgress{Step: t.st.Step, TotalSteps: t.total, Epoch: e + 1, Loss: loss, LearningRate: lr,
			GradNorm: norm, ETA: t.eta(), PairsPerSecond: float64(t.sessionPairs) / t.sessionTrain.Seconds()})
		if t.evaluated(t.st.Step) {
			if err := t.evaluateAndSave(ctx); err != nil {
				return t.stopped(ctx, err)
			}
			if p := t.cfg.Patience; p > 0 && t.st.SinceBest >= p {
				return t.finish(contract.StopEarly, fmt.Sprintf("stopped early at step %d: %d evaluations without a better NDCG@10 than step %d's %.4f",
					t.st.Step, t.st.SinceBest, t.st.BestStep, t.st.BestNDCG), nil)
			}
		}
	}
	return t.finish(contract.StopCompleted, fmt.Sprintf("completed %d steps", t.total), nil)
}

// stopped ends the run after err: a cancellation keeps what was trained,
// anything else is a failure.
func (t *trainer) stopped(ctx context.Context, err error) (contract.FinetuneResult, error) {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return t.finish(contract.StopCancelled, fmt.Sprintf("cancelled at step %d of %d; continue with resume", t.st.Step, t.total), err)
	}
	return t.finish(contract.StopFailed, fmt.Sprintf("failed at step %d: %v", t.st.Step, err), err)
}

// step runs one update: forward with dropout, loss, backward, clipping and
// AdamW at learning rate lr. A non-finite or exploding loss or gradient
// norm is reported in diverged and nothing is updated.
func (t *trainer) step(st step, lr float64) (loss, norm float64, diverged string, err error) {
	defer bert.Guard(&err)
	var s bert.Scope
	defer s.Free()
	// Dropout masks depend on seed and step only, so a resumed run draws
	// the masks an uninterrupted one would.
	bert.ManualSeed(int64(t.cfg.Seed*0x9E3779B97F4A7C15 + uint64(t.st.Step)))
	bert.Check(t.opt.zeroGrad())
	encs := make([]tokenize.Pair, 0, st.size())
	for _, u := range st {
		for _, i := range u {
			encs = append(encs, t.ex[i].enc)
		}
	}
	if t.cfg.Loss == contract.LossContrastive {
		encs = nil // the queries and documents are embedded apart
	}
	began := time.Now()
	var l *ts.Tensor
	if t.cfg.Loss == contract.LossContrastive {
		l = t.contrastiveLoss(&s, st)
	} else {
		logits := s.Keep(t.model.Forward(bert.NewBatch(encs, t.tok.PadID()), true))
		l = t.loss(&s, logits, st, t.ex)
	}
	loss = scalar(l)
	if diverged = t.diverging(loss); diverged != "" {
		return loss, 0, diverged, nil
	}
	forward := time.Now()
	bert.Check(l.Backward())
	backward := time.Now()
	defer func() {
		t.phases.Forward += forward.Sub(began).Seconds()
		t.phases.Backward += backward.Sub(forward).Seconds()
		t.phases.Update += time.Since(backward).Seconds()
	}()
	norm, err = t.opt.clipGradNorm(t.cfg.MaxGradNorm)
	bert.Check(err)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return loss, norm, fmt.Sprintf("the gradient norm is %g", norm), nil
	}
	bert.Check(t.opt.step(lr))
	return loss, norm, "", nil
}

// diverging says why loss means training has diverged: it is not finite,
// or it is the highLossRun-th loss in a row above DivergenceFactor times
// the running median.
func (t *trainer) diverging(loss float64) string {
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return fmt.Sprintf("the loss is %g", loss)
	}
	r := t.st.RecentLosses
	if len(r) < minLossHistory {
		return ""
	}
	sorted := slices.Clone(r)
	slices.Sort(sorted)
	med := sorted[len(sorted)/2]
	if loss <= t.cfg.DivergenceFactor*med {
		t.st.HighLosses = 0
		return ""
	}
	if t.st.HighLosses++; t.st.HighLosses < highLossRun {
		return ""
	}
	return fmt.Sprintf("the loss exceeded %g times the running median for %d steps in a row (now %.4g against %.4g)",
		t.cfg.DivergenceFactor, t.st.HighLosses, loss, med)
}

// eta extrapolates this session's step and evaluation times.
func (t *trainer) eta() time.Duration {
	if t.sessionSteps == 0 {
		return 0
	}
	left := time.Duration(t.total-t.st.Step) * (t.sessionTrain / time.Duration(t.sessionSteps))
	if t.evals > 0 && len(t.val.queries) > 0 {
		n := 0
		for s := t.st.Step + 1; s <= t.total; s++ {
			if t.evaluated(s) {
				n++
			}
		}
		left += time.Duration(n) * (t.evalTime / time.Duration(t.evals))
	}
	return left
}

// evaluateAndSave measures the current model on the validation queries,
// tracks the best and saves the checkpoint.
func (t *trainer) evaluateAndSave(ctx context.Context) error {
	p := contract.EvalPoint{Step: t.st.Step, Epoch: t.st.Epoch}
	if t.st.LossN > 0 {
		p.TrainLoss = t.st.LossSum / float64(t.st.LossN)
	}
	if len(t.val.queries) > 0 {
		evaluate := t.evaluate
		if t.model.Cfg.Kind == checkpoint.BiEncoder {
			evaluate = t.evaluateBi
		}
		ndcg, mrr, took, err := evaluate(ctx)
		releaseHeap()
		if err != nil {
			return err
		}
		p.NDCG10, p.MRR10, p.Seconds = ndcg, mrr, took.Seconds()
		t.evalTime += took
		t.evals++
	}
	// The first evaluation is the best so far; later ones must beat it.
	// Without validation data the latest checkpoint counts as the best.
	p.Best = len(t.st.Curve) == 0 || len(t.val.queries) == 0 || p.NDCG10 > t.st.BestNDCG
	if p.Best {
		t.st.BestStep, t.st.BestNDCG, t.st.SinceBest = p.Step, p.NDCG10, 0
	} else {
		t.st.SinceBest++
	}
	t.st.Curve = append(t.st.Curve, p)
	t.st.LossSum, t.st.LossN = 0, 0
	t.progress(contract.FinetuneProgress{Step: t.st.Step, TotalSteps: t.total, Epoch: int(math.Ceil(t.st.Epoch)), Eval: &p, ETA: t.eta()})
	return t.saveCheckpoint()
}

// finish keeps what was trained, writes the report and the model card, and
// builds the result.
func (t *trainer) finish(stopped, msg string, err error) (contract.FinetuneResult, error) {
	if stopped == contract.StopCancelled && t.st.Step > t.lastSaved && len(t.st.Curve) > 0 {
		if serr := t.saveCheckpoint(); serr != nil {
			err = errors.Join(err, serr)
		} else {
			msg += fmt.Sprintf(" (saved checkpoint-%d)", t.st.Step)
		}
	}
	if stopped == contract.StopCompleted || stopped == contract.StopEarly {
		// Nothing will resume this run.
		if rerr := os.Remove(filepath.Join(t.out, OptimizerFile)); rerr != nil && !os.IsNotExist(rerr) {
			err = errors.Join(err, rerr)
		}
	}
	t.log("%s", msg)
	res := contract.FinetuneResult{OutDir: t.out, Stopped: stopped, Message: msg, Steps: t.st.Step, Curve: t.st.Curve,
		TrainSeconds: t.st.TrainSeconds, ReportPath: filepath.Join(t.out, ReportFile)}
	if t.st.TrainSeconds > 0 {
		res.PairsPerSecond = float64(t.st.PairsSeen) / t.st.TrainSeconds
	}
	if len(t.st.Curve) > 0 {
		res.BestStep = t.st.BestStep
		res.BestCheckpoint = checkpointDir(t.out, t.st.BestStep)
		res.LastCheckpoint = checkpointDir(t.out, t.lastSaved)
		for _, p := range t.st.Curve {
			if p.Step == 0 {
				res.Base = p
			}
			if p.Step == t.st.BestStep {
				res.Best = p
			}
		}
	}
	if werr := t.writeReport(res); werr != nil {
		err = errors.Join(err, werr)
	}
	return res, err
}

func deviceName(d gotch.Device) string {
	if d == gotch.CPU {
		return "cpu"
	}
	return fmt.Sprintf("cuda:%d", d.Value)
}
