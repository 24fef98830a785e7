package ledger

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// LivePacket is an unsettled packet as Snapshot saw it.
type LivePacket struct {
	ID, SenderID, Status string
	Total                int64
	Count                int
	CreatedAt, ExpiresAt int64
	// Escrow is the escrow account's balance; EscrowPostings the sum of the
	// postings on it. They are equal, and equal to Total - Σ Claims -
	// Refunded, when the books are right.
	Escrow, EscrowPostings int64
	Refunded               int64
	// Claims are the committed claims, in seq order.
	Claims []Claim
	// Debited: the debit:<id> movement exists.
	Debited bool
	// Unbalanced lists this packet's movements whose postings do not sum to
	// 0 or do not move the movement's amount.
	Unbalanced []string
}

// Snapshot is the books at one committed instant.
type Snapshot struct {
	// Funded is all money ever put in: -(funding balance).
	Funded int64
	// Wallets and Escrow are the sums of wallet and escrow balances.
	Wallets, Escrow int64
	// Sum is the sum of all balances: 0 when the books balance, i.e.
	// Funded == Wallets + Escrow.
	Sum int64
	// Live are the packets not yet settled (settled_at null), oldest first.
	Live []LivePacket
	// Problems lists the inconsistencies found, each naming ids; empty
	// means clean.
	Problems []string
}

// Snapshot reads, in one repeatable-read read-only transaction (so it is
// exact while writes flow: each write is one transaction), the global sums
// and every unsettled packet with its claims and escrow. It touches only
// accounts holding money (a partial index) and live packets, never the
// history. Problems it reports: Sum != 0; a balance below 0 other than
// funding's; an escrow holding money whose packet is missing or settled; a
// live packet without a debit (or one of another amount), without an escrow
// account, whose escrow differs from its postings or from Total - Σ claims -
// Refunded, with more claims than shares, or with unbalanced movements; and
// every refused claim not yet resolved (RecordRefused).
func (l *Ledger) Snapshot(ctx context.Context) (*Snapshot, error) {
	s := &Snapshot{}
	err := l.readTx(ctx, func(tx pgx.Tx) error {
		for _, step := range []func(context.Context, pgx.Tx, *Snapshot) error{
			readSums, readNegative, readStrayEscrows, readLive, readLiveClaims, readLiveMovements, readRefused,
		} {
			if err := step(ctx, tx, s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: snapshot: %w", err)
	}
	for i := range s.Live {
		s.Problems = append(s.Problems, s.Live[i].problems()...)
	}
	return s, nil
}

func (s *Snapshot) problem(format string, args ...any) {
	s.Problems = append(s.Problems, fmt.Sprintf(format, args...))
}

func readSums(ctx context.Context, tx pgx.Tx, s *Snapshot) error {
	rows, err := tx.Query(ctx, `select kind, sum(balance)::bigint from accounts where balance <> 0 group by kind`)
	if err != nil {
		return err
	}
	var kind string
	var sum int64
	_, err = pgx.ForEachRow(rows, []any{&kind, &sum}, func() error {
		switch kind {
		case "funding":
			s.Funded = -sum
		case "wallet":
			s.Wallets = sum
		case "escrow":
			s.Escrow = sum
		}
		s.Sum += sum
		return nil
	})
	if err == nil && s.Sum != 0 {
		s.problem("books do not balance: funded %d != wallets %d + escrow %d (Σ balances %d)", s.Funded, s.Wallets, s.Escrow, s.Sum)
	}
	return err
}

func readNegative(ctx context.Context, tx pgx.Tx, s *Snapshot) error {
	rows, err := tx.Query(ctx, `select id, balance from accounts where balance <> 0 and balance < 0 and kind <> 'funding' order by id`)
	if err != nil {
		return err
	}
	var id string
	var balance int64
	_, err = pgx.ForEachRow(rows, []any{&id, &balance}, func() error {
		s.problem("account %s has a negative balance %d", id, balance)
		return nil
	})
	return err
}

// readStrayEscrows finds escrows holding money that no live packet accounts
// for: money debited for a packet that is missing, or left in a settled one.
func readStrayEscrows(ctx context.Context, tx pgx.Tx, s *Snapshot) error {
	rows, err := tx.Query(ctx, `select a.id, a.balance, p.id is not null
		from accounts a left join packets p on p.id = a.owner::uuid
		where a.balance <> 0 and a.kind = 'escrow' and (p.id is null or p.settled_at is not null)
		order by a.id`)
	if err != nil {
		return err
	}
	var id string
	var balance int64
	var exists bool
	_, err = pgx.ForEachRow(rows, []any{&id, &balance, &exists}, func() error {
		if exists {
			s.problem("%s holds %d but its packet is settled", id, balance)
		} else {
			s.problem("%s holds %d but its packet is missing", id, balance)
		}
		return nil
	})
	return err
}

// readLive reads the unsettled packets with their escrow and debit.
func readLive(ctx context.Context, tx pgx.Tx, s *Snapshot) error {
	rows, err := tx.Query(ctx, `select p.id::text, p.sender_id, p.status, p.total, p.count, p.created_at, p.expires_at,
			coalesce(p.refunded, 0), a.balance,
			(select coalesce(sum(amount), 0)::bigint from postings where account = 'escrow:' || p.id),
			d.amount
		from packets p
		left join accounts a on a.id = 'escrow:' || p.id
		left join movements d on d.key = 'debit:' || p.id
		where p.settled_at is null
		order by p.created_at, p.id`)
	if err != nil {
		return err
	}
	var lp LivePacket
	var escrow, debit *int64
	_, err = pgx.ForEachRow(rows, []any{&lp.ID, &lp.SenderID, &lp.Status, &lp.Total, &lp.Count, &lp.CreatedAt,
		&lp.ExpiresAt, &lp.Refunded, &escrow, &lp.EscrowPostings, &debit}, func() error {
		lp.Escrow, lp.Debited = 0, debit != nil
		if escrow != nil {
			lp.Escrow = *escrow
		} else {
			s.problem("live packet %s has no escrow account", lp.ID)
		}
		if debit != nil && *debit != lp.Total {
			s.problem("live packet %s: debit of %d for a total of %d", lp.ID, *debit, lp.Total)
		}
		s.Live = append(s.Live, lp)
		return nil
	})
	return err
}

// readLiveClaims attaches the committed claims to the live packets (looked
// up by packet id, so claims of settled packets are never read).
func readLiveClaims(ctx context.Context, tx pgx.Tx, s *Snapshot) error {
	ids := make([]string, len(s.Live))
	for i, lp := range s.Live {
		ids[i] = lp.ID
	}
	rows, err := tx.Query(ctx, `select packet_id::text, user_id, user_name, seq, amount, at
		from claims where packet_id = any($1::uuid[])
		order by packet_id, seq`, ids)
	if err != nil {
		return err
	}
	claims, err := pgx.CollectRows(rows, scanClaim)
	if err != nil {
		return err
	}
	index := s.liveIndex()
	for _, c := range claims {
		lp := &s.Live[index[c.PacketID]]
		lp.Claims = append(lp.Claims, c)
	}
	return nil
}

func (s *Snapshot) liveIndex() map[string]int {
	index := make(map[string]int, len(s.Live))
	for i, lp := range s.Live {
		index[lp.ID] = i
	}
	return index
}

// readLiveMovements checks the movements of live packets: each must exist
// and its postings must sum to 0 and move its amount.
func readLiveMovements(ctx context.Context, tx pgx.Tx, s *Snapshot) error {
	var keys, owners []string
	for _, lp := range s.Live {
		keys = append(keys, debitKey(lp.ID))
		owners = append(owners, lp.ID)
		if lp.Status == StatusExpired {
			keys = append(keys, refundKey(lp.ID))
			owners = append(owners, lp.ID)
		}
		for _, c := range lp.Claims {
			keys = append(keys, claimKey(lp.ID, c.UserID))
			owners = append(owners, lp.ID)
		}
	}
	rows, err := tx.Query(ctx, `select k.key, k.owner, m.key is not null, coalesce(m.amount, 0),
			coalesce(sum(p.amount), 0)::bigint, coalesce(sum(p.amount) filter (where p.amount > 0), 0)::bigint
		from unnest($1::text[], $2::text[]) as k(key, owner)
		left join movements m on m.key = k.key
		left join postings p on p.movement = k.key
		group by k.key, k.owner, m.key, m.amount
		order by k.key`, keys, owners)
	if err != nil {
		return err
	}
	index := s.liveIndex()
	var key, owner string
	var exists bool
	var amount, sum, credited int64
	_, err = pgx.ForEachRow(rows, []any{&key, &owner, &exists, &amount, &sum, &credited}, func() error {
		lp := &s.Live[index[owner]]
		switch {
		case !exists && key == debitKey(owner): // reported as not Debited
		case !exists:
			s.problem("live packet %s: movement %s is missing", owner, key)
		case sum != 0 || credited != amount:
			lp.Unbalanced = append(lp.Unbalanced, key)
		}
		return nil
	})
	return err
}

// problems reports what is wrong with a live packet by itself.
func (lp *LivePacket) problems() []string {
	var out []string
	add := func(format string, args ...any) {
		out = append(out, fmt.Sprintf("live packet %s: ", lp.ID)+fmt.Sprintf(format, args...))
	}
	if !lp.Debited {
		add("no debit")
	}
	if lp.Escrow != lp.EscrowPostings {
		add("escrow %d != Σ its postings %d", lp.Escrow, lp.EscrowPostings)
	}
	var claimed int64
	for _, c := range lp.Claims {
		claimed += c.Amount
	}
	if want := lp.Total - claimed - lp.Refunded; lp.Escrow != want {
		add("escrow %d != total %d - claims %d - refund %d", lp.Escrow, lp.Total, claimed, lp.Refunded)
	}
	if len(lp.Claims) > lp.Count {
		add("%d claims for %d shares", len(lp.Claims), lp.Count)
	}
	for _, key := range lp.Unbalanced {
		add("movement %s is unbalanced", key)
	}
	return out
}

// Difference is one thing CheckJournal found wrong: with an account, a
// movement, or both named.
type Difference struct {
	Account, Movement string
	Detail            string
}

// CheckJournal verifies the journal and reports each difference; it fixes
// nothing. It checks that every movement's postings sum to 0 and move its
// amount, and that a packet's movement has its packet (and a claim movement
// its claim row, a claim row its movement); that every account's balance is
// the sum of its postings; that every wallet's funded, received_total,
// received_count, sent_total, sent_count and refunded match its postings of
// each kind; and that every packet has a debit of its total. since zero
// checks everything; otherwise only movements and claims made, and accounts
// and packets changed or created, at or after since. It reads one
// repeatable-read snapshot; its cost grows with the journal checked.
func (l *Ledger) CheckJournal(ctx context.Context, since time.Time) ([]Difference, error) {
	from := window{at: pgtype.Timestamptz{Time: since, Valid: true}, ms: since.UnixMilli()}
	if since.IsZero() {
		from = window{at: pgtype.Timestamptz{InfinityModifier: pgtype.NegativeInfinity, Valid: true}, ms: math.MinInt64}
	}
	var diffs []Difference
	err := l.readTx(ctx, func(tx pgx.Tx) error {
		for _, check := range []func(context.Context, pgx.Tx, window) ([]Difference, error){
			checkMovements, checkClaimRows, checkBalances, checkWallets, checkDebits,
		} {
			found, err := check(ctx, tx, from)
			if err != nil {
				return err
			}
			diffs = append(diffs, found...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: check journal: %w", err)
	}
	return diffs, nil
}

// window is where CheckJournal starts, as a timestamp and in unix ms.
type window struct {
	at pgtype.Timestamptz
	ms int64
}

// collectDiffs turns rows of (account, movement, detail) into Differences.
func collectDiffs(rows pgx.Rows, err error) ([]Difference, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Difference])
}

func checkMovements(ctx context.Context, tx pgx.Tx, from window) ([]Difference, error) {
	return collectDiffs(tx.Query(ctx, `select '', key, detail from (
		select m.key, case
			when coalesce(s.total, 0) <> 0 then format('postings sum to %s, not 0', s.total)
			when coalesce(s.credited, 0) <> m.amount then format('postings move %s, not the amount %s', coalesce(s.credited, 0), m.amount)
			when m.packet_id is not null and not exists (select 1 from packets where id = m.packet_id)
				then format('its packet %s is missing', m.packet_id)
			when m.kind = 'claim' and not exists (select 1 from claims c
					where c.packet_id = m.packet_id and c.user_id = m.user_id and c.amount = m.amount)
				then 'no claim row of its amount'
			end as detail
		from movements m
		left join lateral (select sum(amount) as total, sum(amount) filter (where amount > 0) as credited
			from postings where movement = m.key) s on true
		where m.at >= $1) x
		where detail is not null order by key`, from.at))
}

func checkClaimRows(ctx context.Context, tx pgx.Tx, from window) ([]Difference, error) {
	return collectDiffs(tx.Query(ctx, `select '', 'claim:' || c.packet_id || ':' || c.user_id,
			format('claim row of %s has no movement of that amount', c.amount)
		from claims c left join movements m on m.key = 'claim:' || c.packet_id || ':' || c.user_id
		where c.committed_at >= $1 and (m.key is null or m.amount <> c.amount)
		order by 2`, from.at))
}

func checkBalances(ctx context.Context, tx pgx.Tx, from window) ([]Difference, error) {
	return collectDiffs(tx.Query(ctx, `select a.id, '', format('balance %s != Σ postings %s', a.balance, coalesce(s.total, 0))
		from accounts a
		left join lateral (select sum(amount) as total from postings where account = a.id) s on true
		where a.updated_at >= $1 and a.balance <> coalesce(s.total, 0)
		order by a.id`, from.at))
}

// checkWallets compares each wallet's counters with its postings by kind.
func checkWallets(ctx context.Context, tx pgx.Tx, from window) ([]Difference, error) {
	return collectDiffs(tx.Query(ctx, `select id, '', format('%s is %s, its postings say %s', counter, have, want) from (
		select a.id, c.counter, c.have, c.want
		from accounts a
		cross join lateral (select
				coalesce(sum(p.amount) filter (where m.kind = 'fund'), 0) as funded,
				coalesce(sum(p.amount) filter (where m.kind = 'claim'), 0) as received_total,
				count(*) filter (where m.kind = 'claim') as received_count,
				coalesce(-sum(p.amount) filter (where m.kind = 'debit'), 0) as sent_total,
				count(*) filter (where m.kind = 'debit') as sent_count,
				coalesce(sum(p.amount) filter (where m.kind = 'refund'), 0) as refunded
			from postings p join movements m on m.key = p.movement where p.account = a.id) t
		cross join lateral (values
				('funded', a.funded, t.funded), ('received_total', a.received_total, t.received_total),
				('received_count', a.received_count, t.received_count), ('sent_total', a.sent_total, t.sent_total),
				('sent_count', a.sent_count, t.sent_count), ('refunded', a.refunded, t.refunded)
			) as c(counter, have, want)
		where a.kind = 'wallet' and a.updated_at >= $1 and c.have <> c.want) x
		order by id, counter`, from.at))
}

// checkDebits finds packets without a debit movement of their total.
func checkDebits(ctx context.Context, tx pgx.Tx, from window) ([]Difference, error) {
	return collectDiffs(tx.Query(ctx, `select 'escrow:' || p.id, 'debit:' || p.id,
			case when d.key is null then 'packet has no debit' else format('debit of %s for a total of %s', d.amount, p.total) end
		from packets p left join movements d on d.key = 'debit:' || p.id
		where p.created_at >= $1 and (d.key is null or d.amount <> p.total)
		order by p.id`, from.ms))
}
