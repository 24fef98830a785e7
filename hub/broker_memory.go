package hub

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrBrokerClosed is returned by broker operations after Close.
var ErrBrokerClosed = errors.New("hub: broker closed")

// MemoryBroker is an in-process Broker for a single hub instance: tests,
// demos and single-node deployments. Publish queues the frame and Run hands
// it back, which keeps the delivery path identical to the Redis one.
//
// One MemoryBroker serves one Hub; two Runs on it would split the frames
// between them.
type MemoryBroker struct {
	queue  chan memoryFrame
	closed chan struct{}
	once   sync.Once

	mu   sync.RWMutex
	subs map[string]struct{} // guarded by mu

	hcfg MemoryBrokerConfig
	hmu  sync.Mutex                // orders PublishFrames' numbering with its queueing
	hist map[string]*memoryHistory // guarded by hmu
}

type memoryFrame struct {
	room  string
	user  string // set for a PublishUser frame, room then empty
	frame []byte
}

// memoryQueue is deep enough to absorb a burst of publishes while Run is
// busy fanning out, and shallow enough that a stalled Run pushes back on
// publishers (Publish blocks until ctx is done) instead of growing memory.
const memoryQueue = 4096

// NewMemoryBroker returns an empty MemoryBroker with the default history
// settings.
func NewMemoryBroker() *MemoryBroker {
	return NewMemoryBrokerWith(MemoryBrokerConfig{})
}

// NewMemoryBrokerWith returns an empty MemoryBroker with cfg's history
// settings.
func NewMemoryBrokerWith(cfg MemoryBrokerConfig) *MemoryBroker {
	return &MemoryBroker{
		queue:  make(chan memoryFrame, memoryQueue),
		closed: make(chan struct{}),
		subs:   make(map[string]struct{}),
		hcfg:   cfg.withDefaults(),
		hist:   make(map[string]*memoryHistory),
	}
}

// Publish implements Broker. Frames for rooms nobody subscribed are dropped,
// as Redis would.
func (b *MemoryBroker) Publish(ctx context.Context, room string, frame []byte) error {
	b.mu.RLock()
	_, ok := b.subs[room]
	b.mu.RUnlock()
	if !ok {
		return nil
	}
	// Copy because the caller may reuse frame once Publish returns.
	f := memoryFrame{room: room, frame: append([]byte(nil), frame...)}
	select {
	case b.queue <- f:
		return nil
	case <-b.closed:
		return ErrBrokerClosed
	case <-ctx.Done():
		return fmt.Errorf("memory broker publish to %q: %w", room, ctx.Err())
	}
}

// PublishUser implements Broker: the frame is queued for Run like a room's.
func (b *MemoryBroker) PublishUser(ctx context.Context, user string, frame []byte) error {
	f := memoryFrame{user: user, frame: append([]byte(nil), frame...)}
	select {
	case b.queue <- f:
		return nil
	case <-b.closed:
		return ErrBrokerClosed
	case <-ctx.Done():
		return fmt.Errorf("memory broker publish to user %q: %w", user, ctx.Err())
	}
}

// Subscribe implements Broker.
func (b *MemoryBroker) Subscribe(ctx context.Context, room string) error {
	select {
	case <-b.closed:
		return ErrBrokerClosed
	default:
	}
	b.mu.Lock()
	b.subs[room] = struct{}{}
	b.mu.Unlock()
	return nil
}

// Unsubscribe implements Broker.
func (b *MemoryBroker) Unsubscribe(ctx context.Context, room string) error {
	b.mu.Lock()
	delete(b.subs, room)
	b.mu.Unlock()
	return nil
}

// Subscribed reports whether room is currently subscribed; tests use it to
// observe the hub's subscription lifecycle.
func (b *MemoryBroker) Subscribed(room string) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	_, ok := b.subs[room]
	return ok
}

// Run implements Broker.
func (b *MemoryBroker) Run(ctx context.Context, r Receiver) error {
	for {
		select {
		case f := <-b.queue:
			if f.user != "" {
				r.ReceiveUser(f.user, f.frame)
			} else {
				r.Receive(f.room, f.frame)
			}
		case <-ctx.Done():
			return nil
		case <-b.closed:
			return nil
		}
	}
}

// Close implements Broker.
func (b *MemoryBroker) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}
