package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisPresenceConfig tunes a RedisPresence. Zero fields take the
// documented defaults.
type RedisPresenceConfig struct {
	// Prefix namespaces keys; use the broker's prefix. Default: "hb".
	Prefix string
	// TTL is how long an instance's presence hash outlives its last Sync,
	// so the entries of a crashed instance leave Redis. Other instances
	// stop counting it much sooner, after the Sync's MaxAge. Default: 30s.
	TTL time.Duration
	// ChangeRetention is how long change notices are kept. An instance
	// that could not sync for half of it reads every local room afresh.
	// Default: 1m.
	ChangeRetention time.Duration
}

// RedisPresence is a Presence in Redis whose cost per interval does not
// grow with the number of idle rooms.
//
// Layout (P is the prefix):
//   - "P:presence:{<instance>}": one hash per instance, field room ->
//     {"n":count,"users":[...]}, its TTL refreshed by every Sync. An
//     instance that dies stops refreshing it and it expires.
//   - "P:{presence}:instances": sorted set of instances by last Sync (unix
//     ms). Only instances seen within MaxAge are counted, so a dead
//     instance's counts vanish from every view within MaxAge plus one
//     interval, without anyone touching its rooms.
//   - "P:{presence}:changes": a stream of change notices, one entry per
//     Sync that changed anything: {"i":instance,"r":[rooms...]}, trimmed to
//     ChangeRetention.
//
// Each Sync writes this instance's changed rooms into its hash, appends one
// notice naming them, and reads the notices of others since its last Sync.
// A room's view is read (one HGET per known instance) only when another
// instance changed it, or when it is new here; views of rooms this instance
// changed are merged from what it already knows; an instance that stops
// being live is subtracted from the views it was part of, from memory (and
// added back the same way should it return). So
// an idle interval costs five commands whatever the number of rooms: ZADD,
// PEXPIRE, XREAD, ZRANGE and a ZREMRANGEBYSCORE that prunes long-dead
// instances.
//
// What grows: a room changed on one instance costs that instance an HSET
// (or HDEL) and a share of one XADD, and each other instance with members
// there one HGET per known instance. Every instance reads every notice, so
// the notice stream's traffic grows with changes times instances.
//
// Liveness compares the writer's clock (its ZADD score) with the reader's,
// so instance clocks must agree to well within MaxAge.
//
// Sync keeps state between calls, per instance ID, so hubs in one process
// may share a RedisPresence.
type RedisPresence struct {
	rdb redis.UniversalClient
	cfg RedisPresenceConfig

	mu     sync.Mutex
	states map[string]*presenceState // by instance ID
}

// presenceState is what one instance's Syncs remember.
type presenceState struct {
	*RedisPresence
	started   bool
	republish bool   // our hash was lost: write every local room again
	lastID    string // stream cursor
	lastOK    time.Time
	ownRooms  int                 // rooms with this instance's entry in views
	known     map[string]struct{} // instances in the instance set
	live      map[string]struct{} // those of them seen within MaxAge
	// views holds, for each local room, every known instance's entry as
	// last read or written; merged views count the live ones.
	views map[string]map[string]presenceEntry
}

const (
	presenceNoticeRooms = 1000 // rooms per change notice
	presenceReadCount   = 1000 // notices per XREAD
)

// NewRedisPresence returns a Presence on rdb. It never closes rdb.
func NewRedisPresence(rdb redis.UniversalClient, cfg RedisPresenceConfig) *RedisPresence {
	if cfg.Prefix == "" {
		cfg.Prefix = "hb"
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 30 * time.Second
	}
	if cfg.ChangeRetention <= 0 {
		cfg.ChangeRetention = time.Minute
	}
	return &RedisPresence{rdb: rdb, cfg: cfg, states: make(map[string]*presenceState)}
}

// InstanceKey returns the hash that holds instance's rooms.
func (p *RedisPresence) InstanceKey(instance string) string {
	return p.cfg.Prefix + ":presence:{" + instance + "}"
}

func (p *RedisPresence) instancesKey() string { return p.cfg.Prefix + ":{presence}:instances" }
func (p *RedisPresence) changesKey() string   { return p.cfg.Prefix + ":{presence}:changes" }

// Sync implements Presence.
func (p *RedisPresence) Sync(ctx context.Context, s PresenceSync) (map[string]PresenceSnapshot, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.states[s.Instance]
	if st == nil {
		st = &presenceState{RedisPresence: p, known: map[string]struct{}{}, live: map[string]struct{}{}, views: map[string]map[string]presenceEntry{}}
		p.states[s.Instance] = st
	}
	return st.sync(ctx, s)
}

func (p *presenceState) sync(ctx context.Context, s PresenceSync) (map[string]PresenceSnapshot, error) {
	now := time.Now()
	changed := s.Changed
	// A full sync rewrites our hash and reads every local room: at start,
	// after Redis lost our hash, and after missing notices that may have
	// been trimmed since.
	full := !p.started || p.republish || now.Sub(p.lastOK) > p.cfg.ChangeRetention/2
	if full {
		changed = s.All()
		for room, snap := range s.Changed {
			if _, ok := changed[room]; !ok && snap.Online <= 0 {
				changed[room] = snap // still withdrawn: others must hear of it
			}
		}
	}

	w, err := p.write(ctx, s.Instance, changed, now, full)
	if err != nil {
		return nil, err
	}
	if full {
		p.republish = false
		p.views = make(map[string]map[string]presenceEntry, len(changed))
		p.ownRooms = 0
	} else if !w.existed.Val() && p.ownRooms > 0 {
		p.republish = true // the hash vanished (Redis lost data): rewrite it next time
	}
	known := make(map[string]struct{})
	live := make(map[string]struct{})
	for _, z := range w.instances.Val() {
		inst, _ := z.Member.(string)
		known[inst] = struct{}{}
		if int64(z.Score) >= now.Add(-s.MaxAge).UnixMilli() {
			live[inst] = struct{}{}
		}
	}

	touched := make(map[string]struct{})
	toRead := make(map[string]struct{})
	for room, snap := range changed {
		if snap.Online <= 0 {
			p.forget(room, s.Instance)
			continue
		}
		v := p.views[room]
		if v == nil {
			toRead[room] = struct{}{}
			v = make(map[string]presenceEntry)
			p.views[room] = v
		}
		if _, ok := v[s.Instance]; !ok {
			p.ownRooms++
		}
		v[s.Instance] = presenceEntry{N: snap.Online, Users: snap.Users}
		touched[room] = struct{}{}
	}
	// Others' changes to rooms we have.
	notices, err := p.notices(ctx, w)
	if err != nil {
		return nil, err
	}
	for _, n := range notices {
		if n.instance == s.Instance {
			continue
		}
		for _, room := range n.rooms {
			if _, ok := p.views[room]; ok || s.Local(room) {
				toRead[room] = struct{}{}
			}
		}
	}
	// An instance that stopped (or started again) being live changes the
	// views it has entries in; one that left the set leaves them.
	for inst := range union(p.known, known) {
		_, wasLive := p.live[inst]
		_, isLive := live[inst]
		_, isKnown := known[inst]
		if wasLive == isLive && isKnown {
			continue
		}
		for room, v := range p.views {
			if _, ok := v[inst]; ok {
				if !isKnown {
					delete(v, inst)
				}
				touched[room] = struct{}{}
			}
		}
	}
	p.known, p.live = known, live
	if err := p.read(ctx, s.Instance, toRead); err != nil {
		return nil, err
	}
	p.started = true
	p.lastOK = now

	out := make(map[string]PresenceSnapshot, len(touched)+len(toRead))
	for room := range toRead {
		touched[room] = struct{}{}
	}
	for room := range touched {
		v := p.views[room]
		if v == nil || !s.Local(room) {
			p.forget(room, s.Instance)
			continue
		}
		out[room] = mergePresence(v, live)
	}
	return out, nil
}

func union(a, b map[string]struct{}) map[string]struct{} {
	out := make(map[string]struct{}, len(a)+len(b))
	for k := range a {
		out[k] = struct{}{}
	}
	for k := range b {
		out[k] = struct{}{}
	}
	return out
}

// forget drops room's view.
func (p *presenceState) forget(room, self string) {
	if _, ok := p.views[room][self]; ok {
		p.ownRooms--
	}
	delete(p.views, room)
}

// firstErr returns the first error among cmds other than redis.Nil, which
// only says a key or field is absent.
func firstErr(cmds []redis.Cmder) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
	}
	return nil
}

// presenceWrite holds the replies of Sync's first round trip.
type presenceWrite struct {
	existed   *redis.BoolCmd
	instances *redis.ZSliceCmd
	read      *redis.XStreamSliceCmd // nil on the first Sync
	newest    *redis.XMessageSliceCmd
}

// write records this instance's changes and heartbeat and fetches the
// instances and the first batch of notices, in one pipeline.
func (p *presenceState) write(ctx context.Context, instance string, changed map[string]PresenceSnapshot, now time.Time, full bool) (presenceWrite, error) {
	key := p.InstanceKey(instance)
	pipe := p.rdb.Pipeline()
	var w presenceWrite
	w.existed = pipe.PExpire(ctx, key, p.cfg.TTL)
	if full {
		pipe.Del(ctx, key)
	}
	rooms := make([]string, 0, len(changed))
	for room, snap := range changed {
		rooms = append(rooms, room)
		if snap.Online <= 0 {
			pipe.HDel(ctx, key, room)
			continue
		}
		v, err := json.Marshal(presenceEntry{N: snap.Online, Users: snap.Users})
		if err != nil {
			return w, fmt.Errorf("redis presence: encode %s: %w", room, err)
		}
		pipe.HSet(ctx, key, room, v)
	}
	if len(changed) > 0 {
		pipe.PExpire(ctx, key, p.cfg.TTL)
	}
	for len(rooms) > 0 {
		n := min(len(rooms), presenceNoticeRooms)
		r, _ := json.Marshal(rooms[:n])
		rooms = rooms[n:]
		pipe.XAdd(ctx, &redis.XAddArgs{
			Stream: p.changesKey(),
			MinID:  strconv.FormatInt(now.Add(-p.cfg.ChangeRetention).UnixMilli(), 10),
			Approx: true,
			Values: []any{"i", instance, "r", r},
		})
	}
	pipe.ZAdd(ctx, p.instancesKey(), redis.Z{Score: float64(now.UnixMilli()), Member: instance})
	pipe.ZRemRangeByScore(ctx, p.instancesKey(), "-inf", strconv.FormatInt(now.Add(-p.cfg.TTL).UnixMilli(), 10))
	w.instances = pipe.ZRangeWithScores(ctx, p.instancesKey(), 0, -1)
	if p.lastID == "" || full {
		// Start from the newest notice: a full sync reads every room anyway.
		w.newest = pipe.XRevRangeN(ctx, p.changesKey(), "+", "-", 1)
	} else {
		w.read = pipe.XRead(ctx, &redis.XReadArgs{Streams: []string{p.changesKey(), p.lastID}, Count: presenceReadCount, Block: -1})
	}
	cmds, _ := pipe.Exec(ctx)
	if err := firstErr(cmds); err != nil {
		return w, fmt.Errorf("redis presence: sync %d changed rooms: %w", len(changed), err)
	}
	return w, nil
}

type presenceNotice struct {
	instance string
	rooms    []string
}

// notices returns the change notices since the last Sync and advances the
// cursor.
func (p *presenceState) notices(ctx context.Context, w presenceWrite) ([]presenceNotice, error) {
	if w.newest != nil {
		p.lastID = "0-0"
		if msgs := w.newest.Val(); len(msgs) > 0 {
			p.lastID = msgs[0].ID
		}
		return nil, nil
	}
	var out []presenceNotice
	read := w.read
	for {
		var msgs []redis.XMessage
		if streams := read.Val(); len(streams) > 0 {
			msgs = streams[0].Messages
		}
		for _, m := range msgs {
			p.lastID = m.ID
			inst, _ := m.Values["i"].(string)
			raw, _ := m.Values["r"].(string)
			var rooms []string
			if json.Unmarshal([]byte(raw), &rooms) != nil {
				continue // another writer's garbage must not stop us
			}
			out = append(out, presenceNotice{instance: inst, rooms: rooms})
		}
		if len(msgs) < presenceReadCount {
			return out, nil
		}
		read = p.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{p.changesKey(), p.lastID}, Count: presenceReadCount, Block: -1})
		if err := read.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("redis presence: read changes: %w", err)
		}
	}
}

// read loads every known instance's entry for each room, replacing what
// p.views held for it (this instance's own entry is kept). Instances that
// are not live are read too, so that one that comes back is counted again
// without anyone reading its rooms.
func (p *presenceState) read(ctx context.Context, self string, rooms map[string]struct{}) error {
	if len(rooms) == 0 {
		return nil
	}
	type get struct {
		room, inst string
		cmd        *redis.StringCmd
	}
	var gets []get
	pipe := p.rdb.Pipeline()
	for room := range rooms {
		for inst := range p.known {
			if inst != self {
				gets = append(gets, get{room, inst, pipe.HGet(ctx, p.InstanceKey(inst), room)})
			}
		}
	}
	if len(gets) > 0 {
		cmds, _ := pipe.Exec(ctx)
		if err := firstErr(cmds); err != nil {
			return fmt.Errorf("redis presence: read %d rooms: %w", len(rooms), err)
		}
	}
	for room := range rooms {
		v := p.views[room]
		own, ok := v[self]
		v = make(map[string]presenceEntry)
		if ok {
			v[self] = own
		}
		p.views[room] = v
	}
	for _, g := range gets {
		raw, err := g.cmd.Result()
		if err != nil {
			continue // redis.Nil: that instance has nobody here
		}
		var e presenceEntry
		if json.Unmarshal([]byte(raw), &e) != nil || e.N <= 0 {
			continue
		}
		p.views[g.room][g.inst] = e
	}
	return nil
}

// Withdraw implements Presence: the instance's hash goes, and it leaves
// the instance set, so other instances drop its counts at their next Sync.
func (p *RedisPresence) Withdraw(ctx context.Context, instance string) error {
	p.mu.Lock()
	delete(p.states, instance)
	p.mu.Unlock()
	pipe := p.rdb.Pipeline()
	pipe.Del(ctx, p.InstanceKey(instance))
	pipe.ZRem(ctx, p.instancesKey(), instance)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redis presence: withdraw %s: %w", instance, err)
	}
	return nil
}
