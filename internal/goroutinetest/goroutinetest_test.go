package goroutinetest

import (
	"testing"
	"time"
)

// settle sees goroutines end, and reports the ones that do not.
func TestSettle(t *testing.T) {
	stop := make(chan struct{})
	const extra = 10
	for i := 0; i < extra; i++ {
		go func() { <-stop }()
	}
	n, ok := settle(extra/2, 100*time.Millisecond)
	if ok || n < extra {
		t.Fatalf("settle with %d blocked goroutines: %d, %v", extra, n, ok)
	}
	close(stop)
	if n, ok := settle(extra/2, 5*time.Second); !ok {
		t.Fatalf("goroutines ended, still %d", n)
	}
}

// A scenario whose goroutines end before its cleanups are done passes.
func TestBaseline(t *testing.T) {
	Baseline(t)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); <-stop }()
	t.Cleanup(func() { close(stop); <-done })
}
