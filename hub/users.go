package hub

import (
	"bytes"
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
)

// User-directed frames: a frame for every connection of one user, in any
// room, on any instance (a sender told that their packet was refunded).
//
// They travel on one broker channel that every hub subscribes to for as
// long as it runs, carrying the user's id beside the frame; each hub hands
// the frame to its own connections of that user and drops it when it has
// none. Such frames are rare, so one shared channel costs each instance one
// subscription and an occasional frame it drops, where a channel per user
// would cost a subscribe and an unsubscribe on every connect and disconnect.
// A user-directed frame is ephemeral: not numbered, kept or replayed, and
// lost to an instance whose subscription is down when it is published.

// userShard is one slice of the user → connections index. Its lock is taken
// under a room shard's lock (join and leave), never the other way round,
// and is held only for map operations.
type userShard struct {
	mu sync.RWMutex
	// conns maps a user id to its local connections: a slice, since a user
	// has a few at most, and a set per user would cost an idle connection
	// more than the rest of its entry.
	conns map[string][]*Client
}

// userShards spreads the index so that joins and leaves of many users do
// not contend on one lock.
const userShards = 32

func newUserShards() []*userShard {
	s := make([]*userShard, userShards)
	for i := range s {
		s[i] = &userShard{conns: make(map[string][]*Client)}
	}
	return s
}

func (h *Hub) userShardFor(id string) *userShard {
	return h.users[maphash.String(h.seed, id)%userShards]
}

// addUserConn indexes c under its user. Called as c joins its room.
func (h *Hub) addUserConn(c *Client) {
	us := h.userShardFor(c.user.ID)
	us.mu.Lock()
	us.conns[c.user.ID] = append(us.conns[c.user.ID], c)
	us.mu.Unlock()
}

// removeUserConn drops c from the index. Called as c leaves its room.
func (h *Hub) removeUserConn(c *Client) {
	us := h.userShardFor(c.user.ID)
	us.mu.Lock()
	conns := us.conns[c.user.ID]
	if i := slices.Index(conns, c); i >= 0 {
		conns[i] = conns[len(conns)-1]
		conns[len(conns)-1] = nil
		if conns = conns[:len(conns)-1]; len(conns) == 0 {
			delete(us.conns, c.user.ID)
		} else {
			us.conns[c.user.ID] = conns
		}
	}
	us.mu.Unlock()
}

// PublishUser sends frame (one JSON document without a raw newline) to
// every connection of user userID, whatever its room, on every instance,
// via the broker's user channel. Local connections get it when the broker
// hands it back, like a room's frames. It is ephemeral; see users.go.
func (h *Hub) PublishUser(ctx context.Context, userID string, frame []byte) error {
	if userID == "" || strings.ContainsRune(userID, '\n') {
		return fmt.Errorf("hub: publish to user %q: a user id is non-empty and holds no newline", userID)
	}
	if bytes.IndexByte(frame, '\n') >= 0 {
		return fmt.Errorf("hub: publish to user %q: a frame must not contain a newline", userID)
	}
	if err := h.broker.PublishUser(ctx, userID, frame); err != nil {
		return fmt.Errorf("hub: publish to user %q: %w", userID, err)
	}
	h.m.published()
	return nil
}

// deliverUser is the broker's callback for a user-directed frame: offered
// to each local connection of the user, as an ephemeral frame (held back
// while a connection is still joining, like a room's live frames).
func (h *Hub) deliverUser(userID string, frame []byte) {
	h.m.received()
	us := h.userShardFor(userID)
	us.mu.RLock()
	conns := slices.Clone(us.conns[userID])
	us.mu.RUnlock()
	if len(conns) == 0 {
		return
	}
	w := newWire(frame)
	for _, c := range conns {
		c.offer(w, Position{})
	}
}
