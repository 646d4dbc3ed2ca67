//go:build unix

package clicklog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/rerankloop/rerank/finetune/impression"
)

// loadChildEnv turns the test binary into the load generator of
// TestKill9Durability: it logs into the folder the variable names.
const loadChildEnv = "CLICKLOG_LOAD_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(loadChildEnv); dir != "" {
		os.Exit(runLoadChild(dir))
	}
	os.Exit(m.Run())
}

// runLoadChild logs searches and clicks from 8 goroutines until killed and
// prints a line for each event after its call returned:
//
//	S <search>   the search was acknowledged
//	C <search>   its click on "a" (event id e1) was acknowledged, then retried
//	W <search>   its click on "b" (no event id) was acknowledged, then repeated
//
// The retries must be de-duplicated. It exits by itself after a minute, so
// it never outlives a parent that died.
func runLoadChild(dir string) int {
	s, err := Open(dir, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	time.AfterFunc(time.Minute, func() { os.Exit(3) })
	var mu sync.Mutex
	ack := func(kind, id string) {
		mu.Lock()
		defer mu.Unlock()
		os.Stdout.WriteString(kind + " " + id + "\n") // one write per line: never torn by the kill
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	for g := range 8 {
		go func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("g%d-%d", g, i)
				if err := s.LogSearch(ctx, search(id, time.Now(), "a", "b", "c")); err != nil {
					fail(err)
				}
				ack("S", id)
				click := Click{SearchID: id, DocID: "a", DwellMS: 1500, EventID: "e1"}
				for range 2 {
					if err := s.LogClick(ctx, click); err != nil {
						fail(err)
					}
				}
				ack("C", id)
				click = Click{SearchID: id, DocID: "b", Time: time.Now()}
				for range 2 {
					if err := s.LogClick(ctx, click); err != nil {
						fail(err)
					}
				}
				ack("W", id)
			}
		}()
	}
	select {}
}

// TestKill9Durability kills a process logging under load with SIGKILL and
// checks, after reopening, that every acknowledged event is there exactly
// once and that nothing is duplicated.
func TestKill9Durability(t *testing.T) {
	const target = 400 // acknowledged searches before the kill
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), loadChildEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A bound on the whole run, not a timing assertion: a stuck child is
	// killed and the test fails below for lack of acknowledgements.
	stuck := time.AfterFunc(90*time.Second, func() { cmd.Process.Kill() })
	defer stuck.Stop()

	acked := map[string]map[string]bool{"S": {}, "C": {}, "W": {}}
	killed := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() { // lines already in the pipe after the kill are read too: they were acknowledged
		kind, id, ok := strings.Cut(sc.Text(), " ")
		if !ok || acked[kind] == nil {
			t.Fatalf("child printed %q", sc.Text())
		}
		acked[kind][id] = true
		if !killed && len(acked["S"]) >= target {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !killed || !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed mid-load (wait: %v, %d searches acknowledged); stderr:\n%s", err, len(acked["S"]), stderr.String())
	}

	s := openTest(t, dir, Options{})
	// bbolt's own consistency check over every page.
	err = s.db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if n, m := tx.Bucket(bktByTime).Stats().KeyN, tx.Bucket(bktSearches).Stats().KeyN; n != m {
			errs = append(errs, fmt.Errorf("%d time index entries for %d searches", n, m))
		}
		return errors.Join(errs...)
	})
	if err != nil {
		t.Fatalf("database after kill -9: %v", err)
	}

	stored := map[string]impression.Impression{}
	for _, e := range exportAll(t, s, time.Time{}) {
		if _, twice := stored[e.SearchID]; twice {
			t.Fatalf("search %s exported twice", e.SearchID)
		}
		stored[e.SearchID] = e
		for _, r := range e.Results {
			if r.Clicks > 1 {
				t.Fatalf("search %s doc %s has %d clicks: a retry was stored", e.SearchID, r.DocID, r.Clicks)
			}
		}
	}
	clicks := func(id, doc string) int {
		for _, r := range stored[id].Results {
			if r.DocID == doc {
				return r.Clicks
			}
		}
		return -1
	}
	for id := range acked["S"] {
		if _, ok := stored[id]; !ok {
			t.Fatalf("acknowledged search %s is missing", id)
		}
	}
	for id := range acked["C"] {
		if n := clicks(id, "a"); n != 1 {
			t.Fatalf("acknowledged click on %s/a: %d stored, want 1", id, n)
		}
	}
	for id := range acked["W"] {
		if n := clicks(id, "b"); n != 1 {
			t.Fatalf("acknowledged click on %s/b: %d stored, want 1", id, n)
		}
	}
	t.Logf("acknowledged %d searches, %d+%d clicks; %d searches stored (any extra were committed but not yet reported at the kill)",
		len(acked["S"]), len(acked["C"]), len(acked["W"]), len(stored))

	// The reopened log goes on, and de-duplicates against events from before the kill.
	for id := range acked["C"] {
		mustClick(t, s, Click{SearchID: id, DocID: "a", EventID: "e1"})
		for _, e := range exportAll(t, s, time.Time{}) {
			if e.SearchID == id && e.Results[0].Clicks != 1 {
				t.Fatalf("a retry after the restart was stored again: %+v", e)
			}
		}
		break
	}
	mustLog(t, s, search("after-restart", time.Now(), "a"))
}
