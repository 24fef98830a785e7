package hub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisBrokerConfig tunes a RedisBroker. Zero fields take the documented
// defaults.
type RedisBrokerConfig struct {
	// Prefix namespaces channels and keys, so several deployments can share
	// one Redis. Default: "hb".
	Prefix string

	// Sharded selects Redis Cluster sharded pub/sub (SPUBLISH/SSUBSCRIBE).
	// A sharded subscription is bound to the node owning the channel's slot,
	// so each room gets its own PubSub connection; unsharded mode multiplexes
	// every room over one connection. Default: false.
	Sharded bool

	// SubscribeTimeout bounds how long Subscribe waits for Redis to confirm
	// a subscription, on top of the caller's context. Default: 5s.
	SubscribeTimeout time.Duration

	// History settings; see broker_redis_history.go.

	// HistorySize is how many durable frames a room's history keeps for
	// recovery. Default: 1000.
	HistorySize int
	// HistoryTTL is how long a durable frame stays recoverable. Default: 10m.
	HistoryTTL time.Duration
	// HistoryMetaTTL is how long a room's position (seq and epoch) lives
	// after its last durable frame or read; an idle room whose position
	// expired starts a new epoch. Default: 24h.
	HistoryMetaTTL time.Duration
	// RecentSize is how many kept frames (Frame.Keep) a room holds for its
	// joiners. Default: 50.
	RecentSize int
	// NoShebang drops the "#!lua" first line of the history scripts, for
	// the embedded demo Redis, which cannot parse it. Default: false.
	NoShebang bool
}

// RedisBroker is a Broker over Redis pub/sub. Each room maps to the channel
// "<prefix>:{r:<room>}:events"; the hash tag keeps a room's channel and its
// presence key in one cluster slot.
//
// Subscriptions survive Redis reconnects: go-redis's PubSub re-issues every
// subscription on the new connection by itself. Frames published while the
// connection is down are lost, as with any Redis pub/sub.
type RedisBroker struct {
	rdb redis.UniversalClient
	cfg RedisBrokerConfig
	pfx string // "<prefix>:{r:"

	in     chan redisFrame // PubSub forwarders -> Run
	closed chan struct{}
	once   sync.Once
	fwd    sync.WaitGroup // forwarder goroutines, awaited by Close

	mu      sync.Mutex
	shared  *redis.PubSub              // unsharded mode; nil until first Subscribe
	rooms   map[string]*redis.PubSub   // sharded mode, by room
	waiters map[string][]chan struct{} // channel -> Subscribe calls awaiting Redis's ack
}

type redisFrame struct {
	room  string
	frame []byte
}

const (
	redisChannelSuffix = "}:events"
	redisOnlineSuffix  = "}:online"
	// redisInbound is the hand-off queue between PubSub readers and Run; it
	// lets a reader keep draining its socket while Run fans out a frame.
	redisInbound = 1024
)

// NewRedisBroker returns a broker on rdb. The broker never closes rdb; the
// caller owns it.
func NewRedisBroker(rdb redis.UniversalClient, cfg RedisBrokerConfig) *RedisBroker {
	if cfg.Prefix == "" {
		cfg.Prefix = "hb"
	}
	if cfg.SubscribeTimeout <= 0 {
		cfg.SubscribeTimeout = 5 * time.Second
	}
	return &RedisBroker{
		rdb:     rdb,
		cfg:     cfg,
		pfx:     cfg.Prefix + ":{r:",
		in:      make(chan redisFrame, redisInbound),
		closed:  make(chan struct{}),
		rooms:   make(map[string]*redis.PubSub),
		waiters: make(map[string][]chan struct{}),
	}
}

// Channel returns the Redis pub/sub channel that carries room's frames.
func (b *RedisBroker) Channel(room string) string {
	return b.pfx + room + redisChannelSuffix
}

func (b *RedisBroker) roomOf(channel string) (string, bool) {
	s, ok := strings.CutPrefix(channel, b.pfx)
	if !ok {
		return "", false
	}
	return strings.CutSuffix(s, redisChannelSuffix)
}

// Publish implements Broker.
func (b *RedisBroker) Publish(ctx context.Context, room string, frame []byte) error {
	ch := b.Channel(room)
	var err error
	if b.cfg.Sharded {
		err = b.rdb.SPublish(ctx, ch, frame).Err()
	} else {
		err = b.rdb.Publish(ctx, ch, frame).Err()
	}
	if err != nil {
		return fmt.Errorf("redis broker: publish %s: %w", ch, err)
	}
	return nil
}

// Subscribe implements Broker. It returns once Redis has acknowledged the
// subscription, so a caller that then reads room state and relies on frames
// for later changes cannot miss one. The acknowledgement is read by the same
// goroutine that feeds Run, so a Subscribe while Run is stalled for long may
// time out.
func (b *RedisBroker) Subscribe(ctx context.Context, room string) error {
	if b.isClosed() {
		return ErrBrokerClosed
	}
	ch := b.Channel(room)
	ack := b.await(ch)

	ctx, cancel := context.WithTimeout(ctx, b.cfg.SubscribeTimeout)
	defer cancel()

	var err error
	if b.cfg.Sharded {
		err = b.subscribeSharded(ctx, room, ch)
	} else {
		err = b.subscribeShared(ctx, ch)
	}
	if err == nil {
		select {
		case <-ack:
			return nil
		case <-b.closed:
			err = ErrBrokerClosed
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	b.forget(ch, ack)
	// Roll back so go-redis does not keep re-subscribing a room the hub
	// believes it is not subscribed to.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.SubscribeTimeout)
	defer rcancel()
	_ = b.Unsubscribe(rctx, room)
	return fmt.Errorf("redis broker: subscribe %s: %w", ch, err)
}

func (b *RedisBroker) subscribeShared(ctx context.Context, ch string) error {
	b.mu.Lock()
	ps := b.shared
	start := ps == nil
	if start {
		ps = b.rdb.Subscribe(ctx) // no channels: no I/O yet
		b.shared = ps
	}
	b.mu.Unlock()
	err := ps.Subscribe(ctx, ch)
	if start {
		// Started only after the first SUBSCRIBE so the PubSub's connection
		// exists before its reader goroutine asks for one.
		b.forward(ps)
	}
	return err
}

func (b *RedisBroker) subscribeSharded(ctx context.Context, room, ch string) error {
	ps := b.rdb.SSubscribe(ctx) // no channels: no I/O yet
	// SSUBSCRIBE before the reader starts: on a cluster the first command
	// picks the node, and it must be the slot owner, not a random node.
	if err := ps.SSubscribe(ctx, ch); err != nil {
		_ = ps.Close()
		return err
	}
	b.mu.Lock()
	b.rooms[room] = ps
	b.mu.Unlock()
	b.forward(ps)
	return nil
}

// Unsubscribe implements Broker.
func (b *RedisBroker) Unsubscribe(ctx context.Context, room string) error {
	ch := b.Channel(room)
	b.mu.Lock()
	shared := b.shared
	ps := b.rooms[room]
	delete(b.rooms, room)
	b.mu.Unlock()

	var err error
	switch {
	case b.cfg.Sharded && ps != nil:
		// Closing the per-room connection drops the subscription with it.
		err = ps.Close()
	case !b.cfg.Sharded && shared != nil:
		err = shared.Unsubscribe(ctx, ch)
	}
	if err != nil && !b.isClosed() {
		return fmt.Errorf("redis broker: unsubscribe %s: %w", ch, err)
	}
	return nil
}

// Run implements Broker.
func (b *RedisBroker) Run(ctx context.Context, r Receiver) error {
	for {
		select {
		case f := <-b.in:
			r.Receive(f.room, f.frame)
		case <-ctx.Done():
			return nil
		case <-b.closed:
			return nil
		}
	}
}

// Close implements Broker: it closes the broker's PubSub connections (not
// the Redis client) and waits for their reader goroutines.
func (b *RedisBroker) Close() error {
	var errs []error
	b.once.Do(func() {
		close(b.closed)
		b.mu.Lock()
		if b.shared != nil {
			errs = append(errs, b.shared.Close())
		}
		for room, ps := range b.rooms {
			errs = append(errs, ps.Close())
			delete(b.rooms, room)
		}
		b.mu.Unlock()
		b.fwd.Wait()
	})
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("redis broker: close: %w", err)
	}
	return nil
}

func (b *RedisBroker) isClosed() bool {
	select {
	case <-b.closed:
		return true
	default:
		return false
	}
}

// forward pumps one PubSub into b.in until the PubSub is closed.
func (b *RedisBroker) forward(ps *redis.PubSub) {
	// A few seconds of burst at high rates; beyond that go-redis drops
	// (after its own timeout) rather than growing without bound.
	msgs := ps.ChannelWithSubscriptions(redis.WithChannelSize(redisInbound))
	b.fwd.Add(1)
	go func() {
		defer b.fwd.Done()
		for msg := range msgs {
			switch m := msg.(type) {
			case *redis.Subscription:
				if m.Kind == "subscribe" || m.Kind == "ssubscribe" {
					b.acked(m.Channel)
				}
			case *redis.Message:
				room, ok := b.roomOf(m.Channel)
				if !ok {
					continue
				}
				select {
				case b.in <- redisFrame{room: room, frame: []byte(m.Payload)}:
				case <-b.closed:
					return
				}
			}
		}
	}()
}

func (b *RedisBroker) await(ch string) chan struct{} {
	c := make(chan struct{})
	b.mu.Lock()
	b.waiters[ch] = append(b.waiters[ch], c)
	b.mu.Unlock()
	return c
}

func (b *RedisBroker) forget(ch string, c chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ws := b.waiters[ch]
	for i, w := range ws {
		if w == c {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(b.waiters, ch)
	} else {
		b.waiters[ch] = ws
	}
}

func (b *RedisBroker) acked(ch string) {
	b.mu.Lock()
	ws := b.waiters[ch]
	delete(b.waiters, ch)
	b.mu.Unlock()
	for _, w := range ws {
		close(w)
	}
}
