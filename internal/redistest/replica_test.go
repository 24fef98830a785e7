package redistest

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// A write the replica acknowledged (WAIT 1) survives the failover; the
// client made before it follows the promoted replica, which takes writes;
// and when the test ends both processes are gone with their directories.
func TestReplicatedWaitSurvivesPromote(t *testing.T) {
	type proc struct {
		pid       int
		addr, dir string
	}
	var procs []proc
	t.Run("pair", func(t *testing.T) {
		p := Replicated(t)
		for _, s := range []*Server{p.Primary, p.Replica} {
			procs = append(procs, proc{s.cmd.Process.Pid, s.Addr, s.dir})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rdb := p.Client()
		// The replica takes writes at once: a short WAIT is enough (after a
		// diskless first sync the stream may start a second late).
		start := time.Now()
		if n := setAndWait(t, rdb, "k", "acknowledged", 250); n != 1 {
			t.Fatalf("WAIT 1 250: %d replicas after %v", n, time.Since(start))
		}
		if err := p.Promote(ctx); err != nil {
			t.Fatal(err)
		}
		if p.Current() != p.Replica || p.Addr() != p.Replica.Addr {
			t.Fatalf("current primary %s after Promote, want the replica %s", p.Addr(), p.Replica.Addr)
		}
		if err := syscall.Kill(procs[0].pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Fatalf("old primary (pid %d) still there after Promote: %v", procs[0].pid, err)
		}
		if v, err := rdb.Get(ctx, "k").Result(); err != nil || v != "acknowledged" {
			t.Fatalf("after Promote: %q %v", v, err)
		}
		info, err := rdb.Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(info, "role:master") {
			t.Fatalf("the client is not on a primary: %v\n%s", err, info)
		}
		if err := rdb.Set(ctx, "k2", "after", 0).Err(); err != nil {
			t.Fatalf("write on the promoted replica: %v", err)
		}
		if err := p.Promote(ctx); err == nil {
			t.Fatal("a second Promote succeeded")
		}
	})
	if len(procs) != 2 {
		t.Fatalf("the pair did not start: %v", procs)
	}
	for _, pr := range procs {
		if err := syscall.Kill(pr.pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("redis-server pid %d (%s) still there after the test: %v", pr.pid, pr.addr, err)
		}
		if c, err := net.DialTimeout("tcp", pr.addr, 200*time.Millisecond); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after the test", pr.addr)
		}
		if _, err := os.Stat(pr.dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", pr.dir, err)
		}
	}
}

// After Partition the primary still takes writes, WAIT counts no replica,
// and a Promote loses those writes but keeps the acknowledged ones.
func TestReplicatedPartitionLosesLaterWrites(t *testing.T) {
	p := Replicated(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rdb := p.Client()
	if n := setAndWait(t, rdb, "before", "1", 5000); n != 1 {
		t.Fatalf("WAIT 1 before the partition: %d replicas", n)
	}
	if err := p.Partition(ctx); err != nil {
		t.Fatal(err)
	}
	if n := setAndWait(t, rdb, "during", "1", 100); n != 0 {
		t.Fatalf("WAIT 1 during the partition: %d replicas", n)
	}
	if err := p.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.Exists(ctx, "before").Result(); err != nil || n != 1 {
		t.Fatalf("acknowledged write after Promote: %d %v", n, err)
	}
	if n, err := rdb.Exists(ctx, "during").Result(); err != nil || n != 0 {
		t.Fatalf("write taken during the partition survived Promote: %d %v", n, err)
	}
}

// setAndWait writes key and waits (WAIT 1 timeoutMs, on the same
// connection) for a replica to have it; it returns how many did.
func setAndWait(t *testing.T, rdb *redis.Client, key, value string, timeoutMs int) int64 {
	t.Helper()
	ctx := context.Background()
	var wait *redis.Cmd
	_, err := rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Set(ctx, key, value, 0)
		wait = pipe.Do(ctx, "WAIT", 1, timeoutMs)
		return nil
	})
	if err != nil {
		t.Fatalf("SET %s + WAIT: %v", key, err)
	}
	n, err := wait.Int64()
	if err != nil {
		t.Fatalf("WAIT: %v", err)
	}
	return n
}
