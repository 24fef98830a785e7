package hub

import (
	"context"
	"sync"
)

// shard is one slice of the room table. Its lock guards the map and every
// room's membership fields; it is held only for map and set operations, never
// across I/O, so a slow Redis never stalls rooms that are already joined.
type shard struct {
	mu    sync.RWMutex
	rooms map[string]*room
}

// room is the local state of one room.
//
// Lock order: room.sub before shard.mu; room.dmu before coalescer.mu before
// shard.mu before Client.mu.
type room struct {
	name string

	// sub serialises broker Subscribe/Unsubscribe for this room so that an
	// unsubscribe by the last leaver can never land after a newcomer's
	// subscribe. It is held across broker I/O, which only ever delays joins to
	// this same room.
	sub sync.Mutex

	// Guarded by the shard lock. subscribed is written only while sub is also
	// held, so a joiner can read it under the shard lock alone and skip sub
	// on the fast path.
	subscribed bool
	// refs counts members plus joins and unsubscribes in flight. The room is
	// removed from the shard map only when refs is zero and it is not
	// subscribed, so nobody can hold a *room that is no longer in the map
	// while the broker still believes the room is wanted.
	refs     int
	members  map[*Client]struct{}
	lastJoin uint64 // highest Client.seq that joined; presence uses it to spot newcomers

	coal *coalescer

	// Delivery state (see recovery.go), guarded by dmu, which is held while
	// one of the room's broker messages is fanned out.
	dmu       sync.Mutex
	pos       Position // last durable frame seen; zero until the first frame or joiner's read
	repairing bool     // a repair runs: frames wait in held
	again     bool     // the subscription broke again during the repair
	overflow  bool     // frames were dropped from held: the repair ends in resync
	held      [][]byte // frames received during the repair, in order
}

func (h *Hub) shardFor(name string) *shard {
	return h.shards[h.shardIndex(name)]
}

// join adds c to its room, subscribing the broker first if c is the room's
// first local member. On error c is not a member.
func (h *Hub) join(ctx context.Context, c *Client) error {
	sh := h.shardFor(c.room)
	sh.mu.Lock()
	r := sh.rooms[c.room]
	if r == nil {
		r = &room{name: c.room, members: make(map[*Client]struct{})}
		r.coal = newCoalescer(func(frame []byte) { h.broadcastLocal(r.name, frame) })
		sh.rooms[c.room] = r
		h.nrooms.Add(1)
		h.m.roomAdd(1)
	}
	r.refs++
	if r.subscribed {
		h.addMember(r, c)
		sh.mu.Unlock()
		return nil
	}
	sh.mu.Unlock()

	r.sub.Lock()
	defer r.sub.Unlock()
	sh.mu.RLock()
	subscribed := r.subscribed
	sh.mu.RUnlock()
	if !subscribed {
		if err := h.broker.Subscribe(ctx, r.name); err != nil {
			sh.mu.Lock()
			r.refs--
			h.dropIfUnused(sh, r)
			sh.mu.Unlock()
			return err
		}
		// Frames published while unsubscribed were never meant for this
		// instance: count gaps from the joiner's read, not from before.
		r.dmu.Lock()
		r.pos = Position{}
		r.dmu.Unlock()
	}
	sh.mu.Lock()
	r.subscribed = true
	h.addMember(r, c)
	sh.mu.Unlock()
	return nil
}

// addMember must be called with the shard lock held.
func (h *Hub) addMember(r *room, c *Client) {
	r.members[c] = struct{}{}
	if c.seq > r.lastJoin {
		r.lastJoin = c.seq
	}
	c.r = r
	h.nconns.Add(1)
	h.m.connAdd(1)
}

// leave removes c from its room and unsubscribes the broker if c was the last
// local member. ctx bounds only the broker call.
func (h *Hub) leave(ctx context.Context, c *Client) {
	r := c.r
	if r == nil {
		return
	}
	sh := h.shardFor(r.name)
	sh.mu.Lock()
	delete(r.members, c)
	h.nconns.Add(-1)
	h.m.connAdd(-1)
	r.refs--
	last := r.refs == 0
	if last {
		// Keep the room alive (and in the map) while we unsubscribe, so a
		// concurrent joiner finds this room and queues behind r.sub.
		r.refs++
	}
	sh.mu.Unlock()
	if !last {
		return
	}

	r.sub.Lock()
	defer r.sub.Unlock()
	sh.mu.Lock()
	r.refs--
	unsubscribe := r.refs == 0 && r.subscribed
	if unsubscribe {
		// Flipped before the I/O so joiners arriving meanwhile take the slow
		// path and resubscribe after us.
		r.subscribed = false
	}
	sh.mu.Unlock()
	if unsubscribe {
		if err := h.broker.Unsubscribe(ctx, r.name); err != nil {
			// The room is marked unsubscribed either way: a stray
			// subscription only delivers frames to an empty room, which are
			// dropped, and the next joiner subscribes afresh.
			h.log.Warn("hub: unsubscribe failed", "room", r.name, "err", err)
		}
	}
	sh.mu.Lock()
	h.dropIfUnused(sh, r)
	sh.mu.Unlock()
}

// dropIfUnused must be called with the shard lock and r.sub held.
func (h *Hub) dropIfUnused(sh *shard, r *room) {
	if r.refs == 0 && !r.subscribed && sh.rooms[r.name] == r {
		delete(sh.rooms, r.name)
		h.nrooms.Add(-1)
		h.m.roomAdd(-1)
	}
}

// eachClient calls fn for every current member. fn runs under a shard read
// lock, so it must not block or join/leave rooms.
func (h *Hub) eachClient(fn func(c *Client)) {
	for _, sh := range h.shards {
		sh.mu.RLock()
		for _, r := range sh.rooms {
			for c := range r.members {
				fn(c)
			}
		}
		sh.mu.RUnlock()
	}
}
