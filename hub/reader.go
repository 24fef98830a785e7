package hub

import (
	"context"
	"errors"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Reading. A connection's frames are read by a goroutine that exists only
// while the connection has something to read. Between frames an idle
// connection is parked: its socket waits in the hub's poller
// (poller_linux.go), not in a goroutine blocked on a read, so it costs
// neither a goroutine's stack nor a read buffer. When bytes arrive, the
// poller starts a reader; the reader reads what is there, handles every
// complete frame in order, and parks the connection again once it has used
// every byte it read and no fragmented message is under way (after a
// message, it first waits readLinger for the next, which is cheaper than
// parking and waking for each of a talkative client's frames). A frame or a
// message that arrives in pieces is waited for with a blocking read, and so
// is everything where the hub cannot park a connection (no poller on this
// platform, a socket that is not plain TCP, a connection that is closing).
//
// Nothing is blocked in a read of a parked connection, so the pinger
// (ping.go) does what a blocked read would notice: it cuts a peer that has
// been silent for longer than PingInterval+PongTimeout, and wakes the
// reader of a parked connection that is closing, because another goroutine
// may close that socket (a failed write, closeGrace passing) and the
// poller does not see a socket closed on this side.
//
// At most one reader runs per connection: a reader parks by setting the
// state to parked before it arms the poller, and whoever wakes a parked
// connection (the poller, the pinger) must first swap parked for reading.

// A connection's reading states.
const (
	reading int32 = iota // one reader goroutine owns the input
	parked               // the poller waits for input; no goroutine does
	ended                // torn down
)

// readState is a Client's reading side. Start sets the first five fields
// before any reader runs; they are read-only after.
type readState struct {
	handler Handler
	done    func()      // Start's ended, called once torn down
	stop    func() bool // stops the AfterFunc on Start's ctx; nil if it cannot be cancelled
	opened  bool        // OnOpen ran, so OnClose must
	polled  bool        // registered with the poller: the connection may park

	state atomic.Int32
	heard atomic.Int64 // Hub.now of the peer's last frame, or of the start
}

// readBufSize is a reader's buffer, borrowed from the hub for one turn:
// larger than what clients send in a burst, so frames are handled straight
// from it. A frame that does not fit is read into a slice of its own.
const readBufSize = 4096

// errParked ends a reader's turn without ending the connection.
var errParked = errors.New("hub: connection parked")

// message is the data message a reader is assembling.
type message struct {
	op      int   // websocket.TextMessage or BinaryMessage; 0 between messages
	size    int64 // payload so far, checked against ReadLimit
	data    []byte
	handled bool // a message was handled since the reader last lingered
}

// readLinger is how long a reader that has just handled a message waits
// for the next one before it parks the connection.
const readLinger = time.Second

// read is a reader: it reads and handles frames until the connection is
// parked or its input ends, and then tears the connection down.
func (c *Client) read() {
	defer c.hub.recoverReader(c)
	bp := c.hub.readBufs.Get().(*[]byte)
	err := c.readFrames(*bp)
	c.hub.readBufs.Put(bp)
	if err == errParked {
		return // another reader may be running already
	}
	c.logReadError(err)
	if errors.Is(err, websocket.ErrReadLimit) {
		c.linger()
	}
	c.end()
}

// readFrames reads into buf and handles every complete frame in it, until
// it parks the connection (errParked) or the input fails. It starts with a
// read: a reader runs because there is input, or because the connection
// cannot park.
func (c *Client) readFrames(buf []byte) error {
	nc := c.conn.NetConn()
	var m message
	r, w := 0, 0       // buf[r:w] is read and not yet handled
	lingering := false // a read deadline is set (readLinger)
	for {
		n, err := nc.Read(buf[w:])
		w += n
		if err != nil {
			if !lingering || !errors.Is(err, os.ErrDeadlineExceeded) {
				return err
			}
			lingering = false
			if err := nc.SetReadDeadline(time.Time{}); err != nil {
				return err
			}
			if r == w && m.op == 0 && c.park() {
				return errParked
			}
			continue
		}
		for r < w {
			h, hl, problem := parseHeader(buf[r:w], m.op != 0)
			if problem != "" {
				return c.protocolError(problem)
			}
			if hl == 0 {
				break // the rest of the header is on its way
			}
			// Checked, not yet counted: a frame still arriving is parsed
			// again on the next read, and must not be counted twice.
			if !h.control() {
				if total := m.size + h.n; h.n < 0 || total < 0 || total > c.hub.cfg.ReadLimit {
					return c.tooBig()
				}
			}
			size := hl + int(h.n)
			if w-r < size {
				if size <= len(buf) {
					break // the rest of the frame is on its way
				}
				f := make([]byte, size)
				k := copy(f, buf[r:w])
				r, w = 0, 0
				if _, err := io.ReadFull(nc, f[k:]); err != nil {
					return err
				}
				if err := c.frame(h, f[hl:], &m); err != nil {
					return err
				}
				continue
			}
			p := buf[r+hl : r+size]
			r += size
			if err := c.frame(h, p, &m); err != nil {
				return err
			}
		}
		if r == w {
			r, w = 0, 0
			switch {
			case m.op != 0 || lingering:
			case m.handled:
				// A client that has just sent a message often sends
				// another soon: wait for it here a while rather than
				// park and wake a new reader for each.
				m.handled, lingering = false, true
				if err := nc.SetReadDeadline(time.Now().Add(readLinger)); err != nil {
					return err
				}
			case c.park():
				return errParked
			}
		} else if w == len(buf) {
			w = copy(buf, buf[r:w])
			r = 0
		}
	}
}

// frame handles one whole frame; p is its masked payload. Control frames
// go to gorilla's handlers for them (SetPingHandler and so on), as
// gorilla's own reader would send them; a close frame ends the input.
func (c *Client) frame(h header, p []byte, m *message) error {
	unmask(h.key, p)
	c.rd.heard.Store(c.hub.now())
	switch h.op {
	case websocket.PingMessage:
		return c.conn.PingHandler()(string(p))
	case websocket.PongMessage:
		return c.conn.PongHandler()(string(p))
	case websocket.CloseMessage:
		code, text, problem := closePayload(p)
		if problem != "" {
			return c.protocolError(problem)
		}
		if err := c.conn.CloseHandler()(code, text); err != nil {
			return err
		}
		return &websocket.CloseError{Code: code, Text: text}
	case opContinuation:
	default:
		m.op = h.op
	}
	m.data = append(m.data, p...)
	m.size += int64(len(p))
	if h.fin {
		op, msg := m.op, m.data
		if msg == nil {
			msg = []byte{}
		}
		*m = message{handled: true}
		c.message(op, msg)
	}
	return nil
}

// message handles one whole data message.
func (c *Client) message(op int, msg []byte) {
	if c.isClosing() {
		// Draining until the peer answers our close frame.
		return
	}
	if op != websocket.TextMessage {
		c.Close(websocket.CloseUnsupportedData, "text frames only")
		return
	}
	c.hub.m.in()
	if !c.hub.beginHandling() {
		// The hub is draining: a frame it takes now could not be answered
		// before the close, so it is not taken at all.
		return
	}
	c.hub.safely(c, "HandleMessage", func() { c.rd.handler.HandleMessage(c.ctx, c, msg) })
	c.hub.endHandling()
}

// controlWait bounds the close frames the reader writes itself, as
// gorilla's reader bounds them.
const controlWait = time.Second

// protocolError answers a frame that breaks the protocol with 1002.
func (c *Client) protocolError(problem string) error {
	msg := websocket.FormatCloseMessage(websocket.CloseProtocolError, problem)
	if len(msg) > maxControlPayload {
		msg = msg[:maxControlPayload]
	}
	_ = c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(controlWait))
	return errors.New("websocket: " + problem)
}

// tooBig answers a message over ReadLimit with 1009.
func (c *Client) tooBig() error {
	msg := websocket.FormatCloseMessage(websocket.CloseMessageTooBig, "")
	_ = c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(controlWait))
	return websocket.ErrReadLimit
}

// park hands the connection's input to the poller, and reports whether it
// did; the caller's turn as the reader then ends. A connection that is
// closing is not parked: it waits for the peer's answer in a read.
func (c *Client) park() bool {
	if !c.rd.polled || c.isClosing() {
		return false
	}
	c.rd.state.Store(parked)
	if c.hub.poller.arm(c) {
		return true
	}
	// Not armed (the socket is closed, or the poller failed): keep
	// reading, unless something woke the connection meanwhile and its
	// reader has taken over.
	return !c.rd.state.CompareAndSwap(parked, reading)
}

// wake starts a reader for a parked connection.
func (c *Client) wake() {
	if c.rd.state.CompareAndSwap(parked, reading) {
		go c.read()
	}
}

// watchReader is the pinger's check of c's input (see above).
func (c *Client) watchReader(now, alive int64) {
	if c.conn == nil {
		return // a connection-less client (benchmarks)
	}
	if now-c.rd.heard.Load() > alive {
		c.hub.log.Debug("hub: peer silent too long", "room", c.room, "user", c.user.ID)
		c.hub.m.cut("silent")
		_ = c.conn.NetConn().Close()
		c.wake()
	} else if c.isClosing() {
		c.wake()
	}
}

// end tears the connection down once its input has ended: the writer
// stops, the socket closes, the client leaves its room, OnClose runs (if
// OnOpen did) and Start's ended is called. It runs once.
func (c *Client) end() {
	if c.rd.state.Swap(ended) == ended {
		return
	}
	h := c.hub
	defer func() {
		h.serving.Done()
		if c.rd.done != nil {
			c.rd.done()
		}
	}()
	if c.rd.stop != nil {
		c.rd.stop()
	}
	c.readEnded.Store(true)
	c.stopWriter()
	_ = c.conn.Close()
	c.cancel()
	if c.rd.polled {
		h.poller.remove(c)
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), h.cfg.WriteTimeout)
	h.leave(lctx, c)
	cancel()
	if c.rd.opened {
		h.safely(c, "OnClose", func() { c.rd.handler.OnClose(c) })
	}
}

// linger swallows what the peer is still sending after an oversize frame
// was refused with 1009. Closing a socket with unread input makes the
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
		// The 1009 has been sent.
		c.hub.log.Info("hub: client frame over read limit", "room", c.room, "user", c.user.ID, "limit", c.hub.cfg.ReadLimit)
	case websocket.IsUnexpectedCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived) && !c.isClosing():
		c.hub.log.Debug("hub: connection ended", "room", c.room, "user", c.user.ID, "err", err)
	}
}
