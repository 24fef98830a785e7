package packet

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ReconcileReport is one run of the reconciliation (对账): every live
// packet's claims in Redis against its rows in the ledger (the audit's
// per-packet checks: a claim at most once per user, claims within the
// total, shares + claims = count, escrow = what Redis still holds), and the
// ledger's journal against its balances. It reports; it never fixes money.
type ReconcileReport struct {
	// At is when the run began, Unix ms.
	At int64 `json:"at"`
	// Since is where the journal check began, Unix ms; 0 means all of
	// history.
	Since int64 `json:"since"`
	// Problems are the packet-level differences, each naming its packet
	// and user.
	Problems []string `json:"problems"`
	// Journal are the ledger's own differences, each naming its account or
	// movement.
	Journal []string `json:"journal"`
}

// OK reports a run that found nothing.
func (r ReconcileReport) OK() bool { return len(r.Problems) == 0 && len(r.Journal) == 0 }

// ErrNoLedger is returned by Reconcile in Redis-only mode, which has no
// second record to reconcile with (Audit checks what there is).
var ErrNoLedger = errors.New("reconciliation needs a ledger")

// Reconcile compares Redis with the ledger. The journal check covers what
// changed at or after since (zero: everything).
func (s *Store) Reconcile(ctx context.Context, since time.Time) (ReconcileReport, error) {
	rep := ReconcileReport{At: s.cfg.Now().UnixMilli(), Problems: []string{}, Journal: []string{}}
	if !since.IsZero() {
		rep.Since = since.UnixMilli()
	}
	if s.led == nil {
		return rep, ErrNoLedger
	}
	audit, err := s.auditLedger(ctx)
	if err != nil {
		return rep, err
	}
	rep.Problems = append(rep.Problems, audit.Problems...)
	diffs, err := s.led.CheckJournal(ctx, since)
	if err != nil {
		return rep, unavailable("reconcile", err)
	}
	for _, d := range diffs {
		rep.Journal = append(rep.Journal, fmt.Sprintf("account %q movement %q: %s", d.Account, d.Movement, d.Detail))
	}
	s.cfg.Metrics.reconciled(len(rep.Problems), len(rep.Journal))
	for _, p := range rep.Problems {
		s.cfg.Logger.Error("reconciliation: difference", "problem", p)
	}
	for _, j := range rep.Journal {
		s.cfg.Logger.Error("reconciliation: journal difference", "difference", j)
	}
	return rep, nil
}

// RunReconciler reconciles every interval until ctx ends, each run
// checking the journal from a little before the previous one began; what it
// finds is logged and counted in the metrics. Each run also forgets
// Idempotency-Keys twice as old as the 24 h they are promised for. It does
// nothing without a ledger.
func (s *Store) RunReconciler(ctx context.Context, interval time.Duration) {
	if s.led == nil {
		return
	}
	since := s.cfg.Now().Add(-interval)
	every(ctx, interval, func() {
		start := s.cfg.Now()
		if _, err := s.Reconcile(ctx, since); err != nil {
			s.cfg.Logger.Warn("reconciliation failed", "err", err)
			return
		}
		if _, err := s.led.ForgetIdempotency(ctx, 2*idempotencyTTL); err != nil {
			s.cfg.Logger.Warn("forgetting old idempotency keys failed", "err", err)
		}
		// Overlap the windows so that a write committing across a run's
		// start is checked by one run or the next.
		since = start.Add(-time.Minute)
	})
}
