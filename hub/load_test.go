package hub

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// TestIdleConnectionsLoad opens N real loopback WebSocket connections to one
// room and reports what they cost the server, then broadcasts K frames and
// checks that every connection got every frame exactly once, in order.
//
// The clients run in a child process (this test binary re-executed as
// TestLoadClientProcess), so the server's memory, goroutine and CPU figures
// are the hub's own. Knobs (environment):
//
//	HUB_LOAD_CONNS     connections (default 500; 200 under -race)
//	HUB_LOAD_FRAMES    broadcasts (default 3)
//	HUB_LOAD_INTERVAL  spacing of broadcasts (default 50ms)
//	HUB_LOAD_UPGRADER  "web" (default: the smallest ReadBufferSize and a
//	                   WriteBufferPool, as web/web.go) or "reuse" (zero
//	                   sizes, no pool: gorilla reuses net/http's hijacked
//	                   4 KB buffers)
//	HUB_LOAD_DETACH    "1" (default, as web/ws.go): the HTTP handler calls
//	                   Start and returns; "0": it calls Serve, which blocks
//	                   the handler, and pins net/http's buffers and its
//	                   goroutine
//
// For the issue-4 numbers:
//
//	HUB_LOAD_CONNS=19000 HUB_LOAD_FRAMES=10 HUB_LOAD_INTERVAL=1s \
//	  go test -run TestIdleConnectionsLoad -v -count=1 ./hub/
func TestIdleConnectionsLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("opens hundreds of connections")
	}
	if os.Getenv("HUB_LOAD_HEAPPROFILE") != "" {
		runtime.MemProfileRate = 1
	}
	n := envInt("HUB_LOAD_CONNS", 500)
	if raceEnabled && os.Getenv("HUB_LOAD_CONNS") == "" {
		n = 200
	}
	frames := envInt("HUB_LOAD_FRAMES", 3)
	interval, err := time.ParseDuration(envOr("HUB_LOAD_INTERVAL", "50ms"))
	if err != nil {
		t.Fatal(err)
	}
	upgraderKind := envOr("HUB_LOAD_UPGRADER", "web")
	detach := envOr("HUB_LOAD_DETACH", "1") != "0"
	var up websocket.Upgrader
	switch upgraderKind {
	case "web":
		up = websocket.Upgrader{ReadBufferSize: 1, WriteBufferPool: &sync.Pool{}}
	case "reuse":
	default:
		t.Fatalf("HUB_LOAD_UPGRADER=%q: want web or reuse", upgraderKind)
	}

	m := NewMetrics(prometheus.NewRegistry())
	h := New(Config{PresenceInterval: time.Hour}, NewMemoryBroker(), testLogger(), m)
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- h.Run(ctx) }()
	handler := &testHandler{hub: h}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		u := User{ID: r.URL.Query().Get("uid")}
		if detach {
			// Return from the HTTP handler so net/http drops its buffers.
			h.Start(context.Background(), conn, "live", u, handler, ServeOptions{}, nil)
			return
		}
		h.Serve(r.Context(), conn, "live", u, handler)
	}))
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		h.Shutdown(sctx)
		srv.Close()
		cancel()
		<-runDone
	}()

	before := sampleProcess()

	child := exec.Command(os.Args[0], "-test.run=^TestLoadClientProcess$", "-test.v")
	child.Env = append(os.Environ(),
		"HUB_LOAD_CHILD_URL=ws"+strings.TrimPrefix(srv.URL, "http")+"/",
		"HUB_LOAD_CHILD_CONNS="+strconv.Itoa(n),
		"HUB_LOAD_CHILD_FRAMES="+strconv.Itoa(frames),
	)
	child.Stderr = os.Stderr
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = stdin.Close() // the child exits on EOF
		_ = child.Wait()
	}()
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if s := sc.Text(); strings.HasPrefix(s, "load: ") {
				lines <- strings.TrimPrefix(s, "load: ")
			}
		}
		close(lines)
	}()
	expect := func(prefix string, timeout time.Duration) string {
		t.Helper()
		select {
		case s, ok := <-lines:
			if !ok || !strings.HasPrefix(s, prefix) {
				t.Fatalf("client process: got %q, want %s...", s, prefix)
			}
			return strings.TrimPrefix(s, prefix)
		case <-time.After(timeout):
			t.Fatalf("client process: no %q within %v", prefix, timeout)
		}
		return ""
	}
	dialTimeout := 30*time.Second + time.Duration(n)*time.Millisecond
	expect("ready", dialTimeout)
	waitFor(t, dialTimeout, fmt.Sprintf("%d connections", n), func() bool {
		c, _ := h.Stats()
		return c == n
	})

	// Let handshakes finish unwinding, then collect twice: stacks shrink
	// during GC, and only to half at a time.
	time.Sleep(500 * time.Millisecond)
	idle := sampleProcess()
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	if raceEnabled {
		t.Log("race detector on: memory and CPU figures are not representative")
	}
	t.Logf("%d idle connections (upgrader %s, detached %v), server side, per connection:", n, upgraderKind, detach)
	t.Logf("  RSS        %7.0f B", per(idle.rss, before.rss))
	t.Logf("  heap inuse %7.0f B", per(idle.heap, before.heap))
	t.Logf("  heap live  %7.0f B", per(idle.live, before.live))
	t.Logf("  stacks     %7.0f B", per(idle.stack, before.stack))
	t.Logf("  goroutines %7.2f", per(uint64(idle.goroutines), uint64(before.goroutines)))
	if path := os.Getenv("HUB_LOAD_HEAPPROFILE"); path != "" {
		writeHeapProfile(t, path)
	}
	// An idle connection parks in the poller (reader.go): no goroutine of
	// its own, unless the handler blocks in Serve or there is no poller.
	maxG := 0.05
	if !detach || runtime.GOOS != "linux" {
		maxG = 1.05
	}
	if g := per(uint64(idle.goroutines), uint64(before.goroutines)); g > maxG {
		t.Errorf("%.2f goroutines per idle connection, want at most %.2f", g, maxG)
	}
	// What an idle connection keeps after GC, with a wide margin over
	// today's figure, so that this fails when a goroutine stack or a
	// request's state per connection comes back, not on noise (the race
	// detector's own memory would be counted too).
	if mem := per(idle.live+idle.stack, before.live+before.stack); !raceEnabled && detach && upgraderKind == "web" && mem > maxIdleConnBytes {
		t.Errorf("an idle connection keeps %.0f B of heap and stack, want at most %d", mem, maxIdleConnBytes)
	}

	// Broadcasts: CPU of this process (the server) per delivery.
	if path := os.Getenv("HUB_LOAD_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	outBefore := counterValue(t, m.messagesOut)
	cpu0 := cpuTime()
	start := time.Now()
	var fanout []time.Duration // publish to last write, per broadcast
	for i := range frames {
		pub := time.Now()
		frame := fmt.Appendf(nil, `{"type":"bench","seq":%d,"t":%d,"pad":"%s"}`, i, pub.UnixNano(), strings.Repeat("x", 64))
		if err := h.Publish(ctx, "live", frame); err != nil {
			t.Fatal(err)
		}
		want := outBefore + float64((i+1)*n)
		for counterValue(t, m.messagesOut) < want {
			if time.Since(pub) > time.Minute {
				t.Fatalf("broadcast %d not written within a minute", i)
			}
			time.Sleep(time.Millisecond)
		}
		fanout = append(fanout, time.Since(pub))
		if i < frames-1 {
			time.Sleep(interval - time.Since(pub))
		}
	}
	slices.Sort(fanout)
	cpu := cpuTime() - cpu0
	wall := time.Since(start)
	deliveries := frames * n
	t.Logf("%d broadcasts x %d members in %v: server CPU %v, %.2f µs per delivery",
		frames, n, wall.Round(time.Millisecond), cpu.Round(time.Millisecond), float64(cpu.Nanoseconds())/float64(deliveries)/1e3)
	t.Logf("server fan-out (publish to last write): median %v, max %v",
		fanout[len(fanout)/2].Round(time.Millisecond), fanout[len(fanout)-1].Round(time.Millisecond))

	// What the broadcasts left behind (writer goroutines are transient).
	after := sampleProcess()
	t.Logf("after broadcasts, per connection: RSS %.0f B, heap inuse %.0f B, stacks %.0f B, goroutines %.2f",
		per(after.rss, before.rss), per(after.heap, before.heap), per(after.stack, before.stack),
		per(uint64(after.goroutines), uint64(before.goroutines)))

	var res loadResult
	if err := json.Unmarshal([]byte(expect("result ", 60*time.Second)), &res); err != nil {
		t.Fatal(err)
	}
	t.Logf("client view: %d frames received, latency p50 %v p99 %v max %v",
		res.Received, time.Duration(res.P50), time.Duration(res.P99), time.Duration(res.Max))
	if res.Received != deliveries || res.Bad != 0 {
		t.Errorf("received %d frames (want %d), %d out of order, duplicated or missing", res.Received, deliveries, res.Bad)
	}
}

type loadResult struct {
	Received int   `json:"received"`
	Bad      int   `json:"bad"`
	P50      int64 `json:"p50"`
	P99      int64 `json:"p99"`
	Max      int64 `json:"max"`
}

// TestLoadClientProcess is the client half of TestIdleConnectionsLoad; it
// does nothing unless run as that test's child process.
func TestLoadClientProcess(t *testing.T) {
	url := os.Getenv("HUB_LOAD_CHILD_URL")
	if url == "" {
		t.Skip("client process for TestIdleConnectionsLoad")
	}
	n := envInt("HUB_LOAD_CHILD_CONNS", 0)
	frames := envInt("HUB_LOAD_CHILD_FRAMES", 0)
	d := &websocket.Dialer{ReadBufferSize: 256, WriteBufferSize: 256, HandshakeTimeout: time.Minute}

	lat := make([]int64, n*frames)
	var bad, received atomic.Int64
	var allDone sync.WaitGroup
	allDone.Add(n)
	conns := make([]*websocket.Conn, n)
	var next atomic.Int64
	var dialers sync.WaitGroup
	for range 32 {
		dialers.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				conn, _, err := d.Dial(url+"?uid=u"+strconv.Itoa(i), nil)
				if err != nil {
					fmt.Fprintf(os.Stderr, "dial %d: %v\n", i, err)
					os.Exit(2)
				}
				conns[i] = conn
				go loadRead(conn, lat[i*frames:(i+1)*frames], &bad, &received, &allDone)
			}
		})
	}
	dialers.Wait()
	fmt.Println("load: ready")

	done := make(chan struct{})
	go func() { allDone.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
	}
	got := slices.DeleteFunc(slices.Clone(lat), func(v int64) bool { return v == 0 })
	slices.Sort(got)
	res := loadResult{Received: int(received.Load()), Bad: int(bad.Load())}
	if len(got) > 0 {
		res.P50, res.P99, res.Max = got[len(got)/2], got[len(got)*99/100], got[len(got)-1]
	}
	b, _ := json.Marshal(res)
	fmt.Printf("load: result %s\n", b)
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent is done
	os.Exit(0)
}

// loadRead records each bench frame's latency in lat[seq]; a frame out of
// sequence (or any frame past the last) counts as bad.
func loadRead(conn *websocket.Conn, lat []int64, bad, received *atomic.Int64, done *sync.WaitGroup) {
	want := 0
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			if want < len(lat) {
				done.Done()
			}
			return
		}
		now := time.Now().UnixNano()
		if !bytes.Contains(msg, []byte(`"bench"`)) {
			continue
		}
		seq, ok1 := loadField(msg, `"seq":`)
		ts, ok2 := loadField(msg, `"t":`)
		if !ok1 || !ok2 || int(seq) != want || want >= len(lat) {
			bad.Add(1)
			continue
		}
		lat[want] = max(now-ts, 1)
		received.Add(1)
		want++
		if want == len(lat) {
			done.Done()
		}
	}
}

// loadField parses the integer after key in msg (the client must stay cheap:
// it shares the machine with the server it measures).
func loadField(msg []byte, key string) (int64, bool) {
	i := bytes.Index(msg, []byte(key))
	if i < 0 {
		return 0, false
	}
	v, j := int64(0), i+len(key)
	for ; j < len(msg) && msg[j] >= '0' && msg[j] <= '9'; j++ {
		v = v*10 + int64(msg[j]-'0')
	}
	return v, j > i+len(key)
}

// maxIdleConnBytes bounds the live heap and stack an idle connection
// keeps in TestIdleConnectionsLoad.
const maxIdleConnBytes = 6 << 10

type processSample struct {
	rss, heap, live, stack uint64
	goroutines             int
}

func sampleProcess() processSample {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return processSample{rss: vmRSS(), heap: ms.HeapInuse, live: ms.HeapAlloc, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
}

// vmRSS is the resident set size of this process in bytes (0 off Linux).
func vmRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func writeHeapProfile(t *testing.T, path string) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		t.Fatal(err)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func envInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil && v > 0 {
		return v
	}
	return def
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
