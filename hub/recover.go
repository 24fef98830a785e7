package hub

import (
	"fmt"
	"runtime/debug"
	"time"

	"github.com/gorilla/websocket"
)

// A panic while serving one connection (in the Handler, or in the hub's own
// code for that connection, such as its writer) must not take the process,
// and every other connection, down with it: net/http's and Echo's recovery
// do not cover these goroutines. It is logged with its stack, counted, and
// the connection closes with 1011 (internal error); the client may
// reconnect.

// closeInternal is the reason sent with 1011.
const closeInternal = "internal error"

// safely runs fn, which serves c; a panic in it closes c with 1011 and is
// reported. The reader then drains until the peer answers the close.
func (h *Hub) safely(c *Client, what string, fn func()) {
	defer func() {
		if v := recover(); v != nil {
			h.panicked(c, what, v)
			c.Close(websocket.CloseInternalServerErr, closeInternal)
		}
	}()
	fn()
}

// recoverStart is Start's last resort, for a panic outside the Handler
// calls that safely guards: it closes the connection outright and tears it
// down.
func (h *Hub) recoverStart(c *Client) {
	if v := recover(); v != nil {
		h.panicked(c, "Serve", v)
		refuse(c.conn, websocket.CloseInternalServerErr, closeInternal)
		c.end()
	}
}

// recoverReader is recoverStart for a reader.
func (h *Hub) recoverReader(c *Client) {
	if v := recover(); v != nil {
		h.panicked(c, "reader", v)
		refuse(c.conn, websocket.CloseInternalServerErr, closeInternal)
		c.end()
	}
}

// recoverWriter ends a writer that panicked: the writer's turn ends so
// the teardown does not wait for it, a 1011 close frame is attempted
// (if the panic came mid-frame the peer sees a broken frame instead, which
// ends the connection as surely), nothing more is written, and the socket
// is closed, which ends the reader.
func (c *Client) recoverWriter() {
	v := recover()
	if v == nil {
		return
	}
	c.hub.panicked(c, "writer", v)
	c.mu.Lock()
	c.closeSent = true
	c.closing.Store(true)
	c.dropQueueLocked()
	c.exitLocked()
	if c.conn != nil {
		msg := websocket.FormatCloseMessage(websocket.CloseInternalServerErr, closeInternal)
		_ = c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeGrace))
		_ = c.conn.Close()
		c.wake() // a parked reader would not see the socket close
	}
}

func (h *Hub) panicked(c *Client, what string, v any) {
	h.m.panicked()
	h.log.Error("hub: panic while serving a connection; closing it with 1011",
		"in", what, "room", c.room, "user", c.user.ID, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
}
