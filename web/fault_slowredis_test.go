package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hongbao-dev/hongbao/internal/goroutinetest"
	"github.com/hongbao-dev/hongbao/internal/redistest"
	"github.com/hongbao-dev/hongbao/packet"
)

// Redis stops answering (DEBUG SLEEP) while clients grab over WebSocket
// and REST, each grabbing again whenever it is answered "unavailable", until
// Redis is back. Every answer comes within GrabTimeout (plus scheduling
// slack), never a hang; the process's goroutines and heap stay bounded by
// the clients, and stop growing however long the stall lasts; once Redis is
// back every client grabs again and is paid exactly its claim, and the audit
// is clean. With grabs coalesced and with each grab alone
// (HONGBAO_COALESCE_GRABS=false). HONGBAO_LONG_TESTS=1 adds a 15 s stall
// with 400 clients.
func TestRedisSlowGrabsAnswerInTime(t *testing.T) {
	for _, tc := range []struct {
		stall   int // seconds of DEBUG SLEEP
		clients int // half over WebSocket, half over REST
		long    bool
	}{{5, 80, false}, {15, 400, true}} {
		for _, direct := range []bool{false, true} {
			name := fmt.Sprintf("%ds/coalesced", tc.stall)
			if direct {
				name = fmt.Sprintf("%ds/direct", tc.stall)
			}
			t.Run(name, func(t *testing.T) {
				if tc.long && !longTests() {
					t.Skip("set HONGBAO_LONG_TESTS=1 for the long stall")
				}
				slowRedisGrabs(t, direct, tc.stall, tc.clients)
			})
		}
	}
}

func slowRedisGrabs(t *testing.T, direct bool, stall, clients int) {
	goroutinetest.Baseline(t)
	const grabTimeout = 500 * time.Millisecond
	wsClients, restClients := clients/2, clients-clients/2
	cfg := stackConfig()
	cfg.GrabTimeout = grabTimeout
	st := newStack(t, stackOptions{redis: redistest.Options{Debug: true}, web: cfg, serve: true, direct: direct})
	ctx := context.Background()

	sender, _ := st.user(t, "sender", 1_000_000)
	d, err := st.store.Draft(packet.CreateRequest{Room: "slow", Sender: sender, Kind: packet.Lucky, Total: 100_000, Count: 1000, Greeting: "慢"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.store.Open(ctx, []*packet.Draft{d}, nil); err != nil {
		t.Fatal(err)
	}
	pid := d.Packet.ID

	type answer struct {
		user    string
		code    string // "" for ok
		elapsed time.Duration
	}
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: restClients}}
	defer httpc.CloseIdleConnections()
	grabREST := func(tok string) (string, error) {
		req, _ := http.NewRequest(http.MethodPost, st.URL+"/api/v1/packets/"+pid+"/grab", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := httpc.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK {
			return "", nil
		}
		var eb ErrorBody
		if err := json.Unmarshal(body, &eb); err != nil {
			return "", fmt.Errorf("%d %q", resp.StatusCode, body)
		}
		return eb.Error.Code, nil
	}
	var conns []*wsGrabber
	for i := 0; i < wsClients; i++ {
		u, tok := st.user(t, fmt.Sprintf("ws%d", i), 0)
		g, err := dialGrabber(st.wsURL("slow", tok), u.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer g.conn.Close()
		conns = append(conns, g)
	}
	restTokens := map[string]string{}
	for i := 0; i < restClients; i++ {
		u, tok := st.user(t, fmt.Sprintf("rest%d", i), 0)
		restTokens[u.ID] = tok
	}

	// Redis sleeps, seen from a side connection: DEBUG SLEEP is sent, and
	// the stall has begun once a PING goes unanswered.
	sleeper, err := net.Dial("tcp", st.redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer sleeper.Close()
	fmt.Fprintf(sleeper, "DEBUG SLEEP %d\r\n", stall)
	awaitStall(t, st.redis.Addr)
	stallStart := time.Now()

	// Redis answers again when the sleeper's reply comes.
	awake := make(chan struct{})
	var sleepErr error
	go func() {
		defer close(awake)
		_, sleepErr = bufio.NewReader(sleeper).ReadString('\n')
	}()
	defer func() {
		sleeper.Close()
		<-awake
	}()
	asleep := func() bool {
		select {
		case <-awake:
			return false
		default:
			return true
		}
	}

	// Sample the process every 50 ms while the stall lasts.
	before := runtime.NumGoroutine()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heapBefore := ms.HeapAlloc
	type sample struct {
		at         time.Duration
		goroutines int
		heap       uint64
	}
	var samples []sample
	var sampled sync.WaitGroup
	sampled.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for asleep() {
			select {
			case <-awake:
			case <-tick.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			samples = append(samples, sample{time.Since(stallStart), runtime.NumGoroutine(), ms.HeapAlloc})
		}
	})

	// Every client grabs, and grabs again on "unavailable" while Redis
	// sleeps.
	answers := make(chan answer, 64)
	var wg sync.WaitGroup
	keepGrabbing := func(user string, grab func() (string, error)) {
		defer wg.Done()
		for {
			start := time.Now()
			code, err := grab()
			if err != nil {
				t.Errorf("grab by %s: %v", user, err)
				return
			}
			answers <- answer{user, code, time.Since(start)}
			if code != "unavailable" || !asleep() {
				return
			}
		}
	}
	for _, g := range conns {
		wg.Add(1)
		go keepGrabbing(g.user, func() (string, error) { return g.grab(pid, 30*time.Second) })
	}
	for id, tok := range restTokens {
		wg.Add(1)
		go keepGrabbing(id, func() (string, error) { return grabREST(tok) })
	}
	go func() { wg.Wait(); close(answers) }()

	told := map[string]bool{} // users told ok
	var slowest time.Duration
	codes := map[string]int{}
	for a := range answers {
		codes[a.code]++
		slowest = max(slowest, a.elapsed)
		switch a.code {
		case "":
			told[a.user] = true
		case "unavailable", "already_grabbed":
			// already_grabbed: an earlier attempt answered unavailable
			// was settled once Redis woke.
		default:
			t.Errorf("%s: grab answered %q during the stall", a.user, a.code)
		}
	}
	<-awake
	sampled.Wait()
	if sleepErr != nil {
		t.Fatalf("DEBUG SLEEP: %v", sleepErr)
	}
	t.Logf("Redis answered again %v after the stall began", time.Since(stallStart).Round(time.Millisecond))

	peakG, peakHeap := before, heapBefore
	for _, s := range samples {
		peakG, peakHeap = max(peakG, s.goroutines), max(peakHeap, s.heap)
	}
	t.Logf("stall %ds, %d clients: answers %v, slowest %v (GrabTimeout %v); goroutines %d before, peak %d; heap %d KiB before, peak %d KiB",
		stall, clients, codes, slowest.Round(time.Millisecond), grabTimeout, before, peakG, heapBefore>>10, peakHeap>>10)
	if codes["unavailable"] < clients {
		t.Errorf("%d grabs refused while Redis slept %ds for %d clients: the stall did not land", codes["unavailable"], stall, clients)
	}
	// Answered within the timeout, with room for a loaded machine, and
	// well before Redis woke up.
	// Well under the stall: an answer this late would still be one that
	// did not wait for Redis, with room for a loaded machine's scheduling.
	if limit := grabTimeout + 3*time.Second; slowest > limit {
		t.Errorf("slowest grab answered after %v, GrabTimeout is %v: requests wait on a stalled Redis", slowest, grabTimeout)
	}
	// Bounded by the clients: each holds a few goroutines (the test's
	// client, and the server's side of it: a REST request holds three or
	// four on both ends), plus the script calls of its recent attempts
	// still waiting on Redis, which give up at the attempt's deadline or
	// the pool's read timeout. Coalesced grabs of one packet share one
	// call.
	if limit := before + 8*clients; peakG > limit {
		t.Errorf("goroutines peaked at %d for %d clients (started at %d)", peakG, clients, before)
	}
	if limit := heapBefore + 16<<20 + uint64(clients)<<16; peakHeap > limit {
		t.Errorf("heap peaked at %d KiB for %d clients (started at %d KiB)", peakHeap>>10, clients, heapBefore>>10)
	}
	// And they stop growing: a long stall's second half peaks no higher
	// than its first (past the first 10 s, when every detached call's
	// deadline has come), give or take a goroutine per client.
	if stall >= 12 {
		var early, late int
		for _, s := range samples {
			switch {
			case s.at >= 10*time.Second && s.at < 10*time.Second+time.Duration(stall-10)*time.Second/2:
				early = max(early, s.goroutines)
			case s.at >= 10*time.Second+time.Duration(stall-10)*time.Second/2 && s.at < time.Duration(stall)*time.Second:
				late = max(late, s.goroutines)
			}
		}
		t.Logf("goroutines past 10 s: peak %d in the first half, %d in the second", early, late)
		if late > early+clients {
			t.Errorf("goroutines still growing late in the stall: %d, then %d", early, late)
		}
	}

	// Redis is back: every client grabs once more and is paid.
	for _, g := range conns {
		code, err := g.grab(pid, 10*time.Second)
		if err != nil || (code != "" && code != "already_grabbed") {
			t.Fatalf("ws grab by %s after the stall: %q %v", g.user, code, err)
		}
		told[g.user] = true
	}
	for id, tok := range restTokens {
		code, err := grabREST(tok)
		if err != nil || (code != "" && code != "already_grabbed") {
			t.Fatalf("rest grab by %s after the stall: %q %v", id, code, err)
		}
		told[id] = true
	}
	// A grab answered "unavailable" may still have been settled once Redis
	// woke (its outcome was unknown, not refused), so the books are checked
	// against the claims, not against the answers.
	detail, err := st.store.Detail(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	paid := map[string]int64{}
	for _, c := range detail.Claims {
		paid[c.User.ID] += c.Amount
	}
	for id := range told {
		w, err := st.store.Wallet(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if paid[id] == 0 || w.Balance+w.PendingTotal != paid[id] {
			t.Errorf("%s: claim %d, wallet %d (+%d pending)", id, paid[id], w.Balance, w.PendingTotal)
		}
	}
	st.auditClean(t)
}

// awaitStall returns once a PING to addr goes unanswered for 300 ms.
func awaitStall(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(300 * time.Millisecond))
		_, _ = c.Write([]byte("PING\r\n"))
		_, err = bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil {
			return
		}
	}
	t.Fatal("Redis never stopped answering")
}

// wsGrabber is a WebSocket client that sends one grab at a time and waits
// for its result, skipping every other frame.
type wsGrabber struct {
	conn *websocket.Conn
	user string
	seq  int
}

func dialGrabber(url, user string) (*wsGrabber, error) {
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		return nil, err
	}
	return &wsGrabber{conn: conn, user: user}, nil
}

// grab sends a grab and returns its result's code ("" for ok).
func (g *wsGrabber) grab(packetID string, timeout time.Duration) (string, error) {
	g.seq++
	ref := fmt.Sprintf("g%d", g.seq)
	if err := g.conn.WriteJSON(map[string]string{"type": "grab", "ref": ref, "packet_id": packetID}); err != nil {
		return "", err
	}
	_ = g.conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		_, data, err := g.conn.ReadMessage()
		if err != nil {
			return "", err
		}
		if !strings.Contains(string(data), `"result"`) {
			continue
		}
		var r struct {
			Type  string      `json:"type"`
			Ref   string      `json:"ref"`
			OK    bool        `json:"ok"`
			Error ErrorObject `json:"error"`
		}
		if err := json.Unmarshal(data, &r); err != nil {
			return "", err
		}
		if r.Type != "result" || r.Ref != ref {
			continue
		}
		if r.OK {
			return "", nil
		}
		return r.Error.Code, nil
	}
}
