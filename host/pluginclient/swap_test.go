package pluginclient

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
)

// bigCheckpoint writes a random model of MiniLM's size (90 MB), which takes
// long enough to load that a test can act while the load is in flight.
func bigCheckpoint(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := checkpoint.WriteRandom(dir, checkpoint.MiniLMConfig(), 3); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSwapUnderLoadFailsNoSearch swaps the serving model while clients
// rerank continuously: no call fails or passes its deadline, each response
// names one version, and once Load returns every response names the new one.
func TestSwapUnderLoadFailsNoSearch(t *testing.T) {
	c := start(t, Options{ModelPath: "../../plugin/testdata/tiny-ce", ModelVersion: "old"})
	next := bigCheckpoint(t)
	var (
		mu       sync.Mutex
		versions = map[string]int{}
		failures []error
		afterOld int
		swapped  atomic.Int64 // when Load returned, unix nanoseconds
	)
	stop := load(c, 500*time.Millisecond, func(started time.Time, resp contract.RerankResponse, err error) { // the search deadline
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failures = append(failures, err)
			return
		}
		versions[resp.ModelVersion]++
		if at := swapped.Load(); at != 0 && started.UnixNano() > at && resp.ModelVersion != "new" {
			afterOld++
		}
	})
	time.Sleep(200 * time.Millisecond)
	if _, err := c.Load(context.Background(), contract.LoadRequest{Path: next, Version: "new", Serve: true}); err != nil {
		t.Fatal(err)
	}
	swapped.Store(time.Now().UnixNano())
	time.Sleep(300 * time.Millisecond)
	stop()
	t.Logf("responses by version: %v", versions)
	if len(failures) > 0 {
		t.Errorf("%d calls failed during the swap, first: %v", len(failures), failures[0])
	}
	if versions["old"] == 0 || versions["new"] == 0 || len(versions) != 2 {
		t.Errorf("versions seen %v, want both old and new only", versions)
	}
	if afterOld > 0 {
		t.Errorf("%d responses from the old model after the swap returned", afterOld)
	}
	infos, err := c.Info(context.Background())
	if err != nil || len(infos) != 1 || infos[0].Version != "new" {
		t.Errorf("after the swap the plugin holds %+v (%v), want only the new model", infos, err)
	}
}

// TestCrashDuringSwapKeepsOldVersion kills the plugin while it loads a new
// model: the restarted plugin serves the old version.
func TestCrashDuringSwapKeepsOldVersion(t *testing.T) {
	c := start(t, Options{ModelPath: "../../plugin/testdata/tiny-ce", ModelVersion: "old"})
	next := bigCheckpoint(t)
	pid := c.PID()
	loadErr := make(chan error, 1)
	go func() {
		_, err := c.Load(context.Background(), contract.LoadRequest{Path: next, Version: "new", Serve: true})
		loadErr <- err
	}()
	time.Sleep(100 * time.Millisecond) // the load reads 90 MB and takes longer
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-loadErr; !errors.Is(err, contract.ErrUnavailable) {
		t.Fatalf("load interrupted by the crash returned %v, want ErrUnavailable", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for c.PID() == pid || c.PID() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("plugin not restarted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := c.Rerank(context.Background(), contract.RerankRequest{Query: "aspirin", Documents: docs})
	if err != nil || resp.ModelVersion != "old" {
		t.Fatalf("after the crash: version %q, %v; want the old version serving", resp.ModelVersion, err)
	}
}
