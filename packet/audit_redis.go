package packet

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// redisBooks is what the Redis-only audit reads: every wallet's ledger
// entries and, per packet, its claims.
type redisBooks struct {
	ledgers map[string]ledgerEntries
	open    map[string]bool // packets whose debit has turned into shares
	expired map[string]bool // packets whose remainder is owed to the sender
	claims  map[string]map[string]int64
}

type ledgerEntries struct {
	debits, credits, refunds map[string]string // packet id -> amount (or "void")
}

func (s *Store) auditRedis(ctx context.Context) (AuditReport, error) {
	var rep AuditReport
	b := redisBooks{open: map[string]bool{}, expired: map[string]bool{}, claims: map[string]map[string]int64{}}
	var err error
	if b.ledgers, err = s.readLedgers(ctx); err != nil {
		return rep, err
	}
	if err := s.auditWallets(ctx, &rep, b); err != nil {
		return rep, err
	}
	if err := s.auditPackets(ctx, &rep, b); err != nil {
		return rep, err
	}
	auditEntries(&rep, b)
	if in := rep.Balances + rep.PendingDebits + rep.SharesLeft + rep.Uncredited + rep.UnpaidRefunds; in != rep.Funded {
		rep.problem("money not conserved: funded %d, accounted for %d (difference %d)", rep.Funded, in, in-rep.Funded)
	}
	return rep, nil
}

// readLedgers reads every wallet's idempotency records.
func (s *Store) readLedgers(ctx context.Context) (map[string]ledgerEntries, error) {
	keys, err := s.scan(ctx, s.cfg.Prefix+":{u:*}:ledger")
	if err != nil {
		return nil, err
	}
	out := map[string]ledgerEntries{}
	for _, key := range keys {
		m, err := s.rdb.HGetAll(ctx, key).Result()
		if err != nil {
			return nil, unavailable("audit", err)
		}
		le := ledgerEntries{map[string]string{}, map[string]string{}, map[string]string{}}
		for f, v := range m {
			kind, pid, _ := strings.Cut(f, ":")
			switch kind {
			case "d":
				le.debits[pid] = v
			case "c":
				le.credits[pid] = v
			case "r":
				le.refunds[pid] = v
			}
		}
		out[tagID(key, "{u:")] = le
	}
	return out, nil
}

// auditWallets adds up balances and checks each against its credits.
func (s *Store) auditWallets(ctx context.Context, rep *AuditReport, b redisBooks) error {
	keys, err := s.scan(ctx, s.cfg.Prefix+":{u:*}:wallet")
	if err != nil {
		return err
	}
	for _, key := range keys {
		user := tagID(key, "{u:")
		m, err := s.rdb.HGetAll(ctx, key).Result()
		if err != nil {
			return unavailable("audit", err)
		}
		w, err := parseWallet(m)
		if err != nil {
			rep.problem("user %s: %v", user, err)
			continue
		}
		rep.Wallets++
		rep.Funded += w.Funded
		rep.Balances += w.Balance
		if w.Balance < 0 {
			rep.problem("user %s: negative balance %d", user, w.Balance)
		}
		var received int64
		for _, v := range b.ledgers[user].credits {
			received += atoi64(v)
		}
		if received != w.ReceivedTotal {
			rep.problem("user %s: received total %d but credits add up to %d", user, w.ReceivedTotal, received)
		}
	}
	return nil
}

// auditPackets checks every packet against its sender's debit, its claims
// against their credits, and its refund.
func (s *Store) auditPackets(ctx context.Context, rep *AuditReport, b redisBooks) error {
	keys, err := s.scan(ctx, s.cfg.Prefix+":{p:*}:meta")
	if err != nil {
		return err
	}
	for _, key := range keys {
		id := tagID(key, "{p:")
		w, err := s.readWhole(ctx, id)
		if err != nil {
			return err
		}
		st, err := parseState(w.meta)
		if err != nil {
			rep.problem("packet %s: %v", id, err)
			continue
		}
		if st == nil {
			continue // pending or cancelled: holds no shares yet
		}
		s.auditPacket(rep, b, id, w, st)
	}
	return nil
}

func (s *Store) auditPacket(rep *AuditReport, b redisBooks, id string, w *wholePacket, st *State) {
	rep.Packets++
	b.open[id] = true
	if debit := b.ledgers[st.Sender.ID].debits[id]; debit != fmt.Sprint(st.Total) {
		rep.problem("packet %s: total %d but sender %s was debited %q", id, st.Total, st.Sender.ID, debit)
	}
	claims := s.checkPacket(rep, id, w, st)
	b.claims[id] = map[string]int64{}
	for _, c := range claims {
		rep.Claims++
		b.claims[id][c.User.ID] = c.Amount
		paid, ok := b.ledgers[c.User.ID].credits[id]
		switch {
		case !ok:
			rep.Uncredited += c.Amount
		case paid != fmt.Sprint(c.Amount):
			rep.problem("packet %s: user %s claimed %d but was credited %s", id, c.User.ID, c.Amount, paid)
		}
	}
	left, _ := sumShares(w.shares)
	if st.Status != StatusExpired {
		rep.SharesLeft += left
		return
	}
	b.expired[id] = true
	paid, ok := b.ledgers[st.Sender.ID].refunds[id]
	if !ok {
		rep.UnpaidRefunds += left
	} else if paid != fmt.Sprint(left) {
		rep.problem("packet %s: %d left at expiry but %s refunded", id, left, paid)
	}
}

// auditEntries checks the ledger entries against the packets: debits of
// packets not open yet are pending, and every credit and refund has its
// claim or expired packet.
func auditEntries(rep *AuditReport, b redisBooks) {
	for user, le := range b.ledgers {
		for pid, v := range le.debits {
			if v != "void" && !b.open[pid] {
				rep.PendingDebits += atoi64(v)
			}
		}
		for pid, v := range le.credits {
			if amount, ok := b.claims[pid][user]; !ok || fmt.Sprint(amount) != v {
				rep.problem("user %s: credited %s for packet %s without a matching claim", user, v, pid)
			}
		}
		for pid := range le.refunds {
			if !b.expired[pid] {
				rep.problem("user %s: refunded for packet %s that is not expired", user, pid)
			}
		}
	}
}

// scan lists the keys matching pattern, on every master of a cluster.
func (s *Store) scan(ctx context.Context, pattern string) ([]string, error) {
	var keys []string
	collect := func(ctx context.Context, c *redis.Client) ([]string, error) {
		var out []string
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			out = append(out, iter.Val())
		}
		return out, iter.Err()
	}
	switch c := s.rdb.(type) {
	case *redis.ClusterClient:
		var mu sync.Mutex
		err := c.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			k, err := collect(ctx, node)
			mu.Lock()
			keys = append(keys, k...)
			mu.Unlock()
			return err
		})
		if err != nil {
			return nil, unavailable("audit scan", err)
		}
	case *redis.Client:
		k, err := collect(ctx, c)
		if err != nil {
			return nil, unavailable("audit scan", err)
		}
		keys = k
	default:
		return nil, fmt.Errorf("audit: unsupported client %T", s.rdb)
	}
	return keys, nil
}

// tagID extracts the id from a key such as "hb:{u:alice}:wallet".
func tagID(key, open string) string {
	_, rest, _ := strings.Cut(key, open)
	return rest[:strings.LastIndex(rest, "}:")]
}
