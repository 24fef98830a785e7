package ledger

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
)

// Claim is one user's share of a packet: the Seq-th grab (1-based), of
// Amount fen, at At (unix ms).
type Claim struct {
	PacketID, UserID, UserName string
	Seq                        int
	Amount, At                 int64
}

// Rejection is a claim Settle refused, and why (one of the Reason constants).
type Rejection struct {
	Claim  Claim
	Reason string
}

type claimID struct{ packet, user string }

type seqID struct {
	packet string
	seq    int
}

// escrowState is a locked escrow account and what its packet allows.
type escrowState struct {
	balance      int64
	count        int
	room, sender string // for webhook events
}

// Settle commits claims and credits each winner's wallet (balance,
// received_total, received_count), in one transaction for the whole batch,
// once per (packet, user): the movement is claim:<packet>:<user>.
//
// committed lists, in batch order, every claim of the batch that is
// committed when Settle returns: by this call, or by an earlier one with the
// same amount (skipped: a replay moves no money and returns the same list).
// A claim committed before with a different amount is rejected
// (ReasonDiffers). A claim for an unknown
// packet, one its packet's escrow cannot cover (after the batch's earlier
// claims), one whose seq another user holds, and a second claim for one
// (packet, user) in the batch are rejected and never committed; the rest
// commit.
//
// Settle locks the escrow accounts, then the wallets, each in id order, so
// concurrent Settles (and Finish, which also locks escrow before wallet)
// cannot deadlock; with the escrows locked, nothing else can commit claims of
// those packets until it ends.
func (l *Ledger) Settle(ctx context.Context, claims []Claim) (committed []Claim, rejected []Rejection, err error) {
	candidates, early := screenClaims(claims)
	if len(candidates) == 0 {
		return nil, early, nil
	}
	err = l.inTx(ctx, func(tx pgx.Tx) error {
		escrows, err := lockEscrows(ctx, tx, candidates)
		if err != nil {
			return err
		}
		byUser, bySeq, err := existingClaims(ctx, tx, candidates)
		if err != nil {
			return err
		}
		var fresh []Claim
		fresh, committed, rejected = judgeClaims(candidates, escrows, byUser, bySeq)
		if len(fresh) == 0 {
			return nil
		}
		if err := writeClaims(ctx, tx, fresh); err != nil {
			return err
		}
		return l.enqueue(ctx, tx, settledEvents(fresh, escrows, time.Now().UnixMilli()))
	})
	if err != nil {
		return nil, nil, fmt.Errorf("ledger: settle: %w", err)
	}
	return committed, append(early, rejected...), nil
}

// screenClaims drops what needs no database to refuse: malformed claims and
// repeats within the batch (an identical repeat is silently merged).
func screenClaims(claims []Claim) (candidates []Claim, rejected []Rejection) {
	byUser := map[claimID]Claim{}
	bySeq := map[seqID]bool{}
	for _, c := range claims {
		id, seq := claimID{c.PacketID, c.UserID}, seqID{c.PacketID, c.Seq}
		switch first, dup := byUser[id]; {
		case !validUUID(c.PacketID) || c.UserID == "" || c.Seq <= 0 || c.Amount <= 0:
			rejected = append(rejected, Rejection{c, ReasonInvalid})
		case dup && first == c:
		case dup:
			rejected = append(rejected, Rejection{c, ReasonDuplicateInCall})
		case bySeq[seq]:
			rejected = append(rejected, Rejection{c, ReasonSeqTaken})
		default:
			byUser[id], bySeq[seq] = c, true
			candidates = append(candidates, c)
		}
	}
	return candidates, rejected
}

// lockEscrows locks (FOR UPDATE, in account id order) the escrow accounts of
// the claims' packets and returns them by packet id; unknown packets are
// absent.
func lockEscrows(ctx context.Context, tx pgx.Tx, claims []Claim) (map[string]escrowState, error) {
	var ids []string
	seen := map[string]bool{}
	for _, c := range claims {
		if !seen[c.PacketID] {
			seen[c.PacketID] = true
			ids = append(ids, c.PacketID)
		}
	}
	rows, err := tx.Query(ctx, `select p.id::text, a.balance, p.count, p.room, p.sender_id
		from packets p join accounts a on a.id = 'escrow:' || p.id
		where p.id = any($1::uuid[])
		order by a.id for update of a`, ids)
	if err != nil {
		return nil, err
	}
	escrows := map[string]escrowState{}
	var id string
	var e escrowState
	_, err = pgx.ForEachRow(rows, []any{&id, &e.balance, &e.count, &e.room, &e.sender}, func() error {
		escrows[id] = e
		return nil
	})
	return escrows, err
}

// existingClaims returns the committed claims that share a (packet, user) or
// a (packet, seq) with the candidates.
func existingClaims(ctx context.Context, tx pgx.Tx, candidates []Claim) (map[claimID]Claim, map[seqID]string, error) {
	packets, users, seqs := make([]string, len(candidates)), make([]string, len(candidates)), make([]int32, len(candidates))
	for i, c := range candidates {
		packets[i], users[i], seqs[i] = c.PacketID, c.UserID, int32(c.Seq)
	}
	rows, err := tx.Query(ctx, `select c.packet_id::text, c.user_id, c.user_name, c.seq, c.amount, c.at
		from claims c join unnest($1::uuid[], $2::text[], $3::int[]) as u(packet_id, user_id, seq)
			on c.packet_id = u.packet_id and (c.user_id = u.user_id or c.seq = u.seq)`, packets, users, seqs)
	if err != nil {
		return nil, nil, err
	}
	byUser, bySeq := map[claimID]Claim{}, map[seqID]string{}
	var c Claim
	_, err = pgx.ForEachRow(rows, []any{&c.PacketID, &c.UserID, &c.UserName, &c.Seq, &c.Amount, &c.At}, func() error {
		byUser[claimID{c.PacketID, c.UserID}] = c
		bySeq[seqID{c.PacketID, c.Seq}] = c.UserID
		return nil
	})
	return byUser, bySeq, err
}

// judgeClaims decides each candidate against the locked escrows and the
// committed claims, in batch order (escrow covers claims first come, first
// served): fresh are to be written, committed are fresh plus those already
// written identically.
func judgeClaims(candidates []Claim, escrows map[string]escrowState, byUser map[claimID]Claim, bySeq map[seqID]string) (fresh, committed []Claim, rejected []Rejection) {
	taken := map[string]int64{} // packet -> accepted in this batch
	for _, c := range candidates {
		e, known := escrows[c.PacketID]
		prior, done := byUser[claimID{c.PacketID, c.UserID}]
		holder, seqUsed := bySeq[seqID{c.PacketID, c.Seq}]
		switch {
		case !known:
			rejected = append(rejected, Rejection{c, ReasonUnknownPacket})
		case done && prior.Amount == c.Amount:
			committed = append(committed, c)
		case done:
			rejected = append(rejected, Rejection{c, ReasonDiffers})
		case c.Seq > e.count:
			rejected = append(rejected, Rejection{c, ReasonInvalid})
		case seqUsed && holder != c.UserID:
			rejected = append(rejected, Rejection{c, ReasonSeqTaken})
		case c.Amount > e.balance-taken[c.PacketID]:
			rejected = append(rejected, Rejection{c, ReasonExceedsEscrow})
		default:
			taken[c.PacketID] += c.Amount
			fresh, committed = append(fresh, c), append(committed, c)
		}
	}
	return fresh, committed, rejected
}

// writeClaims records the accepted claims in one round trip: winners'
// wallets (created if need be, locked in id order) credited, then the claim
// rows, their movements and postings, then the escrows debited.
func writeClaims(ctx context.Context, tx pgx.Tx, claims []Claim) error {
	n := len(claims)
	packets, users, names := make([]string, n), make([]string, n), make([]string, n)
	seqs, amounts, ats := make([]int32, n), make([]int64, n), make([]int64, n)
	perEscrow, perWallet := map[string]int64{}, map[string]int64{}
	perWalletCount := map[string]int64{}
	for i, c := range claims {
		packets[i], users[i], names[i] = c.PacketID, c.UserID, c.UserName
		seqs[i], amounts[i], ats[i] = int32(c.Seq), c.Amount, c.At
		perEscrow[escrowID(c.PacketID)] += c.Amount
		perWallet[c.UserID] += c.Amount
		perWalletCount[c.UserID]++
	}
	wUsers, wAmounts := sortedTotals(perWallet)
	wCounts := make([]int64, len(wUsers))
	for i, u := range wUsers {
		wCounts[i] = perWalletCount[u]
	}
	eIDs, eAmounts := sortedTotals(perEscrow)

	b := &pgx.Batch{}
	b.Queue(`insert into accounts (id, kind, owner, balance, received_total, received_count)
		select 'wallet:' || u, 'wallet', u, a, a, n from unnest($1::text[], $2::bigint[], $3::bigint[]) as w(u, a, n)
		order by 1
		on conflict (id) do update set balance = accounts.balance + excluded.balance,
			received_total = accounts.received_total + excluded.received_total,
			received_count = accounts.received_count + excluded.received_count, updated_at = now()`,
		wUsers, wAmounts, wCounts)
	b.Queue(`insert into claims (packet_id, user_id, user_name, seq, amount, at)
		select * from unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::bigint[], $6::bigint[])`,
		packets, users, names, seqs, amounts, ats)
	b.Queue(`insert into movements (key, kind, packet_id, user_id, amount)
		select 'claim:' || p || ':' || u, 'claim', p, u, a from unnest($1::uuid[], $2::text[], $3::bigint[]) as c(p, u, a)`,
		packets, users, amounts)
	b.Queue(`insert into postings (movement, account, amount)
		select 'claim:' || p || ':' || u, 'escrow:' || p, -a from unnest($1::uuid[], $2::text[], $3::bigint[]) as c(p, u, a)
		union all
		select 'claim:' || p || ':' || u, 'wallet:' || u, a from unnest($1::uuid[], $2::text[], $3::bigint[]) as c(p, u, a)`,
		packets, users, amounts)
	b.Queue(`update accounts a set balance = a.balance - d.amount, updated_at = now()
		from unnest($1::text[], $2::bigint[]) as d(id, amount) where a.id = d.id`, eIDs, eAmounts)
	return tx.SendBatch(ctx, b).Close()
}

// sortedTotals returns m's keys in order and their values.
func sortedTotals(m map[string]int64) ([]string, []int64) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	vals := make([]int64, len(keys))
	for i, k := range keys {
		vals[i] = m[k]
	}
	return keys, vals
}
