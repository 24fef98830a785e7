// Package ledger is hongbao's system of record in PostgreSQL: a double-entry
// journal of every fen, plus the packets and committed claims that Redis can
// be rebuilt from.
//
// Money lives in accounts: one wallet per user (wallet:<user>), one escrow
// per packet (escrow:<packet>) and the funding account (funding), the one
// source of every fen ever put in, whose balance is therefore negative. Money
// moves only by movements, each identified by a key that makes it happen at
// most once (fund:<ref>, debit:<packet>, claim:<packet>:<user>,
// refund:<packet>: a replayed write hits the primary key and is a no-op),
// and each made of postings that sum to zero. Every movement, its postings and
// the balances they change are written in one transaction, so at every
// committed instant:
//
//	Σ balances = 0, i.e. -funding = Σ wallets + Σ escrows
//	every account's balance = Σ of its postings
//	every live packet's escrow = total - Σ committed claims - refund
//
// Snapshot and CheckJournal verify exactly this.
//
// Amounts are int64 fen (bigint in SQL); no float touches one. Packet ids
// are canonical lowercase UUIDs; times of packets and claims are unix
// milliseconds. Every method takes a context; errors wrap the sentinels in
// errors.go. Run Migrate once per process before anything else.
package ledger

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Config tunes a Ledger. The zero Config is ready to use.
type Config struct {
	// MaxConns caps the connection pool. Default (0): 10.
	MaxConns int32
	// Logger receives what the ledger has to say (migrations applied).
	// Default (nil): slog.Default().
	Logger *slog.Logger
	// Webhooks makes every change that has a webhook event (Open, Settle,
	// Finish) write it to the webhook_outbox table in its own transaction,
	// for a dispatcher to deliver. Every instance sharing the database must
	// agree. Default (false): no events are written.
	Webhooks bool
}

// Ledger is a pool of connections to the ledger's database. It is safe for
// concurrent use.
type Ledger struct {
	pool     *pgxpool.Pool
	log      *slog.Logger
	webhooks bool
}

// Open connects to the PostgreSQL database at url (postgres://...) and checks
// that it answers. It does not migrate: call Migrate.
func Open(ctx context.Context, url string, cfg Config) (*Ledger, error) {
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("ledger: parse database url: %w", err)
	}
	pcfg.MaxConns = 10
	if cfg.MaxConns > 0 {
		pcfg.MaxConns = cfg.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("ledger: connect: %w", err)
	}
	l := &Ledger{pool: pool, log: cfg.Logger, webhooks: cfg.Webhooks}
	if l.log == nil {
		l.log = slog.Default()
	}
	if err := l.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return l, nil
}

// Close closes every connection; in-flight calls fail.
func (l *Ledger) Close() { l.pool.Close() }

// Ping checks that the database answers.
func (l *Ledger) Ping(ctx context.Context) error {
	if err := l.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ledger: ping: %w", err)
	}
	return nil
}

// inTx runs fn in a read-committed transaction, committed if fn returns nil
// and rolled back otherwise.
func (l *Ledger) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, l.pool, pgx.TxOptions{}, fn)
}

// readTx runs fn in a repeatable-read, read-only transaction: every query in
// fn sees the same committed instant.
func (l *Ledger) readTx(ctx context.Context, fn func(pgx.Tx) error) error {
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	return pgx.BeginTxFunc(ctx, l.pool, opts, fn)
}

// Account ids and movement keys.

const fundingAccount = "funding"

func walletID(user string) string   { return "wallet:" + user }
func escrowID(packet string) string { return "escrow:" + packet }
func fundKey(ref string) string     { return "fund:" + ref }
func debitKey(packet string) string { return "debit:" + packet }
func claimKey(packet, user string) string {
	return "claim:" + packet + ":" + user
}
func refundKey(packet string) string { return "refund:" + packet }

// validUUID reports whether s is a canonical lowercase UUID, the only form
// packet ids take here (PostgreSQL prints uuids that way, so keys built from
// ids in Go and in SQL agree).
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdef", c) {
				return false
			}
		}
	}
	return true
}
