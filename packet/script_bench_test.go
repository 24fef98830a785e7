package packet

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/hongbao-dev/hongbao/internal/redistest"
)

// BenchmarkGrabScript measures what grabmany.lua costs Redis per batch size,
// on a private redis-server so that nothing else runs on it: each iteration
// is one hot packet of 500 shares raced by 1 000 users, in script calls of
// batch grabs each, with the settlement outbox on (ledger mode). It reports
// the Redis process CPU (INFO cpu, user + sys) per successful grab and the
// time inside the script per call (INFO commandstats).
func BenchmarkGrabScript(b *testing.B) {
	for _, batch := range []int{1, 10, 50, 200} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			_, rdb := redistest.Start(b, redistest.Options{})
			s := mustStore(b, rdb, Config{})
			ctx := context.Background()
			const shares, racers = 500, 1000
			fund(b, s, "sender", int64(b.N)*shares)
			ids := make([]string, b.N)
			for i := range ids {
				ids[i] = mustCreate(b, s, CreateRequest{Room: "bench", Sender: User{"sender", "S"}, Kind: Lucky, Total: shares, Count: shares}).ID
			}
			if err := s.lua.grab.Load(ctx, rdb).Err(); err != nil {
				b.Fatal(err)
			}
			rdb.ConfigResetStat(ctx)
			cpu0 := redisCPU(b, rdb)
			b.ResetTimer()
			ok := 0
			for _, id := range ids {
				for from := 0; from < racers; from += batch {
					token, err := newCallToken()
					if err != nil {
						b.Fatal(err)
					}
					args := []any{"1", token}
					for u := from; u < min(from+batch, racers); u++ {
						args = append(args, "bench-user-"+strconv.Itoa(u), "User "+strconv.Itoa(u), "")
					}
					res, err := s.lua.grab.EvalSha(ctx, rdb, s.k.packetKeys(id), args...).Slice()
					if err != nil {
						b.Fatal(err)
					}
					head, items, err := parseBatchReply(id, res, (len(args)-2)/3)
					if err != nil {
						b.Fatal(err)
					}
					for _, r := range items {
						if _, err := parseGrab(id, head, r); err == nil {
							ok++
						}
					}
				}
			}
			b.StopTimer()
			if ok != b.N*shares {
				b.Fatalf("%d successful grabs, want %d", ok, b.N*shares)
			}
			b.ReportMetric((redisCPU(b, rdb)-cpu0)*1e6/float64(ok), "redis-µs/ok-grab")
			b.ReportMetric(evalshaUsecPerCall(b, rdb), "script-µs/call")
		})
	}
}

// redisCPU is the Redis process's CPU seconds so far (user + sys).
func redisCPU(b *testing.B, rdb *redis.Client) float64 {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var sum float64
	for _, line := range strings.Split(info, "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			f, _ := strconv.ParseFloat(v, 64)
			sum += f
		}
	}
	return sum
}

// evalshaUsecPerCall is INFO commandstats' usec_per_call of EVALSHA.
func evalshaUsecPerCall(b *testing.B, rdb *redis.Client) float64 {
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_evalsha:"); ok {
			_, v, _ := strings.Cut(rest, "usec_per_call=")
			v, _, _ = strings.Cut(v, ",")
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}
