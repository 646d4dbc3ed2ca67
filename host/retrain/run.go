package retrain

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rerankloop/rerank/evalharness/gate"
	"github.com/rerankloop/rerank/finetune/trainset"
	"github.com/rerankloop/rerank/host/lifecycle"
	"github.com/rerankloop/rerank/host/registry"
	"github.com/rerankloop/rerank/host/search"
	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
)

// Run states.
const (
	StateRunning   = "running"
	StateDone      = "done" // finished: the outcome says swapped or kept
	StateFailed    = "failed"
	StateCancelled = "cancelled"
)

// windowOverlap is how far a run's window reaches back before the end of
// the serving version's: a search is answered before its impression is
// committed (a few milliseconds later), so one answered just before the
// previous cut may have been missed by the previous export. A search in the
// overlap can be trained on twice, by consecutive versions; none is lost.
const windowOverlap = 2 * time.Second

// maxLogLines bounds the log a status carries.
const maxLogLines = 200

// Training is the trainer's progress.
type Training struct {
	Step           int                  `json:"step"`
	TotalSteps     int                  `json:"total_steps"`
	Epoch          int                  `json:"epoch"`
	Loss           float64              `json:"loss"`
	LearningRate   float64              `json:"learning_rate"`
	PairsPerSecond float64              `json:"pairs_per_second"`
	ETASeconds     float64              `json:"eta_seconds"`
	Evals          []contract.EvalPoint `json:"evals,omitempty"`
}

// Outcome is what a finished run decided.
type Outcome struct {
	Candidate  string          `json:"candidate"` // the registered version
	Parent     string          `json:"parent"`
	Checkpoint string          `json:"checkpoint"`
	Data       registry.Window `json:"data"`
	HeldOut    string          `json:"held_out"`
	Decision   gate.Decision   `json:"decision"`
	Swapped    bool            `json:"swapped"`
	Serving    string          `json:"serving"` // the serving version after the run
	Note       string          `json:"note,omitempty"`
}

// Status is a retrain run as GET /admin/retrain shows it.
type Status struct {
	ID       string    `json:"id"`
	Trigger  string    `json:"trigger"`
	State    string    `json:"state"`
	Phase    string    `json:"phase"` // export, data, train, register, evaluate, swap, finished
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	Training *Training `json:"training,omitempty"`
	// Log holds the run's messages, oldest first: the last maxLogLines of
	// the Logged written so far.
	Log     []string `json:"log"`
	Logged  int      `json:"logged"`
	Outcome *Outcome `json:"outcome,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// job is a run in progress; its status is read while it runs.
type job struct {
	id     string
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	st     Status
}

func (j *job) status() Status {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.st
	s.Log = append([]string(nil), s.Log...)
	if s.Training != nil {
		t := *s.Training
		t.Evals = append([]contract.EvalPoint(nil), t.Evals...)
		s.Training = &t
	}
	return s
}

func (j *job) logf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	j.mu.Lock()
	defer j.mu.Unlock()
	j.st.Log = append(j.st.Log, time.Now().UTC().Format("15:04:05")+" "+msg)
	j.st.Logged++
	if n := len(j.st.Log); n > maxLogLines {
		j.st.Log = j.st.Log[n-maxLogLines:]
	}
}

func (j *job) phase(p, format string, args ...any) {
	j.mu.Lock()
	j.st.Phase = p
	j.mu.Unlock()
	j.logf(format, args...)
}

// progress records the trainer's stream: messages and evaluations go to the
// log, every step to Training.
func (j *job) progress(p contract.FinetuneProgress) {
	switch {
	case p.Message != "":
		j.logf("trainer: %s", p.Message)
		return
	case p.Eval != nil:
		e := *p.Eval
		j.logf("trainer: step %d/%d validation NDCG@10 %.4f MRR@10 %.4f%s", e.Step, p.TotalSteps, e.NDCG10, e.MRR10, map[bool]string{true: " (best)"}[e.Best])
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	t := j.st.Training
	if t == nil {
		t = &Training{}
		j.st.Training = t
	}
	if p.Eval != nil {
		t.Evals = append(t.Evals, *p.Eval)
		return
	}
	t.Step, t.TotalSteps, t.Epoch, t.Loss, t.LearningRate = p.Step, p.TotalSteps, p.Epoch, p.Loss, p.LearningRate
	t.PairsPerSecond, t.ETASeconds = p.PairsPerSecond, p.ETA.Seconds()
}

// StartRetrain starts a run in the background and returns its status;
// ErrBusy while one runs. trigger says who asked (kept in the status).
func (c *Controller) StartRetrain(trigger string) (Status, error) {
	c.jobMu.Lock()
	defer c.jobMu.Unlock()
	if c.job != nil {
		if st := c.job.status(); st.State == StateRunning {
			return st, fmt.Errorf("%w (%s, started %s)", ErrBusy, st.ID, st.Started.Format(time.RFC3339))
		}
	}
	if c.ctx.Err() != nil {
		return Status{}, errors.New("the host is shutting down")
	}
	now := time.Now().UTC()
	ctx, cancel := context.WithCancel(c.ctx)
	id := fmt.Sprintf("r%s%03d", now.Format("20060102T150405"), now.Nanosecond()/1e6) // names the run's folder
	j := &job{id: id, cancel: cancel, done: make(chan struct{}),
		st: Status{ID: id, Trigger: trigger, State: StateRunning, Phase: "export", Started: now, Log: []string{}}}
	c.job = j
	c.sched.attempted()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(j.done)
		defer cancel()
		out, err := c.run(ctx, j)
		j.mu.Lock()
		defer j.mu.Unlock()
		j.st.Finished, j.st.Phase, j.st.Outcome = time.Now().UTC(), "finished", out
		switch {
		case err != nil && ctx.Err() != nil:
			j.st.State, j.st.Error = StateCancelled, err.Error()
		case err != nil:
			j.st.State, j.st.Error = StateFailed, err.Error()
		default:
			j.st.State = StateDone
		}
		c.logger.Info("retrain finished", "id", j.id, "state", j.st.State, "error", j.st.Error)
	}()
	c.logger.Info("retrain started", "id", j.id, "trigger", trigger)
	return j.status(), nil
}

// RetrainStatus is the running or last run; ok is false before the first.
func (c *Controller) RetrainStatus() (s Status, ok bool) {
	c.jobMu.Lock()
	defer c.jobMu.Unlock()
	if c.job == nil {
		return Status{}, false
	}
	return c.job.status(), true
}

// CancelRetrain stops a running run (the trainer stops after its current
// step); it reports whether one was running.
func (c *Controller) CancelRetrain() bool {
	c.jobMu.Lock()
	defer c.jobMu.Unlock()
	if c.job == nil || c.job.status().State != StateRunning {
		return false
	}
	c.job.cancel()
	return true
}

// WaitRetrain waits for the running run, if any, to finish and returns its
// status.
func (c *Controller) WaitRetrain(ctx context.Context) (Status, error) {
	c.jobMu.Lock()
	j := c.job
	c.jobMu.Unlock()
	if j == nil {
		return Status{}, errors.New("no retrain has run")
	}
	select {
	case <-j.done:
		return j.status(), nil
	case <-ctx.Done():
		return j.status(), ctx.Err()
	}
}

// run is one retrain: export the window since the serving version's, build
// labels, fine-tune the serving checkpoint, register the candidate, judge
// it on held-out queries and swap it in if the gate accepts.
func (c *Controller) run(ctx context.Context, j *job) (*Outcome, error) {
	r := c.cfg.Retrain
	serving, ok, err := c.reg.Serving()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, lifecycle.ErrNoServing
	}
	dir := filepath.Join(c.cfg.ModelsPath(), j.id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}

	since, until := serving.Data.Until, time.Now().UTC()
	if !since.IsZero() {
		since = since.Add(-windowOverlap)
	}
	if since.IsZero() {
		j.phase("export", "exporting every search logged (serving version %s was not trained on this log)", serving.ID)
	} else {
		j.phase("export", "exporting the searches logged since %s (the end of serving version %s's data window, less %s)", since.Format(time.RFC3339), serving.ID, windowOverlap)
	}
	win, imps, shown, err := c.window(ctx, since, until)
	if err != nil {
		return nil, err
	}
	j.logf("%d searches with %d clicks on %d documents", win.Searches, win.Clicks, shown)
	c.sched.exported(serving.ID, win.Clicks)
	if win.Clicks < r.MinClicks {
		return nil, fmt.Errorf("%w: %d in the window, retrain.min_clicks is %d", ErrNotEnoughClicks, win.Clicks, r.MinClicks)
	}

	j.phase("data", "building labels with the position-bias click model (%s labels)", r.ClickLabels)
	var judged *lifecycle.HeldOut
	if r.Judgments != "" {
		if judged, err = c.JudgedHeldOut(ctx); err != nil {
			return nil, err
		}
	}
	p, err := c.prepare(ctx, j, dir, imps, judged)
	if err != nil {
		return nil, err
	}
	rep := p.data.Report
	j.logf("%d training pairs (labels %s), %d held-out pairs; %s", rep.TrainPairs, labelCounts(rep.TrainLabels), rep.ValPairs, rep.Leakage)
	for _, w := range rep.Warnings {
		j.logf("data warning: %s", w)
	}
	win.Examples = len(p.data.Train)

	cfg := contract.TrainConfig{Epochs: r.Epochs, LearningRate: r.LearningRate, BatchSize: r.BatchSize, MaxLength: r.MaxLength, EvalSteps: r.EvalSteps, Seed: r.Seed, LabelMax: 4}
	if r.ClickLabels == "ipw" {
		cfg.LabelMax = 1
	}
	source := fmt.Sprintf("click log window %s to %s (%d searches, %d clicks), %s click labels; base version %s", timeOrStart(since), until.Format(time.RFC3339), win.Searches, win.Clicks, r.ClickLabels, serving.ID)
	req, err := p.data.Request(ctx, trainset.RequestOptions{Base: serving.Checkpoint, Out: filepath.Join(dir, trainDir), Config: cfg, Source: source,
		Validation: p.validation, FirstStage: search.Stage{Index: c.ix}, Depth: r.EvalDepth})
	if err != nil {
		return nil, err
	}
	j.phase("train", "fine-tuning %s on %d pairs, %d validation queries (%d epoch(s), lr %g, batch %d, max length %d)",
		serving.ID, len(req.Train), len(req.Validation), cfg.Epochs, cfg.LearningRate, cfg.BatchSize, cfg.MaxLength)
	res, err := c.trainer.Finetune(ctx, req, j.progress)
	if err != nil {
		return nil, fmt.Errorf("fine-tuning: %w", err)
	}
	ckpt, note, err := pickCheckpoint(res)
	if err != nil {
		return nil, err
	}
	if note != "" {
		j.logf("%s", note)
	}
	j.logf("trained %d steps at %.1f pairs/s in %.0f s: %s", res.Steps, res.PairsPerSecond, res.TrainSeconds, res.Message)

	j.phase("register", "registering the candidate %s", ckpt)
	hash, err := checkpoint.Hash(ckpt)
	if err != nil {
		return nil, err
	}
	cand, err := c.reg.Register(registry.Version{Checkpoint: ckpt, CheckpointHash: hash, Parent: serving.ID, Data: win,
		Hyperparameters: map[string]any{
			"epochs": cfg.Epochs, "learning_rate": cfg.LearningRate, "batch_size": cfg.BatchSize, "max_length": cfg.MaxLength,
			"eval_steps": cfg.EvalSteps, "seed": cfg.Seed, "click_labels": r.ClickLabels, "hard_negatives": r.HardNegatives,
			"max_pairs": r.MaxPairs, "steps": res.Steps, "best_step": res.BestStep, "stopped": res.Stopped,
		},
		Note: note,
	})
	if err != nil {
		return nil, err
	}
	out := &Outcome{Candidate: cand.ID, Parent: serving.ID, Checkpoint: ckpt, Data: win, Serving: serving.ID, Note: note}

	held := judged
	if held == nil {
		held = p.heldOut
	}
	out.HeldOut = held.Source
	j.phase("evaluate", "evaluating %s against %s on %d held-out queries: %s", cand.ID, serving.ID, held.Queries(), held.Source)
	if _, err := c.plugin.Load(ctx, contract.LoadRequest{Path: ckpt, Version: lifecycle.CandidateModel, CheckpointHash: cand.CheckpointHash}); err != nil {
		return out, fmt.Errorf("loading the candidate beside the serving model: %w", err)
	}
	d, m, err := c.Judge(ctx, held, cand, lifecycle.CandidateModel, &serving)
	c.Unload(ctx, lifecycle.CandidateModel)
	if err != nil {
		return out, err
	}
	if _, err := c.reg.Judge(cand.ID, m, d); err != nil {
		return out, err
	}
	out.Decision = d
	j.logf("NDCG@10: candidate %s %.4f, serving %s %.4f, BM25 %.4f", cand.ID, d.CandidateMean, serving.ID, d.ServingMean, d.BM25Mean)
	j.logf("gate: %s", d.Reason)
	if !d.Accepted {
		j.phase("finished", "kept %s serving", serving.ID)
		return out, nil
	}
	if judged == nil && !r.SwapOnClickLabels {
		out.Note = fmt.Sprintf("accepted on held-out click labels only, which anyone who can reach /click can forge: not swapped automatically; swap %s in by hand after checking it, or set retrain.swap_on_click_labels", cand.ID)
		j.logf("%s", out.Note)
		j.phase("finished", "kept %s serving", serving.ID)
		return out, nil
	}

	// The gate compared against the version serving when the run started.
	if now, _, err := c.reg.Serving(); err != nil {
		return out, err
	} else if now.ID != serving.ID {
		out.Serving = now.ID
		out.Note = fmt.Sprintf("not swapped: %s replaced %s as serving during the run; swap it by hand after comparing", now.ID, serving.ID)
		j.logf("%s", out.Note)
		return out, nil
	}
	j.phase("swap", "swapping %s in for %s", cand.ID, serving.ID)
	if _, err := c.reg.SetServing(cand.ID, d.Reason, c.Loader(ctx)); err != nil {
		return out, err
	}
	out.Swapped, out.Serving = true, cand.ID
	j.phase("finished", "%s serves", cand.ID)
	return out, nil
}

// pickCheckpoint chooses the checkpoint to register: the trainer's best;
// when the best is the untrained step 0 (validation never improved, or there
// was no validation and the run ended at once), the last one, so the gate
// judges what training made.
func pickCheckpoint(res contract.FinetuneResult) (dir, note string, err error) {
	switch res.Stopped {
	case contract.StopCompleted, contract.StopEarly:
	case contract.StopDiverged:
		if res.BestStep == 0 {
			return "", "", fmt.Errorf("training diverged before any checkpoint improved: %s", res.Message)
		}
		note = "training diverged; registered the best checkpoint before it: " + res.Message
	default:
		return "", "", fmt.Errorf("training %s: %s", res.Stopped, res.Message)
	}
	dir = res.BestCheckpoint
	if res.BestStep == 0 {
		if res.LastCheckpoint == "" || res.LastCheckpoint == res.BestCheckpoint {
			return "", "", errors.New("training produced no checkpoint beyond the base model")
		}
		dir = res.LastCheckpoint
		note = fmt.Sprintf("validation never beat the base model (step 0): registered the last checkpoint (step %d) for the gate to judge", res.Steps)
	}
	return dir, note, nil
}

// labelCounts is "0: 233, 2: 47" in label order.
func labelCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func timeOrStart(t time.Time) string {
	if t.IsZero() {
		return "the start of the log"
	}
	return t.Format(time.RFC3339)
}
