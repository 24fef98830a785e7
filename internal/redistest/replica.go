package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Pair is a private primary and its replica (asynchronous replication, as
// Redis always is), for tests of what a failover keeps and what it loses.
//
// Clients from Client (or built on Options) dial whichever server is the
// primary now, the way a Sentinel-aware client would: after Promote the
// same client, and a Store on it, keeps working against the promoted
// replica once its broken connections are replaced.
type Pair struct {
	// Primary and Replica are the servers as started; they keep these names
	// after Promote (when Primary is dead and Replica is the primary).
	Primary, Replica *Server

	t        testing.TB
	current  atomic.Pointer[Server]
	mu       sync.Mutex
	promoted bool
	cut      bool
}

// Replicated starts two private redis-server processes for t alone, the
// second a replica of the first, and returns once the replica is in sync.
// Both are stopped, and their directories removed, when t ends.
func Replicated(t testing.TB) *Pair {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redistest: %s", installHint)
	}
	p := &Pair{t: t, Primary: &Server{Private: true, maxDB: 16}, Replica: &Server{Private: true, maxDB: 16}}
	t.Cleanup(func() {
		p.Replica.Stop()
		p.Primary.Stop()
	})
	if err := p.Primary.launchArgs(bin); err != nil {
		t.Fatalf("redistest: primary: %v", err)
	}
	host, port, _ := net.SplitHostPort(p.Primary.Addr)
	if err := p.Replica.launchArgs(bin, "--replicaof", host, port); err != nil {
		t.Fatalf("redistest: replica: %v", err)
	}
	p.current.Store(p.Primary)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.waitInSync(ctx); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return p
}

// launchArgs starts a private server on a free port in a directory of its
// own, without persistence (AOF off, no snapshots; the only RDB file is the
// one a first sync sends), with extra arguments.
func (s *Server) launchArgs(bin string, extra ...string) error {
	port, err := FreePort()
	if err != nil {
		return err
	}
	if s.dir, err = os.MkdirTemp("", "hongbao-redis-pair-"); err != nil {
		return err
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no",
		// The first sync goes through an RDB file: after a diskless one the
		// primary holds back the write stream until the replica's next
		// periodic ACK, up to a second later.
		"--repl-diskless-sync", "no",
		"--databases", strconv.Itoa(s.maxDB),
		"--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis.log"),
	}
	cmd := exec.Command(bin, append(args, extra...)...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w (%s)", err, installHint)
	}
	s.cmd = cmd
	s.baseOpt = &redis.Options{Addr: s.Addr}
	return waitReady(s.Addr, 10*time.Second)
}

// waitInSync waits until the replica reports its link to the primary up,
// then until it acknowledges a write: "online" in INFO does not yet mean
// that writes stream to it (see the diskless note in launchArgs).
func (p *Pair) waitInSync(ctx context.Context) error {
	rep := redis.NewClient(&redis.Options{Addr: p.Replica.Addr})
	defer rep.Close()
	var info string
	for !strings.Contains(info, "master_link_status:up") {
		select {
		case <-ctx.Done():
			return fmt.Errorf("replica %s not linked to %s: %w (%q)", p.Replica.Addr, p.Primary.Addr, ctx.Err(), info)
		case <-time.After(10 * time.Millisecond):
		}
		info, _ = rep.Info(ctx, "replication").Result()
	}
	pri := redis.NewClient(&redis.Options{Addr: p.Primary.Addr})
	defer pri.Close()
	return WaitReplicated(ctx, pri)
}

// WaitReplicated makes sure every write the primary behind rdb took so far
// is on a replica. WAIT counts replicas up to the last write of its own
// connection (a connection that wrote nothing gets the replica count at
// once), so it writes and removes a key first, on the same connection.
func WaitReplicated(ctx context.Context, rdb *redis.Client) error {
	const key = "redistest:replicated"
	var wait *redis.IntCmd
	_, err := rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Set(ctx, key, "1", 0)
		pipe.Del(ctx, key)
		wait = redis.NewIntCmd(ctx, "WAIT", 1, 5000)
		return pipe.Process(ctx, wait)
	})
	if err != nil {
		return fmt.Errorf("redistest: wait for the replica: %w", err)
	}
	if wait.Val() < 1 {
		return errors.New("redistest: no replica acknowledged a write within 5 s")
	}
	return nil
}

// Current is the server that is the primary now: Primary until Promote,
// Replica after.
func (p *Pair) Current() *Server { return p.current.Load() }

// Addr is host:port of the current primary.
func (p *Pair) Addr() string { return p.Current().Addr }

// Dial connects to the current primary, whatever addr says; it is the
// Dialer of Options.
func (p *Pair) Dial(ctx context.Context, network, _ string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	return d.DialContext(ctx, network, p.Addr())
}

// Options returns client options (database 0) whose connections go to the
// current primary, before and after Promote.
func (p *Pair) Options() *redis.Options {
	return &redis.Options{Addr: p.Addr(), Dialer: p.Dial}
}

// Client returns a client that follows the current primary; it is closed
// when the test ends.
func (p *Pair) Client() *redis.Client {
	c := redis.NewClient(p.Options())
	p.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Partition cuts the replica off from the primary, as a network partition
// would: the replica keeps what it has and receives nothing more, while the
// primary goes on taking writes (and WAIT on it counts no replica). A
// Promote after it loses every write the primary took since.
//
// The replica is pointed at a port nobody listens on, so it keeps its data
// and keeps failing to connect until Promote.
func (p *Pair) Partition(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.promoted || p.cut {
		return errors.New("redistest: the pair was partitioned or promoted already")
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	c := redis.NewClient(&redis.Options{Addr: p.Replica.Addr, MaxRetries: -1})
	defer c.Close()
	if err := c.Do(ctx, "REPLICAOF", "127.0.0.1", port).Err(); err != nil {
		return fmt.Errorf("redistest: partition %s: %w", p.Replica.Addr, err)
	}
	p.cut = true
	return nil
}

// Promote fails over the way Sentinel would once the primary is gone: it
// kills the primary (SIGKILL: whatever it acknowledged but had not yet sent
// to the replica is lost), promotes the replica (REPLICAOF NO ONE) and only
// then points clients at it. Writes in between fail to connect, as they do
// while Sentinel is electing.
func (p *Pair) Promote(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.promoted {
		return errors.New("redistest: the pair was promoted already")
	}
	p.promoted = true
	p.Primary.kill()
	c := redis.NewClient(&redis.Options{Addr: p.Replica.Addr, MaxRetries: -1})
	defer c.Close()
	if err := c.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		return fmt.Errorf("redistest: promote %s: %w", p.Replica.Addr, err)
	}
	for {
		info, err := c.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "role:master") {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redistest: promote %s: %w (%v)", p.Replica.Addr, ctx.Err(), err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	p.current.Store(p.Replica)
	return nil
}
