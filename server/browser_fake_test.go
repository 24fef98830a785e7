package main

// fakeEdge plays the server's side of docs/protocol.md for the demo page, and
// nothing more: the REST calls the page makes to join and to load a room, and
// a WebSocket that numbers a room's durable events (seq, epoch), recovers
// from since, answers resync when it can't, and closes with whatever code a
// test asks for. It lets the browser tests drive the page through each case
// of the recovery protocol deterministically, which the real server does not
// offer on demand (a resync needs lost history, a 4001 a sixth connection).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hongbao-dev/hongbao/static"
)

type fakeEdge struct {
	t   *testing.T
	URL string
	wg  sync.WaitGroup

	mu          sync.Mutex
	epoch       string
	events      []map[string]any // the room's durable events; events[i] has seq i+1
	packets     []map[string]any // GET .../packets, oldest first
	conns       map[*websocket.Conn]bool
	users       map[string]string // token → name
	refuse      bool              // /ws answers 503, as a server that can't be reached
	upgrades    []url.Values      // the query of every accepted /ws
	protocols   [][]string        // the subprotocols each accepted /ws offered
	roomFetches int
}

const fakeRecentChat = 50

func newFakeEdge(t *testing.T) *fakeEdge {
	t.Helper()
	f := &fakeEdge{t: t, epoch: "e1", conns: map[*websocket.Conn]bool{}, users: map[string]string{}}
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(static.FS()))
	mux.HandleFunc("POST /api/v1/sessions", f.session)
	mux.HandleFunc("GET /api/v1/me", func(w http.ResponseWriter, r *http.Request) {
		name, ok := f.user(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		if !ok {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]string{"code": "unauthorized"}})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"user": map[string]string{"id": name, "name": name}, "balance": 10000})
	})
	mux.HandleFunc("GET /api/v1/rooms/{room}/packets", f.roomPackets)
	mux.HandleFunc("GET /ws", f.serveWS)
	srv := httptest.NewServer(mux)
	f.URL = srv.URL
	t.Cleanup(func() {
		f.dropAll()
		srv.Close()
		f.wg.Wait()
	})
	return f
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// user is the name a token stands for; a user's id is their name.
func (f *fakeEdge) user(token string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name, ok := f.users[token]
	return name, ok
}

func (f *fakeEdge) session(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name string `json:"name"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "invalid_request"}})
		return
	}
	f.mu.Lock()
	token := fmt.Sprintf("tok-%d", len(f.users)+1) // ASCII, as a subprotocol entry must be
	f.users[token] = in.Name
	f.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"user": map[string]string{"id": in.Name, "name": in.Name}, "token": token})
}

func (f *fakeEdge) roomPackets(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.roomFetches++
	list := make([]map[string]any, 0, len(f.packets))
	for i := len(f.packets) - 1; i >= 0; i-- {
		list = append(list, f.packets[i])
	}
	writeJSON(w, http.StatusOK, map[string]any{"packets": list})
}

func (f *fakeEdge) serveWS(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	refuse := f.refuse
	f.mu.Unlock()
	if refuse {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	var token string
	for _, p := range websocket.Subprotocols(r) {
		if t, ok := strings.CutPrefix(p, "bearer."); ok {
			token = t
		}
	}
	user, ok := f.user(token)
	if !ok {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	up := websocket.Upgrader{Subprotocols: []string{"hongbao.v1"}}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.upgrades = append(f.upgrades, r.URL.Query())
	f.protocols = append(f.protocols, websocket.Subprotocols(r))
	f.conns[conn] = true
	welcome := map[string]any{"type": "welcome", "user": map[string]string{"id": user, "name": user},
		"room": r.URL.Query().Get("room"), "server_time": time.Now().UnixMilli(), "seq": len(f.events), "epoch": f.epoch}
	since := r.URL.Query().Get("since")
	from, recovered := f.covers(since)
	if since != "" {
		welcome["recovered"] = recovered
	}
	f.write(conn, welcome)
	switch {
	case recovered:
		for _, ev := range f.events[from:] {
			f.write(conn, ev)
		}
	default:
		if since != "" {
			f.write(conn, map[string]any{"type": "resync"})
		}
		var chats []map[string]any
		for _, ev := range f.events {
			if ev["type"] == "chat" {
				chats = append(chats, ev)
			}
		}
		for _, ev := range chats[max(0, len(chats)-fakeRecentChat):] {
			f.write(conn, ev)
		}
	}
	f.wg.Add(1)
	go f.readLoop(conn)
}

// covers tells whether the history has everything after since, and where
// that starts.
func (f *fakeEdge) covers(since string) (int, bool) {
	epoch, n, ok := strings.Cut(since, ":")
	seq, err := strconv.Atoi(n)
	if !ok || err != nil || epoch != f.epoch || seq < 0 || seq > len(f.events) {
		return 0, false
	}
	return seq, true
}

// readLoop answers the page's frames that need it (none in these tests but
// ping) and notices the close.
func (f *fakeEdge) readLoop(conn *websocket.Conn) {
	defer f.wg.Done()
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			f.mu.Lock()
			delete(f.conns, conn)
			f.mu.Unlock()
			conn.Close()
			return
		}
	}
}

// write sends one frame; the caller holds f.mu, which serialises writers.
func (f *fakeEdge) write(conn *websocket.Conn, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		f.t.Errorf("fake edge: %v", err)
		return
	}
	_ = conn.WriteMessage(websocket.TextMessage, b)
}

// publish numbers a durable event and sends it to every connection.
func (f *fakeEdge) publish(ev map[string]any) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	ev["seq"], ev["epoch"] = len(f.events)+1, f.epoch
	f.events = append(f.events, ev)
	for c := range f.conns {
		f.write(c, ev)
	}
	return ev
}

// resend sends an event again, as a duplicate delivery would.
func (f *fakeEdge) resend(ev map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		f.write(c, ev)
	}
}

func (f *fakeEdge) chat(id, from, text string) map[string]any {
	return f.publish(map[string]any{"type": "chat", "id": id, "user": map[string]string{"id": from, "name": from},
		"text": text, "at": time.Now().UnixMilli()})
}

func (f *fakeEdge) packet(id, from string) map[string]any {
	now := time.Now().UnixMilli()
	p := map[string]any{"id": id, "room": "fake", "sender": map[string]string{"id": from, "name": from}, "kind": "equal",
		"total": 300, "count": 3, "greeting": "恭喜发财", "created_at": now, "visible_at": now, "expires_at": now + 86400000,
		"status": "active", "remaining_count": 3, "remaining_amount": 300}
	f.mu.Lock()
	f.packets = append(f.packets, p)
	f.mu.Unlock()
	return f.publish(map[string]any{"type": "packet", "packet": p})
}

// loseHistory starts a new epoch, as a server whose Redis lost the room.
func (f *fakeEdge) loseHistory() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.epoch = fmt.Sprintf("e%d", len(f.events)+2)
	f.events = nil
}

// dropAll cuts every connection without a close frame (a lost network).
func (f *fakeEdge) dropAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.NetConn().Close()
	}
}

// closeAll closes every connection with code and reason.
func (f *fakeEdge) closeAll(code int, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
		c.NetConn().Close()
	}
}

func (f *fakeEdge) setRefuse(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuse = v
}

func (f *fakeEdge) connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.upgrades)
}

func (f *fakeEdge) lastUpgrade() (url.Values, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.upgrades) == 0 {
		return nil, nil
	}
	return f.upgrades[len(f.upgrades)-1], f.protocols[len(f.protocols)-1]
}

func (f *fakeEdge) fetches() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.roomFetches
}
