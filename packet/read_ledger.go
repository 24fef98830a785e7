package packet

import (
	"context"
	"errors"
	"sort"

	"github.com/hongbao-dev/hongbao/internal/apierr"
	"github.com/hongbao-dev/hongbao/ledger"
)

// ledgerDetail reads a packet that Redis no longer (or not yet) holds.
func (s *Store) ledgerDetail(ctx context.Context, id string) (*Detail, error) {
	v, err := s.led.Packet(ctx, id)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable("read packet", err)
	}
	d := &Detail{State: State{Packet: packetOf(v).Packet}}
	var claimed int64
	for _, c := range v.Claims {
		d.Claims = append(d.Claims, Claim{User: User{ID: c.UserID, Name: c.UserName}, Amount: c.Amount, At: c.At, Seq: c.Seq})
		claimed += c.Amount
	}
	d.findLuckiest()
	switch v.Status {
	case "empty":
		d.Status = StatusEmpty
		dur := v.FinishedAt - v.VisibleAt
		d.DurationMs = &dur
	case "expired":
		d.Status, d.Refunded = StatusExpired, v.Refunded
	default:
		d.Status = StatusActive
		d.RemainingCount, d.RemainingAmount = v.Count-len(v.Claims), v.Total-claimed
	}
	return d, nil
}

func (s *Store) ledgerRoomPackets(ctx context.Context, room, viewer string, activeOnly bool, cursor string, limit int) ([]Listed, string, error) {
	rows, next, err := s.led.RoomPackets(ctx, room, viewer, cursor, limit)
	if err != nil {
		return nil, "", readError("room packets", err)
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	live, err := s.liveStates(ctx, ids, viewer)
	if err != nil {
		return nil, "", err
	}
	out := make([]Listed, 0, len(rows))
	for i, r := range rows {
		l := live[i]
		if l == nil {
			l = listedOf(r)
		}
		if !activeOnly || l.Status == StatusActive {
			out = append(out, *l)
		}
	}
	return out, next, nil
}

// readError maps a ledger read failure: a cursor the ledger cannot read is
// the caller's mistake, anything else is unavailable.
func readError(op string, err error) error {
	if errors.Is(err, ledger.ErrInvalid) {
		return apierr.Refuse(ErrInvalidRequest, "%s: the cursor is not one this server gave", op)
	}
	return unavailable(op, err)
}

func listedOf(r ledger.Listed) *Listed {
	l := &Listed{State: State{Packet: Packet{
		ID: r.ID, Room: r.Room, Sender: User{ID: r.SenderID, Name: r.SenderName}, Kind: Kind(r.Kind),
		Total: r.Total, Count: r.Count, Greeting: r.Greeting,
		CreatedAt: r.CreatedAt, VisibleAt: r.VisibleAt, ExpiresAt: r.ExpiresAt,
		To: usersOf(r.To, r.ToNames), Password: r.Password, OpensAt: r.OpensAt,
	}}, Mine: r.Mine}
	switch r.Status {
	case "empty":
		l.Status = StatusEmpty
	case "expired":
		l.Status = StatusExpired
	default:
		l.Status = StatusActive
		l.RemainingCount, l.RemainingAmount = r.Count-r.ClaimedCount, r.Total-r.ClaimedAmount
	}
	return l
}

// ledgerWallet is the committed wallet plus the claims still on their way.
func (s *Store) ledgerWallet(ctx context.Context, userID string) (Wallet, error) {
	lw, pending, err := s.uncommitted(ctx, userID)
	if err != nil {
		return Wallet{}, err
	}
	w := Wallet{Balance: lw.Balance, Funded: lw.Funded, ReceivedTotal: lw.ReceivedTotal, ReceivedCount: lw.ReceivedCount,
		SentTotal: lw.SentTotal, SentCount: lw.SentCount, Refunded: lw.Refunded}
	for _, c := range pending {
		w.PendingTotal += c.Amount
		w.PendingCount++
	}
	return w, nil
}

// uncommitted reads the claims of user on their way to the ledger, then
// the committed wallet and which of those claims it holds, in one ledger
// snapshot. The claims on their way are this instance's in flight, then
// the pending markers in Redis, read in that order: a claim leaves the
// in-flight set only once it is committed or its marker is written, so
// every claim this instance handed over, and every claim whose commit was
// delayed, is counted once: in the balance, or among the pending claims
// returned (newest first). A claim another instance holds in flight shows
// once that instance commits it (normally within milliseconds); should
// that instance die first, once the sweeper does.
func (s *Store) uncommitted(ctx context.Context, userID string) (ledger.Wallet, []UserClaim, error) {
	pending := s.set.flight.of(userID)
	marked, err := s.pendingClaims(ctx, userID)
	if err != nil {
		return ledger.Wallet{}, nil, unavailable("wallet", err)
	}
	for id, c := range marked {
		pending[id] = c
	}
	ids := make([]string, 0, len(pending))
	for id := range pending {
		ids = append(ids, id)
	}
	w, done, err := s.led.WalletAndCommitted(ctx, userID, ids)
	if err != nil {
		return ledger.Wallet{}, nil, unavailable("wallet", err)
	}
	var out []UserClaim
	for id, c := range pending {
		if !done[id] {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At > out[j].At })
	return w, out, nil
}

func (s *Store) ledgerClaims(ctx context.Context, userID, cursor string, limit int) ([]UserClaim, string, error) {
	var out []UserClaim
	if cursor == "" {
		_, pending, err := s.uncommitted(ctx, userID)
		if err != nil {
			return nil, "", err
		}
		// Pending claims are few and come first; the page stays within limit.
		out = pending[:min(len(pending), max(limit-1, 0))]
	}
	rows, next, err := s.led.UserClaims(ctx, userID, cursor, max(limit-len(out), 1))
	if err != nil {
		return nil, "", readError("claims", err)
	}
	for _, r := range rows {
		out = append(out, UserClaim{PacketID: r.PacketID, Room: r.Room, Amount: r.Amount, At: r.At})
	}
	return out, next, nil
}
