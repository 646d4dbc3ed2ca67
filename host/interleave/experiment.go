package interleave

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/rerankloop/rerank/finetune/impression"
	"github.com/rerankloop/rerank/host/clicklog"
)

// BucketName is where experiments live in the click log's database, beside
// the model registry.
const BucketName = "experiments"

var keyRunning = []byte("\x00running") // id of the running experiment; sorts before ids

// Method is how an experiment compares its two versions.
type Method string

const (
	MethodInterleave Method = "interleave"
	MethodSplit      Method = "split"
)

// Status of an experiment.
type Status string

const (
	Running Status = "running"
	Stopped Status = "stopped"
)

// Experiment compares a control and a treatment model version.
type Experiment struct {
	ID        string `json:"id"`
	Seq       uint64 `json:"seq"`
	Control   string `json:"control"`
	Treatment string `json:"treatment"`
	Method    Method `json:"method"`
	// Traffic is the fraction of users (interleaving: of searches) in the
	// experiment; see Assign.
	Traffic float64   `json:"traffic"`
	Rule    StopRule  `json:"rule"`
	Started time.Time `json:"started"`
	Stopped time.Time `json:"stopped,omitzero"`
	Status  Status    `json:"status"`
	// Result and StopReason are recorded by Stop.
	Result     *Result `json:"result,omitempty"`
	StopReason string  `json:"stop_reason,omitempty"`
}

// Result is an experiment's tally at one point, with the stopping rule's verdict.
type Result struct {
	Method     Method            `json:"method"`
	Interleave *InterleaveResult `json:"interleave,omitempty"`
	Split      *SplitResult      `json:"split,omitempty"`
	Verdict    Verdict           `json:"verdict"`
}

// ErrNotFound: no experiment with that id.
var ErrNotFound = errors.New("no such experiment")

// ErrRunning: an experiment is already running (only one runs at a time).
var ErrRunning = errors.New("an experiment is already running")

// Experiments is the experiment store.
type Experiments struct {
	log *clicklog.Store
}

// OpenExperiments returns the experiments kept in log's database.
func OpenExperiments(log *clicklog.Store) (*Experiments, error) {
	if err := log.UpdateBucket(BucketName, func(clicklog.Bucket) error { return nil }); err != nil {
		return nil, fmt.Errorf("experiments: %w", err)
	}
	return &Experiments{log: log}, nil
}

// Start records e as running. Control, Treatment, Method, Traffic and Rule
// come from the caller (a zero Rule means DefaultStopRule); the id ("e<seq>"),
// start time and status are set here. It fails with ErrRunning while another
// experiment runs.
func (x *Experiments) Start(e Experiment) (Experiment, error) {
	if e.Control == "" || e.Treatment == "" {
		return e, errors.New("experiment: both a control and a treatment version are needed")
	}
	if e.Control == e.Treatment {
		return e, fmt.Errorf("experiment: control and treatment are both %s", e.Control)
	}
	if e.Method != MethodInterleave && e.Method != MethodSplit {
		return e, fmt.Errorf("experiment: method %q: want interleave or split", e.Method)
	}
	if !(e.Traffic > 0 && e.Traffic <= 1) {
		return e, fmt.Errorf("experiment: traffic %v must be in (0, 1]", e.Traffic)
	}
	if e.Rule == (StopRule{}) {
		e.Rule = DefaultStopRule()
	}
	if err := e.Rule.Check(); err != nil {
		return e, fmt.Errorf("experiment: %w", err)
	}
	e.Started, e.Stopped, e.Status, e.Result, e.StopReason = time.Now().UTC(), time.Time{}, Running, nil, ""
	err := x.log.UpdateBucket(BucketName, func(b clicklog.Bucket) error {
		if id := b.Get(keyRunning); id != nil {
			return fmt.Errorf("%w: %s (stop it first)", ErrRunning, id)
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		e.Seq, e.ID = seq, "e"+strconv.FormatUint(seq, 10)
		if err := put(b, e); err != nil {
			return err
		}
		return b.Put(keyRunning, []byte(e.ID))
	})
	if err != nil {
		return Experiment{}, err
	}
	return e, nil
}

// Stop ends the running experiment id, recording res (may be nil) and why.
func (x *Experiments) Stop(id, reason string, res *Result) (Experiment, error) {
	var e Experiment
	err := x.log.UpdateBucket(BucketName, func(b clicklog.Bucket) error {
		var err error
		if e, err = get(b, id); err != nil {
			return err
		}
		if e.Status != Running {
			return fmt.Errorf("experiment %s already stopped at %s", id, e.Stopped.Format(time.RFC3339))
		}
		e.Status, e.Stopped, e.Result, e.StopReason = Stopped, time.Now().UTC(), res, reason
		if err := put(b, e); err != nil {
			return err
		}
		return b.Delete(keyRunning)
	})
	if err != nil {
		return Experiment{}, err
	}
	return e, nil
}

// Get returns one experiment.
func (x *Experiments) Get(id string) (Experiment, error) {
	var e Experiment
	err := x.log.ViewBucket(BucketName, func(b clicklog.Bucket) (err error) {
		e, err = get(b, id)
		return err
	})
	return e, err
}

// Running returns the running experiment; ok is false when none runs.
func (x *Experiments) Running() (e Experiment, ok bool, err error) {
	err = x.log.ViewBucket(BucketName, func(b clicklog.Bucket) error {
		id := b.Get(keyRunning)
		if id == nil {
			return nil
		}
		e, err = get(b, string(id))
		ok = err == nil
		return err
	})
	return e, ok, err
}

// List returns every experiment, oldest first.
func (x *Experiments) List() ([]Experiment, error) {
	var out []Experiment
	err := x.log.ViewBucket(BucketName, func(b clicklog.Bucket) error {
		return b.ForEach(func(k, raw []byte) error {
			if string(k) == string(keyRunning) {
				return nil
			}
			var e Experiment
			if err := json.Unmarshal(raw, &e); err != nil {
				return fmt.Errorf("experiment %s unreadable: %w", k, err)
			}
			out = append(out, e)
			return nil
		})
	})
	slices.SortFunc(out, func(a, b Experiment) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, err
}

func get(b clicklog.Bucket, id string) (Experiment, error) {
	raw := b.Get([]byte(id))
	if raw == nil || id == string(keyRunning) {
		return Experiment{}, fmt.Errorf("experiment %q: %w", id, ErrNotFound)
	}
	var e Experiment
	if err := json.Unmarshal(raw, &e); err != nil {
		return Experiment{}, fmt.Errorf("experiment %s unreadable: %w", id, err)
	}
	return e, nil
}

func put(b clicklog.Bucket, e Experiment) error {
	raw, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("experiment %s: %w", e.ID, err)
	}
	return b.Put([]byte(e.ID), raw)
}

// Impressions is where logged searches come from: the click log
// (*clicklog.Store), or any other log of the same impressions.
type Impressions interface {
	Scan(ctx context.Context, since time.Time, fn func(impression.Impression) error) error
}

// Evaluate tallies e's searches from log: those logged from its start (to
// its stop, if stopped) under its arms. k is the rank cutoff of clicks@k for
// split tests.
func Evaluate(ctx context.Context, log Impressions, e Experiment, k int) (Result, error) {
	res := Result{Method: e.Method}
	var add func(arm string, imp impression.Impression)
	switch e.Method {
	case MethodInterleave:
		res.Interleave = &InterleaveResult{}
		add = func(arm string, imp impression.Impression) {
			if arm == ArmInterleaved {
				res.Interleave.Add(imp)
			}
		}
	case MethodSplit:
		res.Split = NewSplitResult(k)
		add = res.Split.Add
	default:
		return res, fmt.Errorf("experiment %s: method %q: want interleave or split", e.ID, e.Method)
	}

	err := log.Scan(ctx, e.Started, func(imp impression.Impression) error {
		if !e.Stopped.IsZero() && imp.Time.After(e.Stopped) {
			return nil
		}
		if id, arm, ok := ParseArm(imp.Arm); ok && id == e.ID {
			add(arm, imp)
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("experiment %s: reading the click log: %w", e.ID, err)
	}
	if res.Interleave != nil {
		res.Interleave.Finish()
		res.Verdict = res.Interleave.Verdict(e.Rule)
	} else {
		res.Split.Finish()
		res.Verdict = res.Split.Verdict(e.Rule)
	}
	return res, nil
}
