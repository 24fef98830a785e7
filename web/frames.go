package web

import (
	"errors"
	"net"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hongbao-dev/hongbao/packet"
	"golang.org/x/time/rate"
)

// newSession starts the protocol state of an admitted connection. Every
// frame the client sends spends from the connection's frame budget, WebSocket
// ping control frames included: gorilla answers each ping with a pong by
// default, so without this a client could make the server write as fast as
// it sends.
func (a *App) newSession(conn *websocket.Conn, u packet.User) *wsSession {
	s := &wsSession{app: a, user: u}
	conn.SetPingHandler(func(data string) error { return s.ping(conn, data) })
	return s
}

// ping answers a ping control frame within the frame budget and ignores it
// beyond. It runs on the read goroutine, like HandleMessage.
func (s *wsSession) ping(conn *websocket.Conn, data string) error {
	if !s.allow(s.spend(), "frame") {
		s.tally(ErrRateLimited)
		s.closeIfFlood()
		return nil
	}
	s.tally(nil)
	err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	var ne net.Error
	if errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) {
		// As gorilla's own handler: a closing or broken connection ends
		// through the read loop, not here.
		return nil
	}
	return err
}

// allow reports ok, counting a refusal by the named limit.
func (s *wsSession) allow(ok bool, limit string) bool {
	if !ok {
		s.app.metrics.limited(limit)
	}
	return ok
}

// tally scores one frame for flood detection: a frame refused by a rate
// limit adds a strike, any other takes one away. A flood is a client that
// keeps sending faster than its limits, not one that once sent a burst.
func (s *wsSession) tally(err error) {
	switch {
	case errors.Is(err, ErrRateLimited):
		s.strikes++
	case s.strikes > 0:
		s.strikes--
	}
}

// closeIfFlood closes the connection with 1008 once the strikes reach
// FloodStrikes.
func (s *wsSession) closeIfFlood() {
	if s.strikes < s.app.cfg.FloodStrikes || s.client == nil || s.flooded {
		return
	}
	s.flooded = true
	s.app.metrics.flood()
	s.client.Close(websocket.ClosePolicyViolation, "rate limit exceeded")
}

// spend takes one frame from the connection's budget and reports whether
// there was one. The budget is made at the first frame, full, as it would
// be by then had it been made at connect: most viewers never send one.
func (s *wsSession) spend() bool {
	if s.frames == nil {
		s.frames = rate.NewLimiter(s.app.cfg.FrameRate, s.app.cfg.FrameBurst)
	}
	return s.frames.Allow()
}
