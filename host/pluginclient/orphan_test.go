package pluginclient

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostChildEnv makes the test binary a host that starts the plugin, prints
// its pid and waits to be killed.
const hostChildEnv = "RERANK_TEST_HOST_CHILD"

func TestMain(m *testing.M) {
	if bin := os.Getenv(hostChildEnv); bin != "" {
		c, err := Start(context.Background(), Options{PluginPath: bin, Device: "cpu", ModelPath: "../../plugin/testdata/tiny-ce"})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("plugin", c.PID())
		select {}
	}
	os.Exit(m.Run())
}

// alive says whether pid runs (a zombie, dead but not yet reaped, is not).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// A host killed with SIGKILL takes its plugin along: the plugin, with its
// gigabytes of weights, is gone within a second instead of running on.
func TestKilledHostTakesThePluginAlong(t *testing.T) {
	bin, err := pluginBin()
	if err != nil {
		t.Fatalf("building the plugin (run through `make test`, which sets the cgo flags): %v", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), hostChildEnv+"="+bin)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stuck := time.AfterFunc(3*time.Minute, func() { cmd.Process.Kill() }) // a bound on a stuck child, not a timing assertion
	defer stuck.Stop()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the host child said nothing: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "plugin "))
	if err != nil || pid <= 0 || !alive(pid) {
		t.Fatalf("host child: %q (%v)", line, err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	deadline := time.Now().Add(time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(pid) {
		t.Fatalf("the plugin (pid %d) still runs a second after its host was killed", pid)
	}
}

// children lists the live processes of bin whose parent is this process.
func children(bin string) map[int]bool {
	out := map[int]bool{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !alive(pid) {
			continue
		}
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if exe == bin && len(fields) > 1 && fields[1] == strconv.Itoa(os.Getpid()) {
			out[pid] = true
		}
	}
	return out
}

// A Close while the supervisor restarts a crashed plugin kills the new
// process too, instead of leaving it serving nobody.
func TestCloseDuringRestartLeavesNoPlugin(t *testing.T) {
	c := start(t, Options{ModelPath: "../../plugin/testdata/tiny-ce"})
	bin := c.opts.PluginPath
	old := c.PID()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Close once the replacement process exists, before it has its model.
	for start := time.Now(); ; time.Sleep(5 * time.Millisecond) {
		if kids := children(bin); len(kids) > 0 && !kids[old] {
			break
		}
		if time.Since(start) > time.Minute {
			t.Fatal("no replacement plugin started")
		}
	}
	c.Close()
	deadline := time.Now().Add(5 * time.Second) // a restart's model load finishes well within this
	for len(children(bin)) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if kids := children(bin); len(kids) > 0 {
		t.Fatalf("plugin processes %v still run after Close", kids)
	}
}
