package web

import (
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

// Close codes of a connection refused by a cap (docs/protocol.md). They are
// sent after the upgrade, because a browser sees nothing of an HTTP refusal
// of a WebSocket, but does see a close code.
const (
	CloseTooManyForUser    = 4001
	CloseTooManyForAddress = 4002
	CloseTooManyRooms      = 4003
	CloseTooManyNewRooms   = 4004
)

// refusal is why a connection is not admitted.
type refusal struct {
	code   int
	reason string // the close frame's reason, for people
	metric string // the metric's label
}

var (
	refusedUser     = &refusal{CloseTooManyForUser, "too many connections for this user", "user_conns"}
	refusedAddress  = &refusal{CloseTooManyForAddress, "too many connections from this address", "address_conns"}
	refusedRooms    = &refusal{CloseTooManyRooms, "this server has too many rooms", "rooms"}
	refusedNewRooms = &refusal{CloseTooManyNewRooms, "too many new rooms from this address", "new_rooms"}
)

// connCaps counts this instance's WebSockets per user and per client
// address, and their rooms, and admits a connection only within the caps.
// It counts what web serves rather than asking the hub, so that a check and
// the count it relies on happen under one lock: two connections racing for
// the last place cannot both get it.
type connCaps struct {
	maxUser, maxAddr, maxRooms int // < 0: no cap

	mu       sync.Mutex
	users    map[string]int // connections per user id
	addrs    map[string]int // connections per client key
	rooms    map[string]int // connections per room
	newRooms *limiterSet    // new rooms per client key; nil: no limit
}

func newConnCaps(cfg Config) *connCaps {
	k := &connCaps{
		maxUser:  cfg.MaxConnsPerUser,
		maxAddr:  cfg.MaxConnsPerIP,
		maxRooms: cfg.MaxRooms,
		users:    map[string]int{},
		addrs:    map[string]int{},
		rooms:    map[string]int{},
	}
	if n := cfg.NewRoomsPerIP; n > 0 {
		k.newRooms = newLimiterSet(rate.Limit(float64(n)/60), n)
	}
	return k
}

// acquire counts one connection of user from addr in room, or reports which
// cap it would pass. release undoes exactly one successful acquire, however
// often it is called.
func (k *connCaps) acquire(user, addr, room string) (release func(), _ *refusal) {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case over(k.users[user], k.maxUser):
		return nil, refusedUser
	case over(k.addrs[addr], k.maxAddr):
		return nil, refusedAddress
	case k.rooms[room] == 0 && over(len(k.rooms), k.maxRooms):
		return nil, refusedRooms
	case k.rooms[room] == 0 && k.newRooms != nil && !k.newRooms.allow(addr):
		// Checked last: a token is spent only by a connection admitted.
		return nil, refusedNewRooms
	}
	k.users[user]++
	k.addrs[addr]++
	k.rooms[room]++
	var once sync.Once
	return func() { once.Do(func() { k.release(user, addr, room) }) }, nil
}

func (k *connCaps) release(user, addr, room string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	decrement(k.users, user)
	decrement(k.addrs, addr)
	decrement(k.rooms, room)
}

func over(n, limit int) bool { return limit >= 0 && n >= limit }

func decrement(m map[string]int, key string) {
	if m[key] <= 1 {
		delete(m, key)
		return
	}
	m[key]--
}

// admit counts an upgraded connection against the caps. A connection over a
// cap is closed here with the cap's close code, and admit reports false;
// otherwise the caller must call release once the connection has ended.
func (a *App) admit(c echo.Context, conn *websocket.Conn, userID, room string) (release func(), ok bool) {
	addr, _ := clientKey(c)
	release, no := a.caps.acquire(userID, addr, room)
	if no != nil {
		a.metrics.refuse(no.metric)
		// Debug, not Info: a client retrying in a loop must not flood the
		// log; the metric counts every refusal.
		a.log.Debug("websocket refused", "reason", no.reason, "user", userID, "addr", addr, "room", room)
		refuseConn(conn, no.code, no.reason)
		return nil, false
	}
	return release, true
}

// refuseGrace bounds how long a refused connection waits for the peer to
// answer its close frame.
const refuseGrace = time.Second

// refuseConn closes conn with code. It waits briefly for the peer's close
// frame first: closing a socket with unread input makes the kernel reset
// the connection, which can destroy the close frame before the peer reads
// it, and then the client never learns why.
func refuseConn(conn *websocket.Conn, code int, reason string) {
	deadline := time.Now().Add(refuseGrace)
	if err := conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), deadline); err == nil {
		conn.SetReadLimit(512)
		_ = conn.SetReadDeadline(deadline)
		for {
			if _, _, err := conn.NextReader(); err != nil {
				break
			}
		}
	}
	_ = conn.Close()
}
