// Package web is hongbao's HTTP face: the REST API, the WebSocket upgrade
// and its message handling, authentication, and the demo page. It turns
// requests into calls on packet.Store and events on hub.Hub; it holds no
// money state of its own.
package web

import (
	"context"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/hongbao-dev/hongbao/hub"
	"github.com/hongbao-dev/hongbao/internal/apierr"
	"github.com/hongbao-dev/hongbao/packet"
)

// Config configures the App. Zero fields take the defaults documented on
// each field (DefaultConfig returns them), except Secret, which is required.
type Config struct {
	// Secret signs and verifies user tokens (JWT HS256). Required; every
	// instance behind one load balancer must share it.
	Secret []byte
	// TokenTTL is how long an issued guest token is valid. Default 7 days.
	TokenTTL time.Duration
	// JWKSURL is an identity provider's JWK Set (http or https): RS256 and
	// EdDSA tokens signed with its keys are accepted beside HS256 ones
	// signed with Secret. Default "": HS256 only.
	JWKSURL string
	// JWTIssuer and JWTAudience, when set, are the iss and aud that tokens
	// verified with the JWKS must carry. Default "": not checked.
	JWTIssuer   string
	JWTAudience string
	// JWKSRefresh is how often the JWKS is fetched again. Default 15 min.
	JWKSRefresh time.Duration
	// JWKSMinGap is the shortest time between two fetches caused by tokens
	// naming a kid the JWKS did not have; such tokens are refused in
	// between. Default 10 s.
	JWKSMinGap time.Duration
	// AdminToken guards POST /api/v1/admin/credit. Default "": admin API off.
	AdminToken string
	// AllowedOrigins lists the browser origins (scheme://host[:port]) allowed
	// to open a WebSocket; "*" allows any. Default: same origin only.
	// Requests without an Origin header (non-browser clients) are allowed.
	AllowedOrigins []string
	// StartingBalance is what a new guest session is funded with, in fen.
	// Default 10000 (¥100). Negative: guests start with nothing.
	StartingBalance int64
	// GrabRate and GrabBurst bound grabs per user, over REST and every
	// WebSocket of the user together. Default 10/s, burst 20.
	GrabRate  rate.Limit
	GrabBurst int
	// ChatRate and ChatBurst bound chat messages per user, over all of the
	// user's connections together. Default 2/s, burst 5.
	ChatRate  rate.Limit
	ChatBurst int
	// FrameRate and FrameBurst bound the frames a connection may send, of
	// any type (a ping, an unknown type, a frame that is not JSON, and a
	// WebSocket ping control frame too). Default 20/s, burst 40.
	FrameRate  rate.Limit
	FrameBurst int
	// MaxConnsPerUser caps one user's WebSockets on this instance; one more
	// is closed with 4001. Default 5; negative: no cap.
	MaxConnsPerUser int
	// MaxConnsPerIP caps the WebSockets from one client address (per /64
	// for IPv6) on this instance; one more is closed with 4002. Default
	// 100; negative: no cap.
	MaxConnsPerIP int
	// MaxRooms caps the rooms with members on this instance: a connection
	// that would open one more is closed with 4003. Joining a room that
	// already has members here is always allowed. Each room costs a
	// broker subscription (on Redis Cluster, a Redis connection). Default
	// 100000; negative: no cap.
	MaxRooms int
	// NewRoomsPerIP bounds how many rooms one client address (per /64 for
	// IPv6) may open on this instance per minute, as a token bucket of
	// that size refilled over a minute; one more is closed with 4004.
	// Default 120; negative: no limit.
	NewRoomsPerIP int
	// TrustedProxies are the networks whose X-Forwarded-For is believed
	// when telling a client's address. Default none: the peer address is
	// the client's.
	TrustedProxies []*net.IPNet
	// SessionRate and SessionBurst bound guest sessions per client IP (per
	// /64 for IPv6); each
	// guest is funded, so this bounds how fast money can be minted. Default
	// 1/s, burst 20.
	SessionRate  rate.Limit
	SessionBurst int
	// FloodStrikes closes a connection with 1008 as a flood: each frame a
	// rate limit refuses adds a strike, each frame served takes one away,
	// and the connection is closed when the strikes reach FloodStrikes.
	// Default 50.
	FloodStrikes int
	// MaxChatRunes is the longest chat message. Default 500.
	MaxChatRunes int
	// MaxRainPackets and MaxRainDuration bound one rain. Default 200 and
	// 5 min.
	MaxRainPackets  int
	MaxRainDuration time.Duration
	// RainLead is the time between a rain's announcement and its first
	// packet, so every client is ready. Default 3 s.
	RainLead time.Duration
	// RainTTL is how long a rain packet stays open after it drops. Default
	// 5 min.
	RainTTL time.Duration
	// Counters is the Redis that keeps the daily and per-room sending
	// limits' counters (sendlimits.go), shared by every instance. Default
	// nil: only MaxPacketTotal is enforced.
	Counters redis.UniversalClient
	// KeyPrefix starts the counters' keys. Default "hb".
	KeyPrefix string
	// DailySendTotal and DailySendCount bound what one user sends per UTC
	// day, in fen and in packets (a rain counts as all of its packets);
	// past either, daily_limit. Default 2000000 (¥20000) and 200;
	// negative: no limit.
	DailySendTotal int64
	DailySendCount int
	// RoomPacketsPerMinute bounds the creates (a packet or a rain) per room
	// per minute, across every instance; past it, room_rate_limited.
	// Default 60; negative: no limit.
	RoomPacketsPerMinute int
	// MaxPacketTotal is the largest total of one packet (of a rain: of each
	// of its packets), in fen; above it, total_too_large. Default 2000000
	// (¥20000); negative: only the store's limits.
	MaxPacketTotal int64
	// Now is the clock that tells the UTC day of the daily limits and the
	// minute of the room limit (for tests of a day's end). Default
	// time.Now.
	Now func() time.Time
	// GrabTimeout bounds one grab's Redis work. Default 5 s.
	GrabTimeout time.Duration
	// CreateTimeout bounds the steps of a create or rain, which run to the
	// end even when the client goes away. Default 10 s.
	CreateTimeout time.Duration
	// Static is the demo page's files, served at /. Default nil: no page.
	Static fs.FS
	// Registerer receives the App's metrics. Gatherer, when set, is served
	// at GET /metrics to callers bearing AdminToken, and not at all without
	// an AdminToken (serve it on a private listener instead). Default nil:
	// no metrics.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Ready reports whether the App can serve (e.g. Redis answers), for
	// /readyz. Default nil: always ready.
	Ready func(context.Context) error
	// Logger receives request failures. Default slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the defaults used for zero Config fields (Secret
// has none: it is required).
func DefaultConfig() Config {
	return Config{
		TokenTTL:        7 * 24 * time.Hour,
		JWKSRefresh:     15 * time.Minute,
		JWKSMinGap:      10 * time.Second,
		StartingBalance: 10000,
		GrabRate:        10,
		GrabBurst:       20,
		ChatRate:        2,
		ChatBurst:       5,
		FrameRate:       20,
		FrameBurst:      40,
		MaxConnsPerUser: 5,
		MaxConnsPerIP:   100,
		MaxRooms:        100000,
		NewRoomsPerIP:   120,
		SessionRate:     1,
		SessionBurst:    20,
		FloodStrikes:    50,
		MaxChatRunes:    500,
		MaxRainPackets:  200,
		MaxRainDuration: 5 * time.Minute,
		RainLead:        3 * time.Second,
		RainTTL:         5 * time.Minute,
		GrabTimeout:     5 * time.Second,
		CreateTimeout:   10 * time.Second,
		Logger:          slog.Default(),

		// The sending limits (sendlimits.go).
		KeyPrefix:            "hb",
		DailySendTotal:       2000000,
		DailySendCount:       200,
		RoomPacketsPerMinute: 60,
		MaxPacketTotal:       2000000,
		Now:                  time.Now,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.TokenTTL <= 0 {
		c.TokenTTL = d.TokenTTL
	}
	if c.JWKSRefresh <= 0 {
		c.JWKSRefresh = d.JWKSRefresh
	}
	if c.JWKSMinGap <= 0 {
		c.JWKSMinGap = d.JWKSMinGap
	}
	if c.StartingBalance == 0 {
		c.StartingBalance = d.StartingBalance
	}
	if c.GrabRate <= 0 {
		c.GrabRate = d.GrabRate
	}
	if c.GrabBurst <= 0 {
		c.GrabBurst = d.GrabBurst
	}
	if c.ChatRate <= 0 {
		c.ChatRate = d.ChatRate
	}
	if c.ChatBurst <= 0 {
		c.ChatBurst = d.ChatBurst
	}
	if c.FrameRate <= 0 {
		c.FrameRate = d.FrameRate
	}
	if c.FrameBurst <= 0 {
		c.FrameBurst = d.FrameBurst
	}
	if c.MaxConnsPerUser == 0 {
		c.MaxConnsPerUser = d.MaxConnsPerUser
	}
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = d.MaxConnsPerIP
	}
	if c.MaxRooms == 0 {
		c.MaxRooms = d.MaxRooms
	}
	if c.NewRoomsPerIP == 0 {
		c.NewRoomsPerIP = d.NewRoomsPerIP
	}
	if c.SessionRate <= 0 {
		c.SessionRate = d.SessionRate
	}
	if c.SessionBurst <= 0 {
		c.SessionBurst = d.SessionBurst
	}
	if c.FloodStrikes <= 0 {
		c.FloodStrikes = d.FloodStrikes
	}
	if c.MaxChatRunes <= 0 {
		c.MaxChatRunes = d.MaxChatRunes
	}
	if c.MaxRainPackets <= 0 {
		c.MaxRainPackets = d.MaxRainPackets
	}
	if c.MaxRainDuration <= 0 {
		c.MaxRainDuration = d.MaxRainDuration
	}
	if c.RainLead <= 0 {
		c.RainLead = d.RainLead
	}
	if c.RainTTL <= 0 {
		c.RainTTL = d.RainTTL
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = d.KeyPrefix
	}
	if c.DailySendTotal == 0 {
		c.DailySendTotal = d.DailySendTotal
	}
	if c.DailySendCount == 0 {
		c.DailySendCount = d.DailySendCount
	}
	if c.RoomPacketsPerMinute == 0 {
		c.RoomPacketsPerMinute = d.RoomPacketsPerMinute
	}
	if c.MaxPacketTotal == 0 {
		c.MaxPacketTotal = d.MaxPacketTotal
	}
	if c.Now == nil {
		c.Now = d.Now
	}
	if c.GrabTimeout <= 0 {
		c.GrabTimeout = d.GrabTimeout
	}
	if c.CreateTimeout <= 0 {
		c.CreateTimeout = d.CreateTimeout
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	return c
}

// App serves the API. Create it with New, mount it with Echo, and call Close
// when shutting down.
type App struct {
	cfg      Config
	store    *packet.Store
	hub      *hub.Hub
	tokens   *Tokens
	log      *slog.Logger
	metrics  *metrics
	upgrader websocket.Upgrader
	origins  map[string]bool
	anyOrig  bool

	// grabLimits and chatLimits rate-limit grabs and chat per user id,
	// shared by REST and all of the user's connections.
	grabLimits *limiterSet
	chatLimits *limiterSet
	// caps counts connections per user and address, and rooms.
	caps *connCaps
	// sends enforces the sending limits.
	sends *sendLimits
	// rains holds the timers that announce rain packets as they drop.
	rainMu sync.Mutex
	rains  map[*time.Timer]struct{}
	closed bool
	// draining makes /readyz answer 503 (Drain).
	draining atomic.Bool
	// bg ends the background retries of durable events (republish) when
	// the App closes; retries counts them.
	bg      context.Context
	stopBG  context.CancelFunc
	retries sync.WaitGroup
}

// New returns an App serving store and hub.
func New(cfg Config, store *packet.Store, h *hub.Hub) *App {
	cfg = cfg.withDefaults()
	a := &App{
		cfg:        cfg,
		store:      store,
		hub:        h,
		tokens:     NewTokens(cfg.Secret, cfg.TokenTTL),
		log:        cfg.Logger,
		metrics:    newMetrics(cfg.Registerer),
		origins:    map[string]bool{},
		grabLimits: newLimiterSet(cfg.GrabRate, cfg.GrabBurst),
		chatLimits: newLimiterSet(cfg.ChatRate, cfg.ChatBurst),
		caps:       newConnCaps(cfg),
		sends:      newSendLimits(cfg),
		rains:      map[*time.Timer]struct{}{},
	}
	a.bg, a.stopBG = context.WithCancel(context.Background())
	if cfg.JWKSURL != "" {
		j := newJWKS(cfg.JWKSURL, cfg.JWKSRefresh, cfg.JWKSMinGap, cfg.Logger)
		a.tokens.withJWKS(j, cfg.JWTIssuer, cfg.JWTAudience)
		a.retries.Add(1)
		go func() {
			defer a.retries.Done()
			j.run(a.bg)
		}()
	}
	for _, o := range cfg.AllowedOrigins {
		if o == "*" {
			a.anyOrig = true
		}
		a.origins[o] = true
	}
	a.upgrader = websocket.Upgrader{
		// The hub reads frames itself (hub/reader.go), so gorilla's read
		// buffer only serves a connection refused by a cap; this asks for
		// the smallest gorilla makes.
		ReadBufferSize: 1,
		// Write buffers are borrowed per write from a pool instead of being
		// held by every idle connection.
		WriteBufferPool: &sync.Pool{},
		// The origin was checked before the upgrade, with a JSON error.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return a
}

// Tokens returns the App's token issuer, for tools and tests that mint tokens.
func (a *App) Tokens() *Tokens { return a.tokens }

// Echo builds the Echo instance with every route.
func (a *App) Echo() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = a.handleError
	e.IPExtractor = ipExtractor(a.cfg.TrustedProxies)
	e.Use(securityHeaders()...)
	e.Use(middleware.Recover())
	e.Use(middleware.BodyLimit("64K"))

	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", a.readyz)
	if a.cfg.Gatherer != nil && a.cfg.AdminToken != "" {
		e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(a.cfg.Gatherer, promhttp.HandlerOpts{})), a.requireAdmin)
	}
	e.GET("/ws", a.serveWS)

	api := e.Group("/api/v1")
	api.POST("/sessions", a.createSession, middleware.RateLimiterWithConfig(middleware.RateLimiterConfig{
		Store:               middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{Rate: a.cfg.SessionRate, Burst: a.cfg.SessionBurst, ExpiresIn: 10 * time.Minute}),
		IdentifierExtractor: clientKey,
		ErrorHandler:        func(c echo.Context, err error) error { return ErrForbidden },
		DenyHandler: func(c echo.Context, id string, err error) error {
			return apierr.Refuse(ErrRateLimited, "too many new sessions from this address; try again shortly")
		},
	}))
	api.POST("/admin/credit", a.adminCredit, a.requireAdmin)
	api.GET("/admin/audit", a.adminAudit, a.requireAdmin)
	api.GET("/admin/reconcile", a.adminReconcile, a.requireAdmin)
	user := api.Group("", a.requireUser)
	user.POST("/rooms/:room/packets", a.createPacket)
	user.POST("/rooms/:room/rains", a.createRain)
	user.GET("/rooms/:room/packets", a.roomPackets)
	user.POST("/packets/:id/grab", a.grabREST)
	user.GET("/packets/:id", a.packetDetail)
	user.GET("/me", a.me)
	user.GET("/me/claims", a.myClaims)
	user.GET("/me/packets", a.myPackets)
	user.GET("/me/summary", a.mySummary)

	if a.cfg.Static != nil {
		e.GET("/*", echo.WrapHandler(http.FileServer(http.FS(a.cfg.Static))))
	}
	return e
}

func (a *App) readyz(c echo.Context) error {
	if a.draining.Load() {
		return apierr.Refuse(packet.ErrUnavailable, "not ready: this instance is shutting down")
	}
	if a.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		if err := a.cfg.Ready(ctx); err != nil {
			// The cause names internal addresses: it goes to the log only.
			a.log.Warn("not ready", "err", err)
			return apierr.Refuse(packet.ErrUnavailable, "not ready: a store is unavailable")
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// handleError writes every error as {"error":{"code","message"}}.
func (a *App) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, obj := errorObject(err)
	if status >= 500 {
		a.log.Warn("request failed", "method", c.Request().Method, "path", c.Path(), "err", err)
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	_ = c.JSON(status, ErrorBody{Error: obj})
}

// Drain makes /readyz answer 503 from now on, so that load balancers stop
// sending new clients here while everything is still served.
func (a *App) Drain() { a.draining.Store(true) }

// Close stops the timers that announce rain packets (clients already hold
// each rain's schedule, so nothing is lost to them) and the retries of
// durable events not yet published, and waits for those.
func (a *App) Close() {
	a.rainMu.Lock()
	a.closed = true
	for t := range a.rains {
		t.Stop()
	}
	a.rains = nil
	a.rainMu.Unlock()
	a.stopBG()
	a.retries.Wait()
}
