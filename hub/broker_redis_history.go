package hub

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// A room's history lives beside its channel, in the same cluster slot (the
// {r:<room>} hash tag), so one script can touch all of it:
//
//	<prefix>:{r:<room>}:events   pub/sub channel (broker_redis.go)
//	<prefix>:{r:<room>}:meta     hash: e = epoch, s = seq of the last durable frame
//	<prefix>:{r:<room>}:history  stream: one entry per durable frame (s = seq, d = frame)
//	<prefix>:{r:<room>}:recent   list: the last RecentSize kept frames, oldest first
//
// publish.lua numbers durable frames, appends them and publishes the whole
// batch in one step; read.lua reads the position with the history after a
// position, or with the recent list, in one step. The history is capped by
// length (XADD MAXLEN) and by age: stream IDs are Redis's own clock, so
// XTRIM MINID drops entries older than HistoryTTL at each publish, read.lua
// refuses to recover from entries older than that, and the stream key
// expires HistoryTTL after the room's last durable frame. The meta hash
// lives HistoryMetaTTL after the last publish or read, so a room that is
// quiet for a while keeps its epoch (a client coming back is told its
// history is gone, not that the world changed) while Redis stays bounded.

// Defaults of RedisBrokerConfig's history fields.
const (
	DefaultHistorySize    = 1000
	DefaultHistoryTTL     = 10 * time.Minute
	DefaultHistoryMetaTTL = 24 * time.Hour
	DefaultRecentSize     = 50
)

//go:embed lua/*.lua
var luaFiles embed.FS

type historyScripts struct{ publish, read *redis.Script }

// historyLua holds the scripts with their "#!lua" line ([1]) and without it
// ([0]). Built once from the embedded files and never changed.
var historyLua = [2]historyScripts{loadHistoryScripts(false), loadHistoryScripts(true)}

func loadHistoryScripts(shebang bool) historyScripts {
	load := func(name string) *redis.Script {
		src, err := luaFiles.ReadFile("lua/" + name + ".lua")
		if err != nil {
			panic("hub: missing embedded script " + name) // a build defect, not input
		}
		text := string(src)
		if _, rest, ok := strings.Cut(text, "\n"); ok && !shebang && strings.HasPrefix(text, "#!") {
			text = rest
		}
		return redis.NewScript(text)
	}
	return historyScripts{publish: load("publish"), read: load("read")}
}

// historyConfig is the history part of a RedisBrokerConfig with defaults.
type historyConfig struct {
	size, recent     int
	ttlMs, metaTTLMs int64
}

func (c RedisBrokerConfig) history() historyConfig {
	// The same settings and defaults as a MemoryBroker's.
	m := MemoryBrokerConfig{HistorySize: c.HistorySize, HistoryTTL: c.HistoryTTL,
		HistoryMetaTTL: c.HistoryMetaTTL, RecentSize: c.RecentSize}.withDefaults()
	return historyConfig{
		size: m.HistorySize, recent: m.RecentSize,
		ttlMs: max(m.HistoryTTL.Milliseconds(), 1), metaTTLMs: max(m.HistoryMetaTTL.Milliseconds(), 1),
	}
}

func (b *RedisBroker) scripts() historyScripts {
	if b.cfg.NoShebang {
		return historyLua[0]
	}
	return historyLua[1]
}

func (b *RedisBroker) historyKeys(room string) []string {
	p := b.cfg.Prefix + ":{r:" + room + "}:"
	return []string{p + "meta", p + "history", p + "recent"}
}

// PublishFrames implements Broker.
func (b *RedisBroker) PublishFrames(ctx context.Context, room string, frames []Frame) (Position, error) {
	h := b.cfg.history()
	cmd := "PUBLISH"
	if b.cfg.Sharded {
		cmd = "SPUBLISH"
	}
	args := make([]any, 0, 7+2*len(frames))
	args = append(args, b.Channel(room), cmd, newEpoch(), h.size, h.ttlMs, h.metaTTLMs, h.recent)
	for _, f := range frames {
		if !f.Durable {
			args = append(args, "e", f.Data)
			continue
		}
		body, err := objectBody(f.Data)
		if err != nil {
			return Position{}, fmt.Errorf("redis broker: publish to %q: %w", room, err)
		}
		kind := "d"
		if f.Keep {
			kind = "k"
		}
		args = append(args, kind, body)
	}
	res, err := b.scripts().publish.Run(ctx, b.rdb, b.historyKeys(room), args...).Slice()
	if err != nil {
		return Position{}, fmt.Errorf("redis broker: publish to %q: %w", room, err)
	}
	if len(res) != 2 {
		return Position{}, fmt.Errorf("redis broker: publish to %q: unexpected reply %v", room, res)
	}
	return replyPosition(res[0], res[1])
}

// objectBody is a durable frame without its opening brace and the blanks
// after it: what the script appends to the seq and epoch it writes.
func objectBody(frame []byte) ([]byte, error) {
	if len(frame) < 2 || frame[0] != '{' || frame[len(frame)-1] != '}' {
		return nil, fmt.Errorf("a durable frame must be a JSON object")
	}
	return bytes.TrimLeft(frame[1:], " \t\r\n"), nil
}

// Recover implements Broker.
func (b *RedisBroker) Recover(ctx context.Context, room string, since Position, limit int) ([][]byte, Position, error) {
	frames, pos, ok, err := b.readHistory(ctx, room, "recover", since, limit)
	if err != nil {
		return nil, Position{}, err
	}
	if !ok {
		return nil, pos, ErrHistoryGone
	}
	return frames, pos, nil
}

// Recent implements Broker.
func (b *RedisBroker) Recent(ctx context.Context, room string) ([][]byte, Position, error) {
	frames, pos, _, err := b.readHistory(ctx, room, "recent", Position{}, 0)
	return frames, pos, err
}

// Position implements Broker.
func (b *RedisBroker) Position(ctx context.Context, room string) (Position, error) {
	_, pos, _, err := b.readHistory(ctx, room, "position", Position{}, 0)
	return pos, err
}

func (b *RedisBroker) readHistory(ctx context.Context, room, mode string, since Position, limit int) ([][]byte, Position, bool, error) {
	h := b.cfg.history()
	res, err := b.scripts().read.Run(ctx, b.rdb, b.historyKeys(room),
		newEpoch(), h.metaTTLMs, h.ttlMs, mode, since.Epoch, strconv.FormatUint(since.Seq, 10), limit).Slice()
	if err != nil {
		return nil, Position{}, false, fmt.Errorf("redis broker: read history of %q: %w", room, err)
	}
	if len(res) < 3 {
		return nil, Position{}, false, fmt.Errorf("redis broker: read history of %q: unexpected reply %v", room, res)
	}
	pos, err := replyPosition(res[0], res[1])
	if err != nil {
		return nil, Position{}, false, fmt.Errorf("redis broker: read history of %q: %w", room, err)
	}
	frames := make([][]byte, 0, len(res)-3)
	for _, v := range res[3:] {
		s, ok := v.(string)
		if !ok {
			return nil, Position{}, false, fmt.Errorf("redis broker: read history of %q: a frame is %T", room, v)
		}
		frames = append(frames, []byte(s))
	}
	return frames, pos, res[2] == "ok", nil
}

func replyPosition(seq, epoch any) (Position, error) {
	s, ok1 := seq.(string)
	e, ok2 := epoch.(string)
	n, err := strconv.ParseUint(s, 10, 64)
	if !ok1 || !ok2 || err != nil || checkEpoch(e) != nil {
		return Position{}, fmt.Errorf("unexpected position %v:%v", epoch, seq)
	}
	return Position{Seq: n, Epoch: e}, nil
}
