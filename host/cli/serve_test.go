//go:build unix

package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rerankloop/rerank/finetune/impression"
	"github.com/rerankloop/rerank/host/clicklog"
)

const sampleCorpus = "../../testdata/scifact-sample"

// childArgsEnv makes the test binary run the rerank command line with the
// arguments it holds (a JSON array): the tests start real host processes.
const childArgsEnv = "RERANK_CLI_TEST_ARGS"

func TestMain(m *testing.M) {
	if raw := os.Getenv(childArgsEnv); raw != "" {
		var args []string
		if err := json.Unmarshal([]byte(raw), &args); err != nil {
			fmt.Fprintln(os.Stderr, childArgsEnv+":", err)
			os.Exit(2)
		}
		rootCmd.SetArgs(args)
		if err := Execute(); err != nil {
			fmt.Fprintln(os.Stderr, "rerank:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// rerank runs the command line in a child process.
func rerank(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	raw, _ := json.Marshal(args)
	cmd.Env = append(os.Environ(), childArgsEnv+"="+string(raw), "RERANK_CONFIG=")
	return cmd
}

func TestIndexCommand(t *testing.T) {
	data := t.TempDir()
	out, err := rerank(t, "index", "--dataset", sampleCorpus, "--data-dir", data).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.Contains(string(out), "indexed 1000 documents") {
		t.Fatalf("output: %s", out)
	}
	if _, err := os.Stat(filepath.Join(data, "index", "index_meta.json")); err != nil {
		t.Fatal("no index under <data-dir>/index")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"index", "--dataset", filepath.Join(data, "nope")}, "--dataset"},
		{[]string{"index", "--dataset", data}, "must hold corpus.jsonl"},
		{[]string{"index", "--dataset", sampleCorpus, "--analyzer", "klingon", "--index", filepath.Join(data, "i2")}, "unknown analyzer"},
		{[]string{"index"}, `"dataset" not set`},
	} {
		out, err := rerank(t, tc.args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v: err %v, output %q; want an error containing %q", tc.args, err, out, tc.want)
		}
	}
}

// host is a running `rerank serve` child.
type host struct {
	cmd  *exec.Cmd
	base string
}

func startHost(t *testing.T, data, index string) *host {
	t.Helper()
	cmd := rerank(t, "serve", "--listen", "127.0.0.1:0", "--data-dir", data, "--index", index)
	return &host{cmd: cmd, base: serveAddr(t, cmd)}
}

// serveAddr starts a `rerank serve` child, stopped when the test ends, and
// returns the base URL it listens on.
func serveAddr(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stderr)
	var lines []string
	for sc.Scan() {
		line := sc.Text()
		lines = append(lines, line)
		if _, addr, ok := strings.Cut(line, "addr=http://"); ok {
			addr, _, _ = strings.Cut(addr, " ")
			go io.Copy(io.Discard, stderr)
			return "http://" + addr
		}
	}
	t.Fatalf("serve exited before listening:\n%s", strings.Join(lines, "\n"))
	return ""
}

func postJSON(c *http.Client, u string, body any) (int, error) {
	b, _ := json.Marshal(body)
	resp, err := c.Post(u, "application/json", bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestKill9UnderLoad searches and clicks on a real host from 8 clients,
// kills it with SIGKILL mid-load, and checks that every click the host
// acknowledged (200) is in the log exactly once, with its search.
func TestKill9UnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("kill -9 test skipped in -short mode")
	}
	data := t.TempDir()
	index := filepath.Join(data, "index")
	if out, err := rerank(t, "index", "--dataset", sampleCorpus, "--index", index).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	h := startHost(t, data, index)
	queries := []string{"stem cells", "vitamin D", "cancer risk", "insulin resistance", "gene expression", "immune response"}

	type ack struct{ search, doc string }
	var mu sync.Mutex
	var acked []ack
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			c := &http.Client{Timeout: 5 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(h.base + "/search?" + url.Values{"q": {queries[(w+i)%len(queries)]}, "size": {"3"}}.Encode())
				if err != nil {
					return // the host is gone
				}
				var res struct {
					SearchID string `json:"search_id"`
					Hits     []struct {
						ID   string `json:"id"`
						Rank int    `json:"rank"`
					} `json:"hits"`
				}
				json.NewDecoder(resp.Body).Decode(&res)
				resp.Body.Close()
				if len(res.Hits) == 0 {
					continue
				}
				hit := res.Hits[i%len(res.Hits)]
				code, err := postJSON(c, h.base+"/click", map[string]any{
					"search_id": res.SearchID, "doc_id": hit.ID, "position": hit.Rank, "dwell_ms": 1000 + i, "event_id": fmt.Sprintf("w%d-%d", w, i),
				})
				if err != nil {
					return
				}
				if code == 200 {
					mu.Lock()
					acked = append(acked, ack{res.SearchID, hit.ID})
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(1500 * time.Millisecond)
	if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.cmd.Wait()
	close(stop)
	wg.Wait()
	if len(acked) < 20 {
		t.Fatalf("only %d clicks acknowledged before the kill: too little load to test", len(acked))
	}

	// Restart the host on the same folders: it must come up and serve.
	h2 := startHost(t, data, index)
	resp, err := http.Get(h2.base + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("restarted host not ready: %v", err)
	}
	resp.Body.Close()
	h2.cmd.Process.Signal(syscall.SIGTERM)
	if err := h2.cmd.Wait(); err != nil {
		t.Fatalf("host did not stop cleanly on SIGTERM: %v", err)
	}

	store, err := clicklog.Open(data, clicklog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var buf bytes.Buffer
	if err := store.Export(context.Background(), time.Time{}, &buf); err != nil {
		t.Fatal(err)
	}
	clicks := map[ack]int{}
	searches := 0
	err = impression.Read(&buf, func(e impression.Impression) error {
		searches++
		for _, r := range e.Results {
			if r.Clicks > 0 {
				clicks[ack{e.SearchID, r.DocID}] += r.Clicks
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range acked {
		if clicks[a] != 1 {
			t.Errorf("acknowledged click %v found %d times after kill -9", a, clicks[a])
		}
	}
	t.Logf("%d searches and %d clicks in the log; %d clicks acknowledged before kill -9", searches, len(clicks), len(acked))
}

func TestServeRejectsBadConfig(t *testing.T) {
	out, err := rerank(t, "serve", "--listen", "nope", "--data-dir", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "listen") {
		t.Fatalf("err %v, output %s", err, out)
	}
	out, err = rerank(t, "serve", "--data-dir", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no index there") {
		t.Fatalf("serve without an index: err %v, output %s", err, out)
	}
}
