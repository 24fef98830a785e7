package packet

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hongbao-dev/hongbao/ledger"
)

// MaxCountLimit is the most shares a packet may ever have, whatever
// Limits.MaxCount says: the scripts take shares in chunks, and a grab's
// claim history must stay small enough to read in one reply.
const MaxCountLimit = 10000

// Config configures a Store. Zero fields take the defaults documented on
// each field; DefaultConfig returns them all.
type Config struct {
	// Prefix starts every key. Default "hb".
	Prefix string
	// Limits bound what may be created. Default DefaultLimits().
	Limits Limits
	// Ledger, when set, is the system of record: wallets, debits, claims and
	// refunds are committed to PostgreSQL and Redis holds only live packets.
	// Default nil: wallets live in Redis (the embedded demo mode).
	Ledger *ledger.Ledger
	// PendingGrace is how long a create may take between its steps before
	// the sweeper settles it either way (Redis-only mode), or looks for the
	// packet in Redis (ledger mode). It must exceed the longest a create
	// request can take. Default 30 s.
	PendingGrace time.Duration
	// SettleGrace is how long after a grab the sweeper looks at its packet,
	// to pay whatever a crashed instance left unpaid. Default 10 s.
	SettleGrace time.Duration
	// SweepLease is how long a sweeper owns a due packet before another may
	// take it over. Default 30 s.
	SweepLease time.Duration
	// SweepBatch is how many due packets one Sweep call takes. Default 100.
	SweepBatch int
	// RetainSettled is how long a finished packet's keys stay in Redis once
	// every fen of it is committed to the ledger; afterwards it is read from
	// the ledger. Ledger mode only. Default 10 min.
	RetainSettled time.Duration
	// WaitReplicas, when positive, makes every grab batch wait until that
	// many replicas acknowledged it (Redis WAIT) before anyone is told the
	// outcome. Default 0: answer at once.
	WaitReplicas int
	// WaitTimeout bounds that wait; a grab batch whose WAIT times out is
	// answered unavailable, though its claims stand. Default 1 s.
	WaitTimeout time.Duration
	// SettleBatch is the most claims one ledger transaction commits.
	// Default 500.
	SettleBatch int
	// SettleWorkers is how many ledger transactions the settler keeps in
	// flight. Default 4.
	SettleWorkers int
	// SweepWorkers is how many due packets one Sweep settles at once.
	// Default 8.
	SweepWorkers int
	// HistoryLen is how many claims a wallet's history keeps (Redis-only
	// mode). Default 100.
	HistoryLen int
	// RoomHistory is how many recent packets a room's index keeps
	// (Redis-only mode). Default 200.
	RoomHistory int
	// Now is the clock for creation times. Grabs and expiry use Redis TIME.
	// Default time.Now.
	Now func() time.Time
	// Splitter divides lucky packets. Default NewSplitter().
	Splitter *Splitter
	// Metrics receives the settlement lag and reconciliation differences.
	// Default nil: none.
	Metrics *Metrics
	// Logger receives repairs and failures of second steps. Default slog.Default().
	Logger *slog.Logger
	// DisableCoalescing settles every grab in its own script call, instead
	// of putting grabs of one packet that arrive while an earlier one is in
	// flight into one call (for comparison runs). Default false.
	DisableCoalescing bool
	// MaxBatch caps the grabs settled in one script call. Default 256.
	MaxBatch int
	// OnGrabs, when set, receives each grab batch's new grabs, in the
	// batch's goroutine, after the script and before any of its grabbers is
	// answered: one call per batch, for the room to hear. It must not block
	// for long (the packet's next batch waits for it). Default nil.
	OnGrabs func(ctx context.Context, b GrabBatch)
	// FinishedClaims bounds the claims the finished-packet cache holds
	// (finished.go), over all its packets; negative turns the cache off.
	// Default 100 000.
	FinishedClaims int
	// NoShebang drops the "#!lua" first line of every script, for the
	// embedded demo Redis, which cannot parse it. Default false.
	NoShebang bool
}

// DefaultConfig returns a Config with every default filled in (a fresh
// Splitter each call). Zero fields of a Config given to NewStore take these
// values.
func DefaultConfig() Config {
	return Config{
		Prefix:         "hb",
		Limits:         DefaultLimits(),
		PendingGrace:   30 * time.Second,
		SettleGrace:    10 * time.Second,
		SweepLease:     30 * time.Second,
		SweepBatch:     100,
		RetainSettled:  10 * time.Minute,
		WaitTimeout:    time.Second,
		SettleBatch:    500,
		SettleWorkers:  4,
		SweepWorkers:   8,
		HistoryLen:     100,
		RoomHistory:    200,
		Now:            time.Now,
		Splitter:       NewSplitter(),
		Logger:         slog.Default(),
		MaxBatch:       256,
		FinishedClaims: 100000,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.Limits = c.Limits.withDefaults()
	def := func(v *time.Duration, dv time.Duration) {
		if *v <= 0 {
			*v = dv
		}
	}
	num := func(n *int, dv int) {
		if *n <= 0 {
			*n = dv
		}
	}
	if c.Prefix == "" {
		c.Prefix = d.Prefix
	}
	def(&c.PendingGrace, d.PendingGrace)
	def(&c.SettleGrace, d.SettleGrace)
	def(&c.SweepLease, d.SweepLease)
	def(&c.RetainSettled, d.RetainSettled)
	def(&c.WaitTimeout, d.WaitTimeout)
	num(&c.SweepBatch, d.SweepBatch)
	num(&c.SettleBatch, d.SettleBatch)
	num(&c.SettleWorkers, d.SettleWorkers)
	num(&c.SweepWorkers, d.SweepWorkers)
	num(&c.HistoryLen, d.HistoryLen)
	num(&c.RoomHistory, d.RoomHistory)
	num(&c.MaxBatch, d.MaxBatch)
	if c.FinishedClaims == 0 {
		c.FinishedClaims = d.FinishedClaims
	}
	if c.Now == nil {
		c.Now = d.Now
	}
	if c.Splitter == nil {
		c.Splitter = d.Splitter
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	return c
}

// Validate reports a setting the store cannot honour.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.Limits.MaxCount > MaxCountLimit {
		return fmt.Errorf("max count %d: a packet has at most %d shares", c.Limits.MaxCount, MaxCountLimit)
	}
	if c.Limits.MinShare > c.Limits.MaxShare {
		return fmt.Errorf("min share %d fen is above max share %d fen", c.Limits.MinShare, c.Limits.MaxShare)
	}
	if c.WaitReplicas < 0 {
		return fmt.Errorf("wait replicas %d: must be 0 or more", c.WaitReplicas)
	}
	return nil
}
