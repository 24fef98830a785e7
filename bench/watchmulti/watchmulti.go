// Package watchmulti is the baseline a naive red-packet server uses: keep a
// packet's remaining amounts in one key, and grab by WATCH, read the amounts,
// pick one, MULTI/EXEC the new list plus the claim and the wallet credit, and
// start over when EXEC aborts because another grab changed the key first.
//
// It is not part of hongbao: it exists so BENCHMARKS.md can say how far
// hongbao's one-script, coalesced grab is from the optimistic-locking design.
package watchmulti

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config is one baseline run: Racers goroutines, each with its own Redis
// connection (WATCH needs one), race for a packet of Shares shares, Rounds
// times.
type Config struct {
	Racers, Shares, Rounds int
	Prefix                 string
}

// Result is the baseline's figures.
type Result struct {
	Racers       int     `json:"racers"`
	Shares       int     `json:"shares"`
	Rounds       int     `json:"rounds"`
	Grabs        int64   `json:"grabs"`
	SoldOut      int64   `json:"sold_out"`
	Aborted      int64   `json:"aborted"`
	PhaseSec     float64 `json:"phase_s"`
	GrabsPerSec  float64 `json:"grabs_per_s"`
	AbortsPerOK  float64 `json:"aborts_per_grab"`
	P50Ms, P99Ms float64 `json:"-"`
	Conserved    bool    `json:"conserved"`
}

// Run runs the baseline on rdb (whose pool must allow Racers connections).
func Run(ctx context.Context, rdb *redis.Client, cfg Config) (*Result, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = fmt.Sprintf("wm%x", time.Now().UnixNano()&0xffffff)
	}
	res := &Result{Racers: cfg.Racers, Shares: cfg.Shares, Rounds: cfg.Rounds, Conserved: true}
	// Open every racer's connection before the clock starts.
	warm := make([]*redis.Conn, cfg.Racers)
	for i := range warm {
		warm[i] = rdb.Conn()
		if err := warm[i].Ping(ctx).Err(); err != nil {
			return nil, err
		}
	}
	for _, c := range warm {
		c.Close()
	}
	var phase time.Duration
	for r := range cfg.Rounds {
		amountsKey := fmt.Sprintf("%s:{p%d}:amounts", cfg.Prefix, r)
		claimsKey := fmt.Sprintf("%s:{p%d}:claims", cfg.Prefix, r)
		walletKey := fmt.Sprintf("%s:{p%d}:wallets", cfg.Prefix, r)
		total := int64(cfg.Shares) * 10
		if err := rdb.Set(ctx, amountsKey, split(total, cfg.Shares), 0).Err(); err != nil {
			return nil, err
		}
		var wg sync.WaitGroup
		var grabs, soldOut, aborted atomic.Int64
		errc := make(chan error, cfg.Racers)
		start := time.Now()
		for k := range cfg.Racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				user := "u" + strconv.Itoa(k)
				for {
					err := rdb.Watch(ctx, func(tx *redis.Tx) error {
						cur, err := tx.Get(ctx, amountsKey).Result()
						if err != nil {
							return err
						}
						if cur == "" {
							return errSoldOut
						}
						if tx.HExists(ctx, claimsKey, user).Val() {
							return errSoldOut
						}
						amounts := strings.Split(cur, ",")
						i := rand.IntN(len(amounts))
						amount, _ := strconv.ParseInt(amounts[i], 10, 64)
						rest := append(amounts[:i:i], amounts[i+1:]...)
						_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
							p.Set(ctx, amountsKey, strings.Join(rest, ","), 0)
							p.HSet(ctx, claimsKey, user, amount)
							p.HIncrBy(ctx, walletKey, user, amount)
							return nil
						})
						return err
					}, amountsKey)
					switch {
					case err == nil:
						grabs.Add(1)
						return
					case errors.Is(err, redis.TxFailedErr):
						aborted.Add(1)
					case errors.Is(err, errSoldOut):
						soldOut.Add(1)
						return
					default:
						errc <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		phase += time.Since(start)
		close(errc)
		for err := range errc {
			return nil, err
		}
		res.Grabs += grabs.Load()
		res.SoldOut += soldOut.Load()
		res.Aborted += aborted.Load()
		// Conservation: the claims add up to the total and match the wallets.
		claims, err := rdb.HVals(ctx, claimsKey).Result()
		if err != nil {
			return nil, err
		}
		var sum int64
		for _, c := range claims {
			n, _ := strconv.ParseInt(c, 10, 64)
			sum += n
		}
		left, _ := rdb.Get(ctx, amountsKey).Result()
		for _, a := range strings.Split(left, ",") {
			n, _ := strconv.ParseInt(a, 10, 64)
			sum += n
		}
		if sum != total {
			res.Conserved = false
		}
		rdb.Del(ctx, amountsKey, claimsKey, walletKey)
	}
	res.PhaseSec = phase.Seconds()
	if phase > 0 {
		res.GrabsPerSec = float64(res.Grabs) / phase.Seconds()
	}
	if res.Grabs > 0 {
		res.AbortsPerOK = float64(res.Aborted) / float64(res.Grabs)
	}
	if !res.Conserved {
		return res, errors.New("watchmulti: money not conserved")
	}
	return res, nil
}

var errSoldOut = errors.New("sold out")

// split divides total into n random shares of at least 1 fen, comma-joined.
func split(total int64, n int) string {
	shares := make([]int64, n)
	left := total - int64(n)
	for i := range shares {
		shares[i] = 1
	}
	for left > 0 {
		shares[rand.IntN(n)]++
		left--
	}
	parts := make([]string, n)
	for i, s := range shares {
		parts[i] = strconv.FormatInt(s, 10)
	}
	return strings.Join(parts, ",")
}
