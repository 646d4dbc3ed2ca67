//go:build unix

package cli

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rerankloop/rerank/host/clicklog"
	"github.com/rerankloop/rerank/host/registry"
	"github.com/rerankloop/rerank/plugin/checkpoint"
)

// replicaPoll is the replicas' poll interval in the test; a replica must
// serve the primary's new version within replicaSteps polls (the copy of
// the tiny model and its load take well under one).
const (
	replicaPoll  = 200 * time.Millisecond
	replicaSteps = 10
)

// rerankAnswer is what /v1/rerank answered: the version and the scores by
// document index.
type rerankAnswer struct {
	version string
	scores  map[int]float64
}

func askRerank(t *testing.T, base string) (rerankAnswer, int) {
	t.Helper()
	raw, _ := json.Marshal(map[string]any{"query": "vitamin d deficiency and bone health",
		"documents": []string{"Vitamin D and calcium in bone mineral density.", "Quantum dots in solar cells.", "Bone fractures in the elderly."}})
	resp, err := http.Post(base+"/v1/rerank", "application/json", bytes.NewReader(raw))
	if err != nil {
		return rerankAnswer{}, 0
	}
	defer resp.Body.Close()
	var out struct {
		Results []struct {
			Index int     `json:"index"`
			Score float64 `json:"relevance_score"`
		} `json:"results"`
		Meta struct {
			ModelVersion string `json:"model_version"`
		} `json:"meta"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	a := rerankAnswer{version: out.Meta.ModelVersion, scores: map[int]float64{}}
	for _, r := range out.Results {
		a.scores[r.Index] = r.Score
	}
	return a, resp.StatusCode
}

// waitServes polls base's /v1/rerank until it answers with the primary's
// version and scores, within replicaSteps polls.
func waitServes(t *testing.T, base string, want rerankAnswer) {
	t.Helper()
	deadline := time.Now().Add(replicaSteps * replicaPoll)
	var got rerankAnswer
	for time.Now().Before(deadline) {
		got, _ = askRerank(t, base)
		if got.version == want.version {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got.version != want.version || len(got.scores) != len(want.scores) {
		t.Fatalf("after %s the replica serves %q, want %q", replicaSteps*replicaPoll, got.version, want.version)
	}
	for i, s := range want.scores {
		if got.scores[i] != s {
			t.Fatalf("replica's score of document %d: %v, the primary's %v", i, got.scores[i], s)
		}
	}
}

func adminCall(t *testing.T, method, url string, body any) (int, string) {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, url, bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer test-admin")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// TestReplicasFollowThePrimary runs a primary and a replica as real
// `rerank serve --rerank-only` processes with real plugins. The replica,
// given only the primary's URL, serves the primary's version with the same
// scores; it follows a swap and a rollback made on the primary, refuses
// swaps of its own, keeps serving when the primary dies, and restarts on the
// version it copied last while the primary is still down.
func TestReplicasFollowThePrimary(t *testing.T) {
	plugin := buildPlugin(t)
	seed7 := filepath.Join(t.TempDir(), "seed7")
	if out, err := evalCLI(t, "model", "init", "--tiny", "--seed", "7", "--out", seed7); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// The primary's registry holds a second version to swap to.
	pdata := t.TempDir()
	store, err := clicklog.Open(pdata, clicklog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Open(store)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := checkpoint.Hash(seed7)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Register(registry.Version{ID: "seed7", Checkpoint: seed7, CheckpointHash: hash}); err != nil {
		t.Fatal(err)
	}
	store.Close()
	pcmd := rerankOnlyCmd(t, plugin, pdata, tinyModel)
	primary := serveAddr(t, pcmd)
	base, _ := askRerank(t, primary)
	if base.version == "" || base.version == "seed7" {
		t.Fatalf("primary serves %q", base.version)
	}

	rdata := t.TempDir()
	startReplica := func() (*exec.Cmd, string) {
		// No rerank.model_path: the primary's URL is all a replica needs.
		cmd := rerankOnlyCmd(t, plugin, rdata, "")
		cmd.Env = append(cmd.Env, "RERANK_REPLICA_PRIMARY="+primary, "RERANK_REPLICA_POLL="+replicaPoll.String(), "RERANK_REPLICA_NAME=r1")
		return cmd, serveAddr(t, cmd)
	}
	cmd, rep := startReplica()
	waitServes(t, rep, base)

	if code, body := adminCall(t, "POST", primary+"/admin/swap", map[string]string{"version": "seed7"}); code != 200 {
		t.Fatalf("swap on the primary: %d %s", code, body)
	}
	swapped, _ := askRerank(t, primary)
	if swapped.version != "seed7" {
		t.Fatalf("primary serves %q after the swap", swapped.version)
	}
	waitServes(t, rep, swapped)

	// The primary lists its replica and what it serves.
	deadline := time.Now().Add(replicaSteps * replicaPoll)
	for {
		_, body := adminCall(t, "GET", primary+"/admin/models", nil)
		var m struct {
			Replicas []struct{ Name, Serving string } `json:"replicas"`
		}
		json.Unmarshal([]byte(body), &m)
		if len(m.Replicas) == 1 && m.Replicas[0].Name == "r1" && m.Replicas[0].Serving == "seed7" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("primary's replicas: %s", body)
		}
		time.Sleep(replicaPoll)
	}
	// A replica refuses to change the registry itself.
	for _, path := range []string{"/admin/swap", "/admin/rollback", "/admin/retrain"} {
		if code, body := adminCall(t, "POST", rep+path, map[string]string{"version": base.version}); code != http.StatusConflict || !strings.Contains(body, "replica of "+primary) {
			t.Fatalf("POST %s on the replica: %d %s", path, code, body)
		}
	}

	if code, body := adminCall(t, "POST", primary+"/admin/rollback", nil); code != 200 {
		t.Fatalf("rollback on the primary: %d %s", code, body)
	}
	waitServes(t, rep, base)

	// The primary dies: the replica keeps serving and says it is out of touch.
	pcmd.Process.Kill()
	pcmd.Wait()
	time.Sleep(2 * replicaPoll)
	if got, code := askRerank(t, rep); code != 200 || got.version != base.version {
		t.Fatalf("replica with its primary down: %d %q", code, got.version)
	}
	_, body := adminCall(t, "GET", rep+"/readyz", nil)
	if !strings.Contains(body, `"failures":`) || !strings.Contains(body, "connection refused") {
		t.Fatalf("replica's readyz with its primary down: %s", body)
	}
	// Restarted while the primary is down, it serves what it copied last.
	cmd.Process.Kill()
	cmd.Wait()
	_, rep = startReplica()
	if got, code := askRerank(t, rep); code != 200 || got.version != base.version {
		t.Fatalf("replica restarted with its primary down: %d %q", code, got.version)
	}
}
