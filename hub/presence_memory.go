package hub

import (
	"context"
	"sync"
	"time"
)

// MemoryPresence is a Presence held in process memory. Several hubs in one
// process may share one, which is how tests simulate instances without Redis.
type MemoryPresence struct {
	mu    sync.Mutex
	rooms map[string]map[string]presenceEntry // room -> instance -> entry
}

// NewMemoryPresence returns an empty MemoryPresence.
func NewMemoryPresence() *MemoryPresence {
	return &MemoryPresence{rooms: make(map[string]map[string]presenceEntry)}
}

// Sync implements Presence.
func (p *MemoryPresence) Sync(ctx context.Context, instanceID string, local map[string]PresenceSnapshot, maxAge time.Duration) (map[string]PresenceSnapshot, error) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]PresenceSnapshot, len(local))
	for room, snap := range local {
		entries := p.rooms[room]
		if snap.Online <= 0 {
			delete(entries, instanceID)
			if len(entries) == 0 {
				delete(p.rooms, room)
			}
			continue
		}
		if entries == nil {
			entries = make(map[string]presenceEntry)
			p.rooms[room] = entries
		}
		entries[instanceID] = presenceEntry{N: snap.Online, Users: snap.Users, TS: now.UnixMilli()}
		out[room] = mergePresence(entries, now, maxAge)
	}
	return out, nil
}
