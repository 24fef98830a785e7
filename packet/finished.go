package packet

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// The finished-packet cache answers grabs of a packet that this instance
// knows is empty without asking Redis. In a race nearly every grab comes
// after the last share is gone, and each would otherwise cost Redis a
// script call to say sold_out.
//
// Invariant: while an entry lasts, its answer to a grab is the one
// grabmany.lua would give that grab alone. It holds because
//   - a packet never refills: once its status is 'empty', no script changes
//     its claims, its to set, expires_at or password_sha, so one read,
//     taken when Redis says 'empty', stays true;
//   - the answer is computed as the script computes it, in its order: a
//     past winner gets already_grabbed with their claim, a user an
//     exclusive packet is not for not_for_you, a wrong phrase
//     wrong_password, anyone else sold_out (a fresh call's token is never in
//     a claim, so the script's replay answer cannot arise);
//   - the two answers that change with time are never given: an entry ends
//     finishedMargin (for clock skew between this instance and Redis)
//     before expires_at, when Redis starts saying expired, and before the
//     packet's keys can expire after settlement (RetainSettled, or the TTL
//     they already carry), when Redis would say not_found. Redis answers
//     again from then on.
//
// A local answer is always a refusal: it makes no claim and pays nothing
// (settleBatch pays only what Redis answered), so it cannot create or move
// money. The one way a packet "refills" is a Redis that lost data: the
// sweeper rebuilds an open packet from the ledger with the claims committed
// there, and the shares of uncommitted claims lost with Redis are grabbable
// again. An entry loaded before the loss keeps answering as before, until it
// ends at the latest: someone may be told sold_out while the rebuilt packet
// holds shares (they go back to the sender at expiry, like any share left),
// and a winner whose claim Redis lost is told already_grabbed instead of
// being let grab again (that claim was lost either way). Nothing is lost or
// paid twice. Only a packet the ledger still has open is rebuilt, so the
// window is the time from emptying to the sweeper's finish.
type finishedCache struct {
	maxClaims int
	mu        sync.RWMutex
	packets   map[string]*finishedPacket
	order     []string // ids, oldest first, for eviction
	claims    int      // claims held over all packets
	loading   map[string]bool
}

// finishedPacket is what the grab script consults of an empty packet.
type finishedPacket struct {
	room string
	// until is when the entry ends, Unix ms of this instance's clock.
	until int64
	// password is password_sha; hasPassword reports that the field is set.
	password    string
	hasPassword bool
	// to is the exclusive packet's to set; nil for anyone.
	to       map[string]bool
	claims   map[string]cachedClaim
	luckiest *Claim
}

type cachedClaim struct {
	seq        int
	amount, at int64
}

// finishedMargin is how long before a time Redis judges (expiry, key
// expiry) an entry ends, for the clocks of this instance and Redis to
// differ by.
const finishedMargin = 5 * time.Second

// maxFinishedPackets bounds the entries, whatever their claims.
const maxFinishedPackets = 4096

func newFinishedCache(maxClaims int) *finishedCache {
	return &finishedCache{maxClaims: maxClaims, packets: map[string]*finishedPacket{}, loading: map[string]bool{}}
}

// answer returns the outcome grabmany.lua would give r on packet id, and
// false when the cache does not hold the packet (or its entry ended at
// now, Unix ms).
func (c *finishedCache) answer(id string, r grabRequest, now int64) (grabOutcome, bool) {
	c.mu.RLock()
	p := c.packets[id]
	c.mu.RUnlock()
	if p == nil || now >= p.until {
		return grabOutcome{}, false
	}
	if cl, ok := p.claims[r.user.ID]; ok {
		return grabOutcome{res: GrabResult{PacketID: id, Room: p.room, Amount: cl.amount, Seq: cl.seq, At: cl.at},
			err: ErrAlreadyGrabbed}, true
	}
	switch {
	case p.to != nil && !p.to[r.user.ID]:
		return grabOutcome{err: ErrNotForYou}, true
	case p.hasPassword && r.password != p.password:
		return grabOutcome{err: ErrWrongPassword}, true
	}
	return grabOutcome{err: ErrSoldOut}, true
}

// put adds p under id, evicting the oldest entries (and any that ended)
// to stay within bounds.
func (c *finishedCache) put(id string, p *finishedPacket, now int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.packets[id]; ok || len(p.claims) > c.maxClaims {
		return
	}
	keep := c.order[:0]
	for _, old := range c.order {
		if e := c.packets[old]; e.until <= now {
			c.drop(old, e)
		} else {
			keep = append(keep, old)
		}
	}
	c.order = keep
	for len(c.order) > 0 && (c.claims+len(p.claims) > c.maxClaims || len(c.order) >= maxFinishedPackets) {
		c.drop(c.order[0], c.packets[c.order[0]])
		c.order = c.order[1:]
	}
	c.packets[id] = p
	c.order = append(c.order, id)
	c.claims += len(p.claims)
}

func (c *finishedCache) drop(id string, p *finishedPacket) {
	delete(c.packets, id)
	c.claims -= len(p.claims)
}

// luckiestOf returns the cached luckiest claim of id, and whether the
// cache holds id.
func (c *finishedCache) luckiestOf(id string) (*Claim, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if p := c.packets[id]; p != nil {
		return p.luckiest, true
	}
	return nil, false
}

// startLoad reports whether the caller should load id: no one else is.
func (c *finishedCache) startLoad(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loading[id] {
		return false
	}
	c.loading[id] = true
	return true
}

func (c *finishedCache) endLoad(id string) {
	c.mu.Lock()
	delete(c.loading, id)
	c.mu.Unlock()
}

// learn is told that packet id has no share left: this batch took the last
// one (emptied), or Redis answered a batch of a packet already empty. It
// reads the packet once and caches it, and returns its luckiest claim (nil
// when the read failed or found no claim). Only one caller at a time reads
// a packet, except that the batch that emptied it always does, for its
// luckiest.
func (s *Store) learn(ctx context.Context, id string, emptied bool) *Claim {
	if l, ok := s.done.luckiestOf(id); ok {
		return l
	}
	if !s.done.startLoad(id) {
		if !emptied {
			return nil
		}
	} else {
		defer s.done.endLoad(id)
	}
	p, err := s.loadFinished(ctx, id)
	if err != nil {
		s.cfg.Logger.Warn("reading an empty packet failed; grabs of it keep going to Redis", "packet", id, "err", err)
		return nil
	}
	if p == nil {
		return nil
	}
	if s.cfg.FinishedClaims > 0 {
		// Even an entry that ended already: it answers nothing, but spares
		// the next sold_out batch another read.
		s.done.put(id, p, s.cfg.Now().UnixMilli())
	}
	return p.luckiest
}

// loadFinished reads what the grab script consults of packet id, in one
// round trip; nil when Redis does not hold it empty.
func (s *Store) loadFinished(ctx context.Context, id string) (*finishedPacket, error) {
	pipe := s.rdb.Pipeline()
	meta := pipe.HMGet(ctx, s.k.meta(id), "status", "expires_at", "password_sha", "to_n", "room")
	claims := pipe.HGetAll(ctx, s.k.claims(id))
	to := pipe.SMembers(ctx, s.k.to(id))
	ttl := pipe.PTTL(ctx, s.k.meta(id))
	if _, err := pipe.Exec(ctx); err != nil && !isNil(err) {
		return nil, err
	}
	m := meta.Val()
	if len(m) != 5 || m[0] != string(StatusEmpty) {
		return nil, nil
	}
	expires, err := strconv.ParseInt(asString(m[1]), 10, 64)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	until := expires
	if d := ttl.Val(); d > 0 {
		until = min(until, now.Add(d).UnixMilli())
	}
	if s.led != nil {
		// The sweeper may yet settle it and let its keys expire.
		until = min(until, now.Add(s.cfg.RetainSettled).UnixMilli())
	}
	p := &finishedPacket{room: asString(m[4]), until: until - finishedMargin.Milliseconds(),
		claims: make(map[string]cachedClaim, len(claims.Val()))}
	p.password, p.hasPassword = m[2].(string)
	if m[3] != nil {
		p.to = make(map[string]bool, len(to.Val()))
		for _, u := range to.Val() {
			p.to[u] = true
		}
	}
	for user, v := range claims.Val() {
		if user == "" {
			continue // not a claim (create.lua)
		}
		c, err := parseClaim(user, v)
		if err != nil {
			return nil, err
		}
		p.claims[user] = cachedClaim{seq: c.Seq, amount: c.Amount, at: c.At}
		if l := p.luckiest; l == nil || c.Amount > l.Amount || c.Amount == l.Amount && c.Seq < l.Seq {
			p.luckiest = &c
		}
	}
	return p, nil
}
