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

// Redis stops answering for a few seconds (DEBUG SLEEP) while clients grab
// over WebSocket and REST. Every grab is answered within its GrabTimeout
// (plus scheduling slack), with "unavailable" if Redis did not answer in
// time, never a hang; the process's goroutines and heap stay bounded by
// the requests in flight; once Redis is back, grabs succeed, everyone who
// was told ok is paid, and the audit is clean.
func TestRedisSlowGrabsAnswerInTime(t *testing.T) {
	for _, direct := range []bool{false, true} {
		name := "coalesced"
		if direct {
			name = "direct"
		}
		t.Run(name, func(t *testing.T) { slowRedisGrabs(t, direct) })
	}
}

func slowRedisGrabs(t *testing.T, direct bool) {
	goroutinetest.Baseline(t)
	const grabTimeout = 500 * time.Millisecond
	const stall = 3 // seconds of DEBUG SLEEP
	const wsClients, restClients = 40, 40
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

	// Sample the process while the requests are in flight.
	before := runtime.NumGoroutine()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heapBefore := ms.HeapAlloc
	sampling := make(chan struct{})
	var peakG int
	var peakHeap uint64
	var sampled sync.WaitGroup
	sampled.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-sampling:
				return
			case <-tick.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peakG = max(peakG, runtime.NumGoroutine())
			peakHeap = max(peakHeap, ms.HeapAlloc)
		}
	})

	answers := make(chan answer, wsClients+restClients)
	var wg sync.WaitGroup
	for _, g := range conns {
		wg.Go(func() {
			start := time.Now()
			code, err := g.grab(pid, 30*time.Second)
			if err != nil {
				t.Errorf("ws grab by %s: %v", g.user, err)
				return
			}
			answers <- answer{g.user, code, time.Since(start)}
		})
	}
	for id, tok := range restTokens {
		wg.Go(func() {
			start := time.Now()
			code, err := grabREST(tok)
			if err != nil {
				t.Errorf("rest grab by %s: %v", id, err)
				return
			}
			answers <- answer{id, code, time.Since(start)}
		})
	}
	wg.Wait()
	close(sampling)
	sampled.Wait()
	close(answers)

	told := map[string]bool{} // users told ok
	var slowest time.Duration
	codes := map[string]int{}
	for a := range answers {
		codes[a.code]++
		slowest = max(slowest, a.elapsed)
		switch a.code {
		case "":
			told[a.user] = true
		case "unavailable":
		default:
			t.Errorf("%s: grab answered %q during the stall", a.user, a.code)
		}
	}
	inFlight := wsClients + restClients
	t.Logf("stall %ds: %d answers %v, slowest %v (GrabTimeout %v); goroutines %d before, peak %d; heap %d KiB before, peak %d KiB",
		stall, inFlight, codes, slowest.Round(time.Millisecond), grabTimeout, before, peakG, heapBefore>>10, peakHeap>>10)
	if codes["unavailable"] == 0 {
		t.Errorf("no grab was refused while Redis slept %ds: the stall did not land", stall)
	}
	// Answered within the timeout, with room for a loaded machine, and
	// well before Redis woke up.
	if limit := grabTimeout + time.Second; slowest > limit {
		t.Errorf("slowest grab answered after %v, GrabTimeout is %v: requests wait on a stalled Redis", slowest, grabTimeout)
	}
	// Bounded: a few goroutines per request in flight at most (a REST
	// request has its connection's, a grab its batch's), not a number that
	// grows with the stall.
	if limit := before + 6*inFlight; peakG > limit {
		t.Errorf("goroutines peaked at %d with %d requests in flight (started at %d)", peakG, inFlight, before)
	}
	if limit := heapBefore + 16<<20 + uint64(inFlight)<<16; peakHeap > limit {
		t.Errorf("heap peaked at %d KiB with %d requests in flight (started at %d KiB)", peakHeap>>10, inFlight, heapBefore>>10)
	}

	// Redis answers again: wait for the end of the stall, then every grabber
	// grabs once more and is paid.
	if _, err := bufio.NewReader(sleeper).ReadString('\n'); err != nil {
		t.Fatalf("DEBUG SLEEP: %v", err)
	}
	t.Logf("Redis answered again %v after the stall began", time.Since(stallStart).Round(time.Millisecond))
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
