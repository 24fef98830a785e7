package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
)

// event is any server → client frame of the hongbao protocol, decoded into
// the fields the scenarios look at.
type event struct {
	Type     string `json:"type"`
	Ref      string `json:"ref"`
	OK       bool   `json:"ok"`
	PacketID string `json:"packet_id"`
	Error    *struct {
		Code string `json:"code"`
	} `json:"error"`
	Packet     *packetInfo `json:"packet"`
	Reason     string      `json:"reason"`
	DurationMs *int64      `json:"duration_ms"`
}

type packetInfo struct {
	ID       string `json:"id"`
	Greeting string `json:"greeting"`
}

// handler is what a scenario does with a connection's frames. Methods run on
// the connection's reader goroutine.
type handler interface {
	// onEvent gets every frame but results; now is the receive time (Unix ns).
	onEvent(c *conn, ev *event, now int64)
	// onResult gets a grab's result with its latency (send → result).
	onResult(c *conn, ev *event, latency time.Duration, now int64)
	// onBroadcast gets a fan-out frame carrying sequence number seq.
	onBroadcast(c *conn, seq int, now int64)
}

// conn is one simulated client.
type conn struct {
	idx    int
	user   string
	room   string
	target string
	ws     *websocket.Conn
	h      handler

	wmu sync.Mutex // gorilla allows one writer at a time

	mu      sync.Mutex
	nextRef int
	pending map[string]int64 // ref → send time (Unix ns)

	p       *progress
	closing atomic.Bool // we are closing it: a read error is not a drop
	done    chan struct{}
}

var dialBufs = &sync.Pool{}

// dialer returns a WebSocket dialer that binds to the i-th source IP.
func dialer(sourceIPs []string, i int) *websocket.Dialer {
	nd := &net.Dialer{Timeout: 30 * time.Second}
	if len(sourceIPs) > 0 {
		nd.LocalAddr = &net.TCPAddr{IP: net.ParseIP(sourceIPs[i%len(sourceIPs)])}
	}
	return &websocket.Dialer{
		NetDialContext:   nd.DialContext,
		HandshakeTimeout: 60 * time.Second,
		ReadBufferSize:   2048,
		WriteBufferSize:  512,
		WriteBufferPool:  dialBufs,
	}
}

// token mints an HS256 JWT for user with the shared secret.
func token(secret, user, name string) (string, error) {
	claims := jwt.MapClaims{"sub": user, "exp": time.Now().Add(24 * time.Hour).Unix()}
	if name != "" {
		claims["name"] = name
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
}

// dial opens one client: a hongbao connection is ready at its welcome frame;
// a Centrifugo one after its connect and subscribe replies.
func dial(ctx context.Context, cfg *Config, idx int, base, room string, h handler, p *progress) (*conn, error) {
	// Users are numbered from cfg.FirstConn, so that load processes that
	// share a run id never share a user.
	c := &conn{idx: idx, user: fmt.Sprintf("bench-%s-c%d", cfg.RunID, cfg.FirstConn+idx), room: room, target: cfg.Target, h: h,
		pending: map[string]int64{}, done: make(chan struct{}), p: p}
	tok, err := token(cfg.Secret, c.user, "c"+strconv.Itoa(cfg.FirstConn+idx))
	if err != nil {
		return nil, err
	}
	u := wsURL(base, cfg.Target)
	if cfg.Target == TargetHongbao {
		u += "?room=" + url.QueryEscape(room) + "&token=" + url.QueryEscape(tok)
	}
	ws, resp, err := dialer(cfg.SourceIPs, idx).DialContext(ctx, u, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: %w (HTTP %d)", base, err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial %s: %w", base, err)
	}
	c.ws = ws
	ws.SetPingHandler(c.pong)
	ws.SetReadDeadline(time.Now().Add(60 * time.Second))
	if cfg.Target == TargetCentrifugo {
		err = c.centrifugoHandshake(tok, room)
	} else {
		err = c.awaitWelcome()
	}
	if err != nil {
		ws.Close()
		return nil, err
	}
	ws.SetReadDeadline(time.Time{})
	go c.readLoop()
	return c, nil
}

func (c *conn) awaitWelcome() error {
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("waiting for welcome: %w", err)
		}
		var ev event
		if json.Unmarshal(data, &ev) == nil && ev.Type == "welcome" {
			return nil
		}
	}
}

func (c *conn) centrifugoHandshake(tok, channel string) error {
	cmd := fmt.Sprintf(`{"id":1,"connect":{"token":%q,"name":"hongbao-bench"}}`+"\n"+`{"id":2,"subscribe":{"channel":%q}}`, tok, channel)
	if err := c.write([]byte(cmd)); err != nil {
		return err
	}
	got := 0
	for got < 2 {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("centrifugo handshake: %w", err)
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			var r struct {
				ID    int `json:"id"`
				Error *struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if len(bytes.TrimSpace(line)) == 0 || json.Unmarshal(line, &r) != nil {
				continue
			}
			if r.Error != nil {
				return fmt.Errorf("centrifugo refused command %d: %d %s", r.ID, r.Error.Code, r.Error.Message)
			}
			if r.ID == 1 || r.ID == 2 {
				got++
			}
		}
	}
	return nil
}

func (c *conn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.ws.SetWriteDeadline(time.Now().Add(30 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// grab sends a grab frame and remembers when.
func (c *conn) grab(packetID string) error {
	c.mu.Lock()
	c.nextRef++
	ref := "g" + strconv.Itoa(c.nextRef)
	c.pending[ref] = time.Now().UnixNano()
	c.mu.Unlock()
	return c.write([]byte(`{"type":"grab","ref":"` + ref + `","packet_id":"` + packetID + `"}`))
}

func (c *conn) close() {
	c.closing.Store(true)
	c.wmu.Lock()
	c.ws.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	c.wmu.Unlock()
	_ = c.ws.Close()
	<-c.done
}

// pong answers a ping. gorilla's default handler gives the pong one second
// and skips it silently when that passes: a load process starved of CPU by
// the servers it measures then skips enough of them to be cut as a silent
// peer. This one waits as long as the tool's other writes, and a pong that
// still cannot be written ends the connection, where the run counts it.
func (c *conn) pong(data string) error {
	err := c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(30*time.Second))
	if errors.Is(err, websocket.ErrCloseSent) {
		return nil
	}
	return err
}

func (c *conn) readLoop() {
	defer close(c.done)
	var buf bytes.Buffer
	for {
		_, r, err := c.ws.NextReader()
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			if !c.closing.Load() {
				code := "connection lost"
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					code = fmt.Sprintf("closed %d %s", ce.Code, ce.Text)
				}
				c.p.drop(code)
			}
			return
		}
		now := time.Now().UnixNano()
		if c.target == TargetCentrifugo {
			c.centrifugoFrame(buf.Bytes(), now)
			continue
		}
		c.hongbaoFrame(buf.Bytes(), now)
	}
}

var (
	typeKey      = []byte(`"type":"`)
	packetIDKey  = []byte(`"packet":{"id":"`)
	greetingKey  = []byte(`"greeting":"`)
	ignoredTypes = map[string]bool{"progress": true, "grabbed": true, "presence": true, "chat": true, "welcome": true, "rain": true}
)

// hongbaoFrame dispatches one server frame. The server writes "type" near
// the start (after seq and epoch in a room's durable events), so the frames
// no scenario looks at are skipped unparsed, and a packet's id and greeting
// and a result's ref and code are cut out without a full decode (falling
// back to encoding/json when the shape is not the expected one). This keeps
// the load tool's own CPU, which shares the machine with the server, low.
func (c *conn) hongbaoFrame(data []byte, now int64) {
	var ev event
	typ := frameType(data)
	if ignoredTypes[typ] {
		return
	}
	if typ == "result" {
		ev, _ = resultFrame(data)
	}
	if typ == "packet" {
		id, okID := cutString(data, packetIDKey)
		greeting, okG := cutString(data, greetingKey)
		if okID && okG {
			ev.Type = "packet"
			ev.Packet = &packetInfo{ID: id, Greeting: greeting}
		}
	}
	if ev.Type == "" {
		if err := json.Unmarshal(data, &ev); err != nil {
			return
		}
	}
	switch ev.Type {
	case "result":
		c.mu.Lock()
		sent, ok := c.pending[ev.Ref]
		delete(c.pending, ev.Ref)
		c.mu.Unlock()
		if ok {
			c.h.onResult(c, &ev, time.Duration(now-sent), now)
		}
	case "packet":
		if ev.Packet != nil {
			if rest, ok := strings.CutPrefix(ev.Packet.Greeting, "seq "); ok {
				if seq, err := strconv.Atoi(rest); err == nil {
					c.h.onBroadcast(c, seq, now)
				}
			}
		}
		c.h.onEvent(c, &ev, now)
	default:
		c.h.onEvent(c, &ev, now)
	}
}

var (
	refKey          = []byte(`,"ref":"`)
	okTrue          = []byte(`,"ok":true`)
	resultPacketKey = []byte(`,"packet_id":"`)
	errorCodeKey    = []byte(`,"error":{"code":"`)
)

// resultFrame cuts a result's ref, ok and error code out of the frame as the
// server writes it (web/wsjson.go), and reports whether it could; the caller
// decodes the frame otherwise.
func resultFrame(data []byte) (event, bool) {
	ref, ok := cutString(data, refKey)
	if !ok {
		return event{}, false
	}
	ev := event{Type: "result", Ref: ref, OK: bytes.Contains(data, okTrue)}
	if bytes.Contains(data, resultPacketKey) {
		if ev.PacketID, ok = cutString(data, resultPacketKey); !ok {
			return event{}, false
		}
	}
	if !ev.OK {
		code, ok := cutString(data, errorCodeKey)
		if !ok {
			return event{}, false
		}
		ev.Error = &struct {
			Code string `json:"code"`
		}{code}
	}
	return ev, true
}

// typeHead is how far into a frame frameType looks: past a durable event's
// seq and epoch, not into its payload.
const typeHead = 96

// frameType returns the frame's top-level "type", or "" when it is not
// within typeHead bytes (the caller then decodes the frame).
func frameType(data []byte) string {
	head := data[:min(len(data), typeHead)]
	i := bytes.Index(head, typeKey)
	if i < 0 {
		return ""
	}
	rest := head[i+len(typeKey):]
	if j := bytes.IndexByte(rest, '"'); j > 0 {
		return string(rest[:j])
	}
	return ""
}

// cutString returns the JSON string value that follows key, when it has no
// escapes.
func cutString(data, key []byte) (string, bool) {
	i := bytes.Index(data, key)
	if i < 0 {
		return "", false
	}
	rest := data[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || bytes.IndexByte(rest[:j], '\\') >= 0 {
		return "", false
	}
	return string(rest[:j]), true
}

// centrifugoFrame handles one frame of Centrifugo's JSON protocol: replies
// and pushes, several per frame separated by newlines; an empty object is
// the server's ping and is answered with an empty object.
func (c *conn) centrifugoFrame(data []byte, now int64) {
	for _, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if bytes.Equal(line, []byte("{}")) {
			_ = c.write([]byte("{}"))
			continue
		}
		if i := bytes.Index(line, []byte(`"data":{"seq":`)); i >= 0 {
			rest := line[i+len(`"data":{"seq":`):]
			j := 0
			for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
				j++
			}
			if seq, err := strconv.Atoi(string(rest[:j])); err == nil {
				c.h.onBroadcast(c, seq, now)
				continue
			}
		}
		var m struct {
			Push *struct {
				Pub *struct {
					Data struct {
						Seq *int `json:"seq"`
					} `json:"data"`
				} `json:"pub"`
			} `json:"push"`
		}
		if json.Unmarshal(line, &m) == nil && m.Push != nil && m.Push.Pub != nil && m.Push.Pub.Data.Seq != nil {
			c.h.onBroadcast(c, *m.Push.Pub.Data.Seq, now)
		}
	}
}

// connectAll opens n clients across the URLs, cfg.DialConcurrency at a time:
// client i goes to URLs[(cfg.FirstConn+i) % len(URLs)], so that several load
// processes together spread their clients evenly. room(i) names client i's
// room. Progress counts connections in p.
func connectAll(ctx context.Context, cfg *Config, n int, room func(i int) string, h handler, p *progress) ([]*conn, error) {
	conns := make([]*conn, n)
	sem := make(chan struct{}, cfg.DialConcurrency)
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	for i := range n {
		if firstErr.Load() != nil || ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var c *conn
			var err error
			for attempt := 0; attempt < 3; attempt++ {
				c, err = dial(ctx, cfg, i, cfg.URLs[(cfg.FirstConn+i)%len(cfg.URLs)], room(i), h, p)
				if err == nil || ctx.Err() != nil {
					break
				}
				time.Sleep(time.Duration(200*(attempt+1)) * time.Millisecond)
			}
			if err != nil {
				firstErr.CompareAndSwap(nil, &err)
				return
			}
			conns[i] = c
			p.connected.Add(1)
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		closeAll(conns)
		return nil, fmt.Errorf("connecting client %d of %d: %w", p.connected.Load()+1, n, *e)
	}
	if err := ctx.Err(); err != nil {
		closeAll(conns)
		return nil, err
	}
	return conns, nil
}

func closeAll(conns []*conn) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, c := range conns {
		if c == nil {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c.close()
		}()
	}
	wg.Wait()
}

// api is the REST side: senders, funding, audit, Centrifugo publishing.
type api struct {
	cfg  *Config
	http *http.Client
}

func newAPI(cfg *Config) *api {
	return &api{cfg: cfg, http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

// call sends a JSON request and decodes a JSON reply; a status other than
// want is an error carrying the body.
func (a *api) call(ctx context.Context, method, u, bearer string, body, out any, want int) error {
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if a.cfg.Target == TargetCentrifugo {
		req.Header.Set("X-API-Key", a.cfg.APIKey)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, u, resp.StatusCode, bytes.TrimSpace(buf.Bytes()))
	}
	if out != nil {
		return json.Unmarshal(buf.Bytes(), out)
	}
	return nil
}

// sender is a funded hongbao user that drops packets.
type sender struct {
	id, token string
}

func (a *api) newSender(ctx context.Context, i int, fund int64) (*sender, error) {
	s := &sender{id: fmt.Sprintf("bench-%s-s%d", a.cfg.RunID, i)}
	var err error
	if s.token, err = token(a.cfg.Secret, s.id, "sender"+strconv.Itoa(i)); err != nil {
		return nil, err
	}
	if fund > 0 {
		err = a.call(ctx, "POST", a.cfg.URLs[0]+"/api/v1/admin/credit", a.cfg.AdminToken,
			map[string]any{"user_id": s.id, "amount": fund, "ref": "bench-fund-" + s.id, "create": true}, nil, http.StatusOK)
	}
	return s, err
}

type packetCreated struct {
	Packet struct {
		ID string `json:"id"`
	} `json:"packet"`
}

func (a *api) createPacket(ctx context.Context, s *sender, base, room, kind string, total int64, count int, greeting string) (string, error) {
	var out packetCreated
	err := a.call(ctx, "POST", base+"/api/v1/rooms/"+url.PathEscape(room)+"/packets", s.token,
		map[string]any{"kind": kind, "total": total, "count": count, "greeting": greeting}, &out, http.StatusCreated)
	return out.Packet.ID, err
}

// publish sends broadcast seq to room through Centrifugo's HTTP API.
func (a *api) publish(ctx context.Context, room string, seq int) error {
	return a.call(ctx, "POST", a.cfg.URLs[0]+"/api/publish", "",
		map[string]any{"channel": room, "data": map[string]int{"seq": seq}}, nil, http.StatusOK)
}

// Audit is the server's money audit.
type Audit struct {
	OK         bool     `json:"ok"`
	Funded     int64    `json:"funded"`
	Balances   int64    `json:"balances"`
	SharesLeft int64    `json:"shares_left"`
	Uncredited int64    `json:"uncredited"`
	Wallets    int      `json:"wallets"`
	Packets    int      `json:"packets"`
	Claims     int      `json:"claims"`
	Problems   []string `json:"problems"`
}

func (a *api) audit(ctx context.Context) (*Audit, error) {
	var out Audit
	err := a.call(ctx, "GET", a.cfg.URLs[0]+"/api/v1/admin/audit", a.cfg.AdminToken, nil, &out, http.StatusOK)
	return &out, err
}
