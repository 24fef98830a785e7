package web

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

// recorder collects what a throttle sends.
type recorder struct {
	mu   sync.Mutex
	sent []string
}

func (r *recorder) send(frame []byte) {
	r.mu.Lock()
	r.sent = append(r.sent, string(frame))
	r.mu.Unlock()
}

func (r *recorder) last() (string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.sent) == 0 {
		return "", 0
	}
	return r.sent[len(r.sent)-1], len(r.sent)
}

func newProgress(above int) (*progressThrottle, *recorder) {
	rec := &recorder{}
	return ProgressThrottles(above)("room", rec.send).(*progressThrottle), rec
}

func grabbedFrame(id string, remaining int) []byte {
	return []byte(`{"type":"grabbed","packet_id":` + id + `,"remaining":` + strconv.Itoa(remaining) + `,"grabs":[{"user":{"id":"x","name":"x"},"amount":1}]}`)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// In a room at the size threshold every grabbed frame becomes progress; a
// smaller room gets them one by one. Progress goes out only at the end of a
// window, so a packet finished within its first window costs no progress
// frame: "finished" (which carries the final count) replaces the pending
// one, and nothing stale follows it.
func TestProgressBySize(t *testing.T) {
	const grabs = 50
	q, rec := newProgress(3)
	for i := range grabs {
		if !q.Take(grabbedFrame(`"p1"`, grabs-1-i), 3) {
			t.Fatalf("grab %d passed through in a room at the threshold", i)
		}
		if i == 0 {
			if f, n := rec.last(); n != 0 {
				t.Fatalf("a leading-edge progress went out on the first grab: %s", f)
			}
		}
	}
	_, before := rec.last() // 0 unless this loop outlasted a window
	if q.Take([]byte(`{"type":"finished","packet_id":"p1","remaining":0}`), 3) {
		t.Fatal("finished was taken")
	}
	if q.tracking() {
		t.Fatal("a finished packet is still tracked")
	}
	// The pending count is dropped for good: no trailing edge follows.
	time.Sleep(2 * progressWindow)
	if f, n := rec.last(); n != before {
		t.Fatalf("%d progress frames after finished, last %s", n-before, f)
	}
	for i := range 10 {
		if q.Take(grabbedFrame(`"p2"`, 9-i), 2) {
			t.Fatalf("grab %d taken in a room below the threshold", i)
		}
	}
}

func TestProgressTrailingEdge(t *testing.T) {
	q, rec := newProgress(2)
	grab := func(rem int) bool { return q.absorb(grabbedFrame("7", rem), true) }
	if !grab(9) || !grab(8) || !grab(7) {
		t.Fatal("grabbed frames not taken")
	}
	// The end of the window carries the latest count, and only it.
	eventually(t, "trailing progress", func() bool {
		f, _ := rec.last()
		return f == `{"type":"progress","packet_id":7,"remaining":7}`
	})
	if _, n := rec.last(); n > 3 {
		t.Fatalf("%d progress frames for 3 grabs", n)
	}
	// Idle for a window: the packet is forgotten.
	eventually(t, "idle packet to be forgotten", func() bool { return !q.tracking() })
	if q.absorb(grabbedFrame("7", 1), false) {
		t.Fatal("taken in a small room with no burst")
	}
	if q.absorb([]byte(`{"type":"other","note":"grabbed"}`), true) {
		t.Fatal("took a frame that is not grabbed")
	}
}

// A burst of grabbed frames in a room too small for progress switches to
// progress frames after burstLimit, so a big race does not evict viewers as
// slow consumers; the count still reaches them, in progress or in finished.
func TestProgressBurstInSmallRoom(t *testing.T) {
	q, rec := newProgress(-1)
	const grabs = 500
	passed := 0
	for i := range grabs {
		if !q.Take(grabbedFrame(`"p"`, grabs-1-i), 10) {
			passed++
		}
	}
	if passed != burstLimit {
		t.Fatalf("%d grabbed frames passed one by one, want the first %d", passed, burstLimit)
	}
	eventually(t, "trailing progress", func() bool {
		f, _ := rec.last()
		return f == `{"type":"progress","packet_id":"p","remaining":0}`
	})
	q.Take([]byte(`{"type":"finished","packet_id":"p","remaining":0}`), 10)
	if f, n := rec.last(); n > 3 || f != `{"type":"progress","packet_id":"p","remaining":0}` {
		t.Fatalf("%d progress frames, last %s", n, f)
	}
	// A small race stays one frame per grab.
	for i := range 10 {
		if q.Take(grabbedFrame(`"small"`, 9-i), 10) {
			t.Fatalf("grab %d of a small race was taken", i)
		}
	}
}
