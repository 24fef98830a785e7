// Package goroutinetest checks that a test scenario leaves no goroutine
// behind: every goroutine a scenario starts (servers, clients, subscribers,
// writers) must end before the test does.
package goroutinetest

import (
	"runtime"
	"testing"
	"time"
)

// Slack is how many goroutines above the baseline a finished scenario may
// leave: the runtime and the testing package start a few of their own
// (finalizers, timers, cleanups) that come and go.
const Slack = 3

// Settle is how long Baseline's check waits for the count to come back.
const Settle = 20 * time.Second

// Baseline records how many goroutines run now and, when t ends, after
// every cleanup registered later (the servers and clients a scenario
// starts), polls until the count is back within Slack of it. If that does
// not happen within Settle it fails t, listing every goroutine's stack.
// Call it first in a scenario, before starting anything, and not in a
// parallel test: other tests' goroutines would count.
func Baseline(t testing.TB) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		if n, ok := settle(base+Slack, Settle); !ok {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("%d goroutines at the end, %d at the start (slack %d); every stack:\n%s", n, base, Slack, buf)
		}
	})
}

// settle polls until at most limit goroutines run, for up to d; it returns
// the last count and whether it got there.
func settle(limit int, d time.Duration) (int, bool) {
	deadline := time.Now().Add(d)
	for {
		n := runtime.NumGoroutine()
		if n <= limit {
			return n, true
		}
		if time.Now().After(deadline) {
			return n, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
