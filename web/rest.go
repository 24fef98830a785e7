package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/hongbao-dev/hongbao/internal/apierr"
	"github.com/hongbao-dev/hongbao/packet"
)

// decode reads a JSON body into v. Unknown fields are ignored; a wrong type
// or malformed JSON is invalid_request.
func decode(c echo.Context, v any) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	return decodeBytes(body, v)
}

func readBody(c echo.Context) ([]byte, error) {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return nil, invalid("the request body could not be read")
	}
	return body, nil
}

// decodeBytes is decode for a body already read.
func decodeBytes(body []byte, v any) error {
	if !utf8.Valid(body) {
		// encoding/json would quietly turn bad bytes into U+FFFD.
		return invalid("the request body is not valid UTF-8")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case len(bytes.TrimSpace(body)) == 0:
			return invalid("the request body is empty; send a JSON object")
		case errors.As(err, &te):
			return invalid("field %q has the wrong type", te.Field)
		}
		return invalid("the request body is not valid JSON")
	}
	return nil
}

// number is a JSON number kept as its text, so that amounts are parsed as
// integers without passing through float64. Any other JSON type is refused.
type number string

func (n *number) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
		if string(b) == "null" {
			return nil
		}
		return &json.UnmarshalTypeError{Value: "non-number", Type: reflect.TypeOf(n)}
	}
	*n = number(b)
	return nil
}

// fen reads a JSON number as a whole number of fen; anything else (a
// fraction, an exponent, a string) is refused with code.
func fen(n number, field string, code *apierr.Error) (int64, error) {
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		return 0, apierr.Refuse(code, "%s must be a whole number of fen, got %q", field, string(n))
	}
	return v, nil
}

// count reads a JSON number as a small whole number.
func count(n number, field string, code *apierr.Error) (int, error) {
	v, err := strconv.ParseInt(string(n), 10, 32)
	if err != nil {
		return 0, apierr.Refuse(code, "%s must be a whole number, got %q", field, string(n))
	}
	return int(v), nil
}

// validRoom accepts 1..64 letters, digits, '-', '_' and '.'.
func validRoom(room string) bool {
	if room == "" || utf8.RuneCountInString(room) > 64 || !utf8.ValidString(room) {
		return false
	}
	for _, r := range room {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '-' && r != '_' && r != '.' {
			return false
		}
	}
	return true
}

func roomParam(c echo.Context) (string, error) {
	room := c.Param("room")
	if !validRoom(room) {
		return "", invalid("room names are 1 to 64 letters, digits, '-', '_' or '.'")
	}
	return room, nil
}

type sessionRequest struct {
	Name string `json:"name"`
}

type sessionResponse struct {
	User  packet.User `json:"user"`
	Token string      `json:"token"`
}

// createSession starts a guest session: a new user id, a signed token and a
// wallet funded with the starting balance (once per user, by ref).
func (a *App) createSession(c echo.Context) error {
	var req sessionRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	name := strings.TrimSpace(req.Name)
	if name == "" || !packet.ValidText(name, maxNameRunes) {
		return invalid("name must be 1 to %d characters of text", maxNameRunes)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	u := packet.User{ID: "g-" + id.String(), Name: name}
	if a.cfg.StartingBalance > 0 {
		if _, _, err := a.store.Fund(c.Request().Context(), u.ID, a.cfg.StartingBalance, "welcome"); err != nil {
			return err
		}
	}
	if err := a.store.RememberName(c.Request().Context(), u); err != nil {
		a.log.Warn("remembering a name failed; exclusive packets show the id", "user", u.ID, "err", err)
	}
	tok, err := a.tokens.Issue(u, time.Now())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, sessionResponse{User: u, Token: tok})
}

type creditRequest struct {
	UserID string `json:"user_id"`
	Amount number `json:"amount"`
	Ref    string `json:"ref"`
	// Create allows crediting a user id that has never held a wallet.
	Create bool `json:"create"`
}

// adminCredit funds a wallet. An optional ref makes the credit idempotent.
// A user id nobody has used is refused unless the request says create: a
// typo must not send money where no one will ever spend it.
func (a *App) adminCredit(c echo.Context) error {
	var req creditRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if !validUserID(req.UserID) {
		return invalid("user_id is required")
	}
	if !packet.ValidText(req.Ref, 128) {
		return invalid("ref must be at most 128 characters of text")
	}
	amount, err := fen(req.Amount, "amount", packet.ErrInvalidAmount)
	if err != nil {
		return err
	}
	if amount <= 0 {
		// Before the user check, so a bad amount says so whoever it is for.
		return apierr.Refuse(packet.ErrInvalidAmount, "amount must be a positive number of fen, got %d", amount)
	}
	if !req.Create {
		// A user cannot become unknown again, so nothing can slip between
		// this check and the credit.
		known, err := a.store.UserKnown(c.Request().Context(), req.UserID)
		if err != nil {
			return err
		}
		if !known {
			return apierr.Refuse(packet.ErrNotFound, "user %q has no wallet; send \"create\": true to credit a new user", req.UserID)
		}
	}
	added, balance, err := a.store.Fund(c.Request().Context(), req.UserID, amount, req.Ref)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"user_id": req.UserID, "credited": added, "balance": balance})
}

type packetRequest struct {
	Kind       string  `json:"kind"`
	Total      number  `json:"total"`
	Count      number  `json:"count"`
	Greeting   *string `json:"greeting"`
	TTLSeconds number  `json:"ttl_seconds"`
	// To, Password and OpensAt make an exclusive, password or countdown
	// packet (see kinds.go).
	To       []string `json:"to"`
	Password *string  `json:"password"`
	OpensAt  number   `json:"opens_at"`
}

// defaultGreeting is what a packet says when its sender says nothing.
const defaultGreeting = "恭喜发财，大吉大利"

// greetingOf is the request's greeting, or the default when it is absent or
// blank.
func greetingOf(g *string) string {
	if g == nil || strings.TrimSpace(*g) == "" {
		return defaultGreeting
	}
	return strings.TrimSpace(*g)
}

func (a *App) createPacket(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	raw, err := readBody(c)
	if err != nil {
		return err
	}
	req, err := a.packetRequest(raw)
	if err != nil {
		return err
	}
	req.Room, req.Sender = room, userOf(c)
	d, err := a.store.Draft(req)
	if err != nil {
		return err
	}
	if err := a.store.Address(c.Request().Context(), d); err != nil {
		return err
	}
	respond := func(opened []*packet.Draft) ([]byte, error) {
		return json.Marshal(map[string]any{"packet": packetState{State: freshState(&opened[0].Packet)}})
	}
	idem, err := idempotencyOf(c, raw, respond)
	if err != nil {
		return err
	}
	// The steps run to the end even if the client goes away: a debit must
	// not be left without its packet, nor a packet unannounced.
	ctx, cancel := a.detached(c)
	defer cancel()
	hold, err := a.reserveSend(ctx, req.Sender.ID, room, d.Total, 1, keyOf(idem))
	if err != nil {
		return err
	}
	o, err := a.store.Open(ctx, []*packet.Draft{d}, idem)
	hold.settle(ctx, o, err)
	if err != nil {
		return err
	}
	if !o.Replayed {
		a.metrics.packet(string(req.Kind))
		a.announce(ctx, &d.Packet)
	}
	return a.created(c, o, respond)
}

// packetRequest parses a create body.
func (a *App) packetRequest(raw []byte) (packet.CreateRequest, error) {
	var req packetRequest
	if err := decodeBytes(raw, &req); err != nil {
		return packet.CreateRequest{}, err
	}
	total, err := fen(req.Total, "total", packet.ErrInvalidAmount)
	if err != nil {
		return packet.CreateRequest{}, err
	}
	n, err := count(req.Count, "count", packet.ErrInvalidCount)
	if err != nil {
		return packet.CreateRequest{}, err
	}
	var ttl time.Duration
	if req.TTLSeconds != "" {
		secs, err := count(req.TTLSeconds, "ttl_seconds", packet.ErrInvalidRequest)
		if err != nil {
			return packet.CreateRequest{}, err
		}
		if secs <= 0 {
			return packet.CreateRequest{}, invalid("ttl_seconds must be positive")
		}
		ttl = time.Duration(secs) * time.Second
	}
	out := packet.CreateRequest{Kind: packet.Kind(req.Kind), Total: total, Count: n,
		Greeting: greetingOf(req.Greeting), TTL: ttl}
	return out, kindsOf(req, &out)
}

// freshState is a packet just opened: every share still in it.
func freshState(p *packet.Packet) packet.State {
	return packet.State{Packet: *p, Status: packet.StatusActive, RemainingCount: p.Count, RemainingAmount: p.Total}
}

// created writes a create's response: the stored one on a replay (marked
// with Idempotent-Replayed), else the one respond builds.
func (a *App) created(c echo.Context, o *packet.Opened, respond func([]*packet.Draft) ([]byte, error)) error {
	body := o.Body
	if body == nil {
		var err error
		if body, err = respond(o.Drafts); err != nil {
			return err
		}
	}
	if o.Replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	return c.JSONBlob(http.StatusCreated, body)
}

// detached is a context for steps that must finish whatever the client
// does: it keeps the request's values, not its cancellation, and ends after
// CreateTimeout.
func (a *App) detached(c echo.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(c.Request().Context()), a.cfg.CreateTimeout)
}

func (a *App) grabREST(c echo.Context) error {
	u := userOf(c)
	if !a.grabLimits.allow(u.ID) {
		a.metrics.limited("grab")
		return ErrRateLimited
	}
	password, err := grabPassword(c)
	if err != nil {
		return err
	}
	g, err := a.grab(c.Request().Context(), u, c.Param("id"), password)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"packet_id": g.PacketID, "amount": g.Amount, "remaining": g.Remaining})
}

type claimJSON struct {
	User   packet.User `json:"user"`
	Amount int64       `json:"amount"`
	At     int64       `json:"at"`
}

type detailResponse struct {
	Packet     packetState `json:"packet"`
	Claims     []claimJSON `json:"claims"`
	Luckiest   *luckiest   `json:"luckiest"`
	DurationMs *int64      `json:"duration_ms"`
	Refunded   int64       `json:"refunded"`
}

func (a *App) packetDetail(c echo.Context) error {
	d, err := a.store.Detail(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	resp := detailResponse{
		Packet:     packetState{State: d.State},
		Claims:     make([]claimJSON, len(d.Claims)),
		Luckiest:   luckiestOf(d.Luckiest),
		DurationMs: d.DurationMs,
		Refunded:   d.Refunded,
	}
	me := userOf(c).ID
	for i, cl := range d.Claims {
		resp.Claims[i] = claimJSON{User: cl.User, Amount: cl.Amount, At: cl.At}
		if cl.User.ID == me {
			resp.Packet.GrabbedByMe = &d.Claims[i].Amount
		}
	}
	return c.JSON(http.StatusOK, resp)
}

// limitParam reads ?limit= (1..max, default def).
func limitParam(c echo.Context, def, max int) (int, error) {
	s := c.QueryParam("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, invalid("limit must be a whole number from 1 to %d", max)
	}
	return n, nil
}

func (a *App) roomPackets(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	var activeOnly bool
	switch c.QueryParam("status") {
	case "", "all":
	case "active":
		activeOnly = true
	default:
		return invalid("status must be active or all")
	}
	limit, err := limitParam(c, 50, 200)
	if err != nil {
		return err
	}
	list, next, err := a.store.RoomPackets(c.Request().Context(), room, userOf(c).ID, activeOnly, c.QueryParam("cursor"), limit)
	if err != nil {
		return err
	}
	out := make([]packetState, len(list))
	for i, l := range list {
		out[i] = packetState{State: l.State, GrabbedByMe: l.Mine}
	}
	return c.JSON(http.StatusOK, map[string]any{"packets": out, "next_cursor": next})
}

type total struct {
	Total int64 `json:"total"`
	Count int64 `json:"count"`
}

type meResponse struct {
	User     packet.User `json:"user"`
	Balance  int64       `json:"balance"`
	Received total       `json:"received"`
	Sent     total       `json:"sent"`
	Refunded int64       `json:"refunded"`
	// Pending is what the user won that is not committed yet: not in
	// balance or received until it is.
	Pending total `json:"pending"`
}

func (a *App) me(c echo.Context) error {
	u := userOf(c)
	w, err := a.store.Wallet(c.Request().Context(), u.ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, meResponse{
		User: u, Balance: w.Balance,
		Received: total{w.ReceivedTotal, w.ReceivedCount},
		Sent:     total{w.SentTotal, w.SentCount},
		Refunded: w.Refunded,
		Pending:  total{w.PendingTotal, w.PendingCount},
	})
}

func (a *App) myClaims(c echo.Context) error {
	limit, err := limitParam(c, 20, 100)
	if err != nil {
		return err
	}
	claims, next, err := a.store.Claims(c.Request().Context(), userOf(c).ID, c.QueryParam("cursor"), limit)
	if err != nil {
		return err
	}
	if next != "" {
		c.Response().Header().Set("X-Next-Cursor", next)
	}
	return c.JSON(http.StatusOK, claims)
}

type auditResponse struct {
	OK            bool     `json:"ok"`
	Funded        int64    `json:"funded"`
	Balances      int64    `json:"balances"`
	Escrow        int64    `json:"escrow"`
	PendingDebits int64    `json:"pending_debits"`
	SharesLeft    int64    `json:"shares_left"`
	Uncredited    int64    `json:"uncredited"`
	UnpaidRefunds int64    `json:"unpaid_refunds"`
	Wallets       int      `json:"wallets"`
	Packets       int      `json:"packets"`
	Claims        int      `json:"claims"`
	Problems      []string `json:"problems"`
}

// adminAudit checks that money is conserved across every wallet and packet.
// With a ledger it reads one snapshot plus the live packets; without one it
// walks the whole keyspace: an operator's tool, not a hot path.
func (a *App) adminAudit(c echo.Context) error {
	r, err := a.store.Audit(c.Request().Context())
	if err != nil {
		return err
	}
	if r.Problems == nil {
		r.Problems = []string{}
	}
	return c.JSON(http.StatusOK, auditResponse{
		OK: r.OK(), Funded: r.Funded, Balances: r.Balances, Escrow: r.Escrow, PendingDebits: r.PendingDebits,
		SharesLeft: r.SharesLeft, Uncredited: r.Uncredited, UnpaidRefunds: r.UnpaidRefunds,
		Wallets: r.Wallets, Packets: r.Packets, Claims: r.Claims, Problems: r.Problems,
	})
}

// adminReconcile compares Redis with the ledger now and lists every
// difference. The journal check covers the last 24 h, or all of history
// with ?full=true.
func (a *App) adminReconcile(c echo.Context) error {
	since := time.Now().Add(-24 * time.Hour)
	switch c.QueryParam("full") {
	case "", "false":
	case "true":
		since = time.Time{}
	default:
		return invalid("full must be true or false")
	}
	rep, err := a.store.Reconcile(c.Request().Context(), since)
	if errors.Is(err, packet.ErrNoLedger) {
		return apierr.Refuse(packet.ErrNotFound, "reconciliation needs HONGBAO_DATABASE_URL")
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"ok": rep.OK(), "report": rep})
}
