package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisPresenceConfig tunes a RedisPresence. Zero fields take the
// documented defaults.
type RedisPresenceConfig struct {
	// Prefix namespaces keys; use the broker's prefix. Default: "hb".
	Prefix string
	// TTL is how long a room's presence hash outlives its last update, so
	// rooms abandoned by crashed instances do not linger. Default: 30s.
	TTL time.Duration
}

// RedisPresence is a Presence stored in one Redis hash per room,
// "<prefix>:{r:<room>}:online", with a field per instance holding
// {"n":count,"users":[...],"ts":unixms}.
//
// Freshness is judged against the reading instance's clock, so instance
// clocks must agree to well within 3×PresenceInterval.
type RedisPresence struct {
	rdb redis.UniversalClient
	cfg RedisPresenceConfig
}

// NewRedisPresence returns a Presence on rdb. It never closes rdb.
func NewRedisPresence(rdb redis.UniversalClient, cfg RedisPresenceConfig) *RedisPresence {
	if cfg.Prefix == "" {
		cfg.Prefix = "hb"
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 30 * time.Second
	}
	return &RedisPresence{rdb: rdb, cfg: cfg}
}

// Key returns the hash that holds room's presence.
func (p *RedisPresence) Key(room string) string {
	return p.cfg.Prefix + ":{r:" + room + redisOnlineSuffix
}

// Sync implements Presence with one pipeline for all rooms: write our field,
// refresh the TTL, read the hash back.
func (p *RedisPresence) Sync(ctx context.Context, instanceID string, local map[string]PresenceSnapshot, maxAge time.Duration) (map[string]PresenceSnapshot, error) {
	now := time.Now()
	pipe := p.rdb.Pipeline()
	reads := make(map[string]*redis.MapStringStringCmd, len(local))
	for room, snap := range local {
		key := p.Key(room)
		if snap.Online <= 0 {
			pipe.HDel(ctx, key, instanceID)
			continue
		}
		v, err := json.Marshal(presenceEntry{N: snap.Online, Users: snap.Users, TS: now.UnixMilli()})
		if err != nil {
			return nil, fmt.Errorf("redis presence: encode %s: %w", key, err)
		}
		pipe.HSet(ctx, key, instanceID, v)
		pipe.PExpire(ctx, key, p.cfg.TTL)
		reads[room] = pipe.HGetAll(ctx, key)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("redis presence: sync %d rooms: %w", len(local), err)
	}
	out := make(map[string]PresenceSnapshot, len(reads))
	for room, cmd := range reads {
		entries := make(map[string]presenceEntry, len(cmd.Val()))
		for inst, raw := range cmd.Val() {
			var e presenceEntry
			if json.Unmarshal([]byte(raw), &e) != nil {
				continue // another writer's garbage must not break the room
			}
			entries[inst] = e
		}
		out[room] = mergePresence(entries, now, maxAge)
	}
	return out, nil
}
