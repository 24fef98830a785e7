package redistest

import "syscall"

// sysProcAttr has the kernel kill redis-server when the test binary dies,
// so a binary that exits without its cleanups (a fuzz worker stopped by the
// fuzzing engine, a crash) does not leave a server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
