package hub

import (
	"bytes"
	"context"
	"sync"
	"time"
)

// publishQueue coalesces publishes to one room. The first publish to a room
// goes to the broker at once; publishes that arrive while it is in flight
// wait and go together as one broker message, frames joined by newlines
// (a JSON frame never holds a raw newline), and so on while the room stays
// busy. A quiet room pays no added latency; a burst (a hot packet's grabbed
// events, a chat storm) pays one broker round trip, one PUBLISH and one
// receive per batch instead of per frame.
//
// Invariant: a room has an entry in pending exactly while a publish to it
// is in flight; the entry is nil until a frame queues behind that publish.
type publishQueue struct {
	hub     *Hub
	mu      sync.Mutex
	pending map[string]*publishBatch
}

type publishBatch struct {
	frames  [][]byte
	waiters []chan error
}

// maxBatchFrames caps the frames of one broker message.
const maxBatchFrames = 256

func (q *publishQueue) publish(ctx context.Context, room string, frame []byte) error {
	q.mu.Lock()
	if q.pending == nil {
		q.pending = map[string]*publishBatch{}
	}
	if b, busy := q.pending[room]; busy {
		if b == nil {
			b = &publishBatch{}
			q.pending[room] = b
		}
		done := make(chan error, 1)
		b.frames = append(b.frames, frame)
		b.waiters = append(b.waiters, done)
		q.mu.Unlock()
		// Wait even if ctx ends: the batch still holds frame, which the
		// caller may reuse once this returns. The batch has its own timeout.
		return <-done
	}
	q.pending[room] = nil
	q.mu.Unlock()

	err := q.hub.publishNow(ctx, room, frame)
	q.drain(room)
	return err
}

// drain hands the frames queued during a publish to a goroutine that
// publishes them, batch after batch, until none are left.
func (q *publishQueue) drain(room string) {
	q.mu.Lock()
	if q.pending[room] == nil {
		delete(q.pending, room)
		q.mu.Unlock()
		return
	}
	q.mu.Unlock()
	go func() {
		for {
			q.mu.Lock()
			b := q.pending[room]
			if b == nil {
				delete(q.pending, room)
				q.mu.Unlock()
				return
			}
			if len(b.frames) > maxBatchFrames {
				rest := &publishBatch{frames: b.frames[maxBatchFrames:], waiters: b.waiters[maxBatchFrames:]}
				b = &publishBatch{frames: b.frames[:maxBatchFrames], waiters: b.waiters[:maxBatchFrames]}
				q.pending[room] = rest
			} else {
				q.pending[room] = nil
			}
			q.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := q.hub.publishNow(ctx, room, bytes.Join(b.frames, []byte{'\n'}))
			cancel()
			for _, w := range b.waiters {
				w <- err
			}
		}
	}()
}
