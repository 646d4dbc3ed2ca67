package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/rerankloop/rerank/evalharness/gate"
	"github.com/rerankloop/rerank/host/clicklog"
	"github.com/rerankloop/rerank/host/registry"
)

// registryFixture registers v1 (base, served first), v2 (fine-tuned from
// v1, accepted by the gate, serving) and v3 (rejected) in a data folder.
func registryFixture(t *testing.T) string {
	t.Helper()
	data := t.TempDir()
	store, err := clicklog.Open(data, clicklog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	reg, err := registry.Open(store)
	if err != nil {
		t.Fatal(err)
	}
	reg1 := func(name, parent string) registry.Version {
		h := sha256.Sum256([]byte(name))
		v, err := reg.Register(registry.Version{
			Checkpoint: "/models/" + name, CheckpointHash: hex.EncodeToString(h[:]), Parent: parent,
			Data:            registry.Window{Searches: 500, Clicks: 120, Examples: 900},
			Hyperparameters: map[string]any{"learning_rate": 3e-5, "epochs": 2},
		})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	judge := func(id string, gain float64) {
		cand, bm25 := map[string]float64{}, map[string]float64{}
		for i := range 30 {
			q := fmt.Sprint(i)
			bm25[q] = 0.5 + 0.01*float64(i%5)
			cand[q] = bm25[q] + gain + 0.005*float64(i%3)
		}
		d, err := gate.Decide(cand, nil, bm25, gate.DefaultPolicy())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Judge(id, map[string]float64{"ndcg@10": d.CandidateMean}, d); err != nil {
			t.Fatal(err)
		}
	}
	reg1("base", "")
	if _, err := reg.SetServing("v1", "base model", nil); err != nil {
		t.Fatal(err)
	}
	reg1("ft1", "v1")
	judge("v2", 0.05)
	if _, err := reg.SetServing("v2", "gate accepted", nil); err != nil {
		t.Fatal(err)
	}
	reg1("ft2", "v2")
	judge("v3", -0.05)
	return data
}

func TestModelsCommands(t *testing.T) {
	data := registryFixture(t)
	out, err := evalCLI(t, "models", "list", "--data-dir", data)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[2], "*") {
		t.Fatalf("list:\n%s", out)
	}
	for i, want := range [][]string{{"v1", "retired", "-"}, {"v2", "serving", "accepted", "0.5"}, {"v3", "rejected", "v2", "rejected"}} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("list line %q lacks %q", lines[i+1], w)
			}
		}
	}

	out, err = evalCLI(t, "models", "show", "v2", "--data-dir", data)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`status\s+serving\n`, `parent\s+v1\n`, `data\s+500 searches, 120 clicks, 900 training examples`,
		`hyperparameter learning_rate\s+3e-05`, `gate\s+accepted: NDCG@10`, `margin\s+passed`, `promote: v1 -> v2 \(gate accepted\)`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("show lacks %s:\n%s", want, out)
		}
	}
	out, err = evalCLI(t, "models", "show", "--json", "v3", "--data-dir", data)
	if err != nil {
		t.Fatal(err)
	}
	var shown struct {
		registry.Version
		Swaps []registry.Swap `json:"swaps"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatalf("show --json: %v\n%s", err, out)
	}
	if d, err := shown.GateDecision(); err != nil || d == nil || d.Accepted || shown.Status != registry.Rejected || len(shown.Swaps) != 0 {
		t.Fatalf("show --json v3: %+v gate %+v %v", shown, d, err)
	}
	if _, err := evalCLI(t, "models", "show", "v9", "--data-dir", data); err == nil || !strings.Contains(err.Error(), "no such model version") {
		t.Fatalf("show unknown: %v", err)
	}
}

func TestRollbackCommand(t *testing.T) {
	data := registryFixture(t)
	if _, err := evalCLI(t, "rollback", "v3", "--data-dir", data); err == nil || !strings.Contains(err.Error(), "rejected") {
		t.Fatalf("rollback to a rejected version: %v", err)
	}
	out, err := evalCLI(t, "rollback", "--data-dir", data)
	if err != nil || !strings.Contains(out, "rolled back from v2 to v1") {
		t.Fatalf("rollback: %q %v", out, err)
	}
	if _, err := evalCLI(t, "rollback", "--data-dir", data); err == nil || !strings.Contains(err.Error(), "no earlier version") {
		t.Fatalf("second rollback: %v", err)
	}

	store, err := clicklog.Open(data, clicklog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	reg, err := registry.Open(store)
	if err != nil {
		t.Fatal(err)
	}
	cur, ok, err := reg.Serving()
	if err != nil || !ok || cur.ID != "v1" {
		t.Fatalf("after rollback %q serves (%v, %v)", cur.ID, ok, err)
	}
	hist, _ := reg.History()
	if last := hist[len(hist)-1]; last.Kind != registry.Rollback || last.Reason != "rollback from the command line" {
		t.Fatalf("last swap %+v", last)
	}
	// While another process (here: this one) holds the log, the command says so.
	if _, err := evalCLI(t, "models", "list", "--data-dir", data); err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("list on a held log: %v", err)
	}
}
