package hub

import (
	"context"
	"errors"
	"fmt"
	"net"
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

	// Sharded selects sharded pub/sub (SPUBLISH/SSUBSCRIBE), for Redis
	// Cluster. A sharded subscription lives on the master that owns the
	// channel's slot, so the broker keeps one PubSub connection per master
	// and multiplexes that master's rooms over it; unsharded mode
	// multiplexes every room over one connection. Default: false.
	Sharded bool

	// SubscribeTimeout bounds how long Subscribe waits for Redis to confirm
	// a subscription, on top of the caller's context. Default: 5s.
	SubscribeTimeout time.Duration

	// HealthInterval is how long a PubSub connection may stay silent before
	// the broker pings it; a ping unanswered for another interval marks the
	// connection dead, and its rooms are subscribed again on a new one.
	// Default: 3s.
	HealthInterval time.Duration
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
// keys in one cluster slot. Frames for users (PublishUser) share the one
// channel "<prefix>:{users}:events", as "<user id>\n<frame>"; Run keeps it
// subscribed like a room (sharded: on the master of its slot) while it runs.
//
// # Connections
//
// Unsharded, every room is multiplexed over one PubSub connection. Sharded,
// there is one PubSub connection per cluster master (a standalone Redis
// counts as one), carrying the rooms whose slots that master owns; each is
// subscribed with its own SSUBSCRIBE, because one SSUBSCRIBE may name
// channels of one slot only (Redis answers CROSSSLOT otherwise).
//
// # Lost subscriptions
//
// A subscription is lost when its connection drops (Redis restarted, a
// network fault, CLIENT KILL, or Redis cutting a subscriber whose output
// buffer passed client-output-buffer-limit pubsub because the broker read
// too slowly), and, sharded, when the room's slot moves to another master:
// Redis then pushes an sunsubscribe, or answers MOVED to an SSUBSCRIBE sent
// on stale routing. The broker never leaves such a room alone: the room
// goes back to the placer (see place), which looks its owner up again
// (reloading the cluster's slot map when sharded) and subscribes it on that
// node's connection, retrying with backoff until that works or the room is
// unsubscribed. When Redis confirms a subscription that had been confirmed
// before, the broker hands Run's Receiver a Resubscribed for the room, after
// every message received before the loss and before any message received
// after it.
//
// The broker does not rely on go-redis re-subscribing after a reconnect:
// that sends every channel of a connection in one command, which a cluster
// refuses for channels of different slots. A connection that fails is
// closed and replaced instead. Nor does it use PubSub.Channel, which drops
// a message silently when its Go channel stays full for a minute: the
// broker's readers block instead, so a slow Run shows up as Redis cutting
// the connection, which is a loss the broker sees and reports. (With that
// limit disabled, Redis would buffer for a stalled Run without bound.)
//
// A connection that stays silent for HealthInterval is pinged, and one
// that does not answer within another interval is replaced, so a peer that
// vanished without closing the socket is noticed in seconds, not when TCP
// gives up.
//
// # Invariants (all under mu)
//
//   - Every wanted channel (a key of subs) is either in pending, which the
//     placer drains, or placed on exactly one live connection (s.conn,
//     and s.conn.chans holds it); never neither, except while a place call
//     for it is under way, which ends in one or the other. Unsubscribe
//     alone removes a channel from subs.
//   - Only the reader of s.conn hands Run messages of s's room, and that
//     same reader reports the room's Resubscribed, so for one room both
//     reach Run in the order Redis sent them.
//   - s.ack is closed (Subscribe returns) on the first confirmation Redis
//     sends for s; s.live is false from a loss until the confirmation that
//     ends it, which is reported once.
type RedisBroker struct {
	rdb     redis.UniversalClient
	cfg     RedisBrokerConfig
	pfx     string // "<prefix>:{r:"
	usersCh string // the channel of user-directed frames

	in      chan redisEvent // readers -> Run
	closed  chan struct{}
	once    sync.Once
	wg      sync.WaitGroup // readers and the placer, awaited by Close
	wake    chan struct{}  // kicks the placer; capacity 1
	backoff backoff

	mu      sync.Mutex
	subs    map[string]*redisSub  // channel -> wanted subscription
	pending map[string]*redisSub  // channel -> awaiting (re)placement
	conns   map[string]*redisConn // node address ("" unsharded) -> its connection
	reload  bool                  // the next placement reloads the cluster's slot map
}

// redisSub is one wanted channel. Its fields are guarded by RedisBroker.mu.
type redisSub struct {
	room string
	// users marks the user channel's subscription, which has no room: its
	// loss is not reported (user frames are ephemeral).
	users bool
	// conn is where the channel is subscribed or being subscribed; nil
	// while it waits in pending.
	conn *redisConn
	// ack is closed when Redis first confirms the subscription; nil once
	// it has. Subscribe waits on it.
	ack chan struct{}
	// live reports that conn's current connection has confirmed the
	// subscription. A confirmation that finds live false and ack nil is a
	// resubscription.
	live bool
}

// redisConn is one PubSub connection and the channels placed on it.
type redisConn struct {
	key string // node address, "" unsharded
	ps  *redis.PubSub
	// Guarded by RedisBroker.mu.
	chans map[string]*redisSub
	dead  bool
}

var errRedisConnLost = errors.New("pubsub connection lost")

// redisEvent is a message for Run, or (resub) a restored subscription, or
// (user set) a frame for a user's connections.
type redisEvent struct {
	room  string
	user  string
	frame []byte
	resub bool
}

const (
	redisChannelSuffix = "}:events"
	redisOnlineSuffix  = "}:online"
	redisUsersChannel  = ":{users}:events"
	// redisInbound is the hand-off queue between PubSub readers and Run; it
	// lets a reader keep draining its socket while Run fans out a frame.
	redisInbound = 1024
	// redisSubscribeBatch caps the channels of one unsharded SUBSCRIBE
	// when many rooms are placed at once.
	redisSubscribeBatch = 256
	// Placement retries back off from placeBackoffMin to placeBackoffMax.
	placeBackoffMin = 50 * time.Millisecond
	placeBackoffMax = 2 * time.Second
)

// DefaultRedisBrokerConfig returns a RedisBrokerConfig with every default
// filled in explicitly.
func DefaultRedisBrokerConfig() RedisBrokerConfig {
	return RedisBrokerConfig{
		Prefix:           "hb",
		SubscribeTimeout: 5 * time.Second,
		HealthInterval:   3 * time.Second,
		HistorySize:      DefaultHistorySize,
		HistoryTTL:       DefaultHistoryTTL,
		HistoryMetaTTL:   DefaultHistoryMetaTTL,
		RecentSize:       DefaultRecentSize,
	}
}

// NewRedisBroker returns a broker on rdb. The broker never closes rdb; the
// caller owns it. Sharded with a *redis.ClusterClient, subscriptions follow
// the cluster's slot map; with any other client, one node is assumed.
func NewRedisBroker(rdb redis.UniversalClient, cfg RedisBrokerConfig) *RedisBroker {
	d := DefaultRedisBrokerConfig()
	if cfg.Prefix == "" {
		cfg.Prefix = d.Prefix
	}
	if cfg.SubscribeTimeout <= 0 {
		cfg.SubscribeTimeout = d.SubscribeTimeout
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = d.HealthInterval
	}
	b := &RedisBroker{
		rdb:     rdb,
		cfg:     cfg,
		pfx:     cfg.Prefix + ":{r:",
		usersCh: cfg.Prefix + redisUsersChannel,
		in:      make(chan redisEvent, redisInbound),
		closed:  make(chan struct{}),
		wake:    make(chan struct{}, 1),
		backoff: backoff{min: placeBackoffMin, max: placeBackoffMax},
		subs:    make(map[string]*redisSub),
		pending: make(map[string]*redisSub),
		conns:   make(map[string]*redisConn),
	}
	b.wg.Go(b.placer)
	return b
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
	return b.publish(ctx, b.Channel(room), frame)
}

// UsersChannel returns the Redis pub/sub channel that carries every
// user-directed frame.
func (b *RedisBroker) UsersChannel() string { return b.usersCh }

// PublishUser implements Broker.
func (b *RedisBroker) PublishUser(ctx context.Context, user string, frame []byte) error {
	msg := make([]byte, 0, len(user)+1+len(frame))
	msg = append(append(append(msg, user...), '\n'), frame...)
	return b.publish(ctx, b.usersCh, msg)
}

func (b *RedisBroker) publish(ctx context.Context, ch string, msg []byte) error {
	var err error
	if b.cfg.Sharded {
		err = b.rdb.SPublish(ctx, ch, msg).Err()
	} else {
		err = b.rdb.Publish(ctx, ch, msg).Err()
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
// time out. Should the subscription be lost later, it is restored and
// reported (see RedisBroker) until Unsubscribe.
func (b *RedisBroker) Subscribe(ctx context.Context, room string) error {
	if b.isClosed() {
		return ErrBrokerClosed
	}
	ch := b.Channel(room)
	ack := make(chan struct{})
	s := &redisSub{room: room, ack: ack}
	b.mu.Lock()
	b.subs[ch] = s
	b.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, b.cfg.SubscribeTimeout)
	defer cancel()
	err := b.place(ctx, ch, s)
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
	// Roll back so the broker does not keep restoring a room the hub
	// believes it is not subscribed to.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.SubscribeTimeout)
	defer rcancel()
	_ = b.Unsubscribe(rctx, room)
	return fmt.Errorf("redis broker: subscribe %s: %w", ch, err)
}

// Unsubscribe implements Broker.
func (b *RedisBroker) Unsubscribe(ctx context.Context, room string) error {
	return b.unsubscribe(ctx, b.Channel(room))
}

func (b *RedisBroker) unsubscribe(ctx context.Context, ch string) error {
	b.mu.Lock()
	s := b.subs[ch]
	delete(b.subs, ch)
	delete(b.pending, ch)
	var c *redisConn
	if s != nil && s.conn != nil && s.conn.chans[ch] == s {
		c = s.conn
		delete(c.chans, ch)
	}
	b.mu.Unlock()
	if c == nil {
		return nil
	}
	var err error
	if b.cfg.Sharded {
		err = c.ps.SUnsubscribe(ctx, ch)
	} else {
		err = c.ps.Unsubscribe(ctx, ch)
	}
	if err != nil && !b.isClosed() {
		// The connection is broken; its reader replaces it, without ch.
		return fmt.Errorf("redis broker: unsubscribe %s: %w", ch, err)
	}
	return nil
}

// Run implements Broker. It wants the user channel while it runs: the
// placer subscribes it (and restores it after a loss) in the background, so
// Run starts at once even while Redis is down.
func (b *RedisBroker) Run(ctx context.Context, r Receiver) error {
	b.wantUsers()
	defer func() {
		uctx, cancel := context.WithTimeout(context.Background(), b.cfg.SubscribeTimeout)
		defer cancel()
		_ = b.unsubscribe(uctx, b.usersCh)
	}()
	for {
		select {
		case e := <-b.in:
			switch {
			case e.resub:
				r.Resubscribed(e.room)
			case e.user != "":
				r.ReceiveUser(e.user, e.frame)
			default:
				r.Receive(e.room, e.frame)
			}
		case <-ctx.Done():
			return nil
		case <-b.closed:
			return nil
		}
	}
}

// wantUsers queues the user channel's subscription for the placer.
func (b *RedisBroker) wantUsers() {
	b.mu.Lock()
	if b.subs[b.usersCh] == nil {
		s := &redisSub{users: true, ack: make(chan struct{})}
		b.subs[b.usersCh] = s
		b.pending[b.usersCh] = s
	}
	b.mu.Unlock()
	b.kick()
}

// Close implements Broker: it closes the broker's PubSub connections (not
// the Redis client) and waits for its goroutines.
func (b *RedisBroker) Close() error {
	var errs []error
	b.once.Do(func() {
		close(b.closed)
		b.mu.Lock()
		var conns []*redisConn
		for key, c := range b.conns {
			c.dead = true
			conns = append(conns, c)
			delete(b.conns, key)
		}
		b.mu.Unlock()
		for _, c := range conns {
			if err := c.ps.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		b.wg.Wait()
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

// place subscribes ch on the connection to the node that owns it. The
// confirmation arrives on that connection's reader. On error s is queued
// for the placer again (if still wanted) and the error returned.
func (b *RedisBroker) place(ctx context.Context, ch string, s *redisSub) error {
	c, err := b.connFor(ctx, ch)
	if err == nil {
		b.mu.Lock()
		if b.subs[ch] != s {
			b.mu.Unlock()
			return nil // unsubscribed meanwhile
		}
		if c.dead {
			b.mu.Unlock()
			return b.requeue(ch, s, errRedisConnLost)
		}
		s.conn = c
		c.chans[ch] = s
		delete(b.pending, ch)
		b.mu.Unlock()
		if b.cfg.Sharded {
			err = c.ps.SSubscribe(ctx, ch)
		} else {
			err = c.ps.Subscribe(ctx, ch)
		}
		if err != nil {
			// Writing failed, so the connection is broken: replace it, and
			// with it queue ch.
			b.drop(c)
		}
	}
	if err != nil {
		return b.requeue(ch, s, err)
	}
	return nil
}

// requeue puts s back in pending if it is still wanted and not placed.
func (b *RedisBroker) requeue(ch string, s *redisSub, err error) error {
	b.mu.Lock()
	if b.subs[ch] == s && (s.conn == nil || s.conn.dead) {
		s.conn = nil
		s.live = false
		b.pending[ch] = s
	}
	b.mu.Unlock()
	b.kick()
	return err
}

// connFor returns the connection for the node that owns ch, creating it.
func (b *RedisBroker) connFor(ctx context.Context, ch string) (*redisConn, error) {
	key := ""
	node := b.rdb
	if cc, ok := b.rdb.(*redis.ClusterClient); ok && b.cfg.Sharded {
		n, err := cc.MasterForKey(ctx, ch)
		if err != nil {
			return nil, err
		}
		key, node = n.Options().Addr, n
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.isClosed() {
		return nil, ErrBrokerClosed
	}
	if c := b.conns[key]; c != nil {
		return c, nil
	}
	c := &redisConn{key: key, chans: make(map[string]*redisSub)}
	// An empty PubSub does no I/O until its first command.
	if b.cfg.Sharded {
		c.ps = node.SSubscribe(context.WithoutCancel(ctx))
	} else {
		c.ps = node.Subscribe(context.WithoutCancel(ctx))
	}
	b.conns[key] = c
	b.wg.Go(func() { b.read(c) })
	return c, nil
}

// drop retires a failed connection: it is closed, and every channel placed
// on it is queued for the placer. Idempotent.
func (b *RedisBroker) drop(c *redisConn) {
	b.mu.Lock()
	if c.dead {
		b.mu.Unlock()
		return
	}
	c.dead = true
	if b.conns[c.key] == c {
		delete(b.conns, c.key)
	}
	for ch, s := range c.chans {
		s.conn = nil
		s.live = false
		b.pending[ch] = s
	}
	n := len(c.chans)
	c.chans = nil
	b.reload = b.reload || n > 0
	b.mu.Unlock()
	_ = c.ps.Close()
	if n > 0 {
		b.kick()
	}
}

func (b *RedisBroker) kick() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// placer (re)subscribes the channels in pending until the broker closes,
// backing off while placements fail.
func (b *RedisBroker) placer() {
	for {
		select {
		case <-b.closed:
			return
		case <-b.wake:
		}
		for {
			failed := b.placePending()
			if !failed {
				b.backoff.reset()
				break
			}
			select {
			case <-b.closed:
				return
			case <-time.After(b.backoff.next()):
			}
		}
	}
}

// placePending places everything in pending once and reports whether any
// placement failed.
func (b *RedisBroker) placePending() (failed bool) {
	b.mu.Lock()
	todo := make(map[string]*redisSub, len(b.pending))
	for ch, s := range b.pending {
		todo[ch] = s
	}
	reload := b.reload
	b.reload = false
	b.mu.Unlock()
	if len(todo) == 0 {
		return false
	}
	if cc, ok := b.rdb.(*redis.ClusterClient); ok && reload && b.cfg.Sharded {
		// Asynchronous: a placement that still uses the old map gets MOVED
		// and comes back here after a backoff.
		cc.ReloadState(context.Background())
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.SubscribeTimeout)
	defer cancel()
	if !b.cfg.Sharded {
		return b.placeBatch(ctx, todo) != nil
	}
	for ch, s := range todo {
		if b.place(ctx, ch, s) != nil {
			failed = true
		}
	}
	return failed
}

// placeBatch places unsharded channels, many per SUBSCRIBE.
func (b *RedisBroker) placeBatch(ctx context.Context, todo map[string]*redisSub) error {
	c, err := b.connFor(ctx, "")
	if err != nil {
		for ch, s := range todo {
			_ = b.requeue(ch, s, err)
		}
		return err
	}
	batch := make([]string, 0, redisSubscribeBatch)
	b.mu.Lock()
	for ch, s := range todo {
		if b.subs[ch] != s || b.pending[ch] != s || c.dead {
			continue
		}
		s.conn = c
		c.chans[ch] = s
		delete(b.pending, ch)
		batch = append(batch, ch)
	}
	b.mu.Unlock()
	for len(batch) > 0 {
		n := min(len(batch), redisSubscribeBatch)
		if err := c.ps.Subscribe(ctx, batch[:n]...); err != nil {
			b.drop(c)
			return err
		}
		batch = batch[n:]
	}
	return nil
}

// read pumps one connection into b.in until the connection fails or the
// broker closes; a failed connection is dropped and its channels placed
// anew. It pings a connection that stays silent for HealthInterval and
// drops one that then stays silent for another.
func (b *RedisBroker) read(c *redisConn) {
	pinged := false
	for {
		msg, err := c.ps.ReceiveTimeout(context.Background(), b.cfg.HealthInterval)
		if b.isClosed() || b.isDead(c) {
			return
		}
		if err != nil {
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout() && !pinged:
				pinged = true
				if perr := c.ps.Ping(context.Background()); perr != nil {
					b.drop(c)
					return
				}
			case isRedisReply(err):
				// An error reply to one of our (S)SUBSCRIBEs, typically MOVED
				// after the slot moved: place again what is unconfirmed.
				b.unconfirmed(c)
			default:
				b.drop(c)
				return
			}
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			b.subscription(c, m)
		case *redis.Message:
			e, ok := b.event(m)
			if !ok || !b.placedOn(c, m.Channel) {
				continue
			}
			select {
			case b.in <- e:
			case <-b.closed:
				return
			}
		}
	}
}

// event turns a message into Run's event: a room's frames, or a frame for
// a user; false for a channel or payload that is neither.
func (b *RedisBroker) event(m *redis.Message) (redisEvent, bool) {
	if m.Channel == b.usersCh {
		user, frame, ok := strings.Cut(m.Payload, "\n")
		return redisEvent{user: user, frame: []byte(frame)}, ok && user != ""
	}
	room, ok := b.roomOf(m.Channel)
	return redisEvent{room: room, frame: []byte(m.Payload)}, ok
}

func isRedisReply(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

func (b *RedisBroker) isDead(c *redisConn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return c.dead
}

func (b *RedisBroker) placedOn(c *redisConn, ch string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.subs[ch]
	return s != nil && s.conn == c
}

// subscription handles a (un)subscribe confirmation or push on c.
func (b *RedisBroker) subscription(c *redisConn, m *redis.Subscription) {
	switch m.Kind {
	case "subscribe", "ssubscribe":
		b.confirmed(c, m.Channel)
	case "unsubscribe", "sunsubscribe":
		// Either the answer to our own Unsubscribe, which removed the
		// channel from subs first, or Redis dropping a channel we still
		// want (its slot moved). A wanted channel is placed again; should
		// this be the late answer to an Unsubscribe that a new Subscribe of
		// the same room followed, that costs one redundant SSUBSCRIBE.
		b.mu.Lock()
		s := b.subs[m.Channel]
		moved := s != nil && s.conn == c && c.chans[m.Channel] == s
		if moved {
			delete(c.chans, m.Channel)
			s.conn = nil
			s.live = false
			b.pending[m.Channel] = s
			b.reload = true
		}
		b.mu.Unlock()
		if moved {
			b.kick()
		}
	}
}

// confirmed records Redis's confirmation of ch on c: the first one
// completes Subscribe; one after a loss is reported to Run.
func (b *RedisBroker) confirmed(c *redisConn, ch string) {
	b.mu.Lock()
	s := b.subs[ch]
	if s == nil || s.conn != c {
		b.mu.Unlock()
		return // stale: unsubscribed, or placed elsewhere since
	}
	wasLive := s.live
	s.live = true
	ack := s.ack
	s.ack = nil
	b.mu.Unlock()
	switch {
	case ack != nil:
		close(ack)
	case !wasLive && !s.users:
		select {
		case b.in <- redisEvent{room: s.room, resub: true}:
		case <-b.closed:
		}
	}
}

// unconfirmed queues again every channel of c that Redis has not confirmed.
func (b *RedisBroker) unconfirmed(c *redisConn) {
	b.mu.Lock()
	n := 0
	for ch, s := range c.chans {
		if !s.live {
			delete(c.chans, ch)
			s.conn = nil
			b.pending[ch] = s
			n++
		}
	}
	b.reload = b.reload || n > 0
	b.mu.Unlock()
	if n > 0 {
		b.kick()
	}
}

// backoff is an exponential delay between retries, confined to one
// goroutine.
type backoff struct {
	min, max, cur time.Duration
}

func (bo *backoff) next() time.Duration {
	if bo.cur < bo.min {
		bo.cur = bo.min
	} else {
		bo.cur = min(2*bo.cur, bo.max)
	}
	return bo.cur
}

func (bo *backoff) reset() { bo.cur = 0 }
