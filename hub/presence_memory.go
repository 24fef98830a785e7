package hub

import (
	"context"
	"sync"
	"time"
)

// MemoryPresence is a Presence held in process memory. Several hubs in one
// process may share one, which is how tests simulate instances without Redis.
// It keeps the contract of RedisPresence: each Sync returns only the views
// that may have changed.
type MemoryPresence struct {
	mu      sync.Mutex
	rooms   map[string]map[string]presenceEntry // room -> instance -> entry
	seen    map[string]time.Time                // instance -> last Sync
	notices []memoryNotice                      // changes, oldest first
	base    int                                 // index of notices[0] since the start
	cursor  map[string]int                      // instance -> next notice to read
	live    map[string]map[string]struct{}      // instance -> live set at its last Sync
}

type memoryNotice struct {
	instance string
	rooms    []string
}

// NewMemoryPresence returns an empty MemoryPresence.
func NewMemoryPresence() *MemoryPresence {
	return &MemoryPresence{
		rooms:  make(map[string]map[string]presenceEntry),
		seen:   make(map[string]time.Time),
		cursor: make(map[string]int),
		live:   make(map[string]map[string]struct{}),
	}
}

// Sync implements Presence.
func (p *MemoryPresence) Sync(ctx context.Context, s PresenceSync) (map[string]PresenceSnapshot, error) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.cursor[s.Instance]; !ok {
		p.cursor[s.Instance] = p.base + len(p.notices)
	}
	p.seen[s.Instance] = now
	touched := make(map[string]struct{})
	var rooms []string
	for room, snap := range s.Changed {
		rooms = append(rooms, room)
		p.set(room, s.Instance, snap)
		touched[room] = struct{}{}
	}
	if len(rooms) > 0 {
		p.notices = append(p.notices, memoryNotice{instance: s.Instance, rooms: rooms})
	}
	for _, n := range p.notices[p.cursor[s.Instance]-p.base:] {
		if n.instance != s.Instance {
			for _, room := range n.rooms {
				touched[room] = struct{}{}
			}
		}
	}
	p.cursor[s.Instance] = p.base + len(p.notices)
	p.trim()

	live := make(map[string]struct{})
	for inst, t := range p.seen {
		if now.Sub(t) <= s.MaxAge {
			live[inst] = struct{}{}
		}
	}
	for inst := range p.live[s.Instance] {
		if _, ok := live[inst]; ok {
			continue
		}
		for room, entries := range p.rooms {
			if _, ok := entries[inst]; ok {
				touched[room] = struct{}{}
			}
		}
	}
	p.live[s.Instance] = live

	out := make(map[string]PresenceSnapshot, len(touched))
	for room := range touched {
		if s.Local(room) {
			out[room] = mergePresence(p.rooms[room], live)
		}
	}
	return out, nil
}

// Withdraw implements Presence.
func (p *MemoryPresence) Withdraw(ctx context.Context, instanceID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var rooms []string
	for room, entries := range p.rooms {
		if _, ok := entries[instanceID]; ok {
			rooms = append(rooms, room)
			p.set(room, instanceID, PresenceSnapshot{})
		}
	}
	if len(rooms) > 0 {
		p.notices = append(p.notices, memoryNotice{instance: instanceID, rooms: rooms})
	}
	delete(p.seen, instanceID)
	delete(p.cursor, instanceID)
	delete(p.live, instanceID)
	p.trim()
	return nil
}

func (p *MemoryPresence) set(room, instance string, snap PresenceSnapshot) {
	entries := p.rooms[room]
	if snap.Online <= 0 {
		delete(entries, instance)
		if len(entries) == 0 {
			delete(p.rooms, room)
		}
		return
	}
	if entries == nil {
		entries = make(map[string]presenceEntry)
		p.rooms[room] = entries
	}
	entries[instance] = presenceEntry{N: snap.Online, Users: snap.Users}
}

// trim drops the notices every instance has read.
func (p *MemoryPresence) trim() {
	low := p.base + len(p.notices)
	for _, c := range p.cursor {
		low = min(low, c)
	}
	p.notices = p.notices[low-p.base:]
	p.base = low
}
