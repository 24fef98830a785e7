package packet

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// The user directory: each user's latest display name, so that an
// exclusive packet can show whom it is for. Names come from tokens, which
// the server sees when a guest session starts and when a WebSocket
// connects; a user it has never seen shows as their id.

// nameTTL is how long a name is remembered after it was last seen.
const nameTTL = 30 * 24 * time.Hour

// RememberName records u.Name as u's display name.
func (s *Store) RememberName(ctx context.Context, u User) error {
	if u.ID == "" || u.Name == "" {
		return nil
	}
	if err := s.rdb.Set(ctx, s.k.name(u.ID), u.Name, nameTTL).Err(); err != nil {
		return unavailable("remember name", err)
	}
	return nil
}

// Names returns the display names of ids that the directory knows, in one
// round trip (on a cluster, one per node).
func (s *Store) Names(ctx context.Context, ids []string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	cmds := make([]*redis.StringCmd, len(ids))
	pipe := s.rdb.Pipeline()
	for i, id := range ids {
		cmds[i] = pipe.Get(ctx, s.k.name(id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !isNil(err) {
		return nil, unavailable("names", err)
	}
	for i, id := range ids {
		if n := cmds[i].Val(); n != "" {
			out[id] = n
		}
	}
	return out, nil
}
