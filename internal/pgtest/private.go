package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// private is a postgres this test binary started.
type private struct {
	dir  string // holds data/, the socket and the log; removed by stop
	port int
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	run  *runAs        // nil: run as the current user
}

// runAs is the unprivileged user a root test binary runs PostgreSQL as.
type runAs struct {
	name     string
	uid, gid int
}

const dirPrefix = "hongbao-pg-"

func startPrivate() (*private, error) {
	postgres, initdb, err := findBinaries()
	if err != nil {
		return nil, err
	}
	run, err := unprivilegedUser()
	if err != nil {
		return nil, err
	}
	removeAbandoned()
	p := &private{run: run}
	if err := p.makeDir(); err != nil {
		return nil, err
	}
	if err := p.initdb(initdb); err != nil {
		_ = os.RemoveAll(p.dir)
		return nil, err
	}
	// A free port can be taken by someone else before postgres binds it:
	// try a few.
	for attempt := 0; ; attempt++ {
		err = p.launch(postgres)
		if err == nil || attempt == 2 {
			break
		}
	}
	if err != nil {
		_ = os.RemoveAll(p.dir)
		return nil, err
	}
	return p, nil
}

// findBinaries looks for postgres and initdb on PATH, then in the newest
// /usr/lib/postgresql/<version>/bin (where Debian puts them).
func findBinaries() (postgres, initdb string, err error) {
	if pg, err := exec.LookPath("postgres"); err == nil {
		if in, err := exec.LookPath("initdb"); err == nil {
			return pg, in, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionLess(dirs[i], dirs[j]) })
	for i := len(dirs) - 1; i >= 0; i-- {
		pg, in := filepath.Join(dirs[i], "postgres"), filepath.Join(dirs[i], "initdb")
		if isFile(pg) && isFile(in) {
			return pg, in, nil
		}
	}
	return "", "", errors.New("postgres/initdb not found and " + EnvURL + " not set: " + installHint)
}

// versionLess orders /usr/lib/postgresql/<version>/bin paths by version
// number, so 9.6 < 10 < 15.
func versionLess(a, b string) bool {
	va, vb := versionOf(a), versionOf(b)
	for i := 0; i < len(va) && i < len(vb); i++ {
		if va[i] != vb[i] {
			return va[i] < vb[i]
		}
	}
	return len(va) < len(vb)
}

func versionOf(binDir string) []int {
	var v []int
	for _, part := range strings.Split(filepath.Base(filepath.Dir(binDir)), ".") {
		n, _ := strconv.Atoi(part)
		v = append(v, n)
	}
	return v
}

func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// unprivilegedUser returns who to run PostgreSQL as when this process is
// root: the postgres system user, else nobody.
func unprivilegedUser() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	if !canRunAs {
		return nil, errors.New("PostgreSQL refuses to run as root: run the tests as another user")
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 == nil && err2 == nil {
			return &runAs{name: name, uid: uid, gid: gid}, nil
		}
	}
	return nil, errors.New("running as root, and neither a postgres nor a nobody user exists to run PostgreSQL as")
}

// makeDir creates the server's directory, owned by the user postgres runs
// as, under a parent that user can traverse.
func (p *private) makeDir() error {
	parent := os.TempDir()
	if p.run != nil && !traversable(parent) {
		parent = "/tmp"
	}
	dir, err := os.MkdirTemp(parent, dirPrefix)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	p.dir = dir
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if p.run != nil {
		if err := os.Chown(dir, p.run.uid, p.run.gid); err != nil {
			return fmt.Errorf("pgtest: give %s to %s: %w", dir, p.run.name, err)
		}
	}
	return nil
}

// traversable reports whether every directory from / down to dir lets
// others through (o+x), so an unprivileged user can reach what is inside.
func traversable(dir string) bool {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil || st.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

func (p *private) command(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Dir = p.dir // the test's own directory may be closed to p.run
	cmd.SysProcAttr = sysProcAttr(p.run)
	return cmd
}

func (p *private) initdb(bin string) error {
	cmd := p.command(bin, "-D", filepath.Join(p.dir, "data"),
		"-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	return nil
}

func (p *private) launch(bin string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	p.port = port
	logPath := filepath.Join(p.dir, "postgres.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer logFile.Close() // the child keeps its own copy
	cmd := p.command(bin, "-D", filepath.Join(p.dir, "data"), "-p", strconv.Itoa(port), "-k", p.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=300")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(p.done) }()
	if err := p.waitReady(30 * time.Second); err != nil {
		p.kill()
		log, _ := os.ReadFile(logPath)
		return fmt.Errorf("pgtest: %w\n%s", err, log)
	}
	return nil
}

func (p *private) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

// waitReady returns once the server accepts connections, or with an error
// once it has exited or limit has passed.
func (p *private) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, p.url())
		if err == nil {
			_ = conn.Close(ctx)
			cancel()
			return nil
		}
		cancel()
		select {
		case <-p.done:
			return fmt.Errorf("postgres exited on start: %v", p.cmd.ProcessState)
		case <-time.After(25 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres on port %d not ready after %v: %w", p.port, limit, err)
		}
	}
}

// stop shuts the server down (fast shutdown, then harder) and removes its
// directory.
func (p *private) stop() {
	p.kill()
	_ = os.RemoveAll(p.dir)
}

func (p *private) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	for _, sig := range stopSignals() {
		_ = p.cmd.Process.Signal(sig)
		select {
		case <-p.done:
			p.cmd = nil
			return
		case <-time.After(10 * time.Second):
		}
	}
}

// removeAbandoned deletes server directories left by test binaries that
// died without calling Stop (their postgres died with them; see
// sysProcAttr).
func removeAbandoned() {
	for _, parent := range []string{os.TempDir(), "/tmp"} {
		dirs, _ := filepath.Glob(filepath.Join(parent, dirPrefix+"*"))
		for _, dir := range dirs {
			owner, ok := readPid(filepath.Join(dir, "owner.pid"))
			if !ok || alive(owner) {
				continue
			}
			if pm, ok := readPid(filepath.Join(dir, "data", "postmaster.pid")); ok && alive(pm) {
				continue
			}
			_ = os.RemoveAll(dir)
		}
	}
}

// readPid reads the process id on the first line of path.
func readPid(path string) (int, bool) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	first, _, _ := strings.Cut(string(raw), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	return pid, err == nil && pid > 0
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
