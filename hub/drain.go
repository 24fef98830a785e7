package hub

import (
	"context"

	"github.com/gorilla/websocket"
)

// A hub stops in two steps, each with its own deadline, so that every frame
// a client sent and the hub took gets its answer before the connection
// closes:
//
//  1. Drain: read loops stop taking new frames (frames read from now on are
//     dropped unanswered), and the frames already being handled finish;
//     what their handlers send is queued as usual.
//  2. Shutdown: every connection is sent what is queued for it, then the
//     1001 close frame; connections still open at the deadline are cut.
//
// A client that sees 1001 therefore knows that a request it got no answer
// to was never acted on, unless Drain's deadline cut a handler short.

// Drain stops every connection from taking new frames and waits until the
// frames being handled have been handled, or ctx is done (then it returns
// ctx's error). New connections are refused with 1001 from now on.
// Connections stay open; Shutdown closes them.
func (h *Hub) Drain(ctx context.Context) error {
	h.draining.Store(true)
	for h.handling.Load() > 0 {
		select {
		case <-h.drained:
		case <-ctx.Done():
			h.log.Warn("hub: drain deadline passed with frames still being handled; their answers are lost", "frames", h.handling.Load())
			return ctx.Err()
		}
	}
	return nil
}

// beginHandling reports whether the read loop may handle a frame it has
// read; if so, endHandling must follow. The counter goes up before the
// flag is read and Drain sets the flag before it reads the counter, so
// either Drain waits for this frame or the frame is refused.
func (h *Hub) beginHandling() bool {
	h.handling.Add(1)
	if h.draining.Load() {
		h.endHandling()
		return false
	}
	return true
}

func (h *Hub) endHandling() {
	if h.handling.Add(-1) == 0 && h.draining.Load() {
		select {
		case h.drained <- struct{}{}:
		default:
		}
	}
}

// Shutdown drains the hub (if Drain has not already run), then closes every
// connection with 1001 (going away) after the frames queued for it, and
// waits for the connections to finish until ctx is done; connections still
// open then are cut without a close handshake.
func (h *Hub) Shutdown(ctx context.Context) {
	_ = h.Drain(ctx)
	h.mu.Lock()
	h.closed = true
	h.closing.Store(true)
	h.mu.Unlock()

	h.eachClient(func(c *Client) { c.closeAfterQueue(websocket.CloseGoingAway, "server shutting down") })
	done := make(chan struct{})
	go func() {
		h.serving.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		h.log.Warn("hub: shutdown deadline passed; cutting remaining connections", "connections", h.nconns.Load())
		h.eachClient(func(c *Client) {
			if c.conn != nil {
				_ = c.conn.NetConn().Close()
			}
		})
	}
}
