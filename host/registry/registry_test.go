package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rerankloop/rerank/evalharness/fusion"
	"github.com/rerankloop/rerank/evalharness/gate"
	"github.com/rerankloop/rerank/host/clicklog"
)

func openStore(t *testing.T, dir string) *clicklog.Store {
	t.Helper()
	s, err := clicklog.Open(dir, clicklog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openReg(t *testing.T, s *clicklog.Store) *Registry {
	t.Helper()
	r, err := Open(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func hashOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func candidate(name, parent string) Version {
	return Version{Checkpoint: "/models/" + name, CheckpointHash: hashOf(name), Parent: parent}
}

func mustRegister(t *testing.T, r *Registry, v Version) Version {
	t.Helper()
	got, err := r.Register(v)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func mustJudge(t *testing.T, r *Registry, id string, accepted bool) {
	t.Helper()
	d := gate.Decision{Accepted: accepted, Metric: "ndcg@10", CandidateMean: 0.7, Reason: "rejected: margin"}
	if accepted {
		d.Reason = "accepted: better"
	}
	if _, err := r.Judge(id, map[string]float64{"ndcg@10": 0.7}, d); err != nil {
		t.Fatal(err)
	}
}

func statuses(t *testing.T, r *Registry) map[string]Status {
	t.Helper()
	vs, err := r.List()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Status{}
	for _, v := range vs {
		out[v.ID] = v.Status
	}
	return out
}

func TestLifecycleAndRollback(t *testing.T) {
	r := openReg(t, openStore(t, t.TempDir()))
	var loaded []string
	load := func(v Version) error { loaded = append(loaded, v.ID); return nil }

	v1 := mustRegister(t, r, candidate("base", ""))
	if v1.ID != "v1" || v1.Status != Candidate || v1.Seq != 1 {
		t.Fatalf("first version %+v", v1)
	}
	if prev, err := r.SetServing("v1", "base model", load); err != nil || prev != "" {
		t.Fatalf("serve v1: prev %q, %v", prev, err)
	}
	if _, err := r.Previous(); !errors.Is(err, ErrNoPrevious) {
		t.Fatalf("previous with one version: %v", err)
	}

	for _, name := range []string{"v2", "v3", "v4"} {
		mustRegister(t, r, candidate(name, "v1"))
	}
	mustJudge(t, r, "v2", true)
	mustJudge(t, r, "v3", false)
	mustJudge(t, r, "v4", true)
	if prev, err := r.SetServing("v2", "gate accepted", load); err != nil || prev != "v1" {
		t.Fatalf("serve v2: prev %q, %v", prev, err)
	}
	if _, err := r.SetServing("v3", "", load); !errors.Is(err, ErrState) {
		t.Fatalf("serving a rejected version: %v", err)
	}
	if _, err := r.SetServing("v4", "gate accepted", load); err != nil {
		t.Fatal(err)
	}
	want := map[string]Status{"v1": Retired, "v2": Retired, "v3": Rejected, "v4": Serving}
	if got := statuses(t, r); !reflect.DeepEqual(got, want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}

	// v3 never served, so the previous version is v2.
	if p, err := r.Previous(); err != nil || p != "v2" {
		t.Fatalf("previous %q, %v; want v2", p, err)
	}
	s, err := r.Rollback("", "clicks dropped", load)
	if err != nil || s.From != "v4" || s.To != "v2" || s.Kind != Rollback {
		t.Fatalf("rollback: %+v, %v", s, err)
	}
	// v4 was rolled back from: a second rollback goes on to v1, not back to v4.
	if p, err := r.Previous(); err != nil || p != "v1" {
		t.Fatalf("previous after a rollback %q, %v; want v1", p, err)
	}
	if _, err := r.Rollback("", "", load); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Rollback("", "", load); !errors.Is(err, ErrNoPrevious) {
		t.Fatalf("rollback past the first version: %v", err)
	}
	if cur, ok, err := r.Serving(); err != nil || !ok || cur.ID != "v1" || cur.Status != Serving {
		t.Fatalf("serving %+v %v %v", cur, ok, err)
	}
	if !reflect.DeepEqual(loaded, []string{"v1", "v2", "v4", "v2", "v1"}) {
		t.Fatalf("loads %v", loaded)
	}
	hist, err := r.History()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range hist {
		got = append(got, fmt.Sprintf("%s:%s>%s", s.Kind, s.From, s.To))
	}
	wantHist := []string{"promote:>v1", "promote:v1>v2", "promote:v2>v4", "rollback:v4>v2", "rollback:v2>v1"}
	if !reflect.DeepEqual(got, wantHist) {
		t.Fatalf("history %v, want %v", got, wantHist)
	}
}

func TestSwapRefusals(t *testing.T) {
	r := openReg(t, openStore(t, t.TempDir()))
	mustRegister(t, r, candidate("a", ""))
	mustRegister(t, r, candidate("b", "v1"))
	if _, err := r.Rollback("", "", nil); !errors.Is(err, ErrNoPrevious) {
		t.Fatalf("rollback with nothing served: %v", err)
	}
	if _, err := r.SetServing("v1", "", nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"already serving", second(r.SetServing("v1", "", nil)), ErrState},
		{"rollback to a never-served candidate", second(r.Rollback("v2", "", nil)), ErrState},
		{"unknown version", second(r.SetServing("v9", "", nil)), ErrNotFound},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}

	// A failed live switch records nothing.
	boom := errors.New("plugin crashed while loading")
	if _, err := r.SetServing("v2", "", func(Version) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("failed load: %v", err)
	}
	if cur, _, _ := r.Serving(); cur.ID != "v1" {
		t.Fatalf("after a failed load %s serves, want v1", cur.ID)
	}
	if got := statuses(t, r); got["v2"] != Candidate {
		t.Fatalf("after a failed load v2 is %s", got["v2"])
	}
	if h, _ := r.History(); len(h) != 1 {
		t.Fatalf("after a failed load history has %d swaps, want 1", len(h))
	}

	// Judge and Reject apply to candidates only.
	if _, err := r.Judge("v1", nil, gate.Decision{Accepted: true}); !errors.Is(err, ErrState) {
		t.Fatalf("judging the serving version: %v", err)
	}
	v, err := r.Reject("v2", "training diverged")
	if err != nil || v.Status != Rejected {
		t.Fatalf("reject: %+v %v", v, err)
	}
	if _, err := r.SetServing("v2", "", nil); err == nil || !errors.Is(err, ErrState) {
		t.Fatalf("serving a version rejected by training: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

// The live switch runs outside the database's write transaction: the click
// log keeps taking searches while a model loads.
func TestLoadDoesNotStallTheLog(t *testing.T) {
	store := openStore(t, t.TempDir())
	r := openReg(t, store)
	mustRegister(t, r, candidate("a", ""))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := r.SetServing("v1", "", func(Version) error {
		return store.LogSearch(ctx, clicklog.Impression{SearchID: "s1", Query: "q", Results: []clicklog.Shown{{DocID: "d", Position: 1}}})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRegisterValidation(t *testing.T) {
	r := openReg(t, openStore(t, t.TempDir()))
	mustRegister(t, r, candidate("a", ""))
	named := candidate("n", "")
	named.ID = "base-minilm"
	mustRegister(t, r, named)
	for _, tc := range []struct {
		name string
		edit func(*Version)
	}{
		{"bad id", func(v *Version) { v.ID = "a b" }},
		{"id taken", func(v *Version) { v.ID = "base-minilm" }},
		{"no checkpoint", func(v *Version) { v.Checkpoint = "" }},
		{"bad hash", func(v *Version) { v.CheckpointHash = "abc" }},
		{"hash registered", func(v *Version) { v.CheckpointHash = hashOf("a") }},
		{"unknown parent", func(v *Version) { v.Parent = "v42" }},
		{"NaN metric", func(v *Version) { v.Metrics = map[string]float64{"ndcg@10": math.NaN()} }},
		{"window backwards", func(v *Version) { v.Data.Since, v.Data.Until = time.Now(), time.Now().Add(-time.Hour) }},
		{"negative count", func(v *Version) { v.Data.Clicks = -1 }},
	} {
		v := candidate("fresh-"+tc.name, "")
		tc.edit(&v)
		if _, err := r.Register(v); err == nil {
			t.Errorf("%s: registered", tc.name)
		}
	}
	if vs, _ := r.List(); len(vs) != 2 {
		t.Fatalf("%d versions after refusals, want 2", len(vs))
	}
	if _, err := r.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get unknown: %v", err)
	}
}

func TestPersistsWithTheLog(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir)
	r := openReg(t, store)
	since := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	v := candidate("ft", "")
	v.Data = Window{Since: since, Until: since.Add(48 * time.Hour), Searches: 1200, Clicks: 310, Examples: 2400}
	v.Hyperparameters = map[string]any{"learning_rate": 3e-5, "epochs": 2, "loss": "bce"}
	v.Note = "from clicks"
	reg := mustRegister(t, r, v)
	mustJudge(t, r, reg.ID, true)
	if _, err := r.SetServing(reg.ID, "gate accepted", nil); err != nil {
		t.Fatal(err)
	}
	before, _ := r.List()
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	r = openReg(t, openStore(t, dir))
	after, err := r.List()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) || len(after) != 1 {
		t.Fatalf("after reopen\n%+v\nwant\n%+v", after, before)
	}
	got := after[0]
	if got.Status != Serving || got.Data.Clicks != 310 || got.Hyperparameters["loss"] != "bce" || got.Metrics["ndcg@10"] != 0.7 {
		t.Fatalf("reopened version %+v", got)
	}
	d, err := got.GateDecision()
	if err != nil || d == nil || !d.Accepted || d.Metric != "ndcg@10" {
		t.Fatalf("gate decision %+v %v", d, err)
	}
}

// A version's fusion with BM25 comes from the fusion.json beside its
// checkpoint when it is registered, survives a reopen, and a corrupt file is
// refused.
func TestRegisterReadsTheFusion(t *testing.T) {
	dir := t.TempDir()
	r := openReg(t, openStore(t, dir))
	plain := mustRegister(t, r, candidate("plain", ""))
	if plain.Fusion != nil {
		t.Fatalf("a checkpoint without fusion.json got %+v", plain.Fusion)
	}
	fused := candidate("fused", "")
	fused.Checkpoint = t.TempDir()
	want := fusion.Params{Method: fusion.MinMax, BM25Weight: 0.35, FittedOn: "train"}
	if err := fusion.Write(fused.Checkpoint, want); err != nil {
		t.Fatal(err)
	}
	v := mustRegister(t, r, fused)
	got, err := r.Get(v.ID)
	if err != nil || got.Fusion == nil || *got.Fusion != want {
		t.Fatalf("registered fusion %+v, %v; want %+v", got.Fusion, err, want)
	}
	bad := candidate("bad", "")
	bad.Checkpoint = t.TempDir()
	os.WriteFile(filepath.Join(bad.Checkpoint, fusion.File), []byte("{"), 0o644)
	if _, err := r.Register(bad); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), fusion.File) {
		t.Errorf("corrupt fusion.json: %v", err)
	}
}
