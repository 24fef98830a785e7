package hub

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// Config tunes a Hub. The zero value of every field means "use the default"
// documented on that field, so Config{} is a valid configuration.
type Config struct {
	// InstanceID names this hub in shared presence data so instances do not
	// overwrite each other. Default: a random 16-hex-digit string per New.
	InstanceID string

	// Shards is how many independent locks room membership is spread over,
	// so joins, leaves and broadcasts in different rooms rarely contend.
	// Default: 64.
	Shards int

	// SendQueue is how many frames may wait for one connection's writer.
	// A connection whose queue overflows is evicted (closed with 1008 "slow
	// consumer") rather than allowed to stall a broadcast. Default: 256.
	SendQueue int

	// WriteTimeout is the deadline for each write to a connection; a peer
	// that cannot take a frame within it is dropped. For data frames it is
	// enforced by the hub's timekeeper (see ping.go), so the socket is cut at
	// most an eighth of the shortest of PingInterval, PongTimeout and
	// WriteTimeout after the deadline. Default: 10s.
	WriteTimeout time.Duration

	// PingInterval is how often each connection is pinged, so proxies do not
	// time out quiet connections and dead peers are noticed. Pings come from
	// one timekeeper goroutine per hub, not a timer per connection, so each
	// may be late by up to an eighth of the shortest of PingInterval,
	// PongTimeout and WriteTimeout. Default: 25s.
	PingInterval time.Duration

	// PongTimeout is how long past a ping interval the hub waits for any
	// frame (pong or data) before it considers the peer gone: the
	// timekeeper cuts a peer silent for PingInterval+PongTimeout (up to one
	// of its ticks late; see ping.go). Default: 10s.
	PongTimeout time.Duration

	// ReadLimit is the largest frame a client may send, in bytes; a larger
	// one closes the connection with 1009 (message too big). Default: 4096.
	ReadLimit int64

	// NewThrottle makes each local room's Throttle, which may hold back or
	// replace frames before they reach the room's members. Default: nil,
	// every frame is delivered as published.
	NewThrottle NewThrottleFunc

	// PresenceInterval is how often the hub publishes its local member counts
	// and delivers changed online counts to its members. Default: 1s.
	PresenceInterval time.Duration

	// RecoverLimit is the most missed durable frames a client that
	// reconnects with a position, or a room whose subscription was lost, is
	// sent from history; a longer gap gets {"type":"resync"} instead, since
	// replaying it would overflow the send queue anyway. Default: half of
	// SendQueue.
	RecoverLimit int

	// RecoverTimeout bounds each history read: a joiner's catch-up and a
	// room's repair after a lost subscription or a seq gap. Default: 5s.
	RecoverTimeout time.Duration

	// Presence shares member counts between instances (NewRedisPresence with
	// a RedisBroker, NewMemoryPresence with a MemoryBroker). Default: nil,
	// which counts local members only.
	Presence Presence
}

// Defaults for Config fields; see the field docs for what each one governs.
const (
	DefaultShards           = 64
	DefaultSendQueue        = 256
	DefaultWriteTimeout     = 10 * time.Second
	DefaultPingInterval     = 25 * time.Second
	DefaultPongTimeout      = 10 * time.Second
	DefaultReadLimit        = 4096
	DefaultPresenceInterval = time.Second
	DefaultRecoverTimeout   = 5 * time.Second
)

// closeGrace bounds how long a closing connection may take to flush its close
// frame and hear the peer's reply before the socket is torn down; without it a
// peer that stopped reading would pin its writer for a whole WriteTimeout.
const closeGrace = time.Second

// DefaultConfig returns a Config with every default filled in explicitly,
// including a fresh random InstanceID.
func DefaultConfig() Config {
	return Config{}.withDefaults()
}

func (c Config) withDefaults() Config {
	if c.InstanceID == "" {
		c.InstanceID = randomID()
	}
	if c.Shards <= 0 {
		c.Shards = DefaultShards
	}
	if c.SendQueue <= 0 {
		c.SendQueue = DefaultSendQueue
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.PingInterval <= 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.PongTimeout <= 0 {
		c.PongTimeout = DefaultPongTimeout
	}
	if c.ReadLimit <= 0 {
		c.ReadLimit = DefaultReadLimit
	}
	if c.RecoverLimit <= 0 {
		c.RecoverLimit = max(c.SendQueue/2, 1)
	}
	if c.RecoverTimeout <= 0 {
		c.RecoverTimeout = DefaultRecoverTimeout
	}
	if c.PresenceInterval <= 0 {
		c.PresenceInterval = DefaultPresenceInterval
	}
	return c
}

func randomID() string {
	var b [8]byte
	// crypto/rand.Read never fails on supported platforms (Go 1.24+).
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
