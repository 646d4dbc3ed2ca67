// Package registry is the model registry: every checkpoint the host trained
// or loaded, with its parent, the log window it learned from, its
// hyperparameters, metrics and gate decision, and the history of which version
// served when. It lives in the click log's database (its own bucket in
// <data-dir>/events.db), so the models and the clicks that made them are kept,
// backed up and restored together.
//
// A version's life: Register (candidate) -> Judge (metrics and the gate's
// decision; rejected if the gate said no) -> SetServing (serving; the one it
// replaces becomes retired) -> possibly Rollback to an earlier one. Swaps take
// a load callback that performs the live switch (the plugin loads, warms and
// switches); the registry records the swap only once that callback succeeded,
// so it never names a version that is not serving.
package registry

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/rerankloop/rerank/evalharness/fusion"
	"github.com/rerankloop/rerank/evalharness/gate"
	"github.com/rerankloop/rerank/host/clicklog"
)

// BucketName is the registry's bucket in the click log's database.
const BucketName = "models"

var (
	keyVersions = []byte("versions") // nested: id -> Version JSON
	keySwaps    = []byte("swaps")    // nested: 8-byte sequence -> Swap JSON
	keyServing  = []byte("serving")  // id of the serving version; absent: none
)

// Errors to branch on with errors.Is.
var (
	ErrNotFound   = errors.New("no such model version")
	ErrInvalid    = errors.New("invalid model version")
	ErrNoPrevious = errors.New("no earlier version to roll back to")
	ErrState      = errors.New("not allowed in the version's state")
)

// Status is where a version stands.
type Status string

const (
	Candidate Status = "candidate" // registered, not (yet) serving
	Serving   Status = "serving"   // the one answering searches
	Rejected  Status = "rejected"  // the gate (or training) said no; never served
	Retired   Status = "retired"   // served before, replaced since
)

// Window is the slice of the click log a version was trained on.
type Window struct {
	Since    time.Time `json:"since,omitzero"`
	Until    time.Time `json:"until,omitzero"`
	Searches int       `json:"searches"`
	Clicks   int       `json:"clicks"`
	Examples int       `json:"examples"` // training pairs built from them
}

// Version is one registered checkpoint.
type Version struct {
	ID             string `json:"id"`
	Seq            uint64 `json:"seq"` // registration order, from 1
	Checkpoint     string `json:"checkpoint"`
	CheckpointHash string `json:"checkpoint_hash"` // hex sha256 of model.safetensors
	// Parent is the version it was fine-tuned from; empty for a base model.
	Parent          string             `json:"parent,omitempty"`
	Data            Window             `json:"data"`
	Hyperparameters map[string]any     `json:"hyperparameters,omitempty"`
	Metrics         map[string]float64 `json:"metrics,omitempty"`
	// Fusion is how this version's scores are fused with BM25's (the
	// fusion.json beside its checkpoint when registered); nil: the model alone.
	Fusion *fusion.Params `json:"fusion,omitempty"`
	// Gate is the gate's decision (evalharness/gate.Decision) as JSON; see
	// GateDecision.
	Gate    json.RawMessage `json:"gate,omitempty"`
	Created time.Time       `json:"created"`
	Status  Status          `json:"status"`
	Note    string          `json:"note,omitempty"`
}

// GateDecision decodes Gate; nil when the version was never judged.
func (v Version) GateDecision() (*gate.Decision, error) {
	if len(v.Gate) == 0 {
		return nil, nil
	}
	var d gate.Decision
	if err := json.Unmarshal(v.Gate, &d); err != nil {
		return nil, fmt.Errorf("version %s: gate record unreadable: %w", v.ID, err)
	}
	return &d, nil
}

// SwapKind says why the serving version changed.
type SwapKind string

const (
	Promote  SwapKind = "promote"
	Rollback SwapKind = "rollback"
)

// Swap is one change of the serving version.
type Swap struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	From   string    `json:"from,omitempty"` // empty: nothing served (BM25 order)
	To     string    `json:"to"`
	Kind   SwapKind  `json:"kind"`
	Reason string    `json:"reason,omitempty"`
}

// Loader performs the live switch to v (load it beside the serving model,
// warm it, switch atomically). nil means "record only": the host loads the
// serving version when it next starts.
type Loader func(Version) error

// Registry is the model registry. Its methods are safe for concurrent use;
// swaps are serialised.
type Registry struct {
	log *clicklog.Store
	mu  sync.Mutex // held across a swap's load callback
}

// Open returns the registry kept in log's database, creating its bucket on
// first use.
func Open(log *clicklog.Store) (*Registry, error) {
	err := log.UpdateBucket(BucketName, func(b clicklog.Bucket) error {
		for _, k := range [][]byte{keyVersions, keySwaps} {
			if _, err := b.CreateNested(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return &Registry{log: log}, nil
}

var (
	idPattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	hashPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Register adds a candidate. An empty ID gets "v<seq>"; a zero Created is
// now. Checkpoint and CheckpointHash are required, a Parent must be
// registered, and a checkpoint hash already registered is refused (naming the
// version that holds it). Status, Seq and Gate are set by the registry; a nil
// Fusion is read from the fusion.json beside the checkpoint, if any.
func (r *Registry) Register(v Version) (Version, error) {
	if v.ID != "" && !idPattern.MatchString(v.ID) {
		return v, fmt.Errorf("%w: id %q: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", ErrInvalid, v.ID)
	}
	if v.Checkpoint == "" {
		return v, fmt.Errorf("%w: no checkpoint path", ErrInvalid)
	}
	if !hashPattern.MatchString(v.CheckpointHash) {
		return v, fmt.Errorf("%w: checkpoint hash %q: want the hex sha256 of model.safetensors", ErrInvalid, v.CheckpointHash)
	}
	if err := checkMetrics(v.Metrics); err != nil {
		return v, err
	}
	if !v.Data.Until.IsZero() && v.Data.Until.Before(v.Data.Since) {
		return v, fmt.Errorf("%w: data window ends (%s) before it starts (%s)", ErrInvalid, v.Data.Until, v.Data.Since)
	}
	if v.Data.Searches < 0 || v.Data.Clicks < 0 || v.Data.Examples < 0 {
		return v, fmt.Errorf("%w: negative count in the data window", ErrInvalid)
	}
	if v.Fusion == nil {
		p, found, err := fusion.Read(v.Checkpoint)
		if err != nil {
			return v, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if found {
			v.Fusion = &p
		}
	}
	if v.Created.IsZero() {
		v.Created = time.Now()
	}
	v.Created = v.Created.UTC()
	v.Status, v.Gate = Candidate, nil
	err := r.log.UpdateBucket(BucketName, func(b clicklog.Bucket) error {
		vb := b.Nested(keyVersions)
		if v.Parent != "" && vb.Get([]byte(v.Parent)) == nil {
			return fmt.Errorf("registry: parent %s: %w", v.Parent, ErrNotFound)
		}
		var clash error
		vb.ForEach(func(_, raw []byte) error {
			var old Version
			if json.Unmarshal(raw, &old) == nil && old.CheckpointHash == v.CheckpointHash {
				clash = fmt.Errorf("%w: checkpoint %s is already registered as %s", ErrInvalid, v.CheckpointHash[:12], old.ID)
			}
			return clash
		})
		if clash != nil {
			return clash
		}
		seq, err := vb.NextSequence()
		if err != nil {
			return err
		}
		v.Seq = seq
		if v.ID == "" {
			v.ID = "v" + strconv.FormatUint(seq, 10)
		}
		if vb.Get([]byte(v.ID)) != nil {
			return fmt.Errorf("%w: version %s already exists", ErrInvalid, v.ID)
		}
		return putVersion(vb, v)
	})
	if err != nil {
		return Version{}, err
	}
	return v, nil
}

// Judge records a candidate's evaluation: metrics (merged into those it
// has) and the gate's decision. A rejected decision makes it Rejected.
func (r *Registry) Judge(id string, metrics map[string]float64, d gate.Decision) (Version, error) {
	if err := checkMetrics(metrics); err != nil {
		return Version{}, err
	}
	raw, err := json.Marshal(d)
	if err != nil {
		return Version{}, fmt.Errorf("registry: gate decision: %w", err)
	}
	return r.update(id, func(v *Version) error {
		if v.Status != Candidate {
			return fmt.Errorf("%w: version %s is %s; only a candidate is judged", ErrState, id, v.Status)
		}
		if v.Metrics == nil && len(metrics) > 0 {
			v.Metrics = map[string]float64{}
		}
		for k, m := range metrics {
			v.Metrics[k] = m
		}
		v.Gate = raw
		if !d.Accepted {
			v.Status = Rejected
		}
		return nil
	})
}

// Reject marks a candidate rejected for a reason other than the gate (for
// example, training diverged).
func (r *Registry) Reject(id, reason string) (Version, error) {
	return r.update(id, func(v *Version) error {
		if v.Status != Candidate {
			return fmt.Errorf("%w: version %s is %s; only a candidate is rejected", ErrState, id, v.Status)
		}
		v.Status, v.Note = Rejected, reason
		return nil
	})
}

// Get returns one version.
func (r *Registry) Get(id string) (Version, error) {
	var v Version
	err := r.view(func(b clicklog.Bucket) (err error) {
		v, err = getVersion(b.Nested(keyVersions), id)
		return err
	})
	return v, err
}

// List returns every version in registration order.
func (r *Registry) List() ([]Version, error) {
	var out []Version
	err := r.view(func(b clicklog.Bucket) error {
		return b.Nested(keyVersions).ForEach(func(k, raw []byte) error {
			var v Version
			if err := json.Unmarshal(raw, &v); err != nil {
				return fmt.Errorf("registry: version %s unreadable: %w", k, err)
			}
			out = append(out, v)
			return nil
		})
	})
	slices.SortFunc(out, func(a, b Version) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, err
}

// Serving returns the serving version; ok is false when none serves.
func (r *Registry) Serving() (v Version, ok bool, err error) {
	err = r.view(func(b clicklog.Bucket) error {
		id := b.Get(keyServing)
		if id == nil {
			return nil
		}
		v, err = getVersion(b.Nested(keyVersions), string(id))
		ok = err == nil
		return err
	})
	return v, ok, err
}

// History returns every swap, oldest first.
func (r *Registry) History() ([]Swap, error) {
	var out []Swap
	err := r.view(func(b clicklog.Bucket) error {
		var err error
		out, err = readSwaps(b)
		return err
	})
	return out, err
}

// Previous is the version a rollback without a target returns to: the most
// recent one that served before the current one and was not itself rolled
// back from (a version abandoned by a rollback is not a safe place to go).
func (r *Registry) Previous() (string, error) {
	var prev string
	err := r.view(func(b clicklog.Bucket) error {
		swaps, err := readSwaps(b)
		if err != nil {
			return err
		}
		prev, err = previous(swaps, string(b.Get(keyServing)))
		return err
	})
	return prev, err
}

func previous(swaps []Swap, current string) (string, error) {
	abandoned := map[string]bool{current: true}
	for i := len(swaps) - 1; i >= 0; i-- {
		s := swaps[i]
		if s.Kind == Rollback {
			abandoned[s.From] = true
			continue
		}
		if s.From != "" && !abandoned[s.From] {
			return s.From, nil
		}
	}
	return "", ErrNoPrevious
}

// SetServing makes id the serving version (a promotion) and returns the one
// it replaced ("" when none served). load, when not nil, performs the live
// switch first; if it fails nothing is recorded. A rejected version is
// refused: it never passed the gate.
func (r *Registry) SetServing(id, reason string, load Loader) (previous string, err error) {
	s, err := r.swap(id, Promote, reason, load)
	return s.From, err
}

// Rollback returns service to target, or to Previous() when target is empty.
// The target must have served before (retired). load as in SetServing.
func (r *Registry) Rollback(target, reason string, load Loader) (Swap, error) {
	if target == "" {
		var err error
		if target, err = r.Previous(); err != nil {
			return Swap{}, err
		}
	}
	return r.swap(target, Rollback, reason, load)
}

func (r *Registry) swap(id string, kind SwapKind, reason string, load Loader) (Swap, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var (
		v       Version
		current string
	)
	err := r.view(func(b clicklog.Bucket) (err error) {
		current = string(b.Get(keyServing))
		v, err = getVersion(b.Nested(keyVersions), id)
		return err
	})
	if err != nil {
		return Swap{}, err
	}
	switch {
	case id == current:
		return Swap{}, fmt.Errorf("%w: version %s is already serving", ErrState, id)
	case v.Status == Rejected:
		return Swap{}, fmt.Errorf("%w: version %s was rejected (%s) and cannot serve", ErrState, id, rejection(v))
	case kind == Rollback && v.Status != Retired:
		return Swap{}, fmt.Errorf("%w: version %s is %s, it never served: a rollback returns to a version that served before", ErrState, id, v.Status)
	}
	// The live switch runs outside any transaction: a write transaction held
	// across a model load would stall the click log.
	if load != nil {
		if err := load(v); err != nil {
			return Swap{}, fmt.Errorf("registry: switching to %s: %w", id, err)
		}
	}
	s := Swap{Time: time.Now().UTC(), From: current, To: id, Kind: kind, Reason: reason}
	err = r.log.UpdateBucket(BucketName, func(b clicklog.Bucket) error {
		if now := string(b.Get(keyServing)); now != current {
			return fmt.Errorf("%w: the serving version changed from %s to %s meanwhile", ErrState, current, now)
		}
		vb, sb := b.Nested(keyVersions), b.Nested(keySwaps)
		if current != "" {
			old, err := getVersion(vb, current)
			if err != nil {
				return err
			}
			old.Status = Retired
			if err := putVersion(vb, old); err != nil {
				return err
			}
		}
		v.Status = Serving
		if err := putVersion(vb, v); err != nil {
			return err
		}
		seq, err := sb.NextSequence()
		if err != nil {
			return err
		}
		s.Seq = seq
		raw, err := json.Marshal(s)
		if err != nil {
			return err
		}
		if err := sb.Put(binary.BigEndian.AppendUint64(nil, seq), raw); err != nil {
			return err
		}
		return b.Put(keyServing, []byte(id))
	})
	if err != nil {
		if load != nil {
			return Swap{}, fmt.Errorf("registry: %s now serves but the swap was not recorded: %w", id, err)
		}
		return Swap{}, err
	}
	return s, nil
}

func rejection(v Version) string {
	if d, err := v.GateDecision(); err == nil && d != nil {
		return d.Reason
	}
	if v.Note != "" {
		return v.Note
	}
	return "no reason recorded"
}

func (r *Registry) update(id string, fn func(*Version) error) (Version, error) {
	var v Version
	err := r.log.UpdateBucket(BucketName, func(b clicklog.Bucket) error {
		vb := b.Nested(keyVersions)
		var err error
		if v, err = getVersion(vb, id); err != nil {
			return err
		}
		if err := fn(&v); err != nil {
			return err
		}
		return putVersion(vb, v)
	})
	if err != nil {
		return Version{}, err
	}
	return v, nil
}

func (r *Registry) view(fn func(clicklog.Bucket) error) error {
	return r.log.ViewBucket(BucketName, fn)
}

func getVersion(vb clicklog.Bucket, id string) (Version, error) {
	raw := vb.Get([]byte(id))
	if raw == nil {
		return Version{}, fmt.Errorf("registry: version %q: %w", id, ErrNotFound)
	}
	var v Version
	if err := json.Unmarshal(raw, &v); err != nil {
		return Version{}, fmt.Errorf("registry: version %s unreadable: %w", id, err)
	}
	return v, nil
}

func putVersion(vb clicklog.Bucket, v Version) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%w: version %s: %v", ErrInvalid, v.ID, err)
	}
	return vb.Put([]byte(v.ID), raw)
}

func readSwaps(b clicklog.Bucket) ([]Swap, error) {
	var out []Swap
	err := b.Nested(keySwaps).ForEach(func(_, raw []byte) error {
		var s Swap
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("registry: swap record unreadable: %w", err)
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

func checkMetrics(m map[string]float64) error {
	for k, x := range m {
		if k == "" {
			return fmt.Errorf("%w: metric with an empty name", ErrInvalid)
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("%w: metric %s is %v", ErrInvalid, k, x)
		}
	}
	return nil
}
