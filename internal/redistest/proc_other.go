//go:build !linux

package redistest

import "syscall"

// sysProcAttr: elsewhere there is no parent-death signal; a binary that
// exits without its cleanups leaves its redis-server running.
func sysProcAttr() *syscall.SysProcAttr { return nil }
