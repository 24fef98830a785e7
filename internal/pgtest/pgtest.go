// Package pgtest gives tests a real PostgreSQL: the server named by
// HONGBAO_TEST_DATABASE_URL, or a private postgres started on a free loopback
// port for the test binary.
//
// Every call to New creates a fresh, empty database (hb_<tag>_<n>) that only
// the calling test uses, and drops it when the test ends, so tests in one
// package can run in parallel without seeing each other's tables.
//
// The private server is started on first use (once per test binary), run as
// an unprivileged user when the tests run as root (PostgreSQL refuses to run
// as root), and stopped by Stop. Wire Stop into the package's TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// or, when TestMain also has other servers to stop,
//
//	func TestMain(m *testing.M) {
//		code := pgtest.Run(m) // runs the tests, then stops postgres
//		redistest.Stop()      // and the other servers
//		os.Exit(code)
//	}
//
// On Linux the private postgres also dies with the test binary if nothing
// calls Stop (a crashed or timed-out binary), and the next binary to start a
// server removes the data directories such binaries left behind.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// EnvURL names the environment variable that points the tests at an existing
// server instead of a private one. Its URL must name a role allowed to create
// databases; the database it names is used only to run CREATE/DROP DATABASE.
const EnvURL = "HONGBAO_TEST_DATABASE_URL"

const installHint = "hongbao's tests need PostgreSQL: install the server " +
	"(Debian/Ubuntu: apt-get install -y postgresql; macOS: brew install postgresql) " +
	"so that postgres and initdb are on PATH or in /usr/lib/postgresql/<version>/bin, " +
	"or set " + EnvURL + "=postgres://user:password@host:5432/postgres"

// server is the one PostgreSQL a test binary shares between its tests.
type server struct {
	admin   *pgxpool.Pool // connected to the maintenance database
	base    *url.URL      // URL of the server; Path is replaced per database
	tag     string        // random, so binaries sharing a server never collide
	next    atomic.Int64
	private *private // nil when the server is HONGBAO_TEST_DATABASE_URL's
}

var (
	sharedOnce sync.Once
	shared     *server
	sharedErr  error
	stopOnce   sync.Once
)

func sharedServer() (*server, error) {
	sharedOnce.Do(func() { shared, sharedErr = start() })
	return shared, sharedErr
}

// Main runs a test binary's tests, stops the private server and exits with
// the tests' status. Use it as: func TestMain(m *testing.M) { pgtest.Main(m) }.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run runs a test binary's tests, stops the private server and returns the
// tests' exit code, for a TestMain that has more to do before os.Exit.
func Run(m *testing.M) int {
	code := m.Run()
	Stop()
	return code
}

// Stop closes the connections to the shared server and, when this binary
// started it, stops it and removes its data directory. It is a no-op when no
// test asked for a database; calling it again does nothing.
func Stop() {
	stopOnce.Do(func() {
		sharedOnce.Do(func() { sharedErr = errors.New("pgtest: stopped") })
		if shared == nil {
			return
		}
		shared.admin.Close()
		if shared.private != nil {
			shared.private.stop()
		}
	})
}

func start() (*server, error) {
	if raw := os.Getenv(EnvURL); raw != "" {
		return connect(raw, nil)
	}
	p, err := startPrivate()
	if err != nil {
		return nil, err
	}
	s, err := connect(p.url(), p)
	if err != nil {
		p.stop()
		return nil, err
	}
	return s, nil
}

func connect(raw string, p *private) (*server, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("%s must be a postgres:// URL, got %q", EnvURL, raw)
	}
	cfg, err := pgxpool.ParseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", raw, err)
	}
	cfg.MaxConns = 4
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		err = admin.Ping(ctx)
	}
	if err != nil {
		if admin != nil {
			admin.Close()
		}
		return nil, fmt.Errorf("connect to %s: %w", u.Redacted(), err)
	}
	tag := make([]byte, 4)
	_, _ = rand.Read(tag)
	return &server{admin: admin, base: u, tag: hex.EncodeToString(tag), private: p}, nil
}

// New creates a fresh, empty database for t alone and returns its
// postgres:// URL. The database is dropped (WITH (FORCE), closing leftover
// connections) when t ends. New fails t, with install instructions, when
// there is no PostgreSQL to be had.
func New(t testing.TB) string {
	t.Helper()
	s, err := sharedServer()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	name := fmt.Sprintf("hb_%s_%d", s.tag, s.next.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// template0 and C collation: empty and identical on every server.
	create := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize() +
		" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
	if _, err := s.admin.Exec(ctx, create); err != nil {
		t.Fatalf("pgtest: create database %s on %s: %v", name, s.base.Redacted(), err)
	}
	t.Cleanup(func() { s.drop(t, name) })
	u := *s.base
	u.Path = "/" + name
	return u.String()
}

func (s *server) drop(t testing.TB, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	drop := "DROP DATABASE IF EXISTS " + pgx.Identifier{name}.Sanitize()
	_, err := s.admin.Exec(ctx, drop+" WITH (FORCE)")
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42601" { // syntax: before PostgreSQL 13
		_, err = s.admin.Exec(ctx, drop)
	}
	if err != nil {
		t.Errorf("pgtest: drop database %s: %v", name, err)
	}
}
