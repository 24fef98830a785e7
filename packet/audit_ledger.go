package packet

import (
	"context"
	"errors"

	"github.com/hongbao-dev/hongbao/ledger"
)

// auditLedger proves conservation from one repeatable-read snapshot of the
// ledger and one atomic read of each live packet in Redis, taken after it.
// Claims only ever grow in Redis and reach the ledger from there, so every
// claim the snapshot holds is in the later Redis read, and any claim beyond
// them is money on its way (Uncredited). That makes the audit exact while
// grabs, settlers and sweepers run.
func (s *Store) auditLedger(ctx context.Context) (AuditReport, error) {
	var rep AuditReport
	snap, err := s.led.Snapshot(ctx)
	if err != nil {
		return rep, unavailable("audit", err)
	}
	rep.Funded, rep.Balances, rep.Escrow = snap.Funded, snap.Wallets, snap.Escrow
	rep.Problems = append(rep.Problems, snap.Problems...)
	if snap.Sum != 0 {
		rep.problem("the ledger's balances sum to %d, not 0", snap.Sum)
	}
	if snap.Funded != snap.Wallets+snap.Escrow {
		rep.problem("money not conserved: funded %d, wallets %d + escrow %d (difference %d)",
			snap.Funded, snap.Wallets, snap.Escrow, snap.Wallets+snap.Escrow-snap.Funded)
	}
	for i := range snap.Live {
		if err := s.auditLive(ctx, &rep, &snap.Live[i]); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// auditLive checks one unsettled packet: its escrow in the ledger must be
// exactly what Redis still holds for it plus its claims not committed yet.
func (s *Store) auditLive(ctx context.Context, rep *AuditReport, lp *ledger.LivePacket) error {
	rep.Packets++
	w, err := s.readWhole(ctx, lp.ID)
	if err != nil {
		return err
	}
	if len(w.meta) == 0 {
		return s.auditMissing(ctx, rep, lp)
	}
	st, err := parseState(w.meta)
	if err != nil || st == nil {
		rep.problem("packet %s: unreadable in Redis (%v)", lp.ID, err)
		return nil
	}
	if st.Total != lp.Total || st.Count != lp.Count {
		rep.problem("packet %s: Redis says %d fen in %d shares, the ledger %d in %d", lp.ID, st.Total, st.Count, lp.Total, lp.Count)
	}
	claims := s.checkPacket(rep, lp.ID, w, st)
	inFlight := s.compareClaims(rep, lp, claims)
	rep.Claims += len(claims)
	left, _ := sumShares(w.shares)
	if lp.Status == "expired" {
		left = 0 // refunded: the shares list is only the record of it
	}
	rep.SharesLeft += left
	rep.Uncredited += inFlight
	if lp.Escrow != left+inFlight {
		rep.problem("packet %s: the ledger holds %d for it, Redis %d in shares + %d claimed not committed",
			lp.ID, lp.Escrow, left, inFlight)
	}
	return nil
}

// compareClaims checks that every committed claim is in Redis with the same
// amount, and returns what Redis claims beyond them.
func (s *Store) compareClaims(rep *AuditReport, lp *ledger.LivePacket, claims []Claim) int64 {
	inRedis := make(map[string]int64, len(claims))
	var inFlight int64
	for _, c := range claims {
		inRedis[c.User.ID] = c.Amount
		inFlight += c.Amount
	}
	for _, c := range lp.Claims {
		amount, ok := inRedis[c.UserID]
		switch {
		case !ok:
			rep.problem("packet %s: user %s holds a committed claim of %d that Redis does not know", lp.ID, c.UserID, c.Amount)
		case amount != c.Amount:
			rep.problem("packet %s: user %s claimed %d in Redis, %d committed", lp.ID, c.UserID, amount, c.Amount)
		default:
			inFlight -= amount
		}
	}
	return inFlight
}

// auditMissing judges a live packet that Redis does not hold: a create
// between its commit and Redis (money in flight), a packet settled since
// the snapshot, or a stranded debit, which is a problem until the sweeper
// puts it back.
func (s *Store) auditMissing(ctx context.Context, rep *AuditReport, lp *ledger.LivePacket) error {
	if s.cfg.Now().UnixMilli() < lp.CreatedAt+s.cfg.PendingGrace.Milliseconds() && len(lp.Claims) == 0 {
		rep.PendingDebits += lp.Escrow
		return nil
	}
	v, err := s.led.Packet(ctx, lp.ID)
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return unavailable("audit", err)
	}
	if v != nil && v.Settled {
		return nil
	}
	rep.problem("packet %s: debited %d in the ledger but missing in Redis (stranded)", lp.ID, lp.Escrow)
	return nil
}
