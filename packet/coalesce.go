package packet

import (
	"context"
	"sync"
	"time"
)

// coalescer batches grabs of the same packet. The first grab of a packet runs
// at once; grabs that arrive while it is in flight wait and go together in the
// next script call, and so on while the packet stays hot. A lone grab thus
// pays no added latency, and a hot packet pays one round trip per batch.
//
// Invariant: a packet has a queue in pending exactly while a batch of it is
// in flight; whoever finds the queue empty after a batch removes it.
type coalescer struct {
	s       *Store
	mu      sync.Mutex
	pending map[string][]grabRequest
}

func newCoalescer(s *Store) *coalescer {
	return &coalescer{s: s, pending: map[string][]grabRequest{}}
}

// grab settles req in the packet's next batch and returns its outcome, or
// unavailable when ctx ends first (a stalled Redis must not hold the caller
// past its deadline). The batch itself is detached and runs on: a grab
// answered unavailable may still be settled, and then it is paid, like any
// grab whose reply was lost.
func (c *coalescer) grab(ctx context.Context, id string, req grabRequest) (GrabResult, error) {
	req.done = make(chan grabOutcome, 1)
	c.mu.Lock()
	if queue, busy := c.pending[id]; busy {
		c.pending[id] = append(queue, req)
		c.mu.Unlock()
	} else {
		c.pending[id] = nil
		c.mu.Unlock()
		bctx := batchContext(ctx)
		go func() {
			out := c.s.settleBatch(bctx, id, []grabRequest{req})
			c.next(id)
			req.done <- out[0]
		}()
	}
	return await(ctx, req.done)
}

// await returns the outcome that done delivers, or unavailable when ctx
// ends first.
func await(ctx context.Context, done <-chan grabOutcome) (GrabResult, error) {
	select {
	case o := <-done:
		return o.res, o.err
	case <-ctx.Done():
		return GrabResult{}, unavailable("grab", ctx.Err())
	}
}

// next hands the grabs that queued up during a batch to a goroutine that
// settles them, batch after batch, until none are left.
func (c *coalescer) next(id string) {
	c.mu.Lock()
	if len(c.pending[id]) == 0 {
		delete(c.pending, id)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	go func() {
		for {
			c.mu.Lock()
			batch := c.pending[id]
			if len(batch) == 0 {
				delete(c.pending, id)
				c.mu.Unlock()
				return
			}
			if len(batch) > c.s.cfg.MaxBatch {
				c.pending[id] = batch[c.s.cfg.MaxBatch:]
				batch = batch[:c.s.cfg.MaxBatch]
			} else {
				c.pending[id] = nil
			}
			c.mu.Unlock()
			out := c.s.settleBatch(batchContext(context.Background()), id, batch)
			for i, r := range batch {
				r.done <- out[i]
			}
		}
	}()
}

// batchContext detaches a batch from any one caller: a batch settles money
// for many users, so one caller going away must not cancel it.
func batchContext(ctx context.Context) context.Context {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	_ = cancel // released by the timeout; the batch is short-lived
	return ctx
}
