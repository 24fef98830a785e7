//go:build !linux

package pgtest

import (
	"os"
	"syscall"
)

// canRunAs reports whether sysProcAttr can switch to another user: not here,
// so a root test binary cannot run PostgreSQL.
const canRunAs = false

// stopSignals are sent in turn to stop postgres: fast shutdown, then kill.
func stopSignals() []os.Signal { return []os.Signal{os.Interrupt, os.Kill} }

// sysProcAttr runs PostgreSQL as the current user (outside Linux the tests
// must not run as root; see canRunAs).
func sysProcAttr(run *runAs) *syscall.SysProcAttr {
	return nil
}

// alive assumes every process is alive, so no directory is ever taken for
// abandoned.
func alive(pid int) bool { return true }
