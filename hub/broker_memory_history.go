package hub

import (
	"bytes"
	"context"
	"fmt"
	"time"
)

// MemoryBrokerConfig holds a MemoryBroker's history settings, which mean
// what RedisBrokerConfig's fields of the same names mean. Zero fields take
// the same defaults.
type MemoryBrokerConfig struct {
	// HistorySize caps a room's history in frames. Default: 1000.
	HistorySize int
	// HistoryTTL is how long a durable frame stays recoverable. Default: 10m.
	HistoryTTL time.Duration
	// HistoryMetaTTL is how long a room's position outlives its last
	// durable frame or read. Default: 24h.
	HistoryMetaTTL time.Duration
	// RecentSize caps a room's kept frames. Default: 50.
	RecentSize int
}

func (c MemoryBrokerConfig) withDefaults() MemoryBrokerConfig {
	if c.HistorySize <= 0 {
		c.HistorySize = DefaultHistorySize
	}
	if c.HistoryTTL <= 0 {
		c.HistoryTTL = DefaultHistoryTTL
	}
	if c.HistoryMetaTTL <= 0 {
		c.HistoryMetaTTL = DefaultHistoryMetaTTL
	}
	if c.RecentSize <= 0 {
		c.RecentSize = DefaultRecentSize
	}
	return c
}

// memoryHistory is one room's history, as the Redis scripts keep it.
type memoryHistory struct {
	epoch    string
	seq      uint64
	entries  []memoryEntry // oldest first; entries[i].seq == entries[0].seq+i
	recent   [][]byte      // oldest first
	touched  time.Time     // last publish or read: the meta TTL runs from here
	appended time.Time     // last durable frame: the history TTL runs from here
}

type memoryEntry struct {
	seq   uint64
	at    time.Time
	frame []byte
}

// room returns room's history, starting a new epoch when it has none or
// its position has expired; hmu must be held.
func (b *MemoryBroker) room(room string, now time.Time) *memoryHistory {
	h := b.hist[room]
	if h == nil || now.Sub(h.touched) >= b.hcfg.HistoryMetaTTL {
		h = &memoryHistory{epoch: newEpoch()}
		b.hist[room] = h
	}
	if now.Sub(h.appended) >= b.hcfg.HistoryTTL {
		h.entries = nil // the stream key expired
	}
	h.touched = now
	return h
}

// PublishFrames implements Broker.
func (b *MemoryBroker) PublishFrames(ctx context.Context, room string, frames []Frame) (Position, error) {
	for _, f := range frames {
		if f.Durable {
			if _, err := objectBody(f.Data); err != nil {
				return Position{}, fmt.Errorf("memory broker: publish to %q: %w", room, err)
			}
		}
	}
	b.hmu.Lock()
	defer b.hmu.Unlock()
	now := time.Now()
	h := b.room(room, now)
	out := make([][]byte, 0, len(frames))
	durable := false
	for _, f := range frames {
		if !f.Durable {
			out = append(out, f.Data)
			continue
		}
		durable = true
		h.seq++
		body, _ := objectBody(f.Data)
		frame := fmt.Appendf(nil, `{"seq":%d,"epoch":"%s"`, h.seq, h.epoch)
		if len(body) > 0 && body[0] != '}' {
			frame = append(frame, ',')
		}
		frame = append(frame, body...)
		h.entries = append(h.entries, memoryEntry{seq: h.seq, at: now, frame: frame})
		if f.Keep {
			h.recent = append(h.recent, frame)
		}
		out = append(out, frame)
	}
	if durable {
		h.appended = now
		h.trim(b.hcfg, now)
	}
	pos := Position{Seq: h.seq, Epoch: h.epoch}
	// Queued under hmu, so frames reach Run in seq order.
	if err := b.Publish(ctx, room, bytes.Join(out, []byte{'\n'})); err != nil {
		return Position{}, err
	}
	return pos, nil
}

func (h *memoryHistory) trim(cfg MemoryBrokerConfig, now time.Time) {
	drop := max(len(h.entries)-cfg.HistorySize, 0)
	for drop < len(h.entries) && now.Sub(h.entries[drop].at) > cfg.HistoryTTL {
		drop++
	}
	if drop > 0 {
		h.entries = append([]memoryEntry(nil), h.entries[drop:]...)
	}
	if n := len(h.recent) - cfg.RecentSize; n > 0 {
		h.recent = append([][]byte(nil), h.recent[n:]...)
	}
}

// Recover implements Broker.
func (b *MemoryBroker) Recover(ctx context.Context, room string, since Position, limit int) ([][]byte, Position, error) {
	b.hmu.Lock()
	defer b.hmu.Unlock()
	now := time.Now()
	h := b.room(room, now)
	pos := Position{Seq: h.seq, Epoch: h.epoch}
	if since.Epoch != h.epoch || since.Seq > h.seq || h.seq-since.Seq > uint64(max(limit, 0)) {
		return nil, pos, ErrHistoryGone
	}
	n := int(h.seq - since.Seq)
	if n == 0 {
		return nil, pos, nil
	}
	if n > len(h.entries) {
		return nil, pos, ErrHistoryGone
	}
	missed := h.entries[len(h.entries)-n:]
	if now.Sub(missed[0].at) > b.hcfg.HistoryTTL {
		return nil, pos, ErrHistoryGone
	}
	frames := make([][]byte, len(missed))
	for i, e := range missed {
		frames[i] = e.frame
	}
	return frames, pos, nil
}

// Recent implements Broker.
func (b *MemoryBroker) Recent(ctx context.Context, room string) ([][]byte, Position, error) {
	b.hmu.Lock()
	defer b.hmu.Unlock()
	h := b.room(room, time.Now())
	return append([][]byte(nil), h.recent...), Position{Seq: h.seq, Epoch: h.epoch}, nil
}

// Position implements Broker.
func (b *MemoryBroker) Position(ctx context.Context, room string) (Position, error) {
	b.hmu.Lock()
	defer b.hmu.Unlock()
	h := b.room(room, time.Now())
	return Position{Seq: h.seq, Epoch: h.epoch}, nil
}
