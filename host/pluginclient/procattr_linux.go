package pluginclient

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the plugin when the host dies, even by
// SIGKILL, so no orphan keeps its models' memory (or a GPU). The signal is
// tied to the thread that started the plugin; Go only ends threads of
// goroutines that exit while locked to them, which launch never does.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
