package hub

import (
	"context"
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
// frame is written by it, except the close frames gorilla itself writes
// from the read goroutine (read limit, close handshake reply), which
// gorilla serialises with its own lock.
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
	queue     []*websocket.PreparedMessage // queue[head:] waits for the writer
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

	// writeStart is Hub.now when the writer began the data frame it is
	// writing, 0 between frames; the pinger cuts a write stuck too long.
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
// and Send returns false, as it does once the client is closing. frame may
// be reused by the caller after Send returns.
func (c *Client) Send(frame []byte) bool {
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, frame)
	if err != nil {
		// Cannot happen for an uncompressed server frame; treated as a drop.
		return false
	}
	return c.enqueue(pm)
}

// enqueue offers pm to the writer without blocking, starting the writer if
// none is running. It may run under a shard read lock, so everything it
// does must be quick: it never touches the connection.
func (c *Client) enqueue(pm *websocket.PreparedMessage) bool {
	if c.closing.Load() {
		return false
	}
	c.mu.Lock()
	return c.pushLocked(pm)
}

// offer is enqueue for a frame the room delivers live, at position p (zero
// for an ephemeral frame): held back while the client is joining, and
// dropped if the client was already sent that durable frame.
func (c *Client) offer(pm *websocket.PreparedMessage, p Position) bool {
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
		c.held = append(c.held, heldFrame{pm: pm, pos: p})
		c.mu.Unlock()
		return true
	}
	if !c.freshLocked(p) {
		c.mu.Unlock()
		return true
	}
	return c.pushLocked(pm)
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

// pushLocked queues pm and starts the writer if needed; mu must be held,
// and is released.
func (c *Client) pushLocked(pm *websocket.PreparedMessage) bool {
	ok, full := c.appendLocked(pm)
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

// appendLocked adds pm to the queue; mu must be held. It fails when the
// client is closing, and reports full when the queue has no room (the
// caller then evicts the client).
func (c *Client) appendLocked(pm *websocket.PreparedMessage) (ok, full bool) {
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
	c.queue = append(c.queue, pm)
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
// It sends a due ping first, then queued frames in order; once the client
// is closing it drops the backlog (an evicted or shutting-down client should
// not keep the writer busy flushing it), sends the close frame and never
// writes again. A failed write closes the socket, so a read loop blocked on
// a dead peer returns too.
func (c *Client) writeLoop() {
	defer c.recoverWriter()
	n := 0
	defer func() { c.hub.m.out(n) }()
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
		case c.ping:
			c.ping = false
			c.mu.Unlock()
			if c.conn != nil {
				if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.hub.cfg.WriteTimeout)); err != nil {
					c.fail(err)
				}
			}
			continue
		case c.head == len(c.queue):
			c.dropQueueLocked()
			c.exitLocked()
			return
		}
		pm := c.queue[c.head]
		c.queue[c.head] = nil
		c.head++
		c.mu.Unlock()
		if c.conn == nil {
			c.hub.nullWrites.Add(1)
			n++
			continue
		}
		// No socket deadline: the pinger enforces WriteTimeout per frame
		// (see ping.go), and a ping or close frame's deadline is cleared by
		// gorilla before the next data frame.
		c.writeStart.Store(max(c.hub.now(), 1))
		err := c.conn.WritePreparedMessage(pm)
		c.writeStart.Store(0)
		if err != nil {
			c.fail(err)
			continue
		}
		if n++; n == 64 {
			c.hub.m.out(n) // a long run still shows up in the metric as it goes
			n = 0
		}
	}
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
