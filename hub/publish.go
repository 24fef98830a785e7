package hub

import (
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
// Durable frames ride the same queue as ephemeral ones, so a room's frames
// from one publisher keep their order whatever their kind (a "finished"
// never overtakes the "grabbed" before it). A batch holding any durable
// frame goes through Broker.PublishFrames, which numbers the durable ones
// and publishes the whole batch as one message; a batch of ephemeral frames
// only is a plain Broker.Publish.
//
// Invariant: a room has an entry in pending exactly while a publish to it
// is in flight; the entry is nil until a frame queues behind that publish.
type publishQueue struct {
	hub     *Hub
	mu      sync.Mutex
	pending map[string]*publishBatch
}

type publishBatch struct {
	frames  []Frame
	waiters []chan publishResult
}

// publishResult is what a queued publish waits for: its frame's position
// when durable, and the batch's error.
type publishResult struct {
	pos Position
	err error
}

// maxBatchFrames caps the frames of one broker message.
const maxBatchFrames = 256

func (q *publishQueue) publish(ctx context.Context, room string, frame Frame) (Position, error) {
	q.mu.Lock()
	if q.pending == nil {
		q.pending = map[string]*publishBatch{}
	}
	if b, busy := q.pending[room]; busy {
		if b == nil {
			b = &publishBatch{}
			q.pending[room] = b
		}
		done := make(chan publishResult, 1)
		b.frames = append(b.frames, frame)
		b.waiters = append(b.waiters, done)
		q.mu.Unlock()
		// Wait even if ctx ends: the batch still holds frame, which the
		// caller may reuse once this returns. The batch has its own timeout.
		r := <-done
		return r.pos, r.err
	}
	q.pending[room] = nil
	q.mu.Unlock()

	last, err := q.hub.publishNow(ctx, room, []Frame{frame})
	q.drain(room)
	return positions([]Frame{frame}, last)[0], err
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
			last, err := q.hub.publishNow(ctx, room, b.frames)
			cancel()
			pos := positions(b.frames, last)
			for i, w := range b.waiters {
				w <- publishResult{pos: pos[i], err: err}
			}
		}
	}()
}

// positions numbers a published batch's durable frames back from last, the
// position of its last durable one; ephemeral frames get none.
func positions(frames []Frame, last Position) []Position {
	pos := make([]Position, len(frames))
	seq := last.Seq
	for i := len(frames) - 1; i >= 0; i-- {
		if frames[i].Durable && seq > 0 {
			pos[i] = Position{Seq: seq, Epoch: last.Epoch}
			seq--
		}
	}
	return pos
}

// joinFrames is a batch of ephemeral frames as one broker message.
func joinFrames(frames []Frame) []byte {
	if len(frames) == 1 {
		return frames[0].Data
	}
	n := len(frames) - 1
	for _, f := range frames {
		n += len(f.Data)
	}
	msg := make([]byte, 0, n)
	for i, f := range frames {
		if i > 0 {
			msg = append(msg, '\n')
		}
		msg = append(msg, f.Data...)
	}
	return msg
}
