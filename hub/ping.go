package hub

import (
	"time"
)

// The hub's timekeeper replaces three per-connection timers: a ping ticker,
// a write deadline re-armed for every frame and a read deadline.
//
// One goroutine per hub (pingLoop, running while the hub has connections)
// walks the clients every tick and
//   - asks the writer of each client whose nextPing has come for a ping, so
//     pings go out every PingInterval per connection, a tick late at most;
//   - cuts the socket of each client whose writer has been stuck in one
//     write (of the frames and ping it took in one turn) for longer than
//     WriteTimeout, which fails that write. Those writes carry no socket
//     deadline, so the runtime does not re-arm a timer for every frame of a
//     broadcast.
//
// The tick is an eighth of the shortest of PingInterval, PongTimeout and
// WriteTimeout, so neither check is late by more than that fraction.
//
// It also stands in for a read deadline, which would need a goroutine
// blocked in a read to notice it (an idle connection has none, see
// reader.go): it cuts the socket of each client whose peer has sent
// nothing for longer than PingInterval+PongTimeout, and wakes the reader
// of each parked client that is closing.

// now is the hub's monotonic clock, in nanoseconds since New.
func (h *Hub) now() int64 { return int64(time.Since(h.epoch)) }

func (h *Hub) tick() time.Duration {
	return min(h.cfg.PingInterval, h.cfg.PongTimeout, h.cfg.WriteTimeout) / 8
}

// startPinger makes sure the hub's pinger runs; Start calls it after the
// client has joined (so the pinger sees a non-zero connection count).
func (h *Hub) startPinger() {
	if h.pinging.CompareAndSwap(false, true) {
		go h.pingLoop()
	}
}

// pingLoop exits once the hub has no connections; the next Start starts it
// again.
func (h *Hub) pingLoop() {
	t := time.NewTicker(h.tick())
	defer t.Stop()
	ping := int64(h.cfg.PingInterval)
	stuck := int64(h.cfg.WriteTimeout)
	alive := int64(h.cfg.PingInterval + h.cfg.PongTimeout)
	for range t.C {
		if h.nconns.Load() == 0 {
			h.pinging.Store(false)
			// A client that joined after the load above either sees
			// pinging false and starts a new pinger, or is seen here.
			if h.nconns.Load() == 0 || !h.pinging.CompareAndSwap(false, true) {
				return
			}
		}
		now := h.now()
		h.eachClient(func(c *Client) {
			if now >= c.nextPing {
				c.nextPing = now + ping
				c.pingDue()
			}
			if ws := c.writeStart.Load(); ws != 0 && now-ws > stuck && c.conn != nil {
				h.log.Debug("hub: write timed out", "room", c.room, "user", c.user.ID)
				h.m.cut("write_timeout")
				_ = c.conn.NetConn().Close()
			}
			c.watchReader(now, alive)
		})
	}
}
