package pluginclient

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/rerankloop/rerank/plugin/contract"
)

// pluginBin builds bin/rerank-plugin once for the package's tests; the cgo
// flags come from the environment `make test` sets.
var pluginBin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "rerank-plugin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "rerank-plugin")
	out, err := exec.Command("go", "build", "-o", bin, "../../plugin/cmd/rerank-plugin").CombinedOutput()
	if err != nil {
		return "", errors.New(string(out))
	}
	return bin, nil
})

func start(t *testing.T, opts Options) *Client {
	t.Helper()
	bin, err := pluginBin()
	if err != nil {
		t.Fatalf("building the plugin (run through `make test`, which sets the cgo flags): %v", err)
	}
	opts.PluginPath = bin
	opts.Device = "cpu"
	c, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var docs = []contract.Document{{ID: "a", Text: "Aspirin lowers the risk of heart attack."}, {ID: "b", Text: "The sky is blue."}}

func TestRerankThroughThePluginProcess(t *testing.T) {
	c := start(t, Options{ModelPath: "../../plugin/testdata/tiny-ce", ModelVersion: "tiny"})
	resp, err := c.Rerank(context.Background(), contract.RerankRequest{Query: "aspirin heart", Documents: docs, TopN: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Scores) != 2 || len(resp.Ranking) != 1 || resp.ModelVersion != "tiny" {
		t.Fatalf("response %+v", resp)
	}
	infos, err := c.Info(context.Background())
	if err != nil || len(infos) != 1 || !infos[0].Serving || infos[0].Device != "cpu" || len(infos[0].CheckpointHash) != 64 {
		t.Fatalf("info %+v, %v", infos, err)
	}
	// Errors keep their kind across the process boundary.
	if _, err := c.Rerank(context.Background(), contract.RerankRequest{Query: "", Documents: docs}); !errors.Is(err, contract.ErrInvalidRequest) {
		t.Errorf("empty query: %v", err)
	}
	if _, err := c.Rerank(context.Background(), contract.RerankRequest{Query: "q", Documents: docs, Model: "other"}); !errors.Is(err, contract.ErrNoModel) {
		t.Errorf("unknown model: %v", err)
	}
	if _, err := c.Load(context.Background(), contract.LoadRequest{Path: t.TempDir()}); err == nil {
		t.Error("loading an empty folder succeeded")
	}
}

func TestChecksumMismatchIsRefused(t *testing.T) {
	bin, err := pluginBin()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Start(context.Background(), Options{PluginPath: bin, Checksum: strings.Repeat("ab", 32)})
	if !errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
		t.Fatalf("a plugin whose checksum does not match: %v, want go-plugin's checksum error", err)
	}
	// The same binary with its own checksum starts: the refusal was the checksum's.
	c, err := Start(context.Background(), Options{PluginPath: bin})
	if err != nil {
		t.Fatalf("the plugin with its real checksum: %v", err)
	}
	c.Close()
}

// load reranks from 4 goroutines until the returned stop is called (which
// waits for them); record gets each call's start time, response and error.
func load(c *Client, timeout time.Duration, record func(started time.Time, resp contract.RerankResponse, err error)) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				started := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				resp, err := c.Rerank(ctx, contract.RerankRequest{Query: "aspirin", Documents: docs})
				cancel()
				record(started, resp, err)
			}
		}()
	}
	return func() { close(done); wg.Wait() }
}

// TestKilledPluginIsRestarted kills the plugin with SIGKILL under concurrent
// load: every call either succeeds or fails with an error (none hangs or is
// lost), the client notices within a second, and calls succeed again after
// the restart with the model reloaded.
func TestKilledPluginIsRestarted(t *testing.T) {
	c := start(t, Options{ModelPath: "../../plugin/testdata/tiny-ce", ModelVersion: "tiny", CallTimeout: 5 * time.Second})
	// Two more versions beside the serving one; the unloaded one must not come back after the restart.
	ctx := context.Background()
	for _, v := range []string{"arm", "gone"} {
		if _, err := c.Load(ctx, contract.LoadRequest{Path: "../../plugin/testdata/tiny-ce", Version: v}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Unload(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := c.Unload(ctx, "tiny"); !errors.Is(err, contract.ErrInvalidRequest) {
		t.Errorf("unloading the serving model: %v, want ErrInvalidRequest", err)
	}
	if err := c.Unload(ctx, "gone"); !errors.Is(err, contract.ErrNoModel) {
		t.Errorf("unloading it twice: %v, want ErrNoModel", err)
	}
	var ok, failed, unavailable, hung atomic.Int64
	stop := load(c, 5*time.Second, func(started time.Time, _ contract.RerankResponse, err error) {
		if time.Since(started) >= 5*time.Second {
			hung.Add(1) // waited out its whole deadline
		}
		switch {
		case err == nil:
			ok.Add(1)
		case errors.Is(err, contract.ErrUnavailable):
			unavailable.Add(1)
			time.Sleep(5 * time.Millisecond)
		default:
			failed.Add(1)
		}
	})
	time.Sleep(300 * time.Millisecond)
	pid := c.PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	for c.PID() == pid || c.PID() == 0 {
		if time.Since(killed) > 30*time.Second {
			t.Fatal("plugin not restarted within 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Down is noticed by the poll (100 ms); the restart itself takes longer.
	noticed := c.downSince()
	if noticed.IsZero() || noticed.Sub(killed) > time.Second {
		t.Errorf("crash noticed %v after the kill, want under 1 s", noticed.Sub(killed))
	}
	stop()
	resp, err := c.Rerank(context.Background(), contract.RerankRequest{Query: "aspirin", Documents: docs})
	if err != nil || resp.ModelVersion != "tiny" {
		t.Fatalf("after restart: %+v, %v", resp, err)
	}
	if c.Restarts() != 1 {
		t.Errorf("restarts = %d, want 1", c.Restarts())
	}
	infos, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var held []string
	for _, in := range infos {
		held = append(held, in.Version)
	}
	if !slices.Equal(held, []string{"tiny", "arm"}) {
		t.Errorf("after the restart the plugin holds %v, want [tiny arm]", held)
	}
	t.Logf("calls: %d ok, %d unavailable (fast fallback), %d other errors", ok.Load(), unavailable.Load(), failed.Load())
	if ok.Load() == 0 || unavailable.Load()+failed.Load() == 0 {
		t.Errorf("the load did not straddle the crash: %d ok, %d failed", ok.Load(), unavailable.Load()+failed.Load())
	}
	if hung.Load() > 0 {
		t.Errorf("%d calls hung until their deadline instead of failing fast", hung.Load())
	}
}

// TestStoppedPluginIsReplaced SIGSTOPs the plugin under load: it does not
// exit, so only the health probe can tell. Calls fail at their 500 ms
// deadline (searches answer in BM25 order), the plugin is killed after
// ProbeFailures failed probes and replaced, and reranking resumes.
func TestStoppedPluginIsReplaced(t *testing.T) {
	began := time.Now()
	c := start(t, Options{ModelPath: "../../plugin/testdata/tiny-ce", ModelVersion: "tiny"})
	startup := time.Since(began) // a restart costs about as much
	var ok, failed atomic.Int64
	stop := load(c, 500*time.Millisecond, func(_ time.Time, _ contract.RerankResponse, err error) {
		if err != nil {
			failed.Add(1)
			time.Sleep(5 * time.Millisecond)
		} else {
			ok.Add(1)
		}
	})
	defer stop()
	time.Sleep(300 * time.Millisecond)
	pid := c.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	stopped := time.Now()
	// Production's bound: ProbeFailures probes a Probe apart, each waiting
	// ProbeTimeout, go-plugin's 2 s grace before its forced kill, a restart.
	o := c.opts
	bound := time.Duration(o.ProbeFailures+1)*o.Probe + o.ProbeTimeout + 2*time.Second + 2*startup
	for c.PID() == pid || c.PID() == 0 {
		if time.Since(stopped) > bound {
			t.Fatalf("the stopped plugin was not replaced within %v", bound)
		}
		time.Sleep(10 * time.Millisecond)
	}
	replaced := time.Since(stopped)
	before := ok.Load()
	resp, err := c.Rerank(context.Background(), contract.RerankRequest{Query: "aspirin", Documents: docs})
	if err != nil || resp.ModelVersion != "tiny" {
		t.Fatalf("after the replacement: %+v, %v", resp, err)
	}
	time.Sleep(300 * time.Millisecond)
	t.Logf("replaced %v after SIGSTOP (bound %v); calls %d ok, %d failed at their deadline", replaced, bound, ok.Load(), failed.Load())
	if failed.Load() == 0 || ok.Load() <= before {
		t.Errorf("the load did not straddle the stop: %d ok (%d before the replacement), %d failed", ok.Load(), before, failed.Load())
	}
}

// The host passes its per-request document limit to the plugin, so the two
// cannot disagree (a host allowing more than the plugin would answer its
// own valid requests with errors).
func TestPluginTakesTheHostsDocumentLimit(t *testing.T) {
	c := start(t, Options{ModelPath: "../../plugin/testdata/tiny-ce", MaxDocuments: 3})
	four := append(slices.Clone(docs), docs...)
	if _, err := c.Rerank(context.Background(), contract.RerankRequest{Query: "q", Documents: four}); !errors.Is(err, contract.ErrInvalidRequest) || !strings.Contains(err.Error(), "limit of 3") {
		t.Errorf("4 documents against the host's limit of 3: %v", err)
	}
	if _, err := c.Rerank(context.Background(), contract.RerankRequest{Query: "q", Documents: docs}); err != nil {
		t.Errorf("2 documents: %v", err)
	}
}
