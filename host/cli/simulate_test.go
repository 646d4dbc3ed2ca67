package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/finetune/impression"
	"github.com/rerankloop/rerank/host/clicklog"
	"github.com/rerankloop/rerank/host/simulate"
)

// sampleConfig indexes the SciFact sample into data and returns the built-in
// configuration (with the environment's overrides) serving it on 127.0.0.1.
func sampleConfig(t *testing.T, data string) configs.Config {
	t.Helper()
	if _, err := evalCLI(t, "index", "--dataset", scifactSample, "--data-dir", data); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RERANK_CONFIG", "")
	cfg, err := configs.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir, cfg.IndexDir, cfg.Listen = data, filepath.Join(data, "index"), "127.0.0.1:0"
	return cfg
}

// serveInProcess runs the real serve path for cfg in this process until stop
// (called at cleanup too), which returns serve's error once it has drained.
func serveInProcess(t *testing.T, cfg configs.Config) (h runningHost, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan runningHost, 1), make(chan error, 1)
	go func() { done <- serveHost(ctx, cfg, io.Discard, func(h runningHost) { ready <- h }) }()
	select {
	case h = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	}
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return h, stop
}

func TestSimulateCommand(t *testing.T) {
	data := t.TempDir()
	h, stop := serveInProcess(t, sampleConfig(t, data))
	base := "http://" + h.Addr

	out, err := evalCLI(t, "simulate", "--host", base, "--dataset", scifactSample, "--users", "4",
		"--click-model", "cascade", "--seed", "3", "--searches", "60", "--concurrency", "3")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"60 searches by 4 users (cascade, seed 3)", "RANK", "model version none (BM25 order): 60 searches"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	m := regexp.MustCompile(`: (\d+) clicks \(`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no click count in:\n%s", out)
	}
	firstClicks, _ := strconv.Atoi(m[1])
	out, err = evalCLI(t, "simulate", "--host", base, "--dataset", scifactSample, "--split", "test", "--users", "2", "--seed", "4", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var sum simulate.Summary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if sum.Searches == 0 || sum.Clicks == 0 || sum.Failed() != 0 {
		t.Fatalf("--json summary %+v", sum)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--host", "http://10.0.0.1:80", "--dataset", scifactSample}, "only targets loopback"},
		{[]string{"--host", base, "--dataset", scifactSample, "--split", "dev"}, `no split "dev"`},
		{[]string{"--host", base, "--dataset", scifactSample, "--click-model", "ubm"}, "click model"},
		{[]string{"--host", base, "--dataset", scifactSample, "--click-relevant", "2"}, "relevant click probability"},
		{[]string{"--host", base, "--dataset", filepath.Join(data, "absent")}, "--dataset"},
		{[]string{"--dataset", scifactSample}, `"host" not set`},
	} {
		if _, err := evalCLI(t, append([]string{"simulate"}, tc.args...)...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error containing %q", tc.args, err, tc.want)
		}
	}

	// The simulated clicks are in the host's click log (serve's error, if any, is reported at cleanup).
	stop()
	store, err := clicklog.Open(data, clicklog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var buf bytes.Buffer
	if err := store.Export(context.Background(), time.Time{}, &buf); err != nil {
		t.Fatal(err)
	}
	searches, clicks := 0, 0
	impression.Read(&buf, func(e impression.Impression) error {
		searches++
		for _, r := range e.Results {
			clicks += r.Clicks
		}
		return nil
	})
	if searches != 60+sum.Searches || clicks != firstClicks+sum.Clicks {
		t.Fatalf("click log: %d searches, %d clicks; the runs reported %d and %d", searches, clicks, 60+sum.Searches, firstClicks+sum.Clicks)
	}
}
