//go:build !linux

package pluginclient

import "os/exec"

// dieWithParent: only Linux has a parent-death signal; elsewhere an orphaned
// plugin notices the closed connection when the host's next call fails.
func dieWithParent(*exec.Cmd) {}
