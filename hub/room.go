package hub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// shard is one slice of the room table. Its lock guards the map and every
// room's membership fields; it is held only for map and set operations, never
// across I/O, so a slow Redis never stalls rooms that are already joined.
type shard struct {
	mu    sync.RWMutex
	rooms map[string]*room
	// dirty names the rooms whose membership changed since the presence
	// loop last looked; only those are synced.
	dirty map[string]struct{}
}

// markDirty must be called with the shard lock held.
func (sh *shard) markDirty(name string) {
	if sh.dirty == nil {
		sh.dirty = make(map[string]struct{})
	}
	sh.dirty[name] = struct{}{}
}

// room is the local state of one room.
//
// Lock order: room.sub before room.dmu before shard.mu before userShard.mu
// before Client.mu. A
// Throttle's own locks come after room.dmu and before shard.mu (its send
// takes the shard lock to copy the members).
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
	// while the broker still believes the room is wanted. refs == 0 also
	// means nobody holds sub or waits for it: every holder holds a ref.
	refs     int
	members  map[*Client]struct{}
	lastJoin uint64 // highest Client.seq that joined; presence uses it to spot newcomers

	// attempt is the broker Subscribe in flight, which every joiner arriving
	// meanwhile waits for instead of making its own. After it fails, joiners
	// are refused at once until retryAt, and the room stays in the map
	// (unless joined again) until forgetAt so the next failure backs off
	// further. Guarded by the shard lock.
	attempt  *subAttempt
	failures int // consecutive failed attempts
	retryAt  time.Time
	forgetAt time.Time

	throttle Throttle // nil without Config.NewThrottle

	// Delivery state (see recovery.go), guarded by dmu, which is held while
	// one of the room's broker messages is fanned out.
	dmu       sync.Mutex
	pos       Position // last durable frame seen; zero until the first frame or joiner's read
	repairing bool     // a repair runs: frames wait in held
	again     bool     // the subscription broke again during the repair
	overflow  bool     // frames were dropped from held: the repair ends in resync
	held      [][]byte // frames received during the repair, in order
}

// subAttempt is one broker Subscribe for a room and its outcome.
type subAttempt struct {
	done chan struct{}
	err  error // written before done is closed
}

// Subscribe retries of one room back off from subscribeBackoffMin, doubling
// per consecutive failure up to subscribeBackoffMax, so that joiners during a
// Redis outage cost one attempt per room per window rather than one timeout
// each.
const (
	subscribeBackoffMin = 500 * time.Millisecond
	subscribeBackoffMax = 10 * time.Second
)

// errRoomBackoff refuses a joiner while its room's last subscribe failure
// is recent.
var errRoomBackoff = errors.New("hub: room unavailable: subscribing failed recently")

func (h *Hub) shardFor(name string) *shard {
	return h.shards[h.shardIndex(name)]
}

// join adds c to its room, subscribing the broker first if c is the room's
// first local member. Joiners that find a subscribe in flight share it; after
// it fails they are refused until the room's backoff ends. On error c is not
// a member.
func (h *Hub) join(ctx context.Context, c *Client) error {
	sh := h.shardFor(c.room)
	sh.mu.Lock()
	r := sh.rooms[c.room]
	if r == nil {
		r = &room{name: c.room, members: make(map[*Client]struct{})}
		if h.cfg.NewThrottle != nil {
			r.throttle = h.cfg.NewThrottle(c.room, func(frame []byte) { h.broadcastLocal(r.name, frame) })
		}
		sh.rooms[c.room] = r
		h.nrooms.Add(1)
		h.m.roomAdd(1)
	}
	if r.subscribed {
		r.refs++
		h.addMember(sh, r, c)
		sh.mu.Unlock()
		return nil
	}
	if time.Now().Before(r.retryAt) {
		sh.mu.Unlock()
		return errRoomBackoff
	}
	r.refs++
	a := r.attempt
	lead := a == nil
	if lead {
		a = &subAttempt{done: make(chan struct{})}
		r.attempt = a
	}
	sh.mu.Unlock()

	if lead {
		h.subscribeRoom(ctx, sh, r, a)
	} else {
		select {
		case <-a.done:
		case <-ctx.Done():
			sh.mu.Lock()
			r.refs--
			h.dropIfUnused(sh, r)
			sh.mu.Unlock()
			return ctx.Err()
		}
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if a.err != nil {
		r.refs--
		h.dropIfUnused(sh, r)
		return a.err
	}
	// Subscribed stays true: we hold a ref, so no leaver unsubscribes.
	h.addMember(sh, r, c)
	return nil
}

// subscribeRoom runs attempt a for r and publishes its outcome. The broker
// call is detached from ctx: joiners sharing the attempt must not fail
// because its leader went away; the broker's own timeout bounds it.
func (h *Hub) subscribeRoom(ctx context.Context, sh *shard, r *room, a *subAttempt) {
	r.sub.Lock()
	defer r.sub.Unlock()
	err := h.broker.Subscribe(context.WithoutCancel(ctx), r.name)
	if err == nil {
		// Frames published while unsubscribed were never meant for this
		// instance: count gaps from the joiner's read, not from before.
		r.dmu.Lock()
		r.pos = Position{}
		r.dmu.Unlock()
	}
	sh.mu.Lock()
	r.attempt = nil
	if err == nil {
		r.subscribed = true
		r.failures = 0
		r.retryAt, r.forgetAt = time.Time{}, time.Time{}
	} else {
		r.failures++
		d := subscribeBackoffMin << min(r.failures-1, 5)
		d = min(d, subscribeBackoffMax)
		now := time.Now()
		r.retryAt, r.forgetAt = now.Add(d), now.Add(2*d)
		// Forget the failures once the room has been left alone for a
		// while, so a room nobody retries does not stay in the map.
		time.AfterFunc(2*d, func() {
			sh.mu.Lock()
			h.dropIfUnused(sh, r)
			sh.mu.Unlock()
		})
		err = fmt.Errorf("hub: subscribe room %q: %w", r.name, err)
	}
	a.err = err
	sh.mu.Unlock()
	close(a.done)
}

// addMember must be called with the shard lock held.
func (h *Hub) addMember(sh *shard, r *room, c *Client) {
	r.members[c] = struct{}{}
	sh.markDirty(r.name)
	if c.seq > r.lastJoin {
		r.lastJoin = c.seq
	}
	c.r = r
	h.addUserConn(c)
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
	h.removeUserConn(c)
	sh.markDirty(r.name)
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

// dropIfUnused removes r from the map if nobody uses or wants it. It must be
// called with the shard lock held; refs == 0 means nobody holds r.sub.
func (h *Hub) dropIfUnused(sh *shard, r *room) {
	if r.refs == 0 && !r.subscribed && r.attempt == nil && !time.Now().Before(r.forgetAt) && sh.rooms[r.name] == r {
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
