package hub

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Client is one WebSocket connection in one room.
//
// Concurrency: Send, Close, User, Room and Context are safe from any
// goroutine. The connection is read only by its reader (one goroutine at a
// time, none while the connection is idle: see reader.go) and written only
// by the client's writer, so the hub fans out without locking the
// connection.
//
// The writer is not a permanent goroutine: an idle connection has none.
// Queuing a frame, a ping or a close starts one if none is running (the
// writing flag, under mu, makes sure at most one exists); it writes until
// the queue is empty and exits. Every outgoing data frame, ping and close
// frame is written by it, the reply to a peer's close frame included; the
// only other writes are the application's pong replies (its ping handler,
// on the read goroutine) and the close frame gorilla itself writes when a
// peer breaks the protocol (1002, or 1009 past the read limit).
//
// The writer writes data frames and pings as ready-made bytes (see wire),
// straight to the socket and not through gorilla: every frame waiting in
// the queue goes in one writev. Frames cannot interleave with the other
// writes: Go's poll.FD holds the socket's write lock for a whole Write or
// Writev call, retrying partial writes inside it, so each call lands whole
// (a failed call fails the connection: nothing is written after a torn
// frame). Control frames written through gorilla (WriteControl) set a
// socket write deadline that only gorilla's own data path would clear, so
// wmu orders them against the writer's raw writes and deadline records
// that one may be set: the writer clears it before its next raw write. Raw
// writes carry no deadline of their own; the pinger bounds them (writeStart).
type Client struct {
	hub  *Hub
	conn *websocket.Conn // nil only for connection-less clients in benchmarks
	room string
	user User
	seq  uint64 // hub-wide join order, for a stable presence sample
	r    *room  // set by join under the shard lock, read after join returns

	ctx    context.Context
	cancel context.CancelFunc

	// closing is set, under mu, by the first Close (after closeCode and
	// closeText) or a failed write; it is atomic so hot paths can check it
	// without the lock.
	closing atomic.Bool

	mu sync.Mutex
	// Guarded by mu.
	queue     []*wire // queue[head:] waits for the writer
	head      int
	writing   bool          // a writer goroutine is running; only it touches conn for writing
	ping      bool          // a ping is due
	closeCode int           // set once, with closing
	closeText string        // set once, with closing
	closeLast bool          // set once, with closing: the queue is written before the close frame
	closeSent bool          // the writer has taken the close frame; nothing is written after it
	stopped   bool          // Serve is tearing down: no writer may start any more
	idle      chan struct{} // when non-nil, closed by the writer as it exits (Serve waits on it)

	readEnded atomic.Bool // the read loop has returned

	// wmu is held across every write to the socket but gorilla's own
	// protocol-error close: the writer's raw writes and its close frame,
	// and the application's pong replies (readLoop wraps the ping handler).
	wmu sync.Mutex
	// deadline, guarded by wmu, is set when a write through gorilla may
	// have left a write deadline on the socket.
	deadline bool

	// Catch-up state (see recovery.go), guarded by mu. While joining, live
	// frames wait in held so that the catch-up Serve sends after OnOpen
	// comes first; last is the newest durable frame this client was sent
	// (or the room's position when it joined), so a durable frame reaches
	// it at most once.
	joining bool
	held    []heldFrame
	last    Position

	// Set by Serve before OnOpen, read-only after.
	joinPos   Position
	recovered bool // the catch-up is every missed durable frame
	asked     bool // the client gave a position to recover from

	// writeStart is Hub.now when the writer began the raw write it is
	// in, 0 between writes; the pinger cuts a write stuck too long.
	writeStart atomic.Int64
	nextPing   int64 // Hub.now of the next ping; owned by the pinger after join

	rd readState // the reading side (reader.go)
}

func newClient(ctx context.Context, h *Hub, conn *websocket.Conn, room string, u User) *Client {
	c := &Client{
		hub:  h,
		conn: conn,
		room: room,
		user: u,
		seq:  h.seq.Add(1),
	}
	c.nextPing = h.now() + int64(h.cfg.PingInterval)
	c.ctx, c.cancel = context.WithCancel(ctx)
	return c
}

// User returns the user this connection was served for.
func (c *Client) User() User { return c.user }

// Room returns the room this connection is in.
func (c *Client) Room() string { return c.room }

// Context is cancelled when the connection ends; use it to bound work done
// on the client's behalf.
func (c *Client) Context() context.Context { return c.ctx }

// Send queues frame (one JSON document) for this client only, ahead of any
// catch-up and live frames not yet queued (so OnOpen's welcome comes
// first). It never blocks: when the queue is full the client is evicted as a slow consumer
// and Send returns false, as it does once the client is closing. frame is
// copied: the caller may reuse it after Send returns.
func (c *Client) Send(frame []byte) bool {
	if c.closing.Load() {
		return false
	}
	return c.enqueue(newWire(frame))
}

// enqueue offers w to the writer without blocking, starting the writer if
// none is running. It may run under a shard read lock, so everything it
// does must be quick: it never touches the connection.
func (c *Client) enqueue(w *wire) bool {
	if c.closing.Load() {
		return false
	}
	c.mu.Lock()
	return c.pushLocked(w)
}

// offer is enqueue for a frame the room delivers live, at position p (zero
// for an ephemeral frame): held back while the client is joining, and
// dropped if the client was already sent that durable frame.
func (c *Client) offer(w *wire, p Position) bool {
	if c.closing.Load() {
		return false
	}
	c.mu.Lock()
	if c.joining {
		if len(c.held)+len(c.queue)-c.head >= c.hub.cfg.SendQueue {
			c.mu.Unlock()
			c.evict()
			return false
		}
		c.held = append(c.held, heldFrame{w: w, pos: p})
		c.mu.Unlock()
		return true
	}
	if !c.freshLocked(p) {
		c.mu.Unlock()
		return true
	}
	return c.pushLocked(w)
}

// freshLocked reports whether a frame at p is new to this client, and if
// it is durable records it as the newest sent; mu must be held.
func (c *Client) freshLocked(p Position) bool {
	if p.IsZero() {
		return true
	}
	if p.Epoch == c.last.Epoch && p.Seq <= c.last.Seq {
		return false
	}
	c.last = p
	return true
}

// pushLocked queues w and starts the writer if needed; mu must be held,
// and is released.
func (c *Client) pushLocked(w *wire) bool {
	ok, full := c.appendLocked(w)
	start := ok && c.startWriterLocked()
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
	if full {
		c.evict()
	}
	return ok
}

// evict closes a client whose queue overflowed.
func (c *Client) evict() {
	if c.closeWith(websocket.ClosePolicyViolation, "slow consumer") {
		c.hub.m.evicted()
		c.hub.log.Info("hub: evicting slow consumer", "room", c.room, "user", c.user.ID, "queue", c.hub.cfg.SendQueue)
	}
}

// appendLocked adds w to the queue; mu must be held. It fails when the
// client is closing, and reports full when the queue has no room (the
// caller then evicts the client).
func (c *Client) appendLocked(w *wire) (ok, full bool) {
	if c.closing.Load() || c.stopped {
		return false, false
	}
	if len(c.queue)-c.head >= c.hub.cfg.SendQueue {
		return false, true
	}
	if len(c.queue) == cap(c.queue) && c.head > 0 {
		// Reuse the space the writer has consumed rather than grow: a
		// writer that never quite catches up must not make the queue grow
		// without bound.
		n := copy(c.queue, c.queue[c.head:])
		clear(c.queue[n:])
		c.queue, c.head = c.queue[:n], 0
	}
	c.queue = append(c.queue, w)
	return true, false
}

// startWriterLocked reports whether the caller must start the writer; mu
// must be held.
func (c *Client) startWriterLocked() bool {
	if c.writing || c.stopped {
		return false
	}
	c.writing = true
	return true
}

// pingDue asks the writer to send a ping. Called by the hub's pinger.
func (c *Client) pingDue() {
	c.mu.Lock()
	if c.closing.Load() || c.stopped {
		c.mu.Unlock()
		return
	}
	c.ping = true
	start := c.startWriterLocked()
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
}

// Close ends the connection with a close frame carrying code and reason
// (reason is truncated to fit a control frame). It returns at once; the
// connection is torn down within about a second even if the peer has stopped
// reading. Later calls are no-ops.
func (c *Client) Close(code int, reason string) {
	c.closeWith(code, reason)
}

// closeAfterQueue is Close for a hub shutting down: the frames queued so far
// (the answers of the frames just handled among them) are written before the
// close frame, and nothing is queued after it. Writing them is bounded by
// Hub.Shutdown's deadline (and WriteTimeout); the peer then has closeGrace
// to answer the close.
func (c *Client) closeAfterQueue(code int, reason string) {
	c.startClose(code, reason, true)
}

// closeWith reports whether this call was the one that started closing.
func (c *Client) closeWith(code int, reason string) bool {
	return c.startClose(code, reason, false)
}

func (c *Client) startClose(code int, reason string, flush bool) bool {
	c.mu.Lock()
	if c.closing.Load() {
		c.mu.Unlock()
		return false
	}
	c.closeCode, c.closeText, c.closeLast = code, reason, flush
	c.closing.Store(true)
	start := c.startWriterLocked()
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
	if !flush {
		// The writer may be stuck for up to WriteTimeout in a write to a
		// peer that stopped reading, unable to get to the close frame, or
		// the peer may never answer it. (With flush, the writer arms this
		// once the close frame is out.)
		c.cutAfterGrace()
	}
	return true
}

// cutAfterGrace cuts the socket after closeGrace unless the read loop has
// ended by then: that fails a stuck write and the blocked read, and both
// wind down.
func (c *Client) cutAfterGrace() {
	if c.conn == nil {
		return
	}
	time.AfterFunc(closeGrace, func() {
		if !c.readEnded.Load() {
			_ = c.conn.NetConn().Close()
		}
	})
}

func (c *Client) isClosing() bool { return c.closing.Load() }

// writeLoop is the connection's writer while there is something to write.
// Each turn it takes a due ping and the queued frames (up to
// maxTurnFrames) and writes them together; once the client is closing it
// drops the backlog (an evicted or shutting-down client should not keep the
// writer busy flushing it), sends the close frame and never writes again. A
// failed write closes the socket, so a read loop blocked on a dead peer
// returns too.
func (c *Client) writeLoop() {
	defer c.recoverWriter()
	b := c.hub.batches.Get().(*batch)
	frames, writes := 0, 0
	defer func() {
		c.hub.m.out(frames, writes)
		b.reset()
		c.hub.batches.Put(b)
	}()
	for {
		c.mu.Lock()
		switch {
		case c.closing.Load() && !c.closeSent && (!c.closeLast || c.head == len(c.queue) || c.stopped):
			c.closeSent = true
			c.dropQueueLocked()
			code, text, last := c.closeCode, c.closeText, c.closeLast
			c.mu.Unlock()
			c.writeClose(code, text)
			if last {
				c.cutAfterGrace()
			}
			continue
		case c.closeSent || c.stopped:
			c.dropQueueLocked()
			c.exitLocked()
			return
		case !c.ping && c.head == len(c.queue):
			c.dropQueueLocked()
			c.exitLocked()
			return
		}
		ping := c.ping
		c.ping = false
		c.takeLocked(b)
		c.mu.Unlock()
		n := len(b.frames)
		if c.conn == nil {
			c.hub.nullWrites.Add(int64(n))
			clear(b.frames)
			frames += n
			continue
		}
		b.frame(ping)
		w, err := c.writeBufs(b)
		writes += w
		clear(b.bufs)
		if err != nil {
			c.fail(err)
			continue
		}
		if frames += n; frames >= 64 {
			// A long run still shows up in the metrics as it goes.
			c.hub.m.out(frames, writes)
			frames, writes = 0, 0
		}
	}
}

// Limits of one writer turn. maxTurnFrames bounds what a turn takes from
// the queue (and so the writer's scratch, and the iovec array the runtime
// keeps per socket after a writev); maxWriteBytes bounds one write, so that
// WriteTimeout, which the pinger applies per write, still means roughly
// what it did per frame.
const (
	maxTurnFrames = 16
	maxWriteBytes = 64 << 10
)

// batch is a writer's scratch for one turn: the frames it took from the
// queue and the byte slices it hands to writev. Writers borrow one from
// Hub.batches, so an idle connection holds none.
type batch struct {
	frames []*wire
	bufs   [][]byte
	v      net.Buffers // the write in progress; a field, so that writing it does not allocate
}

// takeLocked moves up to maxTurnFrames queued frames into b.frames; mu
// must be held.
func (c *Client) takeLocked(b *batch) {
	end := min(len(c.queue), c.head+maxTurnFrames)
	b.frames = append(b.frames[:0], c.queue[c.head:end]...)
	clear(c.queue[c.head:end])
	c.head = end
}

// frame fills b.bufs with a ping (when due) and then b.frames' bytes, in
// that order, and lets go of b.frames.
func (b *batch) frame(ping bool) {
	b.bufs = b.bufs[:0]
	if ping {
		b.bufs = append(b.bufs, pingWire())
	}
	for _, w := range b.frames {
		b.bufs = append(b.bufs, w.b)
	}
	clear(b.frames)
}

func (b *batch) reset() {
	clear(b.frames)
	clear(b.bufs)
	b.frames, b.bufs, b.v = b.frames[:0], b.bufs[:0], nil
}

// writeBufs writes b.bufs, whole frames, in order, in as few calls as
// maxWriteBytes allows (one, unless the frames are large), and returns how
// many calls it made. A frame alone goes with write(2), several with
// writev(2). It holds wmu throughout and first clears a write deadline a
// control frame may have left (see Client).
func (c *Client) writeBufs(b *batch) (int, error) {
	nc := c.conn.NetConn()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.deadline {
		if err := nc.SetWriteDeadline(time.Time{}); err != nil {
			return 0, err
		}
		c.deadline = false
	}
	writes := 0
	for rest := b.bufs; len(rest) > 0; {
		k, size := 1, len(rest[0])
		for k < len(rest) && size+len(rest[k]) <= maxWriteBytes {
			size += len(rest[k])
			k++
		}
		writes++
		c.writeStart.Store(max(c.hub.now(), 1))
		var err error
		if k == 1 {
			_, err = nc.Write(rest[0])
		} else {
			b.v = rest[:k]
			_, err = b.v.WriteTo(nc)
		}
		c.writeStart.Store(0)
		if err != nil {
			return writes, err
		}
		rest = rest[k:]
	}
	return writes, nil
}

// dropQueueLocked empties the queue, keeping a small backing array for the
// next frame and letting a large one go; mu must be held.
func (c *Client) dropQueueLocked() {
	if cap(c.queue) > 8 {
		c.queue = nil
	} else {
		clear(c.queue[c.head:])
		c.queue = c.queue[:0]
	}
	c.head = 0
}

// exitLocked ends the writer's turn and unlocks mu.
func (c *Client) exitLocked() {
	c.writing = false
	if c.idle != nil {
		close(c.idle)
		c.idle = nil
	}
	c.mu.Unlock()
}

// fail gives up on a connection whose write failed: nothing more is written
// and the socket is closed, which ends the read loop too.
func (c *Client) fail(err error) {
	c.hub.log.Debug("hub: write failed", "room", c.room, "user", c.user.ID, "err", err)
	c.mu.Lock()
	c.closeSent = true // nothing may follow a broken frame
	c.closing.Store(true)
	c.mu.Unlock()
	_ = c.conn.Close()
}

// writeClose sends the close frame. The peer's reply ends the read loop;
// if it does not come, closeWith's timer cuts the socket.
func (c *Client) writeClose(code int, text string) {
	if c.conn == nil {
		return
	}
	msg := websocket.FormatCloseMessage(code, truncateReason(text))
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.deadline = true
	if err := c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeGrace)); err != nil {
		_ = c.conn.Close()
	}
}

// stopWriter stops the writer for good once the read loop has returned,
// waiting for a running one to finish (cutting the socket if it is stuck
// in a write to a peer that no longer reads).
func (c *Client) stopWriter() {
	c.mu.Lock()
	c.stopped = true
	if !c.writing {
		c.dropQueueLocked()
		c.mu.Unlock()
		return
	}
	idle := make(chan struct{})
	c.idle = idle
	c.mu.Unlock()
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
		_ = c.conn.NetConn().Close()
		<-idle
	}
}

// maxCloseReason is what fits in a control frame (125 bytes) after the
// 2-byte close code.
const maxCloseReason = 123

func truncateReason(s string) string {
	if len(s) <= maxCloseReason {
		return s
	}
	s = s[:maxCloseReason]
	// Do not leave half a UTF-8 sequence at the end.
	for len(s) > 0 && s[len(s)-1]&0xC0 == 0x80 {
		s = s[:len(s)-1]
	}
	if len(s) > 0 && s[len(s)-1] >= 0xC0 {
		s = s[:len(s)-1]
	}
	return s
}

// installControlHandlers routes the peer's control frames before the
// connection is first read. The application's ping handler writes its pong
// through gorilla, with a deadline: under wmu, so that it never runs during
// a raw write and the writer knows to clear the deadline. The reply to a
// peer's close frame goes through the writer, like every close frame of
// ours, so no data frame can follow it; it echoes the peer's code, as
// gorilla's default handler does.
func (c *Client) installControlHandlers() {
	ping := c.conn.PingHandler()
	c.conn.SetPingHandler(func(data string) error {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		c.deadline = true
		return ping(data)
	})
	c.conn.SetCloseHandler(func(code int, _ string) error {
		c.closeWith(code, "")
		return nil
	})
}
