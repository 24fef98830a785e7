package hub

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Client is one WebSocket connection in one room.
//
// Concurrency: Send, Close, User, Room and Context are safe from any
// goroutine. The connection itself is touched only by the goroutine running
// Serve (reads) and the client's writer goroutine (writes); every outgoing
// data frame, ping and close frame is written by the writer, which is what
// lets the hub fan out without locking the connection.
type Client struct {
	hub  *Hub
	conn *websocket.Conn // nil only for connection-less clients in benchmarks
	room string
	user User
	seq  uint64 // hub-wide join order, for a stable presence sample
	r    *room  // set by join under the shard lock, read after join returns

	ctx    context.Context
	cancel context.CancelFunc

	// send is never closed: many goroutines send on it, so closing it would
	// race. The writer stops on closing/readDone instead.
	send chan *websocket.PreparedMessage

	closeOnce sync.Once
	closing   chan struct{} // closed by the first Close; closeCode/closeText are set before
	closeCode int
	closeText string

	readDone   chan struct{} // closed when the read loop has returned
	writerDone chan struct{} // closed when the writer goroutine has returned
}

func newClient(ctx context.Context, h *Hub, conn *websocket.Conn, room string, u User) *Client {
	c := &Client{
		hub:        h,
		conn:       conn,
		room:       room,
		user:       u,
		seq:        h.seq.Add(1),
		send:       make(chan *websocket.PreparedMessage, h.cfg.SendQueue),
		closing:    make(chan struct{}),
		readDone:   make(chan struct{}),
		writerDone: make(chan struct{}),
	}
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

// Send queues frame (one JSON document) for this client only. It never
// blocks: when the queue is full the client is evicted as a slow consumer
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

// enqueue offers pm to the writer without blocking. It may run under a shard
// read lock, so everything it does on overflow must be lock-free and quick.
func (c *Client) enqueue(pm *websocket.PreparedMessage) bool {
	select {
	case <-c.closing:
		return false
	default:
	}
	select {
	case c.send <- pm:
		return true
	default:
		if c.closeWith(websocket.ClosePolicyViolation, "slow consumer") {
			c.hub.m.evicted()
			c.hub.log.Info("hub: evicting slow consumer", "room", c.room, "user", c.user.ID, "queue", cap(c.send))
		}
		return false
	}
}

// Close ends the connection with a close frame carrying code and reason
// (reason is truncated to fit a control frame). It returns at once; the
// connection is torn down within about a second even if the peer has stopped
// reading. Later calls are no-ops.
func (c *Client) Close(code int, reason string) {
	c.closeWith(code, reason)
}

// closeWith reports whether this call was the one that started closing.
func (c *Client) closeWith(code int, reason string) bool {
	first := false
	c.closeOnce.Do(func() {
		first = true
		c.closeCode, c.closeText = code, reason
		close(c.closing)
		if c.conn == nil {
			return
		}
		// The writer may be stuck for up to WriteTimeout in a write to a peer
		// that stopped reading, unable to get to the close frame. After the
		// grace period, cut the socket: that fails the stuck write and the
		// blocked read, and both goroutines wind down.
		time.AfterFunc(closeGrace, func() {
			select {
			case <-c.writerDone:
			default:
				_ = c.conn.NetConn().Close()
			}
		})
	})
	return first
}

func (c *Client) isClosing() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

// writeLoop is the connection's only writer. It exits when the read loop
// ends, when a write fails, or after sending the close frame, and always
// closes the socket on the way out so a read loop blocked on a dead peer
// returns too.
func (c *Client) writeLoop() {
	cfg := &c.hub.cfg
	ping := time.NewTicker(cfg.PingInterval)
	defer func() {
		ping.Stop()
		_ = c.conn.Close()
		close(c.writerDone)
	}()
	for {
		// Closing wins over queued frames: an evicted or shutting-down client
		// should not keep the writer busy flushing a backlog first.
		if c.isClosing() {
			c.writeClose()
			return
		}
		select {
		case pm := <-c.send:
			if !c.writeBatch(pm) {
				return
			}
		case <-ping.C:
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(cfg.WriteTimeout)); err != nil {
				return
			}
		case <-c.closing:
			// Handled at the top of the loop.
		case <-c.readDone:
			return
		}
	}
}

// writeBatch writes pm and then whatever else is already queued without
// going back through select, so a burst costs one wake-up rather than one per
// frame. (gorilla writes each frame with its own syscall; merging frames
// would change the one-JSON-per-frame protocol, so this is as far as batching
// goes.) It reports whether the connection is still writable.
func (c *Client) writeBatch(pm *websocket.PreparedMessage) bool {
	n := 0
	defer func() { c.hub.m.out(n) }()
	for {
		// Deadline per frame: a batch of many frames may legitimately take
		// longer than one WriteTimeout.
		if err := c.conn.SetWriteDeadline(time.Now().Add(c.hub.cfg.WriteTimeout)); err != nil {
			return false
		}
		if err := c.conn.WritePreparedMessage(pm); err != nil {
			c.hub.log.Debug("hub: write failed", "room", c.room, "user", c.user.ID, "err", err)
			return false
		}
		n++
		if c.isClosing() {
			return true
		}
		select {
		case pm = <-c.send:
		default:
			return true
		}
	}
}

// writeClose sends the close frame and waits briefly for the peer's reply
// (which ends the read loop), so the peer sees a clean close rather than a
// reset.
func (c *Client) writeClose() {
	msg := websocket.FormatCloseMessage(c.closeCode, truncateReason(c.closeText))
	if err := c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeGrace)); err != nil {
		return
	}
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case <-c.readDone:
	case <-t.C:
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

// readLoop runs on Serve's goroutine until the connection fails or closes.
func (c *Client) readLoop(handler Handler) {
	cfg := &c.hub.cfg
	conn := c.conn
	conn.SetReadLimit(cfg.ReadLimit)
	// Any frame from the peer, not only a pong, proves it is alive.
	alive := cfg.PingInterval + cfg.PongTimeout
	_ = conn.SetReadDeadline(time.Now().Add(alive))
	conn.SetPongHandler(func(string) error {
		return conn.SetReadDeadline(time.Now().Add(alive))
	})
	for {
		mt, msg, err := conn.ReadMessage()
		if err != nil {
			c.logReadError(err)
			if errors.Is(err, websocket.ErrReadLimit) {
				c.linger()
			}
			return
		}
		_ = conn.SetReadDeadline(time.Now().Add(alive))
		if c.isClosing() {
			// Draining until the peer answers our close frame.
			continue
		}
		if mt != websocket.TextMessage {
			c.Close(websocket.CloseUnsupportedData, "text frames only")
			continue
		}
		c.hub.m.in()
		handler.HandleMessage(c.ctx, c, msg)
	}
}

// linger swallows what the peer is still sending after gorilla refused an
// oversize frame with 1009. Closing a socket with unread input makes the
// kernel send a reset, which can destroy the close frame before the peer
// reads it. The rest of the oversize frame streams in back to back, so
// draining until the input goes quiet briefly (or closeGrace passes) is
// enough to let the 1009 arrive intact.
func (c *Client) linger() {
	nc := c.conn.NetConn()
	end := time.Now().Add(closeGrace)
	buf := make([]byte, 4096)
	for total := 0; total < lingerMax; {
		deadline := time.Now().Add(lingerQuiet)
		if deadline.After(end) {
			deadline = end
		}
		if err := nc.SetReadDeadline(deadline); err != nil {
			return
		}
		n, err := nc.Read(buf)
		total += n
		if err != nil {
			return
		}
	}
}

const (
	// lingerQuiet is how long the input must stay idle for linger to stop.
	lingerQuiet = 100 * time.Millisecond
	// lingerMax caps how much a misbehaving peer can make linger read.
	lingerMax = 1 << 20
)

func (c *Client) logReadError(err error) {
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		// gorilla has already sent 1009.
		c.hub.log.Info("hub: client frame over read limit", "room", c.room, "user", c.user.ID, "limit", c.hub.cfg.ReadLimit)
	case websocket.IsUnexpectedCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived) && !c.isClosing():
		c.hub.log.Debug("hub: connection ended", "room", c.room, "user", c.user.ID, "err", err)
	}
}
