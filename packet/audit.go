package packet

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// AuditReport is the result of checking that money is conserved:
//
//	Funded = Balances + PendingDebits + SharesLeft + Uncredited + UnpaidRefunds
//
// where PendingDebits are debits whose packet is not open yet, SharesLeft the
// shares of open packets, Uncredited the claims not yet paid into a wallet and
// UnpaidRefunds the remainders of expired packets not yet paid back.
type AuditReport struct {
	Funded        int64
	Balances      int64
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
	s := fmt.Sprintf("funded %d = balances %d + pending debits %d + shares left %d + uncredited %d + unpaid refunds %d (%d wallets, %d packets, %d claims)",
		r.Funded, r.Balances, r.PendingDebits, r.SharesLeft, r.Uncredited, r.UnpaidRefunds, r.Wallets, r.Packets, r.Claims)
	if r.OK() {
		return s + ": clean"
	}
	return s + ": " + strings.Join(r.Problems, "; ")
}

type ledgerEntries struct {
	debits, credits, refunds map[string]string // packet id -> amount (or "void")
}

// Audit walks every wallet and packet (SCAN, on every master of a cluster)
// and checks that no money was created, lost or paid twice. Its reads are not
// one snapshot: run it when no requests are in flight for an exact answer.
func (s *Store) Audit(ctx context.Context) (AuditReport, error) {
	var rep AuditReport
	problem := func(format string, args ...any) { rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...)) }

	walletKeys, err := s.scan(ctx, s.cfg.Prefix+":{u:*}:wallet")
	if err != nil {
		return rep, err
	}
	ledgerKeys, err := s.scan(ctx, s.cfg.Prefix+":{u:*}:ledger")
	if err != nil {
		return rep, err
	}
	metaKeys, err := s.scan(ctx, s.cfg.Prefix+":{p:*}:meta")
	if err != nil {
		return rep, err
	}

	ledgers := map[string]ledgerEntries{}
	for _, key := range ledgerKeys {
		user := tagID(key, "{u:")
		m, err := s.rdb.HGetAll(ctx, key).Result()
		if err != nil {
			return rep, unavailable("audit", err)
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
		ledgers[user] = le
	}
	for _, key := range walletKeys {
		user := tagID(key, "{u:")
		m, err := s.rdb.HGetAll(ctx, key).Result()
		if err != nil {
			return rep, unavailable("audit", err)
		}
		w, err := parseWallet(m)
		if err != nil {
			problem("user %s: %v", user, err)
			continue
		}
		rep.Wallets++
		rep.Funded += w.Funded
		rep.Balances += w.Balance
		if w.Balance < 0 {
			problem("user %s: negative balance %d", user, w.Balance)
		}
		var received int64
		for _, v := range ledgers[user].credits {
			received += atoi64(v)
		}
		if received != w.ReceivedTotal {
			problem("user %s: received total %d but credits add up to %d", user, w.ReceivedTotal, received)
		}
	}

	open := map[string]bool{}    // packets whose debit has turned into shares
	expired := map[string]bool{} // packets whose remainder is owed to the sender
	claimsByPacket := map[string]map[string]int64{}
	for _, key := range metaKeys {
		id := tagID(key, "{p:")
		d, err := s.loadPacket(ctx, id)
		if err != nil {
			return rep, err
		}
		if d == nil {
			continue // pending or cancelled: holds no shares yet
		}
		rep.Packets++
		open[id] = true
		debit := ledgers[d.Sender.ID].debits[id]
		if debit != fmt.Sprint(d.Total) {
			problem("packet %s: total %d but sender %s was debited %q", id, d.Total, d.Sender.ID, debit)
		}
		var claimed int64
		seen := map[int]bool{}
		claimsByPacket[id] = map[string]int64{}
		for _, c := range d.Claims {
			rep.Claims++
			claimed += c.Amount
			if seen[c.Seq] {
				problem("packet %s: grab position %d taken twice", id, c.Seq)
			}
			seen[c.Seq] = true
			claimsByPacket[id][c.User.ID] = c.Amount
			paid, ok := ledgers[c.User.ID].credits[id]
			switch {
			case !ok:
				rep.Uncredited += c.Amount
			case paid != fmt.Sprint(c.Amount):
				problem("packet %s: user %s claimed %d but was credited %s", id, c.User.ID, c.Amount, paid)
			}
			if c.Amount < s.cfg.Limits.MinShare {
				problem("packet %s: claim of %d below the minimum share", id, c.Amount)
			}
		}
		if len(d.Claims) != 0 && !seen[len(d.Claims)] {
			problem("packet %s: grab positions are not 1..%d", id, len(d.Claims))
		}
		switch d.Status {
		case StatusExpired:
			expired[id] = true
			paid, ok := ledgers[d.Sender.ID].refunds[id]
			if !ok {
				rep.UnpaidRefunds += d.Refunded
			} else if paid != fmt.Sprint(d.Refunded) {
				problem("packet %s: %d left at expiry but %s refunded", id, d.Refunded, paid)
			}
		default:
			rep.SharesLeft += d.RemainingAmount
			if len(d.Claims)+d.RemainingCount != d.Count {
				problem("packet %s: %d claims + %d shares left != count %d", id, len(d.Claims), d.RemainingCount, d.Count)
			}
		}
		if sum := claimed + d.Refunded + d.RemainingAmount; sum != d.Total {
			problem("packet %s: claims %d + refund %d + left %d = %d, total is %d", id, claimed, d.Refunded, d.RemainingAmount, sum, d.Total)
		}
		if d.Status == StatusEmpty && d.RemainingCount != 0 {
			problem("packet %s: empty with %d shares left", id, d.RemainingCount)
		}
	}

	for user, le := range ledgers {
		for pid, v := range le.debits {
			if v != "void" && !open[pid] {
				rep.PendingDebits += atoi64(v)
			}
		}
		for pid, v := range le.credits {
			if amount, ok := claimsByPacket[pid][user]; !ok || fmt.Sprint(amount) != v {
				problem("user %s: credited %s for packet %s without a matching claim", user, v, pid)
			}
		}
		for pid := range le.refunds {
			if !expired[pid] {
				problem("user %s: refunded for packet %s that is not expired", user, pid)
			}
		}
	}

	if in := rep.Balances + rep.PendingDebits + rep.SharesLeft + rep.Uncredited + rep.UnpaidRefunds; in != rep.Funded {
		problem("money not conserved: funded %d, accounted for %d (difference %d)", rep.Funded, in, in-rep.Funded)
	}
	return rep, nil
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

func atoi64(s string) int64 {
	n, _ := toInt64(s)
	return n
}
