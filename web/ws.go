package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/hongbao-dev/hongbao/hub"
	"github.com/hongbao-dev/hongbao/internal/apierr"
	"github.com/hongbao-dev/hongbao/packet"
)

// serveWS upgrades GET /ws?room=<room>[&since=<epoch>:<seq>] with the token
// in the subprotocol entry "bearer.<jwt>" (browsers) or in ?token=<jwt>
// (other clients). Refusals happen before the upgrade, as plain HTTP errors:
// 400 for a bad room or since, 403 for a foreign Origin, 401 for a bad token.
func (a *App) serveWS(c echo.Context) error {
	r := c.Request()
	room := c.QueryParam("room")
	if !validRoom(room) {
		a.metrics.reject("room")
		return invalid("room names are 1 to 64 letters, digits, '-', '_' or '.'")
	}
	// A copy: the parameter is a substring of the request line, which the
	// connection (its caps entry, its room) would otherwise keep alive.
	room = strings.Clone(room)
	var opts hub.ServeOptions
	if since := c.QueryParam("since"); since != "" {
		p, err := hub.ParsePosition(since)
		if err != nil {
			a.metrics.reject("since")
			return invalid("since must be <epoch>:<seq>, as in a durable event or welcome: %v", err)
		}
		opts.Since = &p
	}
	if !a.originAllowed(r) {
		a.metrics.reject("origin")
		return apierr.Refuse(ErrForbidden, "origin %q is not allowed", r.Header.Get("Origin"))
	}
	token, accept := wsCredentials(r)
	u, err := a.tokens.VerifyContext(r.Context(), token)
	if err != nil {
		a.metrics.reject("token")
		return err
	}
	// Before the upgrade: a slow Redis then delays the handshake (by at
	// most a second), never a frame the client sent once connected.
	a.rememberName(r.Context(), u)
	conn, err := a.upgrader.Upgrade(c.Response(), r, accept)
	if err != nil {
		return nil // the upgrader has answered the client
	}
	release, ok := a.admit(c, conn, u.ID, room)
	if !ok {
		return nil // closed with the cap's code
	}
	s := a.newSession(conn, u)
	// The hub sets the connection up here and this handler returns, so
	// net/http drops the request's buffers and its goroutine instead of
	// holding them for the connection's life, and the hub reads and writes
	// only while there is something to read or write (hub's
	// TestIdleConnectionsLoad measures it). The connection's context is not
	// the request's, which holds net/http's per-connection state and ends
	// when this handler returns anyway; the hub's Shutdown is what ends the
	// connection.
	a.hub.Start(context.Background(), conn, room, hub.User{ID: u.ID, Name: u.Name}, s, opts, release)
	return nil
}

// wsSubprotocol is the protocol a browser offers next to its bearer entry.
const wsSubprotocol = "hongbao.v1"

// bearerPrefix starts the subprotocol entry that carries the token.
const bearerPrefix = "bearer."

// wsCredentials returns the token of an upgrade request and the response
// header that accepts its subprotocol (nil when it offered none of ours).
// A browser cannot set Authorization on a WebSocket, and a token in the URL
// lands in proxy logs, so browsers offer ["hongbao.v1", "bearer.<jwt>"]; the
// bearer entry wins over ?token=, which stays for non-browser clients. The
// answer names only hongbao.v1: echoing the bearer entry would put the token
// in the response.
func wsCredentials(r *http.Request) (token string, accept http.Header) {
	for _, p := range websocket.Subprotocols(r) {
		if p == wsSubprotocol {
			// The Upgrader has no Subprotocols, so it answers with this one.
			accept = http.Header{"Sec-Websocket-Protocol": {wsSubprotocol}}
		} else if t, ok := strings.CutPrefix(p, bearerPrefix); ok && token == "" {
			token = t
		}
	}
	if token == "" {
		token = r.URL.Query().Get("token")
	}
	return token, accept
}

// originAllowed admits requests without an Origin (non-browser clients),
// from the same host, or from a configured origin.
func (a *App) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || a.anyOrig || a.origins[origin] {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// wsSession is one connection's protocol state. The hub calls it on the
// connection's read goroutine only, so its fields need no lock.
type wsSession struct {
	app     *App
	user    packet.User
	client  *hub.Client   // set by OnOpen, before the first frame is read
	frames  *rate.Limiter // every frame of this connection spends from it; see spend
	strikes int           // see Config.FloodStrikes
	flooded bool          // closed as a flood
}

// errNotJSON marks a frame that is not a JSON object at all: it has no ref
// to answer, so it gets an error frame.
var errNotJSON = apierr.Refuse(packet.ErrInvalidRequest, "a frame must be one JSON object with a type")

// parseClientMessage decodes a client frame. A frame that parses but has a
// field of the wrong type still yields its ref, so the refusal can answer it.
func parseClientMessage(msg []byte) (clientMessage, error) {
	var m clientMessage
	if !utf8.Valid(msg) {
		return m, errNotJSON
	}
	if parseFlat(msg, &m) {
		return m, nil
	}
	m = clientMessage{}
	if err := json.Unmarshal(msg, &m); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return m, invalid("field %q has the wrong type", te.Field)
		}
		return clientMessage{}, errNotJSON
	}
	return m, nil
}

// clientMessage is any client → server frame.
type clientMessage struct {
	Type     string `json:"type"`
	Ref      string `json:"ref"`
	PacketID string `json:"packet_id"`
	Text     string `json:"text"`
	// Password is a grab's phrase for a password packet.
	Password string `json:"password"`
}

func (s *wsSession) OnOpen(ctx context.Context, c *hub.Client) {
	s.client = c
	pos := c.Position()
	w := welcomeEvent{Type: "welcome", User: s.user, Room: c.Room(), ServerTime: time.Now().UnixMilli(), Seq: pos.Seq, Epoch: pos.Epoch}
	if recovered, asked := c.Recovered(); asked {
		w.Recovered = &recovered
	}
	s.send(c, w)
}

// rememberName records the token's name in the user directory, briefly:
// exclusive packets show it, and nothing else waits for it.
func (a *App) rememberName(ctx context.Context, u packet.User) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := a.store.RememberName(ctx, u); err != nil {
		a.log.Warn("remembering a name failed; exclusive packets show the id", "user", u.ID, "err", err)
	}
}

func (s *wsSession) OnClose(*hub.Client) {}

func (s *wsSession) HandleMessage(ctx context.Context, c *hub.Client, msg []byte) {
	defer s.closeIfFlood() // once this frame has been scored and answered
	m, err := parseClientMessage(msg)
	if !s.allow(s.spend(), "frame") {
		err = ErrRateLimited
	} else if errors.Is(err, errNotJSON) {
		s.tally(nil)
		s.send(c, errorEvent{Type: "error", Error: ErrorObject{Code: "invalid_request", Message: "a frame must be one JSON object with a type"}})
		return
	}
	var g packet.GrabResult
	switch {
	case err != nil:
	case m.Type == "grab":
		g, err = s.grab(ctx, m)
	case m.Type == "chat":
		err = s.chat(ctx, c, m)
	case m.Type == "ping":
	default:
		err = invalid("unknown message type %q", m.Type)
	}
	s.tally(err)
	if m.Ref == "" {
		if err != nil {
			_, obj := errorObject(err)
			s.send(c, errorEvent{Type: "error", Error: obj})
		}
		return
	}
	res := resultEvent{Type: "result", Ref: m.Ref, OK: err == nil}
	if err != nil {
		_, obj := errorObject(err)
		res.Error = &obj
	} else if m.Type == "grab" {
		res.PacketID, res.Amount, res.Remaining = g.PacketID, &g.Amount, &g.Remaining
	}
	var buf [256]byte
	c.Send(appendResult(buf[:0], &res))
}

func (s *wsSession) grab(ctx context.Context, m clientMessage) (packet.GrabResult, error) {
	if !s.allow(s.app.grabLimits.allow(s.user.ID), "grab") {
		return packet.GrabResult{}, ErrRateLimited
	}
	if m.PacketID == "" {
		return packet.GrabResult{}, invalid("packet_id is required")
	}
	return s.app.grab(ctx, s.user, m.PacketID, m.Password)
}

func (s *wsSession) chat(ctx context.Context, c *hub.Client, m clientMessage) error {
	if !s.allow(s.app.chatLimits.allow(s.user.ID), "chat") {
		return ErrRateLimited
	}
	text := strings.TrimSpace(m.Text)
	if text == "" || !packet.ValidText(text, s.app.cfg.MaxChatRunes) {
		return invalid("chat text must be 1 to %d characters of text", s.app.cfg.MaxChatRunes)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	s.app.metrics.chat()
	ev := chatEvent{Type: "chat", ID: id.String(), User: s.user, Text: text, At: time.Now().UnixMilli()}
	if err := s.app.publish(ctx, c.Room(), ev); err != nil {
		return apierr.Refuse(packet.ErrUnavailable, "the message could not be sent; try again")
	}
	return nil
}

func (s *wsSession) send(c *hub.Client, ev any) {
	frame, err := json.Marshal(ev)
	if err != nil {
		s.app.log.Error("encode frame", "err", err)
		return
	}
	c.Send(frame)
}
