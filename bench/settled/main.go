// Command settled measures what settled packets leave behind: it opens N
// packets through a ledger-mode store, grabs every share, lets the settler
// and the sweeper finish them, waits out HONGBAO_RETAIN_SETTLED, and then
// reports Redis memory and keys per settled packet and how long the audit
// takes with that much history in the ledger.
//
//	go run ./bench/settled -redis redis://127.0.0.1:6390/0 \
//	    -db postgres://postgres@127.0.0.1:5432/hbbench -n 100000
//
// It flushes the Redis database it is given and wants an empty PostgreSQL
// database (it applies the migrations). Output is one JSON object.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hongbao-dev/hongbao/ledger"
	"github.com/hongbao-dev/hongbao/packet"
	"github.com/redis/go-redis/v9"
)

type result struct {
	Packets             int     `json:"packets"`
	SharesPerPacket     int     `json:"shares_per_packet"`
	OpenSeconds         float64 `json:"open_seconds"`
	GrabSeconds         float64 `json:"grab_seconds"`
	SettleSeconds       float64 `json:"settle_seconds"`
	RedisBytesBefore    int64   `json:"redis_used_memory_before"`
	RedisBytesAfter     int64   `json:"redis_used_memory_after"`
	RedisBytesPerPacket float64 `json:"redis_bytes_per_settled_packet"`
	RedisKeysAfter      int64   `json:"redis_keys_after"`
	AuditSeconds        float64 `json:"audit_seconds"`
	AuditOK             bool    `json:"audit_ok"`
	AuditLivePackets    int     `json:"audit_live_packets"`
}

func main() {
	redisURL := flag.String("redis", "redis://127.0.0.1:6390/0", "scratch Redis (flushed)")
	dbURL := flag.String("db", "", "empty PostgreSQL database")
	n := flag.Int("n", 100000, "packets")
	shares := flag.Int("shares", 2, "shares per packet, each grabbed by its own user")
	workers := flag.Int("workers", 16, "concurrent grabbers")
	flag.Parse()
	if err := run(*redisURL, *dbURL, *n, *shares, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "settled:", err)
		os.Exit(1)
	}
}

func run(redisURL, dbURL string, n, shares, workers int) error {
	ctx := context.Background()
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		return err
	}
	led, err := ledger.Open(ctx, dbURL, ledger.Config{MaxConns: 20})
	if err != nil {
		return err
	}
	defer led.Close()
	if _, err := led.Migrate(ctx); err != nil {
		return err
	}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	store, err := packet.NewStore(rdb, packet.Config{Prefix: "bench", Ledger: led, Logger: quiet,
		RetainSettled: time.Second, SettleGrace: time.Second, SweepBatch: 500})
	if err != nil {
		return err
	}
	bg, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); store.RunSettler(bg) }()
	go func() { defer wg.Done(); store.RunSweeper(bg, 50*time.Millisecond, packet.SweepHooks{}) }()
	defer func() { stop(); wg.Wait() }()

	var res result
	res.Packets, res.SharesPerPacket = n, shares
	res.RedisBytesBefore = usedMemory(ctx, rdb)
	t0 := time.Now()
	ids, err := openAll(ctx, store, n, shares)
	if err != nil {
		return err
	}
	res.OpenSeconds = time.Since(t0).Seconds()
	t1 := time.Now()
	if err := grabAll(ctx, store, ids, shares, workers); err != nil {
		return err
	}
	res.GrabSeconds = time.Since(t1).Seconds()
	t2 := time.Now()
	if err := awaitEmpty(ctx, rdb, 60*time.Minute); err != nil {
		return err
	}
	res.SettleSeconds = time.Since(t2).Seconds()
	res.RedisBytesAfter = usedMemory(ctx, rdb)
	res.RedisKeysAfter, _ = rdb.DBSize(ctx).Result()
	res.RedisBytesPerPacket = float64(res.RedisBytesAfter-res.RedisBytesBefore) / float64(n) // a ratio for the report, not money
	t3 := time.Now()
	rep, err := store.Audit(ctx)
	if err != nil {
		return err
	}
	res.AuditSeconds, res.AuditOK, res.AuditLivePackets = time.Since(t3).Seconds(), rep.OK(), rep.Packets
	if !rep.OK() {
		fmt.Fprintln(os.Stderr, "AUDIT FAILED:", rep)
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// openAll funds one sender and opens n equal packets, 100 per transaction.
func openAll(ctx context.Context, s *packet.Store, n, shares int) ([]string, error) {
	sender := packet.User{ID: "bench-sender", Name: "Sender"}
	if _, _, err := s.Fund(ctx, sender.ID, int64(n*shares), "bench"); err != nil {
		return nil, err
	}
	ids := make([]string, 0, n)
	for len(ids) < n {
		var drafts []*packet.Draft
		for i := 0; i < 100 && len(ids)+len(drafts) < n; i++ {
			d, err := s.Draft(packet.CreateRequest{Room: "bench-" + strconv.Itoa(len(ids)%100), Sender: sender,
				Kind: packet.Equal, Total: int64(shares), Count: shares, Greeting: "bench"})
			if err != nil {
				return nil, err
			}
			drafts = append(drafts, d)
		}
		o, err := s.Open(ctx, drafts, nil)
		if err != nil {
			return nil, err
		}
		for _, d := range o.Drafts {
			ids = append(ids, d.ID)
		}
	}
	return ids, nil
}

// grabAll takes every share of every packet, each by its own user.
func grabAll(ctx context.Context, s *packet.Store, ids []string, shares, workers int) error {
	work := make(chan string)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				for k := 0; k < shares; k++ {
					u := packet.User{ID: "u" + strconv.Itoa(k) + "-" + id[len(id)-6:], Name: "u"}
					if _, err := s.Grab(ctx, id, u); err != nil {
						errs <- fmt.Errorf("grab %s: %w", id, err)
						return
					}
				}
			}
		}()
	}
	var err error
	for _, id := range ids {
		select {
		case work <- id:
		case err = <-errs:
		}
		if err != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	if err == nil && len(errs) > 0 {
		err = <-errs
	}
	return err
}

// awaitEmpty waits until no packet key is left in Redis: every packet
// settled and its retention passed.
func awaitEmpty(ctx context.Context, rdb *redis.Client, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		left, err := anyKey(ctx, rdb, "bench:{p:*")
		if err != nil {
			return err
		}
		if !left {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("packet keys still in Redis after %v", limit)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// anyKey reports whether a key matches pattern (a full SCAN).
func anyKey(ctx context.Context, rdb *redis.Client, pattern string) (bool, error) {
	iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	found := iter.Next(ctx)
	return found, iter.Err()
}

func usedMemory(ctx context.Context, rdb *redis.Client) int64 {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}
