package hub

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Presence shares each instance's member counts so every instance can show
// a room's total online count. Implementations: RedisPresence (across
// instances) and MemoryPresence (one process).
//
// The hub tells it only what changed locally, and gets back only the views
// that may have changed, so an interval in which no room changes costs the
// same whatever the number of rooms.
type Presence interface {
	// Sync records this instance's changed rooms and returns the merged
	// view, over every instance seen within MaxAge, of each local room
	// whose view may have changed since the last Sync: rooms in Changed,
	// rooms another instance changed, rooms that an instance which stopped
	// being live was counted in. After an error the hub passes the same
	// changes again. Sync is not called concurrently.
	Sync(ctx context.Context, s PresenceSync) (map[string]PresenceSnapshot, error)
	// Withdraw removes instanceID from shared presence at once, rather
	// than after MaxAge, when the hub shuts down.
	Withdraw(ctx context.Context, instanceID string) error
}

// PresenceSync is one Sync's input.
type PresenceSync struct {
	// Instance identifies this hub.
	Instance string
	// Changed holds this instance's rooms whose local membership changed
	// since the last successful Sync; Online == 0 withdraws the instance
	// from that room.
	Changed map[string]PresenceSnapshot
	// Local reports whether room has local members now.
	Local func(room string) bool
	// All returns every local room's snapshot, for the rare full resync.
	All func() map[string]PresenceSnapshot
	// MaxAge is how long an instance that stopped syncing is still
	// counted.
	MaxAge time.Duration
}

// PresenceSnapshot is a room's online count and a sample of its users.
type PresenceSnapshot struct {
	Online int
	Users  []User
}

const (
	// presenceLocalUsers is the per-instance sample: enough to show faces,
	// small enough that the hash stays tiny.
	presenceLocalUsers = 20
	// presenceUsers caps the merged list sent to clients.
	presenceUsers = 50
	// presenceStaleIntervals: an instance that missed this many intervals
	// is presumed dead and no longer counted.
	presenceStaleIntervals = 3
)

// presenceEntry is what one instance stores for one room.
type presenceEntry struct {
	N     int    `json:"n"`
	Users []User `json:"users"`
}

// mergePresence sums the entries of live instances and merges their user
// samples, distinct by ID, in instance order so the list is stable from
// tick to tick.
func mergePresence(entries map[string]presenceEntry, live map[string]struct{}) PresenceSnapshot {
	ids := make([]string, 0, len(entries))
	for id := range entries {
		if _, ok := live[id]; ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var out PresenceSnapshot
	seen := make(map[string]struct{})
	for _, id := range ids {
		e := entries[id]
		if e.N <= 0 {
			continue
		}
		out.Online += e.N
		for _, u := range e.Users {
			if len(out.Users) == presenceUsers {
				break
			}
			if _, dup := seen[u.ID]; dup {
				continue
			}
			seen[u.ID] = struct{}{}
			out.Users = append(out.Users, u)
		}
	}
	return out
}

// roomPresence is what the presence loop learned about one local room.
type roomPresence struct {
	snap     PresenceSnapshot
	lastJoin uint64
}

// presenceSent remembers what a room's members were last told.
type presenceSent struct {
	online   int
	users    string // canonical form of the user list, for change detection
	lastJoin uint64
	tick     uint64 // the presence tick that sent it
}

// presenceView is a merged view waiting to be told to a room's members.
type presenceView struct {
	snap     PresenceSnapshot
	lastJoin uint64
}

// presenceLoopState is the presence loop's memory of what each room was told.
type presenceLoopState struct {
	tick uint64
	sent map[string]*presenceSent
	// held keeps the newest view of a big room until its spacing allows
	// another frame (see presenceSpacing).
	held map[string]presenceView
}

// presenceMembersPerTick spaces a big room's presence frames: a room gets
// one at most every ceil(local members / presenceMembersPerTick) intervals,
// so presence costs an instance about that many deliveries per room per
// interval however big the room. In a live stream with constant joins and
// leaves, one frame per second to every viewer would otherwise cost as
// much as a broadcast a second.
const presenceMembersPerTick = 1000

// presenceLoop runs until ctx is done. Its state is confined to this
// goroutine, so it needs no locks of its own.
func (h *Hub) presenceLoop(ctx context.Context) {
	st := &presenceLoopState{sent: make(map[string]*presenceSent), held: make(map[string]presenceView)}
	t := time.NewTicker(h.cfg.PresenceInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			h.withdrawPresence(ctx)
			return
		case <-t.C:
			st.tick++
			h.presenceTick(ctx, st)
		}
	}
}

// presenceTick syncs the rooms whose membership changed since the last
// tick (joins and leaves mark them dirty) and tells local members of every
// view that changed.
func (h *Hub) presenceTick(ctx context.Context, st *presenceLoopState) {
	dirty := h.takeDirty()
	changed := make(map[string]PresenceSnapshot, len(dirty))
	joins := make(map[string]uint64, len(dirty))
	for name := range dirty {
		rp := h.roomPresence(name)
		changed[name] = rp.snap
		joins[name] = rp.lastJoin
	}
	merged := make(map[string]PresenceSnapshot, len(changed))
	if h.presence == nil {
		for name, snap := range changed {
			if snap.Online > 0 {
				merged[name] = snap
			}
		}
	} else {
		sctx, cancel := context.WithTimeout(ctx, h.cfg.PresenceInterval)
		var err error
		merged, err = h.presence.Sync(sctx, PresenceSync{
			Instance: h.cfg.InstanceID,
			Changed:  changed,
			Local:    h.hasMembers,
			All:      h.localSnapshots,
			MaxAge:   presenceStaleIntervals * h.cfg.PresenceInterval,
		})
		cancel()
		if err != nil {
			// Skip the tick rather than fall back to local counts, which
			// would make totals flap while Redis is unavailable; the
			// changes are synced next time.
			h.restoreDirty(dirty)
			h.log.Warn("hub: presence sync failed", "err", err)
			return
		}
	}
	for name, snap := range changed {
		if snap.Online <= 0 {
			delete(st.sent, name)
			delete(st.held, name)
		}
	}
	for name, m := range merged {
		st.held[name] = presenceView{snap: m, lastJoin: max(joins[name], st.held[name].lastJoin)}
	}
	for name, v := range st.held {
		if h.tellPresence(st, name, v) {
			delete(st.held, name)
		}
	}
}

// tellPresence sends view v to room name's local members unless they have
// it already, and reports whether v is done with; false means the room's
// spacing holds it back for a later tick.
func (h *Hub) tellPresence(st *presenceLoopState, name string, v presenceView) bool {
	key := usersKey(v.snap.Users)
	s := st.sent[name]
	if s != nil && s.online == v.snap.Online && s.users == key && s.lastJoin >= v.lastJoin {
		return true
	}
	if s != nil && st.tick < s.tick+h.presenceSpacing(name) {
		return false
	}
	if s == nil {
		s = &presenceSent{}
		st.sent[name] = s
	}
	// A newcomer gets the current view even when the totals did not move
	// (someone else left in the same interval).
	s.online, s.users, s.tick = v.snap.Online, key, st.tick
	s.lastJoin = max(s.lastJoin, v.lastJoin)
	h.broadcastLocal(name, presenceFrame(v.snap))
	return true
}

// presenceSpacing is how many presence intervals apart room name's frames
// go out: one more for every presenceMembersPerTick local members.
func (h *Hub) presenceSpacing(name string) uint64 {
	sh := h.shardFor(name)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	n := 0
	if r := sh.rooms[name]; r != nil {
		n = len(r.members)
	}
	return uint64(1 + n/presenceMembersPerTick)
}

// withdrawPresence removes this instance from shared presence on the way
// out so other instances stop counting its members at once rather than
// after the staleness window.
func (h *Hub) withdrawPresence(ctx context.Context) {
	if h.presence == nil {
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.PresenceInterval)
	defer cancel()
	if err := h.presence.Withdraw(wctx, h.cfg.InstanceID); err != nil {
		h.log.Debug("hub: presence withdraw failed", "err", err)
	}
}

// takeDirty returns and clears the names of rooms whose membership changed.
func (h *Hub) takeDirty() map[string]struct{} {
	out := make(map[string]struct{})
	for _, sh := range h.shards {
		sh.mu.Lock()
		d := sh.dirty
		sh.dirty = nil
		sh.mu.Unlock()
		for name := range d {
			out[name] = struct{}{}
		}
	}
	return out
}

// restoreDirty marks names dirty again after a failed sync.
func (h *Hub) restoreDirty(names map[string]struct{}) {
	for name := range names {
		sh := h.shardFor(name)
		sh.mu.Lock()
		sh.markDirty(name)
		sh.mu.Unlock()
	}
}

func (h *Hub) hasMembers(name string) bool {
	sh := h.shardFor(name)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	r := sh.rooms[name]
	return r != nil && len(r.members) > 0
}

// roomPresence counts one room's local members and samples the
// presenceLocalUsers longest-connected of them: a stable choice, so the
// sample does not churn (and trigger deliveries) every tick.
func (h *Hub) roomPresence(name string) roomPresence {
	sh := h.shardFor(name)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	r := sh.rooms[name]
	if r == nil || len(r.members) == 0 {
		return roomPresence{}
	}
	return sampleRoom(r)
}

// sampleRoom must be called with the room's shard lock held.
func sampleRoom(r *room) roomPresence {
	var sample []*Client
	for c := range r.members {
		sample = keepOldest(sample, c, presenceLocalUsers)
	}
	users := make([]User, len(sample))
	for i, c := range sample {
		users[i] = c.user
	}
	return roomPresence{
		snap:     PresenceSnapshot{Online: len(r.members), Users: users},
		lastJoin: r.lastJoin,
	}
}

// localSnapshots returns every local room's snapshot.
func (h *Hub) localSnapshots() map[string]PresenceSnapshot {
	out := make(map[string]PresenceSnapshot)
	for _, sh := range h.shards {
		sh.mu.RLock()
		for name, r := range sh.rooms {
			if len(r.members) > 0 {
				out[name] = sampleRoom(r).snap
			}
		}
		sh.mu.RUnlock()
	}
	return out
}

// keepOldest inserts c into s (sorted by seq) if it is among the n oldest.
func keepOldest(s []*Client, c *Client, n int) []*Client {
	if len(s) == n && c.seq > s[n-1].seq {
		return s
	}
	i, _ := slices.BinarySearchFunc(s, c, func(a, b *Client) int { return cmp.Compare(a.seq, b.seq) })
	if len(s) < n {
		s = append(s, nil)
	}
	copy(s[i+1:], s[i:len(s)-1])
	s[i] = c
	return s
}

func usersKey(users []User) string {
	var b strings.Builder
	for _, u := range users {
		b.WriteString(u.ID)
		b.WriteByte(0)
		b.WriteString(u.Name)
		b.WriteByte(0)
	}
	return b.String()
}

func presenceFrame(p PresenceSnapshot) []byte {
	users := p.Users
	if users == nil {
		users = []User{} // clients get [] rather than null
	}
	b, _ := json.Marshal(struct {
		Type   string `json:"type"`
		Online int    `json:"online"`
		Users  []User `json:"users"`
	}{"presence", p.Online, users})
	return b
}
