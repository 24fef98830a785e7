package hub

import (
	"bytes"
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// User identifies the person behind a connection.
type User struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Handler is the application's side of a connection. A panic in any of its
// methods closes that connection with 1011 (internal error), is logged with
// its stack and counted, and leaves every other connection alone.
type Handler interface {
	// OnOpen runs on Start's goroutine after the client has joined its room
	// (so frames published from now on reach it); it may c.Send a welcome.
	OnOpen(ctx context.Context, c *Client)
	// HandleMessage runs on the client's reader, one text frame at a time;
	// while it runs, no further frames are read from this client. msg is
	// valid until it returns: its buffer is reused for another frame.
	HandleMessage(ctx context.Context, c *Client, msg []byte)
	// OnClose runs once, after the client has left its room and its writer
	// has stopped.
	OnClose(c *Client)
}

// Hub tracks rooms and their connections on this instance and moves frames
// between them and the Broker.
//
// The Hub owns room membership; each Client owns its connection's I/O. All
// methods are safe for concurrent use.
type Hub struct {
	cfg      Config
	broker   Broker
	presence Presence
	log      *slog.Logger
	m        *Metrics

	seed   maphash.Seed
	shards []*shard
	users  []*userShard // user id -> local connections (users.go)

	seq     atomic.Uint64 // last Client.seq handed out
	nconns  atomic.Int64
	nrooms  atomic.Int64
	pinging atomic.Bool // a pingLoop is running
	epoch   time.Time   // zero of Hub.now

	nullWrites atomic.Int64 // frames taken by writers of connection-less (benchmark) clients

	pubq publishQueue

	// bg bounds room repairs (recovery.go); Run cancels it and waits for
	// repairs before returning.
	bg      context.Context
	stopBG  context.CancelFunc
	repairs sync.WaitGroup

	// memberSlices recycles broadcastLocal's member snapshots, which for a
	// big room are too large to allocate per frame.
	memberSlices sync.Pool
	// batches recycles the writers' scratch (client.go); readBufs lends
	// readers their buffer for a turn (reader.go).
	batches  sync.Pool
	readBufs sync.Pool
	// poller waits for input on idle connections; nil where there is none.
	poller *poller

	// mu orders Start's registration against Shutdown: once closed is set
	// no Start adds to serving, which makes serving.Wait legal.
	mu      sync.RWMutex
	closed  bool
	closing atomic.Bool // mirrors closed for lock-free checks
	serving sync.WaitGroup

	// Drain (drain.go): once draining is set no read loop starts handling
	// a frame; handling counts the frames being handled, and drained is
	// signalled when it falls to zero while draining.
	draining atomic.Bool
	handling atomic.Int64
	drained  chan struct{}
}

// New returns a Hub that exchanges frames through broker. logger may be nil
// (slog.Default is used) and so may m.
func New(cfg Config, broker Broker, logger *slog.Logger, m *Metrics) *Hub {
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	h := &Hub{
		cfg:      cfg,
		broker:   broker,
		presence: cfg.Presence,
		log:      logger.With("instance", cfg.InstanceID),
		m:        m,
		seed:     maphash.MakeSeed(),
		epoch:    time.Now(),
		shards:   make([]*shard, cfg.Shards),
		users:    newUserShards(),
		drained:  make(chan struct{}, 1),
	}
	h.bg, h.stopBG = context.WithCancel(context.Background())
	h.pubq.hub = h
	h.memberSlices.New = func() any { return new([]*Client) }
	h.batches.New = func() any { return new(batch) }
	h.readBufs.New = func() any { b := make([]byte, readBufSize); return &b }
	h.poller = newPoller(h.log)
	for i := range h.shards {
		h.shards[i] = &shard{rooms: make(map[string]*room)}
	}
	return h
}

func (h *Hub) shardIndex(name string) int {
	return int(maphash.String(h.seed, name) % uint64(len(h.shards)))
}

// Config returns the effective configuration, defaults filled in.
func (h *Hub) Config() Config { return h.cfg }

// Run receives frames from the broker and maintains presence until ctx is
// done. It returns nil on cancellation and the broker's error otherwise.
// Serve works before Run is called, but nothing is delivered until it runs.
func (h *Hub) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { h.presenceLoop(ctx) })
	err := h.broker.Run(ctx, receiver{h})
	cancel()
	wg.Wait()
	h.stopBG()
	h.repairs.Wait()
	if err != nil {
		return fmt.Errorf("hub: broker run: %w", err)
	}
	return nil
}

// Serve runs one upgraded connection in room until it ends: it is Start,
// waiting for the connection to end. Use Start where the calling goroutine
// need not wait (an HTTP handler), so that an idle connection keeps no
// goroutine.
func (h *Hub) Serve(ctx context.Context, conn *websocket.Conn, room string, u User, handler Handler, opts ...ServeOptions) {
	var o ServeOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	done := make(chan struct{})
	h.Start(ctx, conn, room, u, handler, o, func() { close(done) })
	<-done
}

// Start sets up one upgraded connection in room on the calling goroutine
// and returns; ended, if not nil, is called once the connection has ended
// and been torn down (also when it is refused). The client joins room first
// (subscribing the broker if it is the room's first local member here) and
// leaves it at the end (unsubscribing after the last one). Cancelling ctx
// closes the connection with 1001. The hub closes conn.
//
// Between joining and OnOpen, Start reads the room's history (see
// recovery.go): OnOpen can tell the client its Position and whether it
// Recovered, and after OnOpen the client gets the durable frames it missed
// (opts.Since) or the room's recent frames, before any live frame. If the
// history cannot be read the connection is closed with 1013 and OnOpen and
// OnClose are not called.
//
// Then the connection's input is read by a goroutine of its own only while
// there is something to read (reader.go), and written by one only while
// there is something to write (client.go): an idle connection costs no
// goroutine.
func (h *Hub) Start(ctx context.Context, conn *websocket.Conn, room string, u User, handler Handler, opts ServeOptions, ended func()) {
	h.mu.RLock()
	if h.closed || h.draining.Load() {
		h.mu.RUnlock()
		refuse(conn, websocket.CloseGoingAway, "server shutting down")
		if ended != nil {
			ended()
		}
		return
	}
	h.serving.Add(1)
	h.mu.RUnlock()

	c := newClient(ctx, h, conn, room, u)
	c.rd.handler, c.rd.done = handler, ended
	c.rd.heard.Store(h.now())
	defer h.recoverStart(c)
	c.joining = true
	if err := h.join(ctx, c); err != nil {
		h.log.Error("hub: join failed", "room", room, "user", u.ID, "err", err)
		refuse(conn, websocket.CloseTryAgainLater, "room unavailable")
		c.end()
		return
	}
	catchup, cerr := h.catchUp(ctx, c, opts.Since)
	h.startPinger()
	// Checked after joining: Shutdown sets closing before it walks the rooms,
	// so a client either is seen by that walk or sees closing here.
	if h.closing.Load() {
		c.Close(websocket.CloseGoingAway, "server shutting down")
	}
	if ctx.Done() != nil {
		c.rd.stop = context.AfterFunc(ctx, func() { c.Close(websocket.CloseGoingAway, "server shutting down") })
	}

	if cerr != nil {
		h.log.Error("hub: reading room history failed", "room", room, "user", u.ID, "err", cerr)
		c.finishJoin(nil, Position{})
		c.Close(websocket.CloseTryAgainLater, "room unavailable")
	} else {
		h.safely(c, "OnOpen", func() { handler.OnOpen(c.ctx, c) })
		c.rd.opened = true
		c.finishJoin(catchup, c.joinPos)
	}
	c.installControlHandlers()
	c.rd.polled = h.poller.add(c)
	if !c.park() {
		go c.read()
	}
}

func refuse(conn *websocket.Conn, code int, reason string) {
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(closeGrace))
	_ = conn.Close()
}

// Publish sends frame (one JSON document, which never holds a raw newline)
// to every member of room on every instance, via the broker. Local members
// get it when the broker hands it back, like everyone else, so no instance
// delivers it twice. Publishes to one room that arrive while an earlier one
// is in flight go together as one broker message (see publish.go). frame may
// be reused after return. A published frame is ephemeral: it is not
// numbered, kept or replayed (see PublishDurable).
func (h *Hub) Publish(ctx context.Context, room string, frame []byte) error {
	if bytes.IndexByte(frame, '\n') >= 0 {
		return fmt.Errorf("hub: publish to room %q: a frame must not contain a newline", room)
	}
	_, err := h.pubq.publish(ctx, room, Frame{Data: frame})
	return err
}

// DurableOptions tunes PublishDurable.
type DurableOptions struct {
	// Keep also puts the frame into the room's short list of recent
	// frames, which every joiner that did not recover receives (chat).
	Keep bool
}

// PublishDurable is Publish for a frame that must never be lost silently:
// the broker numbers it with the room's next seq, writes {"seq":N,
// "epoch":"E", in front of the rest of frame (a JSON object) and appends it
// to the room's history in the same step as the publish. A client that
// reconnects with a position, and an instance whose subscription broke,
// get it back from that history. It returns the frame's position. Durable
// and ephemeral frames one caller publishes to a room keep their order.
func (h *Hub) PublishDurable(ctx context.Context, room string, frame []byte, opts DurableOptions) (Position, error) {
	if bytes.IndexByte(frame, '\n') >= 0 {
		return Position{}, fmt.Errorf("hub: publish to room %q: a frame must not contain a newline", room)
	}
	if _, err := objectBody(frame); err != nil {
		return Position{}, fmt.Errorf("hub: publish to room %q: %w", room, err)
	}
	return h.pubq.publish(ctx, room, Frame{Data: frame, Durable: true, Keep: opts.Keep})
}

// publishNow hands one batch of frames to the broker as one message and
// returns the position of its last durable frame.
func (h *Hub) publishNow(ctx context.Context, room string, frames []Frame) (Position, error) {
	var pos Position
	var err error
	if slices.ContainsFunc(frames, func(f Frame) bool { return f.Durable }) {
		pos, err = h.broker.PublishFrames(ctx, room, frames)
	} else {
		err = h.broker.Publish(ctx, room, joinFrames(frames))
	}
	if err != nil {
		return Position{}, fmt.Errorf("hub: publish to room %q: %w", room, err)
	}
	h.m.published()
	return pos, nil
}

// receiver is the hub's side of Broker.Run.
type receiver struct{ h *Hub }

func (r receiver) Receive(room string, msg []byte) { r.h.deliver(room, msg) }

func (r receiver) Resubscribed(room string) { r.h.resubscribed(room) }

func (r receiver) ReceiveUser(user string, frame []byte) { r.h.deliverUser(user, frame) }

// deliver is the broker's callback: one broker message for one room (one
// frame, or several joined by newlines), fanned out to the local members. It
// runs on the broker's Run goroutine, one message at a time, so frames reach
// each client in the order the broker received them.
func (h *Hub) deliver(room string, msg []byte) {
	h.m.received()
	for len(msg) > 0 {
		frame := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			frame, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		h.deliverFrame(room, frame)
	}
}

func (h *Hub) deliverFrame(room string, frame []byte) {
	start := time.Now()
	sh := h.shardFor(room)
	sh.mu.RLock()
	r := sh.rooms[room]
	sh.mu.RUnlock()
	if r == nil {
		return
	}
	r.dmu.Lock()
	h.deliverLocked(r, frame)
	r.dmu.Unlock()
	h.m.fanout(start)
}

// broadcastLocal offers an ephemeral frame to every local member of room.
func (h *Hub) broadcastLocal(room string, frame []byte) {
	sh := h.shardFor(room)
	sh.mu.RLock()
	r := sh.rooms[room]
	sh.mu.RUnlock()
	if r != nil {
		h.broadcastRoom(r, frame, Position{})
	}
}

// broadcastRoom frames frame once and offers it to every local member of
// r; p is its position if it is durable. It never blocks on a client, and
// holds the shard lock only to copy the member list: queuing for (and
// starting the writers of) thousands of members happens outside it, so
// joins and leaves in the shard do not wait for a big room's fan-out. A
// client that leaves meanwhile refuses the frame; one that joins meanwhile
// misses it, as if it had joined after (its catch-up covers a durable one).
func (h *Hub) broadcastRoom(r *room, frame []byte, p Position) {
	w := newWire(frame)
	sh := h.shardFor(r.name)
	sp := h.memberSlices.Get().(*[]*Client)
	members := (*sp)[:0]
	sh.mu.RLock()
	for c := range r.members {
		members = append(members, c)
	}
	sh.mu.RUnlock()
	for i, c := range members {
		c.offer(w, p)
		if i%fanoutBatch == fanoutBatch-1 {
			// Let the writers just started run before starting more: dead
			// goroutines are recycled but never freed, so how many writers
			// exist at once sets the memory a big room keeps after a
			// broadcast.
			runtime.Gosched()
		}
	}
	clear(members)
	*sp = members[:0]
	h.memberSlices.Put(sp)
}

// fanoutBatch is how many members broadcastLocal queues for between yields.
const fanoutBatch = 64

// Stats reports the local connection and room counts.
func (h *Hub) Stats() (connections, rooms int) {
	return int(h.nconns.Load()), int(h.nrooms.Load())
}
