//go:build linux

package pluginclient

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// The supervisor tells a busy process from a hung one by its CPU time: a
// process that computes counts as busy, a stopped one does not.
func TestBusyMeterTellsBusyFromStopped(t *testing.T) {
	spin := exec.Command("sh", "-c", "while :; do :; done")
	if err := spin.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { spin.Process.Kill(); spin.Wait() })
	var m busyMeter
	m.watch(spin.Process.Pid)
	if m.busy() {
		t.Fatal("busy on the first look, without a baseline")
	}
	time.Sleep(time.Second) // one probe interval
	if !m.busy() {
		t.Fatal("a spinning process does not count as busy")
	}
	if err := spin.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the stop takes effect
	m.busy()
	time.Sleep(time.Second) // one probe interval
	if m.busy() {
		t.Fatal("a stopped process counts as busy")
	}
	m.watch(spin.Process.Pid + 1e6) // no such process
	if m.busy() {
		t.Fatal("a process /proc does not show counts as busy")
	}
}
