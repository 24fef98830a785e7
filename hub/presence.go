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
type Presence interface {
	// Sync records this instance's snapshot of each room in local and
	// returns, for each room in local with Online > 0, the view merged over
	// every instance whose snapshot is younger than maxAge. A snapshot with
	// Online == 0 withdraws this instance from that room.
	Sync(ctx context.Context, instanceID string, local map[string]PresenceSnapshot, maxAge time.Duration) (map[string]PresenceSnapshot, error)
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
	TS    int64  `json:"ts"` // unix milliseconds
}

// mergePresence sums fresh entries and merges their user samples, distinct
// by ID, in instance order so the list is stable from tick to tick.
func mergePresence(entries map[string]presenceEntry, now time.Time, maxAge time.Duration) PresenceSnapshot {
	ids := make([]string, 0, len(entries))
	for id := range entries {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	oldest := now.Add(-maxAge).UnixMilli()
	var out PresenceSnapshot
	seen := make(map[string]struct{})
	for _, id := range ids {
		e := entries[id]
		if e.TS < oldest || e.N <= 0 {
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
}

// presenceLoop runs until ctx is done. Its state is confined to this
// goroutine, so it needs no locks of its own.
func (h *Hub) presenceLoop(ctx context.Context) {
	sent := make(map[string]*presenceSent)
	t := time.NewTicker(h.cfg.PresenceInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			h.withdrawPresence(ctx, sent)
			return
		case <-t.C:
			h.presenceTick(ctx, sent)
		}
	}
}

func (h *Hub) presenceTick(ctx context.Context, sent map[string]*presenceSent) {
	local := h.localPresence()
	report := make(map[string]PresenceSnapshot, len(local)+len(sent))
	for name, rp := range local {
		report[name] = rp.snap
	}
	for name := range sent {
		if _, ok := local[name]; !ok {
			report[name] = PresenceSnapshot{} // withdraw: room emptied here
			delete(sent, name)
		}
	}
	if len(report) == 0 {
		return
	}

	merged := report
	if h.presence != nil {
		sctx, cancel := context.WithTimeout(ctx, h.cfg.PresenceInterval)
		var err error
		merged, err = h.presence.Sync(sctx, h.cfg.InstanceID, report, presenceStaleIntervals*h.cfg.PresenceInterval)
		cancel()
		if err != nil {
			// Skip the tick rather than fall back to local counts, which
			// would make totals flap while Redis is unavailable.
			h.log.Warn("hub: presence sync failed", "err", err)
			return
		}
	}

	for name, rp := range local {
		m, ok := merged[name]
		if !ok {
			continue
		}
		key := usersKey(m.Users)
		s := sent[name]
		if s != nil && s.online == m.Online && s.users == key && s.lastJoin >= rp.lastJoin {
			continue
		}
		if s == nil {
			s = &presenceSent{}
			sent[name] = s
		}
		// A newcomer gets the current view even when the totals did not move
		// (someone else left in the same interval).
		s.online, s.users, s.lastJoin = m.Online, key, rp.lastJoin
		h.broadcastLocal(name, presenceFrame(m))
	}
}

// withdrawPresence removes this instance from shared presence on the way
// out so other instances stop counting its members at once rather than
// after the staleness window.
func (h *Hub) withdrawPresence(ctx context.Context, sent map[string]*presenceSent) {
	if h.presence == nil || len(sent) == 0 {
		return
	}
	report := make(map[string]PresenceSnapshot, len(sent))
	for name := range sent {
		report[name] = PresenceSnapshot{}
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.PresenceInterval)
	defer cancel()
	if _, err := h.presence.Sync(wctx, h.cfg.InstanceID, report, 0); err != nil {
		h.log.Debug("hub: presence withdraw failed", "err", err)
	}
}

// localPresence counts each room's local members and samples the
// presenceLocalUsers longest-connected of them: a stable choice, so the
// sample does not churn (and trigger deliveries) every tick.
func (h *Hub) localPresence() map[string]roomPresence {
	out := make(map[string]roomPresence)
	var sample []*Client
	for _, sh := range h.shards {
		sh.mu.RLock()
		for name, r := range sh.rooms {
			if len(r.members) == 0 {
				continue
			}
			sample = sample[:0]
			for c := range r.members {
				sample = keepOldest(sample, c, presenceLocalUsers)
			}
			users := make([]User, len(sample))
			for i, c := range sample {
				users[i] = c.user
			}
			out[name] = roomPresence{
				snap:     PresenceSnapshot{Online: len(r.members), Users: users},
				lastJoin: r.lastJoin,
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
