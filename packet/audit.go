package packet

import (
	"context"
	"fmt"
	"strings"
)

// AuditReport is the result of checking that money is conserved.
//
// Without a ledger (all money in Redis):
//
//	Funded = Balances + PendingDebits + SharesLeft + Uncredited + UnpaidRefunds
//
// where PendingDebits are debits whose packet is not open yet, SharesLeft the
// shares of open packets, Uncredited the claims not yet paid into a wallet and
// UnpaidRefunds the remainders of expired packets not yet paid back.
//
// With a ledger, from one PostgreSQL snapshot plus one atomic read of each
// live packet in Redis:
//
//	Funded = Balances + Escrow, and for every live packet
//	Escrow = SharesLeft + Uncredited (claims in Redis not committed yet)
//	         + PendingDebits (a create between its commit and Redis)
type AuditReport struct {
	Funded        int64
	Balances      int64
	Escrow        int64
	PendingDebits int64
	SharesLeft    int64
	Uncredited    int64
	UnpaidRefunds int64
	Wallets       int
	Packets       int
	Claims        int
	// Problems lists every inconsistency found; empty means clean.
	Problems []string
}

// OK reports a clean audit.
func (r AuditReport) OK() bool { return len(r.Problems) == 0 }

func (r AuditReport) String() string {
	s := fmt.Sprintf("funded %d = balances %d + escrow %d; pending debits %d, shares left %d, uncredited %d, unpaid refunds %d (%d wallets, %d packets, %d claims)",
		r.Funded, r.Balances, r.Escrow, r.PendingDebits, r.SharesLeft, r.Uncredited, r.UnpaidRefunds, r.Wallets, r.Packets, r.Claims)
	if r.OK() {
		return s + ": clean"
	}
	return s + ": " + strings.Join(r.Problems, "; ")
}

func (r *AuditReport) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// Audit checks that no money was created, lost or paid twice. With a ledger
// it is exact while traffic flows, and its cost is proportional to the live
// packets. Without one it walks every wallet and packet (SCAN) and is exact
// only when no requests are in flight.
func (s *Store) Audit(ctx context.Context) (AuditReport, error) {
	if s.led != nil {
		return s.auditLedger(ctx)
	}
	return s.auditRedis(ctx)
}

// wholePacket is one packet read atomically: meta, shares and claims.
type wholePacket struct {
	meta   map[string]string
	shares []string
	claims map[string]string
}

func (s *Store) readWhole(ctx context.Context, id string) (*wholePacket, error) {
	res, err := s.lua.readPacket.Run(ctx, s.rdb, s.k.packetKeys(id)[:3]).Slice()
	if err != nil {
		return nil, unavailable("audit", err)
	}
	if len(res) != 3 {
		return nil, fmt.Errorf("audit %s: reply has %d parts", id, len(res))
	}
	w := &wholePacket{meta: pairs(res[0]), claims: pairs(res[2])}
	for _, v := range asList(res[1]) {
		w.shares = append(w.shares, asString(v))
	}
	return w, nil
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func pairs(v any) map[string]string {
	l := asList(v)
	m := make(map[string]string, len(l)/2)
	for i := 0; i+1 < len(l); i += 2 {
		m[asString(l[i])] = asString(l[i+1])
	}
	return m
}

// checkPacket verifies one packet's own arithmetic: shares and claims add
// up to its total and count, grab positions are 1..n, meta's left_* match
// the shares. It returns the packet's claims.
func (s *Store) checkPacket(rep *AuditReport, id string, w *wholePacket, st *State) []Claim {
	claims, err := parseClaims(w.claims)
	if err != nil {
		rep.problem("packet %s: %v", id, err)
		return nil
	}
	left, err := sumShares(w.shares)
	if err != nil {
		rep.problem("packet %s: %v", id, err)
	}
	var claimed int64
	for i, c := range claims {
		claimed += c.Amount
		if c.Seq != i+1 {
			rep.problem("packet %s: grab positions are not 1..%d", id, len(claims))
			break
		}
	}
	for _, c := range claims {
		if c.Amount < s.cfg.Limits.MinShare {
			rep.problem("packet %s: claim of %d below the minimum share", id, c.Amount)
		}
	}
	if claimed+left != st.Total {
		rep.problem("packet %s: claims %d + shares left %d != total %d", id, claimed, left, st.Total)
	}
	if len(claims)+len(w.shares) != st.Count {
		rep.problem("packet %s: %d claims + %d shares left != count %d", id, len(claims), len(w.shares), st.Count)
	}
	if left != st.RemainingAmount || len(w.shares) != st.RemainingCount {
		rep.problem("packet %s: meta says %d fen in %d shares left, the shares hold %d in %d", id, st.RemainingAmount, st.RemainingCount, left, len(w.shares))
	}
	if st.Status == StatusEmpty && len(w.shares) != 0 {
		rep.problem("packet %s: empty with %d shares left", id, len(w.shares))
	}
	return claims
}
