// Package redistest gives tests a real Redis: the one named by REDIS_URL, or
// a private redis-server started on a free loopback port for the test binary.
//
// Every test gets its own logical database (standalone Redis has 16; the
// private server is started with 1024) flushed before use, so tests in one
// package can run in parallel without seeing each other's keys.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const installHint = "hongbao's tests need a real Redis: put redis-server on PATH " +
	"(Debian/Ubuntu: apt-get install -y redis-server; macOS: brew install redis) " +
	"or set REDIS_URL=redis://host:port/0"

// Server is one Redis that a test binary shares between its tests.
type Server struct {
	// Addr is host:port of the server.
	Addr string
	// Private reports whether this process started the server (and may
	// therefore restart or stop it).
	Private bool

	// durable servers keep an append-only file (fsync on every write), so a
	// Restart brings the data back as a production Redis would.
	durable bool
	// debug servers accept DEBUG (e.g. DEBUG SLEEP), which Redis 7 refuses
	// by default.
	debug bool

	mu      sync.Mutex
	nextDB  int
	maxDB   int
	baseDB  int
	cmd     *exec.Cmd
	dir     string
	baseOpt *redis.Options
}

var (
	sharedOnce sync.Once
	shared     *Server
	sharedErr  error
)

// Shared returns the Redis for this test binary, starting it on first use.
// Call Stop from TestMain when the binary started a private server; Main does
// that for you.
func Shared() (*Server, error) {
	sharedOnce.Do(func() { shared, sharedErr = start() })
	return shared, sharedErr
}

// Main runs a test binary's tests and stops the private server afterwards.
// Use it as: func TestMain(m *testing.M) { redistest.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop ends the private servers this test binary started, for a TestMain
// that runs its tests another way (e.g. with pgtest.Run).
func Stop() {
	if shared != nil {
		shared.Stop()
	}
	stopClusters()
}

func start() (*Server, error) {
	if url := os.Getenv("REDIS_URL"); url != "" {
		opt, err := redis.ParseURL(url)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		// A shared external Redis: each test takes a database after the one
		// named in the URL, so a developer's data in that database is safe.
		return &Server{Addr: opt.Addr, baseOpt: opt, baseDB: opt.DB + 1, nextDB: opt.DB + 1, maxDB: 16}, nil
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found and REDIS_URL not set: %s", installHint)
	}
	s := &Server{Private: true, baseDB: 0, maxDB: 1024}
	if err := s.launch(bin, 0); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) launch(bin string, port int) error {
	var err error
	if port == 0 {
		port, err = FreePort()
		if err != nil {
			return err
		}
	}
	if s.dir == "" {
		s.dir, err = os.MkdirTemp("", "hongbao-redis-")
		if err != nil {
			return err
		}
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	appendonly := "no"
	if s.durable {
		appendonly = "yes"
	}
	args := []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", appendonly, "--appendfsync", "always",
		"--databases", strconv.Itoa(s.maxDB),
		"--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis.log"),
	}
	if s.debug && majorVersion(bin) >= 7 {
		// Older servers have no such option and always accept DEBUG.
		args = append(args, "--enable-debug-command", "local")
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w (%s)", err, installHint)
	}
	s.cmd = cmd
	s.baseOpt = &redis.Options{Addr: s.Addr}
	return waitReady(s.Addr, 10*time.Second)
}

// Restart kills a private server (SIGKILL, no shutdown save) and starts it
// again on the same port: empty for the shared server, with its data for a
// Durable one.
func (s *Server) Restart() error { return s.RestartAfter(0) }

// RestartAfter is Restart with the server down for d in between.
func (s *Server) RestartAfter(d time.Duration) error {
	if !s.Private {
		return fmt.Errorf("cannot restart the Redis named by REDIS_URL")
	}
	_, port, _ := net.SplitHostPort(s.Addr)
	p, _ := strconv.Atoi(port)
	s.kill()
	time.Sleep(d)
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return err
	}
	return s.launch(bin, p)
}

func (s *Server) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
	s.cmd = nil
}

// Durable starts a private redis-server for t alone, with an append-only
// file fsynced on every write, stopped when t ends. Restart it to see what a
// crashed production Redis comes back with.
func Durable(t testing.TB) (*Server, *redis.Client) {
	t.Helper()
	return Start(t, Options{Durable: true})
}

// Options shape a private server started by Start.
type Options struct {
	// Durable keeps an append-only file fsynced on every write, so a
	// Restart brings the data back. Default false: a restart comes back
	// empty.
	Durable bool
	// Debug enables the DEBUG command (DEBUG SLEEP makes the server
	// unresponsive for a while), off by default since Redis 7. Default
	// false.
	Debug bool
}

// Start starts a private redis-server for t alone, stopped when t ends, and
// returns it with a client for its database 0. Use it rather than New for
// a test that stalls, kills or reconfigures the server, so other tests of
// the package never feel it.
func Start(t testing.TB, o Options) (*Server, *redis.Client) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redistest: %s", installHint)
	}
	s := &Server{Private: true, durable: o.Durable, debug: o.Debug, maxDB: 16}
	if err := s.launch(bin, 0); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Stop)
	rdb := redis.NewClient(s.Options(0))
	t.Cleanup(func() { _ = rdb.Close() })
	return s, rdb
}

// Stop ends a private server and removes its directory.
func (s *Server) Stop() {
	if !s.Private {
		return
	}
	s.kill()
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// Options returns client options for database db.
func (s *Server) Options(db int) *redis.Options {
	o := *s.baseOpt
	o.Addr = s.Addr
	o.DB = db
	return &o
}

// URL returns a redis:// URL for database db.
func (s *Server) URL(db int) string {
	return fmt.Sprintf("redis://%s/%d", s.Addr, db)
}

func (s *Server) takeDB() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nextDB >= s.maxDB {
		// Databases are flushed before reuse, so wrapping is safe as long as
		// fewer tests than databases run at once.
		s.nextDB = s.baseDB
	}
	db := s.nextDB
	s.nextDB++
	return db, nil
}

// DB is one test's clean keyspace.
type DB struct {
	*Server
	// Index is the logical database number.
	Index int
}

// New gives t a clean database on the shared Redis and a client for it; both
// are released when t ends. It fails t with install instructions when there is
// no Redis to be had.
func New(t testing.TB) (*DB, *redis.Client) {
	t.Helper()
	srv, err := Shared()
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	idx, err := srv.takeDB()
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	db := &DB{Server: srv, Index: idx}
	rdb := db.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatalf("redistest: flush db %d on %s: %v", idx, srv.Addr, err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return db, rdb
}

// Client returns a new client for this database; the caller closes it.
func (d *DB) Client() *redis.Client {
	return redis.NewClient(d.Options(d.Index))
}

// URL returns a redis:// URL for this database.
func (d *DB) URL() string { return d.Server.URL(d.Index) }

// majorVersion is the major version of the redis-server at bin, 0 when it
// cannot tell.
func majorVersion(bin string) int {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return 0
	}
	// "Redis server v=7.0.15 sha=..."
	_, v, ok := strings.Cut(string(out), " v=")
	if !ok {
		return 0
	}
	major, _, _ := strings.Cut(v, ".")
	n, _ := strconv.Atoi(major)
	return n
}

// FreePort asks the kernel for a free TCP port on the loopback interface.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitReady(addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte("PING\r\n"))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "+PONG") {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("redis-server on %s not ready after %v", addr, limit)
}
