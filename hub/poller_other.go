//go:build !linux

package hub

import "log/slog"

// poller is Linux's epoll poller (poller_linux.go); elsewhere there is
// none, and every connection is read by a goroutine of its own.
type poller struct{}

func newPoller(*slog.Logger) *poller { return nil }

func (*poller) add(*Client) bool { return false }

func (*poller) remove(*Client) {}

func (*poller) arm(*Client) bool { return false }
