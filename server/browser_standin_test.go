package main

// standIn plays the server's side of issue 11 (docs/protocol.md plus the
// additions agreed in PROTOCOL11: exclusive "to", "password", "opens_at",
// the codes not_for_you, wrong_password and not_yet, the refunded event,
// GET /api/v1/me/packets, /me/claims and /me/summary) for the demo page, so
// the browser tests can drive the page's side of issue 11 before the real
// server side is merged into this branch. It is a STAND-IN: money here is a
// map of integers under one mutex, not Redis and Lua; what it checks is the
// page, not the server. Like fakeEdge it serves the page's files, with the
// real server's Content-Security-Policy, so a CSP violation still shows.
//
// Its clock may be set apart from the browser's (skew), to check that the
// page counts down on the server's clock (welcome's server_time).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hongbao-dev/hongbao/static"
)

// standInCSP is the policy web/secure.go sets (without connect-src, which
// 'self' covers for these same-origin tests in current Chromium).
const standInCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

type standInUser struct {
	ID, Name string
	balance  int64
}

type standInClaim struct {
	UserID string
	Amount int64
	At     int64
}

type standInPacket struct {
	ID, Room, Sender, Kind, Greeting string
	Total, Refunded                  int64
	Count                            int
	To                               []string
	Password                         *string
	OpensAt, CreatedAt, ExpiresAt    int64
	Status                           string
	shares                           []int64 // what is left to grab, in grab order
	claims                           []standInClaim
}

// standInGrab is one grab the page asked for, refused or not.
type standInGrab struct {
	PacketID, UserID, Password, Code string
	HasPassword                      bool
	At                               int64 // on the stand-in's clock
}

type standInConn struct {
	ws     *websocket.Conn
	user   *standInUser
	room   string
	writes sync.Mutex
}

type standIn struct {
	t    *testing.T
	URL  string
	skew time.Duration
	wg   sync.WaitGroup

	mu      sync.Mutex
	users   map[string]*standInUser // id → user
	tokens  map[string]*standInUser
	packets map[string]*standInPacket
	order   []*standInPacket // creation order
	seq     map[string]int   // room → last durable seq
	conns   map[*standInConn]bool
	grabs   []standInGrab
	creates []map[string]any // the bodies of POST .../packets, as sent
	refuse  string           // a code (429) every create is refused with, as a sending limit would
	nextID  int
}

func newStandIn(t *testing.T, skew time.Duration) *standIn {
	t.Helper()
	s := &standIn{t: t, skew: skew, users: map[string]*standInUser{}, tokens: map[string]*standInUser{},
		packets: map[string]*standInPacket{}, seq: map[string]int{}, conns: map[*standInConn]bool{}}
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(static.FS()))
	mux.HandleFunc("POST /api/v1/sessions", s.session)
	mux.HandleFunc("GET /api/v1/me", s.authed(s.me))
	mux.HandleFunc("GET /api/v1/me/packets", s.authed(s.myPackets))
	mux.HandleFunc("GET /api/v1/me/claims", s.authed(s.myClaims))
	mux.HandleFunc("GET /api/v1/me/summary", s.authed(s.mySummary))
	mux.HandleFunc("GET /api/v1/rooms/{room}/packets", s.authed(s.roomPackets))
	mux.HandleFunc("POST /api/v1/rooms/{room}/packets", s.authed(s.create))
	mux.HandleFunc("GET /api/v1/packets/{id}", s.authed(s.detail))
	mux.HandleFunc("POST /api/v1/packets/{id}/grab", s.authed(s.restGrab))
	mux.HandleFunc("GET /ws", s.serveWS)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", standInCSP)
		mux.ServeHTTP(w, r)
	}))
	s.URL = srv.URL
	t.Cleanup(func() {
		s.mu.Lock()
		for c := range s.conns {
			c.ws.NetConn().Close()
		}
		s.mu.Unlock()
		srv.Close()
		s.wg.Wait()
	})
	return s
}

// now is the stand-in's clock, in unix ms.
func (s *standIn) now() int64 { return time.Now().Add(s.skew).UnixMilli() }

func standInError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": message}})
}

func (s *standIn) session(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name string `json:"name"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Name == "" {
		standInError(w, http.StatusBadRequest, "invalid_request", "a name")
		return
	}
	s.mu.Lock()
	s.nextID++
	u := &standInUser{ID: fmt.Sprintf("u%d", s.nextID), Name: in.Name, balance: 10000}
	token := fmt.Sprintf("tok-%d", s.nextID)
	s.users[u.ID] = u
	s.tokens[token] = u
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"user": map[string]string{"id": u.ID, "name": u.Name}, "token": token})
}

func (s *standIn) authed(h func(http.ResponseWriter, *http.Request, *standInUser)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		u := s.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		s.mu.Unlock()
		if u == nil {
			standInError(w, http.StatusUnauthorized, "unauthorized", "no session")
			return
		}
		h(w, r, u)
	}
}

func (s *standIn) userJSON(id string) map[string]string {
	u := s.users[id]
	if u == nil {
		return map[string]string{"id": id, "name": id}
	}
	return map[string]string{"id": u.ID, "name": u.Name}
}

// packetJSON is the packet object, with the issue 11 fields when set; the
// caller holds s.mu.
func (s *standIn) packetJSON(p *standInPacket, viewer string) map[string]any {
	left := int64(0)
	for _, a := range p.shares {
		left += a
	}
	visible := p.CreatedAt
	if p.OpensAt != 0 {
		visible = p.OpensAt
	}
	out := map[string]any{"id": p.ID, "room": p.Room, "sender": s.userJSON(p.Sender), "kind": p.Kind,
		"total": p.Total, "count": p.Count, "greeting": p.Greeting, "created_at": p.CreatedAt,
		"visible_at": visible, "expires_at": p.ExpiresAt, "status": p.Status,
		"remaining_count": len(p.shares), "remaining_amount": left}
	if len(p.To) > 0 {
		to := make([]map[string]string, 0, len(p.To))
		for _, id := range p.To {
			to = append(to, s.userJSON(id))
		}
		out["to"] = to
	}
	if p.Password != nil {
		out["password"] = *p.Password
	}
	if p.OpensAt != 0 {
		out["opens_at"] = p.OpensAt
	}
	if p.Status == "expired" {
		out["refunded"] = p.Refunded
	}
	for _, c := range p.claims {
		if c.UserID == viewer {
			out["grabbed_by_me"] = c.Amount
		}
	}
	return out
}

func (s *standIn) me(w http.ResponseWriter, _ *http.Request, u *standInUser) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := s.summary(u.ID)
	writeJSON(w, http.StatusOK, map[string]any{"user": s.userJSON(u.ID), "balance": u.balance,
		"received": sum["received"], "sent": sum["sent"], "refunded": sum["refunded"],
		"pending": map[string]int64{"total": 0, "count": 0}})
}

// summary counts everything (the tests run within one year); s.mu is held.
func (s *standIn) summary(userID string) map[string]any {
	var sent, recv, refunded [2]int64
	for _, p := range s.order {
		if p.Sender == userID {
			sent[0] += p.Total
			sent[1]++
			if p.Refunded > 0 {
				refunded[0] += p.Refunded
				refunded[1]++
			}
		}
		for _, c := range p.claims {
			if c.UserID == userID {
				recv[0] += c.Amount
				recv[1]++
			}
		}
	}
	pair := func(v [2]int64) map[string]int64 { return map[string]int64{"total": v[0], "count": v[1]} }
	return map[string]any{"year": time.UnixMilli(s.now()).UTC().Year(), "sent": pair(sent), "received": pair(recv), "refunded": pair(refunded)}
}

func (s *standIn) mySummary(w http.ResponseWriter, _ *http.Request, u *standInUser) {
	s.mu.Lock()
	defer s.mu.Unlock()
	writeJSON(w, http.StatusOK, s.summary(u.ID))
}

// standInPage answers one page of rows, newest first, with X-Next-Cursor when there
// is more; the cursor is the offset, opaque to the page.
func standInPage[T any](w http.ResponseWriter, r *http.Request, rows []T, max int) {
	limit, offset := 20, 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > max {
			standInError(w, http.StatusBadRequest, "invalid_request", "limit")
			return
		}
		limit = n
	}
	if v := r.URL.Query().Get("cursor"); v != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(v, "o"))
		if err != nil || !strings.HasPrefix(v, "o") || n < 0 || n > len(rows) {
			standInError(w, http.StatusBadRequest, "invalid_request", "cursor")
			return
		}
		offset = n
	}
	end := min(len(rows), offset+limit)
	if end < len(rows) {
		w.Header().Set("X-Next-Cursor", fmt.Sprintf("o%d", end))
	}
	writeJSON(w, http.StatusOK, rows[offset:end])
}

func (s *standIn) myPackets(w http.ResponseWriter, r *http.Request, u *standInUser) {
	s.mu.Lock()
	var rows []map[string]any
	for i := len(s.order) - 1; i >= 0; i-- {
		if p := s.order[i]; p.Sender == u.ID {
			rows = append(rows, s.packetJSON(p, u.ID))
		}
	}
	s.mu.Unlock()
	standInPage(w, r, rows, 100)
}

func (s *standIn) myClaims(w http.ResponseWriter, r *http.Request, u *standInUser) {
	s.mu.Lock()
	var rows []map[string]any
	for i := len(s.order) - 1; i >= 0; i-- {
		p := s.order[i]
		for _, c := range p.claims {
			if c.UserID == u.ID {
				rows = append(rows, map[string]any{"packet_id": p.ID, "room": p.Room, "amount": c.Amount, "at": c.At})
			}
		}
	}
	s.mu.Unlock()
	standInPage(w, r, rows, 100)
}

func (s *standIn) roomPackets(w http.ResponseWriter, r *http.Request, u *standInUser) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := []map[string]any{}
	for i := len(s.order) - 1; i >= 0; i-- {
		if p := s.order[i]; p.Room == r.PathValue("room") {
			list = append(list, s.packetJSON(p, u.ID))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"packets": list, "next_cursor": ""})
}

func (s *standIn) detail(w http.ResponseWriter, r *http.Request, u *standInUser) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.packets[r.PathValue("id")]
	if p == nil {
		standInError(w, http.StatusNotFound, "not_found", "no such packet")
		return
	}
	claims := []map[string]any{}
	var luckiest map[string]any
	var best int64
	for _, c := range p.claims {
		claims = append(claims, map[string]any{"user": s.userJSON(c.UserID), "amount": c.Amount, "at": c.At})
		if c.Amount > best {
			best, luckiest = c.Amount, map[string]any{"user": s.userJSON(c.UserID), "amount": c.Amount}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"packet": s.packetJSON(p, u.ID), "claims": claims,
		"luckiest": luckiest, "duration_ms": nil, "refunded": p.Refunded})
}

// create takes the body PROTOCOL11 describes and refuses what it refuses.
func (s *standIn) create(w http.ResponseWriter, r *http.Request, u *standInUser) {
	var raw map[string]any
	if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
		standInError(w, http.StatusBadRequest, "invalid_request", "bad JSON")
		return
	}
	b, _ := json.Marshal(raw)
	var in struct {
		Kind     string   `json:"kind"`
		Total    int64    `json:"total"`
		Count    int      `json:"count"`
		Greeting string   `json:"greeting"`
		To       []string `json:"to"`
		Password *string  `json:"password"`
		OpensAt  int64    `json:"opens_at"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		standInError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creates = append(s.creates, raw)
	now := s.now()
	switch {
	case s.refuse != "":
		standInError(w, http.StatusTooManyRequests, s.refuse, "limit reached ("+s.refuse+")")
		return
	case in.Kind != "lucky" && in.Kind != "equal", in.Count < 1, in.Total < int64(in.Count):
		standInError(w, http.StatusBadRequest, "invalid_request", "kind, total or count")
		return
	case in.To != nil && in.Password != nil:
		standInError(w, http.StatusBadRequest, "invalid_request", "exclusive packets take no password")
		return
	case in.To != nil && (len(in.To) < 1 || len(in.To) > 100):
		standInError(w, http.StatusBadRequest, "invalid_request", "to: 1..100 user ids")
		return
	case in.Password != nil && (len([]rune(*in.Password)) < 1 || len([]rune(*in.Password)) > 32):
		standInError(w, http.StatusBadRequest, "invalid_request", "password: 1..32 characters")
		return
	case in.OpensAt != 0 && (in.OpensAt <= now || in.OpensAt > now+10*60*1000):
		standInError(w, http.StatusBadRequest, "invalid_request", "opens_at: at most 10 minutes ahead")
		return
	case u.balance < in.Total:
		standInError(w, http.StatusConflict, "insufficient_funds", "balance")
		return
	}
	for _, id := range in.To {
		if s.users[id] == nil {
			standInError(w, http.StatusBadRequest, "invalid_request", "unknown user "+id)
			return
		}
	}
	u.balance -= in.Total
	p := s.add(u.ID, r.PathValue("room"), in.Kind, in.Total, in.Count, in.Greeting, now)
	p.To, p.Password, p.OpensAt = in.To, in.Password, in.OpensAt
	s.publish(p.Room, map[string]any{"type": "packet", "packet": s.packetJSON(p, "")})
	writeJSON(w, http.StatusCreated, map[string]any{"packet": s.packetJSON(p, u.ID)})
}

// add makes a packet whose shares are total/count each, the last one taking
// the rest; s.mu is held.
func (s *standIn) add(sender, room, kind string, total int64, count int, greeting string, at int64) *standInPacket {
	s.nextID++
	p := &standInPacket{ID: fmt.Sprintf("p%d", s.nextID), Room: room, Sender: sender, Kind: kind, Total: total,
		Count: count, Greeting: greeting, CreatedAt: at, ExpiresAt: at + 86400000, Status: "active"}
	for i := 0; i < count; i++ {
		share := total / int64(count)
		if i == count-1 {
			share = total - share*int64(count-1)
		}
		p.shares = append(p.shares, share)
	}
	s.packets[p.ID] = p
	s.order = append(s.order, p)
	return p
}

// grab settles one grab, or says why not: the checks in the order
// PROTOCOL11 implies (who may, when, with what phrase, then the shares).
func (s *standIn) grab(u *standInUser, id string, password *string) (map[string]any, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := standInGrab{PacketID: id, UserID: u.ID, HasPassword: password != nil, At: s.now()}
	if password != nil {
		g.Password = *password
	}
	code := ""
	defer func() { g.Code = code; s.grabs = append(s.grabs, g) }()
	p := s.packets[id]
	switch {
	case p == nil:
		code = "not_found"
	case p.Status == "expired":
		code = "expired"
	case len(p.To) > 0 && !slices.Contains(p.To, u.ID):
		code = "not_for_you"
	case p.OpensAt != 0 && g.At < p.OpensAt:
		code = "not_yet"
	case p.Password != nil && (password == nil || *password != *p.Password):
		code = "wrong_password"
	case slices.ContainsFunc(p.claims, func(c standInClaim) bool { return c.UserID == u.ID }):
		code = "already_grabbed"
	case len(p.shares) == 0:
		code = "sold_out"
	}
	if code != "" {
		return nil, code
	}
	amount := p.shares[0]
	p.shares = p.shares[1:]
	p.claims = append(p.claims, standInClaim{UserID: u.ID, Amount: amount, At: g.At})
	u.balance += amount
	s.broadcast(p.Room, map[string]any{"type": "grabbed", "packet_id": p.ID, "remaining": len(p.shares),
		"grabs": []map[string]any{{"user": s.userJSON(u.ID), "amount": amount}}})
	if len(p.shares) == 0 {
		p.Status = "empty"
		s.publish(p.Room, map[string]any{"type": "finished", "packet_id": p.ID, "reason": "empty", "remaining": 0,
			"duration_ms": g.At - p.CreatedAt, "luckiest": nil})
	}
	return map[string]any{"packet_id": p.ID, "amount": amount, "remaining": len(p.shares)}, ""
}

var standInStatus = map[string]int{"not_found": 404, "expired": 410, "sold_out": 410, "not_for_you": 403,
	"wrong_password": 403, "not_yet": 425, "already_grabbed": 409}

func (s *standIn) restGrab(w http.ResponseWriter, r *http.Request, u *standInUser) {
	var in struct {
		Password *string `json:"password"`
	}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			standInError(w, http.StatusBadRequest, "invalid_request", "bad JSON")
			return
		}
	}
	res, code := s.grab(u, r.PathValue("id"), in.Password)
	if code != "" {
		standInError(w, standInStatus[code], code, code)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// expire closes a packet at its expiry: the room hears finished, the
// sender's connections (in any room) hear refunded.
func (s *standIn) expire(id string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.packets[id]
	var left int64
	for _, a := range p.shares {
		left += a
	}
	remaining := len(p.shares)
	p.shares, p.Status, p.Refunded = nil, "expired", left
	s.users[p.Sender].balance += left
	s.publish(p.Room, map[string]any{"type": "finished", "packet_id": p.ID, "reason": "expired", "remaining": remaining, "duration_ms": nil, "luckiest": nil})
	at := s.now()
	for c := range s.conns {
		if c.user.ID == p.Sender {
			s.write(c, map[string]any{"type": "refunded", "packet_id": p.ID, "room": p.Room, "amount": left, "at": at})
		}
	}
	return left
}

func (s *standIn) serveWS(w http.ResponseWriter, r *http.Request) {
	var token string
	for _, p := range websocket.Subprotocols(r) {
		if t, ok := strings.CutPrefix(p, "bearer."); ok {
			token = t
		}
	}
	s.mu.Lock()
	u := s.tokens[token]
	s.mu.Unlock()
	if u == nil {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	up := websocket.Upgrader{Subprotocols: []string{"hongbao.v1"}}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &standInConn{ws: ws, user: u, room: r.URL.Query().Get("room")}
	s.mu.Lock()
	s.conns[c] = true
	s.write(c, map[string]any{"type": "welcome", "user": s.userJSON(u.ID), "room": c.room,
		"server_time": s.now(), "seq": s.seq[c.room], "epoch": "s1"})
	s.presence(c.room)
	s.mu.Unlock()
	s.wg.Add(1)
	go s.readLoop(c)
}

func (s *standIn) readLoop(c *standInConn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.presence(c.room)
		s.mu.Unlock()
		c.ws.Close()
	}()
	for {
		var f struct {
			Type     string  `json:"type"`
			Ref      string  `json:"ref"`
			PacketID string  `json:"packet_id"`
			Password *string `json:"password"`
			Text     string  `json:"text"`
		}
		if err := c.ws.ReadJSON(&f); err != nil {
			return
		}
		switch f.Type {
		case "grab":
			res, code := s.grab(c.user, f.PacketID, f.Password)
			s.mu.Lock()
			if code != "" {
				s.write(c, map[string]any{"type": "result", "ref": f.Ref, "ok": false, "error": map[string]string{"code": code, "message": code}})
			} else {
				res["type"], res["ref"], res["ok"] = "result", f.Ref, true
				s.write(c, res)
			}
			s.mu.Unlock()
		case "chat":
			s.mu.Lock()
			s.nextID++
			id, at := fmt.Sprintf("m%d", s.nextID), s.now()
			s.write(c, map[string]any{"type": "result", "ref": f.Ref, "ok": true, "id": id, "at": at})
			s.publish(c.room, map[string]any{"type": "chat", "id": id, "user": s.userJSON(c.user.ID), "text": f.Text, "at": at})
			s.mu.Unlock()
		default:
			s.mu.Lock()
			s.write(c, map[string]any{"type": "result", "ref": f.Ref, "ok": true})
			s.mu.Unlock()
		}
	}
}

// write sends one frame; s.mu is held (and c.writes orders this conn's frames).
func (s *standIn) write(c *standInConn, v any) {
	c.writes.Lock()
	defer c.writes.Unlock()
	_ = c.ws.WriteJSON(v)
}

// publish numbers a durable event of room and sends it; s.mu is held.
func (s *standIn) publish(room string, ev map[string]any) {
	s.seq[room]++
	ev["seq"], ev["epoch"] = s.seq[room], "s1"
	s.broadcast(room, ev)
}

func (s *standIn) broadcast(room string, ev map[string]any) {
	for c := range s.conns {
		if c.room == room {
			s.write(c, ev)
		}
	}
}

// presence tells room who is in it; s.mu is held.
func (s *standIn) presence(room string) {
	seen := map[string]bool{}
	users := []map[string]string{}
	for c := range s.conns {
		if c.room == room && !seen[c.user.ID] {
			seen[c.user.ID] = true
			users = append(users, s.userJSON(c.user.ID))
		}
	}
	s.broadcast(room, map[string]any{"type": "presence", "online": len(users), "users": users})
}

// grabsOf lists the grabs the page asked for, of packet id.
func (s *standIn) grabsOf(id string) []standInGrab {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []standInGrab
	for _, g := range s.grabs {
		if g.PacketID == id {
			out = append(out, g)
		}
	}
	return out
}

func (s *standIn) lastCreate() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.creates) == 0 {
		return nil
	}
	return s.creates[len(s.creates)-1]
}

func (s *standIn) packet(id string) standInPacket {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.packets[id]
}

func (s *standIn) balance(userID string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[userID].balance
}

// refuseCreates makes every create answer 429 code ("" to stop).
func (s *standIn) refuseCreates(code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = code
}
