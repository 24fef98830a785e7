package packet

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/hongbao-dev/hongbao/internal/apierr"
	"github.com/hongbao-dev/hongbao/ledger"
)

// Store keeps packets in Redis, and wallets either in a ledger (PostgreSQL,
// the system of record) or, without one, in Redis. It is safe for
// concurrent use by any number of goroutines and instances: every change in
// Redis is one Lua script on one hash slot, every change in the ledger is
// one transaction, and every multi-step operation is a chain of idempotent
// steps that the sweeper can finish after a crash.
type Store struct {
	rdb redis.UniversalClient
	cfg Config
	k   keys
	lua scripts
	hot *coalescer
	// done answers grabs of packets known to be empty (finished.go).
	done *finishedCache
	led  *ledger.Ledger // nil in Redis-only mode
	set  *settler       // nil in Redis-only mode

	// armed remembers, per packet, until when the sweeper is already due to
	// look at it, so that a hot packet schedules one visit per SettleGrace
	// and not one per grab.
	armMu sync.Mutex
	armed map[string]int64
}

// NewStore returns a Store on rdb (a client, a ring of one, or a cluster).
// It returns an error for a configuration it cannot honour.
func NewStore(rdb redis.UniversalClient, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Store{rdb: rdb, cfg: cfg, k: keys{cfg.Prefix}, lua: loadScripts(!cfg.NoShebang),
		led: cfg.Ledger, armed: map[string]int64{}}
	s.hot = newCoalescer(s)
	s.done = newFinishedCache(cfg.FinishedClaims)
	if s.led != nil {
		s.set = newSettler(s)
	}
	return s, nil
}

// Limits returns the limits in force.
func (s *Store) Limits() Limits { return s.cfg.Limits }

// HasLedger reports whether a ledger is the system of record.
func (s *Store) HasLedger() bool { return s.led != nil }

// unavailable wraps a store failure with the unavailable code.
func unavailable(op string, err error) error {
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
}

// Fund adds amount fen of new money to user's wallet. A second Fund with
// the same non-empty ref adds nothing; an empty ref gets a fresh one. It reports
// whether money was added and the balance after.
func (s *Store) Fund(ctx context.Context, userID string, amount int64, ref string) (bool, int64, error) {
	if userID == "" {
		return false, 0, apierr.Refuse(ErrInvalidRequest, "user id is empty")
	}
	if amount <= 0 {
		return false, 0, apierr.Refuse(ErrInvalidAmount, "amount must be a positive number of fen, got %d", amount)
	}
	if ref == "" {
		// Every fund gets a ref, so a command retried after a lost reply
		// (go-redis retries on network errors) cannot add the money twice.
		id, err := uuid.NewV7()
		if err != nil {
			return false, 0, unavailable("fund", err)
		}
		ref = "auto:" + id.String()
	}
	if s.led != nil {
		// Refs are per user, as in Redis-only mode; the ledger's are global.
		// User ids never hold '/', so the first one ends the user's part.
		added, balance, err := s.led.Fund(ctx, userID, amount, userID+"/"+ref)
		if errors.Is(err, ledger.ErrIdempotencyConflict) {
			return false, 0, apierr.Refuse(ErrIdempotencyConflict, "ref %q was used for a different credit", ref)
		}
		if err != nil {
			return false, 0, unavailable("fund", err)
		}
		return added, balance, nil
	}
	res, err := s.lua.fund.Run(ctx, s.rdb, s.k.walletKeys(userID)[:2], amount, ref).Slice()
	if err != nil {
		return false, 0, unavailable("fund", err)
	}
	added, _ := res[0].(int64)
	balance, err := toInt64(res[1])
	if err != nil {
		return false, 0, fmt.Errorf("fund: %w", err)
	}
	return added == 1, balance, nil
}

// UserKnown reports whether user has ever held a wallet. In ledger mode a
// user whose first claim is not committed yet is known too: by this
// instance's claims in flight, or by a pending marker in Redis. Those are
// read first, in that order: a claim leaves the in-flight set only once it
// is committed or marked, and a marker goes only once its claim is
// committed, so a user cannot slip between the reads.
func (s *Store) UserKnown(ctx context.Context, userID string) (bool, error) {
	if s.led != nil && len(s.set.flight.of(userID)) > 0 {
		return true, nil
	}
	key := s.k.wallet(userID)
	if s.led != nil {
		key = s.k.pending(userID)
	}
	n, err := s.rdb.Exists(ctx, key).Result()
	if err != nil {
		return false, unavailable("user", err)
	}
	if n == 1 || s.led == nil {
		return n == 1, nil
	}
	ok, err := s.led.UserExists(ctx, userID)
	if err != nil {
		return false, unavailable("user", err)
	}
	return ok, nil
}

// Ping checks that Redis and, with one, the ledger answer.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	if s.led != nil {
		if err := s.led.Ping(ctx); err != nil {
			return fmt.Errorf("ledger: %w", err)
		}
	}
	return nil
}
