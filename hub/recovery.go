package hub

import (
	"bytes"
	"context"
	"errors"
)

// Recovery: durable frames (PublishDurable) carry the room's seq and epoch
// and stay in the broker's history for a while, so nothing durable is lost
// without the client being told.
//
// A joining client: Serve joins the room (subscribed, live frames start to
// arrive and wait in the client's held list), reads the history (Recover
// from the client's position, or the room's recent frames), calls OnOpen
// (whose welcome reports Client.Position and Client.Recovered), queues the
// missed frames, or {"type":"resync"} and the recent frames, and then the
// held frames, dropping every durable frame at or below what it was already
// sent. From then on the same check runs at fan-out, under the client's
// lock, so each durable frame reaches a connection at most once.
//
// A room: the hub remembers the last position it delivered per room. A
// durable frame more than one past it, or a broker report that the room's
// subscription was lost and restored (Receiver.Resubscribed), starts a
// repair: the room's later frames wait while one goroutine reads the
// history since that position, delivers what was missed, and then lets the
// waiting frames through. When the history cannot cover the gap, or the
// epoch changed, every member gets {"type":"resync"} instead.

// ServeOptions tunes one Serve.
type ServeOptions struct {
	// Since is the position of the last durable frame the client saw in an
	// earlier connection (from its since= parameter). When the room's
	// history covers it the client is sent every durable frame it missed;
	// otherwise {"type":"resync"}. Nil for a fresh client.
	Since *Position
}

// resyncFrame tells a client that durable frames it should have had are
// gone: it must reload the room's state.
var resyncFrame = []byte(`{"type":"resync"}`)

// heldFrame is a live frame waiting for a joining client's catch-up.
type heldFrame struct {
	w   *wire
	pos Position
}

// Position returns the room's position when this client joined: durable
// frames up to it were published before the client joined (and were
// recovered, if it asked), later ones reach it live. Valid from OnOpen on.
func (c *Client) Position() Position { return c.joinPos }

// Recovered reports whether the client gave a position to recover from
// (asked) and, if so, whether every durable frame it missed is being sent
// to it (recovered) or it gets {"type":"resync"}. Valid from OnOpen on.
func (c *Client) Recovered() (recovered, asked bool) { return c.recovered, c.asked }

// catchUp reads what a joining client must be sent before live frames:
// the durable frames it missed, or a resync (if it asked to recover) and
// the room's recent frames.
func (h *Hub) catchUp(ctx context.Context, c *Client, since *Position) ([]*wire, error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.RecoverTimeout)
	defer cancel()
	var frames [][]byte
	var pos Position
	var err error
	if since != nil {
		c.asked = true
		frames, pos, err = h.broker.Recover(ctx, c.room, *since, h.cfg.RecoverLimit)
		if err != nil && !errors.Is(err, ErrHistoryGone) {
			return nil, err
		}
		c.recovered = err == nil
		h.m.recovery("client", c.recovered)
	}
	var out []*wire
	if !c.recovered {
		if frames, pos, err = h.broker.Recent(ctx, c.room); err != nil {
			return nil, err
		}
		if since != nil {
			out = append(out, newWire(resyncFrame))
		}
	}
	for _, f := range frames {
		out = append(out, newWire(f))
	}
	c.joinPos = pos
	if r := c.r; r != nil {
		r.dmu.Lock()
		if r.pos.IsZero() {
			// No durable frame seen yet: count gaps from here.
			r.pos = pos
		}
		r.dmu.Unlock()
	}
	return out, nil
}

// finishJoin queues the catch-up, then the live frames held meanwhile
// that the client has not been sent yet, and ends joining. pos is the
// room's position the catch-up brings the client to.
func (c *Client) finishJoin(catchup []*wire, pos Position) {
	c.mu.Lock()
	c.last = pos
	ok, full := true, false
	for _, w := range catchup {
		if ok, full = c.appendLocked(w); !ok {
			break
		}
	}
	for _, f := range c.held {
		if !ok {
			break
		}
		if c.freshLocked(f.pos) {
			ok, full = c.appendLocked(f.w)
		}
	}
	clear(c.held)
	c.held = nil
	c.joining = false
	// A writer only for frames to write: pings and close frames start their own.
	start := ok && c.head < len(c.queue) && c.startWriterLocked()
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
	if full {
		c.evict()
	}
}

// maxHeldFrames caps the frames a room holds while a repair runs; beyond
// it frames are dropped and the repair ends in a resync.
const maxHeldFrames = 4096

// deliverLocked fans one frame out to r's local members, tracking r's
// position; r.dmu must be held. A frame that arrives during a repair waits
// for it; a durable frame past a gap starts one.
func (h *Hub) deliverLocked(r *room, frame []byte) {
	if r.repairing {
		if len(r.held) >= maxHeldFrames {
			r.overflow = true
			return
		}
		r.held = append(r.held, bytes.Clone(frame))
		return
	}
	p, durable := framePosition(frame)
	if durable {
		switch {
		case r.pos.IsZero():
			r.pos = p
		case p.Epoch != r.pos.Epoch:
			h.log.Warn("hub: room history changed epoch; members must resync", "room", r.name, "from", r.pos.String(), "to", p.String())
			h.m.recovery("room", false)
			h.broadcastRoom(r, resyncFrame, Position{})
			r.pos = p
		case p.Seq > r.pos.Seq+1:
			h.log.Warn("hub: seq gap in room; repairing from history", "room", r.name, "from", r.pos.String(), "got", p.String())
			r.held = append(r.held, bytes.Clone(frame))
			h.startRepairLocked(r)
			return
		case p.Seq > r.pos.Seq:
			r.pos = p
		}
	}
	sh := h.shardFor(r.name)
	sh.mu.RLock()
	n := len(r.members)
	sh.mu.RUnlock()
	if n == 0 {
		return
	}
	if r.throttle != nil && r.throttle.Take(frame, n) {
		return
	}
	h.broadcastRoom(r, frame, p)
}

// resubscribed is the broker's report that r's subscription was lost and
// restored: frames may have been missed, so repair from r's position.
func (h *Hub) resubscribed(name string) {
	sh := h.shardFor(name)
	sh.mu.RLock()
	r := sh.rooms[name]
	sh.mu.RUnlock()
	if r == nil {
		return
	}
	h.log.Warn("hub: room subscription was lost and restored; repairing from history", "room", name)
	r.dmu.Lock()
	defer r.dmu.Unlock()
	if r.repairing {
		// The running repair may have read the history before this loss.
		r.again = true
		return
	}
	h.startRepairLocked(r)
}

// startRepairLocked starts a repair of r from its position; r.dmu must be
// held.
func (h *Hub) startRepairLocked(r *room) {
	r.repairing = true
	from := r.pos
	h.repairs.Add(1)
	go func() {
		defer h.repairs.Done()
		h.repair(r, from)
	}()
}

// repair reads r's history after from, delivers what r's members missed
// (or a resync), then the frames that arrived meanwhile. It holds r.dmu
// only after the read, so other rooms, and r's own joins, never wait on
// Redis; r's frames wait for at most RecoverTimeout.
func (h *Hub) repair(r *room, from Position) {
	ctx, cancel := context.WithTimeout(h.bg, h.cfg.RecoverTimeout)
	// A zero from (the room never saw a position) cannot be recovered; the
	// read still tells where the room stands.
	frames, top, err := h.broker.Recover(ctx, r.name, from, h.cfg.RecoverLimit)
	cancel()

	r.dmu.Lock()
	defer r.dmu.Unlock()
	recovered := err == nil && !r.overflow
	if err == nil {
		for _, f := range frames {
			p, _ := framePosition(f)
			h.broadcastRoom(r, f, p)
		}
	}
	switch {
	case recovered:
		r.pos = top
		h.log.Info("hub: room repaired from history", "room", r.name, "from", from.String(), "to", top.String(), "frames", len(frames))
	case err == nil || errors.Is(err, ErrHistoryGone):
		// Overflowed, or the history cannot cover the gap: start over from
		// where the room stands now (an overflow dropped frames after top,
		// so count from the next frame seen).
		h.broadcastRoom(r, resyncFrame, Position{})
		r.pos = top
		if r.overflow {
			r.pos = Position{}
		}
		h.log.Warn("hub: room history does not cover the gap; members resync", "room", r.name, "from", from.String(), "now", top.String())
	default:
		h.broadcastRoom(r, resyncFrame, Position{})
		r.pos = Position{}
		h.log.Warn("hub: room repair failed; members resync", "room", r.name, "from", from.String(), "err", err)
	}
	h.m.recovery("room", recovered)
	r.overflow = false
	if r.again && h.bg.Err() == nil {
		r.again = false
		h.startRepairLocked(r)
		return
	}
	r.repairing = false
	held := r.held
	r.held = nil
	for _, f := range held {
		// A frame past another gap starts another repair; the rest then
		// wait for it.
		h.deliverLocked(r, f)
	}
}
