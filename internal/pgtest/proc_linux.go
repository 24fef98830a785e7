package pgtest

import (
	"os"
	"syscall"
)

// canRunAs reports whether sysProcAttr can switch to another user.
const canRunAs = true

// stopSignals are sent in turn to stop postgres: fast shutdown, immediate
// shutdown, kill.
func stopSignals() []os.Signal { return []os.Signal{os.Interrupt, syscall.SIGQUIT, os.Kill} }

// sysProcAttr runs PostgreSQL as run (when set) and has the kernel send it
// SIGQUIT, PostgreSQL's immediate shutdown, when the test binary dies, so a
// crashed binary does not leave a server behind.
func sysProcAttr(run *runAs) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGQUIT}
	if run != nil {
		attr.Credential = &syscall.Credential{Uid: uint32(run.uid), Gid: uint32(run.gid), NoSetGroups: true}
	}
	return attr
}

// alive reports whether process pid exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}
