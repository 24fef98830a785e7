package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hongbao-dev/hongbao/hub"
	"github.com/hongbao-dev/hongbao/packet"
	"github.com/hongbao-dev/hongbao/web"
	"github.com/hongbao-dev/hongbao/webhook"
)

// Config is every setting of the server. Each has a flag and an environment
// variable; the flag wins. Defaults come from defaultConfig, which takes the
// hub's, the store's and the web app's from their packages' DefaultConfig.
type Config struct {
	Addr            string
	MetricsAddr     string
	RedisURL        string
	Secret          string
	AdminToken      string
	AllowedOrigins  string
	KeyPrefix       string
	StartingBalance int64
	MaxCount        int
	MaxShare        int64
	PacketTTL       time.Duration
	SweepInterval   time.Duration
	ProgressAbove   int
	SendQueue       int
	WriteTimeout    time.Duration
	PingInterval    time.Duration
	PongTimeout     time.Duration
	SessionRate     float64 // requests per second: a rate, not money
	SessionBurst    int
	GrabRate        float64 // requests per second: a rate, not money
	GrabBurst       int
	ChatRate        float64 // messages per second: a rate, not money
	ChatBurst       int
	DrainDelay      time.Duration
	ShutdownTimeout time.Duration
	CloseTimeout    time.Duration
	ReadTimeout     time.Duration
	IdleTimeout     time.Duration
	LogLevel        string
	LogFormat       string
	PprofAddr       string
	CoalesceGrabs   bool
	SettleGrace     time.Duration
	SweepLease      time.Duration
	DatabaseURL     string
	RetainSettled   time.Duration
	WaitReplicas    int
	ReconcileEvery  time.Duration
	TrustedProxies  string
	// The rooms' event history (hub.RedisBrokerConfig documents each).
	HistorySize    int
	HistoryTTL     time.Duration
	HistoryMetaTTL time.Duration
	RecentChat     int
	// Connection caps and the frame budget (web.Config documents each).
	MaxConnsPerUser int
	MaxConnsPerIP   int
	MaxRooms        int
	NewRoomsPerIP   int
	FrameRate       float64 // frames per second: a rate, not money
	FrameBurst      int
	// Webhooks (webhook.Config documents each; ledger mode only).
	WebhookURL         string
	WebhookSecret      string
	WebhookTimeout     time.Duration
	WebhookLease       time.Duration
	WebhookPoll        time.Duration
	WebhookMinBackoff  time.Duration
	WebhookMaxBackoff  time.Duration
	WebhookMaxAttempts int
	// Tokens from an app's identity provider (web.Config documents each).
	JWKSURL     string
	JWTIssuer   string
	JWTAudience string
	JWKSRefresh time.Duration
	// The sending limits (web.Config documents each).
	DailySendTotal       int64
	DailySendCount       int
	RoomPacketsPerMinute int
	MaxPacketTotal       int64
}

// minSecret is the shortest HONGBAO_SECRET or HONGBAO_ADMIN_TOKEN accepted:
// guest tokens are free to get, so a short secret can be cracked offline
// from one of them, and then any wallet spent.
const minSecret = 32

// defaultConfig returns the default of every setting. What the hub, the
// store and the web app use comes from their DefaultConfig, so each number
// is written once, in its package; only the server's own settings (listen
// addresses, shutdown phases, logging, how often the background jobs run)
// are set here.
func defaultConfig() Config {
	h, p, w := hub.DefaultConfig(), packet.DefaultConfig(), web.DefaultConfig()
	b, wh := hub.DefaultRedisBrokerConfig(), webhook.DefaultConfig()
	return Config{
		HistorySize:     b.HistorySize,
		HistoryTTL:      b.HistoryTTL,
		HistoryMetaTTL:  b.HistoryMetaTTL,
		RecentChat:      b.RecentSize,
		Addr:            ":8080",
		KeyPrefix:       p.Prefix,
		StartingBalance: w.StartingBalance,
		MaxCount:        p.Limits.MaxCount,
		MaxShare:        p.Limits.MaxShare,
		PacketTTL:       p.Limits.DefaultTTL,
		SweepInterval:   time.Second,
		ProgressAbove:   web.DefaultProgressAbove,
		SendQueue:       h.SendQueue,
		WriteTimeout:    h.WriteTimeout,
		PingInterval:    h.PingInterval,
		PongTimeout:     h.PongTimeout,
		SessionRate:     float64(w.SessionRate),
		SessionBurst:    w.SessionBurst,
		GrabRate:        float64(w.GrabRate),
		GrabBurst:       w.GrabBurst,
		ChatRate:        float64(w.ChatRate),
		ChatBurst:       w.ChatBurst,
		MaxConnsPerUser: w.MaxConnsPerUser,
		MaxConnsPerIP:   w.MaxConnsPerIP,
		MaxRooms:        w.MaxRooms,
		NewRoomsPerIP:   w.NewRoomsPerIP,
		FrameRate:       float64(w.FrameRate),
		FrameBurst:      w.FrameBurst,
		DrainDelay:      5 * time.Second,
		ShutdownTimeout: 10 * time.Second,
		CloseTimeout:    2 * time.Second,
		ReadTimeout:     30 * time.Second,
		IdleTimeout:     2 * time.Minute,
		LogLevel:        "info",
		LogFormat:       "text",
		CoalesceGrabs:   !p.DisableCoalescing,
		SettleGrace:     p.SettleGrace,
		SweepLease:      p.SweepLease,
		RetainSettled:   p.RetainSettled,
		WaitReplicas:    p.WaitReplicas,
		ReconcileEvery:  5 * time.Minute,

		// Webhooks.
		WebhookTimeout:       wh.Timeout,
		WebhookLease:         wh.Lease,
		WebhookPoll:          wh.Poll,
		WebhookMinBackoff:    wh.MinBackoff,
		WebhookMaxBackoff:    wh.MaxBackoff,
		WebhookMaxAttempts:   wh.MaxAttempts,
		JWKSRefresh:          w.JWKSRefresh,
		DailySendTotal:       w.DailySendTotal,
		DailySendCount:       w.DailySendCount,
		RoomPacketsPerMinute: w.RoomPacketsPerMinute,
		MaxPacketTotal:       w.MaxPacketTotal,
	}
}

// setting is one row of the table that `server -h` prints, with the checks
// its value must pass once flags and environment are read.
type setting struct {
	flag, env, def, help string
	// check reports the value (as it may be printed) and what is wrong
	// with it, if anything.
	check func() (string, error)
}

// registerFlags declares every setting on fs with its env var and the
// default from defaultConfig, and returns the rows for the help text and one
// error for each environment variable whose value does not parse. Each
// setting may list rules its value must pass (checked by parseConfig).
func registerFlags(fs *flag.FlagSet, c *Config) ([]setting, []error) {
	d := defaultConfig()
	p := packet.DefaultConfig().Limits
	var rows []setting
	var bad []error
	// fromEnv parses env's value with parse, if env is set.
	fromEnv := func(env string, parse func(string) error) {
		if v, ok := os.LookupEnv(env); ok {
			if err := parse(v); err != nil {
				bad = append(bad, fmt.Errorf("%s=%q: %w", env, v, err))
			}
		}
	}
	str := func(p *string, name, env, def, help string, rules ...func(string) error) {
		fs.StringVar(p, name, envOr(env, def), help)
		rows = append(rows, setting{name, env, def, help, checker(p, strconv.Quote, rules)})
	}
	// secret is a str whose value is never printed, only its length.
	secret := func(p *string, name, env, help string) {
		fs.StringVar(p, name, envOr(env, ""), help)
		show := func(s string) string { return fmt.Sprintf("<%d bytes>", len(s)) }
		rows = append(rows, setting{name, env, "", help, checker(p, show, []func(string) error{longSecret})})
	}
	i64 := func(p *int64, name, env string, def int64, help string, rules ...func(int64) error) {
		fs.Int64Var(p, name, def, help)
		fromEnv(env, func(v string) (err error) { *p, err = strconv.ParseInt(v, 10, 64); return })
		show := func(v int64) string { return strconv.FormatInt(v, 10) }
		rows = append(rows, setting{name, env, show(def), help, checker(p, show, rules)})
	}
	num := func(p *int, name, env string, def int, help string, rules ...func(int) error) {
		fs.IntVar(p, name, def, help)
		fromEnv(env, func(v string) (err error) { *p, err = strconv.Atoi(v); return })
		rows = append(rows, setting{name, env, strconv.Itoa(def), help, checker(p, strconv.Itoa, rules)})
	}
	rate := func(p *float64, name, env string, def float64, help string) {
		fs.Float64Var(p, name, def, help)
		fromEnv(env, func(v string) (err error) { *p, err = strconv.ParseFloat(v, 64); return })
		show := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
		rows = append(rows, setting{name, env, show(def), help, checker(p, show, []func(float64) error{positiveRate})})
	}
	boolean := func(p *bool, name, env string, def bool, help string) {
		fs.BoolVar(p, name, def, help)
		fromEnv(env, func(v string) (err error) { *p, err = strconv.ParseBool(v); return })
		rows = append(rows, setting{name, env, strconv.FormatBool(def), help, nil})
	}
	dur := func(p *time.Duration, name, env string, def time.Duration, help string, rules ...func(time.Duration) error) {
		fs.DurationVar(p, name, def, help)
		fromEnv(env, func(v string) (err error) { *p, err = time.ParseDuration(v); return })
		rows = append(rows, setting{name, env, def.String(), help, checker(p, time.Duration.String, rules)})
	}
	str(&c.Addr, "addr", "HONGBAO_ADDR", d.Addr, "listen address", hostPort)
	str(&c.MetricsAddr, "metrics-addr", "HONGBAO_METRICS_ADDR", d.MetricsAddr, "listen address of /metrics alone (e.g. 127.0.0.1:9090); empty serves /metrics on the main port to the admin token only (and not at all without one)", optional(hostPort))
	str(&c.DatabaseURL, "database-url", "HONGBAO_DATABASE_URL", d.DatabaseURL, "postgres:// URL of the ledger, the system of record for wallets and claims; empty keeps wallets in Redis (demo mode: no durable ledger)")
	dur(&c.RetainSettled, "retain-settled", "HONGBAO_RETAIN_SETTLED", d.RetainSettled, "how long a finished, fully settled packet stays in Redis before it is read from the ledger (ledger mode)", over[time.Duration](0))
	dur(&c.ReconcileEvery, "reconcile-every", "HONGBAO_RECONCILE_EVERY", d.ReconcileEvery, "how often each instance reconciles Redis with the ledger and checks the journal (ledger mode)", over[time.Duration](0))
	num(&c.WaitReplicas, "redis-wait-replicas", "HONGBAO_REDIS_WAIT_REPLICAS", d.WaitReplicas, "answer a grab batch only after this many Redis replicas confirmed it (WAIT); 0 answers at once", atLeast(0))
	str(&c.RedisURL, "redis-url", "REDIS_URL", d.RedisURL, "redis:// or rediss:// URL, or comma-separated cluster seeds; empty runs an embedded in-memory Redis (demo only: one instance, nothing kept)")
	secret(&c.Secret, "secret", "HONGBAO_SECRET", fmt.Sprintf("HS256 secret for user tokens, at least %d bytes; every instance must share it; empty makes a random one per process", minSecret))
	secret(&c.AdminToken, "admin-token", "HONGBAO_ADMIN_TOKEN", fmt.Sprintf("bearer token (at least %d bytes) for the admin API and /metrics; empty disables both", minSecret))
	str(&c.AllowedOrigins, "allowed-origins", "HONGBAO_ALLOWED_ORIGINS", d.AllowedOrigins, "comma-separated browser origins allowed to open a WebSocket, or *; empty allows the same origin only")
	str(&c.KeyPrefix, "key-prefix", "HONGBAO_KEY_PREFIX", d.KeyPrefix, "prefix of every Redis key and channel", keyPrefix)
	i64(&c.StartingBalance, "starting-balance", "HONGBAO_STARTING_BALANCE", d.StartingBalance, "fen credited to each new guest session (0 or -1: none)", atLeast[int64](-1))
	num(&c.MaxCount, "max-count", "HONGBAO_MAX_COUNT", d.MaxCount, "most shares in one packet", between(1, packet.MaxCountLimit))
	i64(&c.MaxShare, "max-share", "HONGBAO_MAX_SHARE", d.MaxShare, "largest share in fen", atLeast(p.MinShare))
	dur(&c.PacketTTL, "packet-ttl", "HONGBAO_PACKET_TTL", d.PacketTTL, fmt.Sprintf("how long a packet stays open by default (at most %v)", p.MaxTTL), between(p.MinTTL, p.MaxTTL))
	dur(&c.SweepInterval, "sweep-interval", "HONGBAO_SWEEP_INTERVAL", d.SweepInterval, "how often this instance looks for expired packets and unfinished steps", over[time.Duration](0))
	dur(&c.SettleGrace, "settle-grace", "HONGBAO_SETTLE_GRACE", d.SettleGrace, "how long after a grab the sweeper looks at its packet, to pay what a crashed instance left unpaid", over[time.Duration](0))
	dur(&c.SweepLease, "sweep-lease", "HONGBAO_SWEEP_LEASE", d.SweepLease, "how long a sweeper owns a due packet; a dead instance's packets wait this long for another", over[time.Duration](0))
	boolean(&c.CoalesceGrabs, "coalesce-grabs", "HONGBAO_COALESCE_GRABS", d.CoalesceGrabs, "settle grabs of a hot packet that arrive together in one Redis script call")
	num(&c.ProgressAbove, "progress-above", "HONGBAO_PROGRESS_ABOVE", d.ProgressAbove, "local room size from which grabbed events become progress events every 200ms (-1: only for packets grabbed faster than 64 per 200ms)", minusOneOrPositive)
	num(&c.SendQueue, "send-queue", "HONGBAO_SEND_QUEUE", d.SendQueue, "frames queued per connection before a slow client is evicted", atLeast(1))
	dur(&c.WriteTimeout, "write-timeout", "HONGBAO_WRITE_TIMEOUT", d.WriteTimeout, "how long one write to a WebSocket may take before the client is cut as stuck", over[time.Duration](0))
	dur(&c.PingInterval, "ping-interval", "HONGBAO_PING_INTERVAL", d.PingInterval, "how often each WebSocket is pinged (keep it below any proxy's idle timeout)", over[time.Duration](0))
	dur(&c.PongTimeout, "pong-timeout", "HONGBAO_PONG_TIMEOUT", d.PongTimeout, "how long past a ping interval a silent WebSocket is kept before it is cut", over[time.Duration](0))
	rate(&c.SessionRate, "session-rate", "HONGBAO_SESSION_RATE", d.SessionRate, "guest sessions per second per client IP")
	num(&c.SessionBurst, "session-burst", "HONGBAO_SESSION_BURST", d.SessionBurst, "guest sessions a client IP may create at once", atLeast(1))
	rate(&c.GrabRate, "grab-rate", "HONGBAO_GRAB_RATE", d.GrabRate, "grabs per second per user (all of its WebSockets and REST together)")
	num(&c.GrabBurst, "grab-burst", "HONGBAO_GRAB_BURST", d.GrabBurst, "grabs a user may send at once", atLeast(1))
	rate(&c.ChatRate, "chat-rate", "HONGBAO_CHAT_RATE", d.ChatRate, "chat messages per second per user")
	num(&c.ChatBurst, "chat-burst", "HONGBAO_CHAT_BURST", d.ChatBurst, "chat messages a user may send at once", atLeast(1))
	dur(&c.DrainDelay, "drain-delay", "HONGBAO_DRAIN_DELAY", d.DrainDelay, "shutdown, phase 1: after SIGTERM, /readyz answers 503 but everything is still served for this long, so load balancers stop sending new clients; then the listener closes", atLeast[time.Duration](0))
	dur(&c.ShutdownTimeout, "shutdown-timeout", "HONGBAO_SHUTDOWN_TIMEOUT", d.ShutdownTimeout, "shutdown, phase 2: how long REST requests in flight and WebSocket frames being handled get to finish (WebSockets take no new frames)", over[time.Duration](0))
	dur(&c.CloseTimeout, "close-timeout", "HONGBAO_CLOSE_TIMEOUT", d.CloseTimeout, "shutdown, phase 3: how long WebSockets get to receive what is queued for them and the 1001 close; then the rest are cut", over[time.Duration](0))
	dur(&c.ReadTimeout, "read-timeout", "HONGBAO_READ_TIMEOUT", d.ReadTimeout, "longest time to read one HTTP request, body included (an open WebSocket is not bound by it)", over[time.Duration](0))
	dur(&c.IdleTimeout, "idle-timeout", "HONGBAO_IDLE_TIMEOUT", d.IdleTimeout, "how long an idle keep-alive HTTP connection stays open", over[time.Duration](0))
	str(&c.LogLevel, "log-level", "HONGBAO_LOG_LEVEL", d.LogLevel, "debug, info, warn or error", logLevel)
	str(&c.LogFormat, "log-format", "HONGBAO_LOG_FORMAT", d.LogFormat, "text or json", oneOf("text", "json"))
	str(&c.PprofAddr, "pprof-addr", "HONGBAO_PPROF_ADDR", d.PprofAddr, "listen address for net/http/pprof (e.g. 127.0.0.1:6060); empty disables it", optional(hostPort))
	str(&c.TrustedProxies, "trusted-proxies", "HONGBAO_TRUSTED_PROXIES", d.TrustedProxies, "comma-separated CIDRs of the proxies whose X-Forwarded-For is believed; empty believes nobody's", cidrs)
	num(&c.HistorySize, "history-size", "HONGBAO_HISTORY_SIZE", d.HistorySize, "durable events (packet, rain, finished, chat) each room keeps for clients that reconnect with since", atLeast(1))
	dur(&c.HistoryTTL, "history-ttl", "HONGBAO_HISTORY_TTL", d.HistoryTTL, "how long a durable event stays recoverable; older gaps get resync", over[time.Duration](0))
	dur(&c.HistoryMetaTTL, "history-meta-ttl", "HONGBAO_HISTORY_META_TTL", d.HistoryMetaTTL, "how long a quiet room keeps its seq and epoch; after that it starts a new epoch", over[time.Duration](0))
	num(&c.RecentChat, "recent-chat", "HONGBAO_RECENT_CHAT", d.RecentChat, "chat messages a room keeps for every joiner", atLeast(1))
	num(&c.MaxConnsPerUser, "max-conns-per-user", "HONGBAO_MAX_CONNS_PER_USER", d.MaxConnsPerUser, "WebSockets one user may hold on this instance; one more is closed with 4001 (-1: no cap)", minusOneOrPositive)
	num(&c.MaxConnsPerIP, "max-conns-per-ip", "HONGBAO_MAX_CONNS_PER_IP", d.MaxConnsPerIP, "WebSockets one client address (IPv6: its /64) may hold on this instance; one more is closed with 4002 (-1: no cap)", minusOneOrPositive)
	num(&c.MaxRooms, "max-rooms", "HONGBAO_MAX_ROOMS", d.MaxRooms, "rooms with members on this instance; a connection opening one more is closed with 4003 (-1: no cap)", minusOneOrPositive)
	num(&c.NewRoomsPerIP, "new-rooms-per-ip", "HONGBAO_NEW_ROOMS_PER_IP", d.NewRoomsPerIP, "rooms one client address may open on this instance per minute; one more is closed with 4004 (-1: no limit)", minusOneOrPositive)
	rate(&c.FrameRate, "frame-rate", "HONGBAO_FRAME_RATE", d.FrameRate, "frames per second one WebSocket may send, of any type, pings included")
	num(&c.FrameBurst, "frame-burst", "HONGBAO_FRAME_BURST", d.FrameBurst, "frames one WebSocket may send at once", atLeast(1))
	str(&c.WebhookURL, "webhook-url", "HONGBAO_WEBHOOK_URL", d.WebhookURL, "http(s) URL that receives signed POSTs of packet.created, claim.settled, packet.finished and packet.refunded (docs/webhooks.md); needs -database-url and -webhook-secret; empty sends none", optional(httpURL))
	secret(&c.WebhookSecret, "webhook-secret", "HONGBAO_WEBHOOK_SECRET", fmt.Sprintf("HMAC-SHA256 key (at least %d bytes) that signs every webhook request (X-Hongbao-Signature); required with -webhook-url", minSecret))
	dur(&c.WebhookTimeout, "webhook-timeout", "HONGBAO_WEBHOOK_TIMEOUT", d.WebhookTimeout, "longest wait for a webhook receiver's answer; no answer in time is a failed attempt", over[time.Duration](0))
	dur(&c.WebhookLease, "webhook-lease", "HONGBAO_WEBHOOK_LEASE", d.WebhookLease, "how long an instance owns a webhook event it is sending; a dead instance's events are sent again after it (must exceed -webhook-timeout)", over[time.Duration](0))
	dur(&c.WebhookPoll, "webhook-poll", "HONGBAO_WEBHOOK_POLL", d.WebhookPoll, "how often an idle instance looks for webhook events to send", over[time.Duration](0))
	dur(&c.WebhookMinBackoff, "webhook-min-backoff", "HONGBAO_WEBHOOK_MIN_BACKOFF", d.WebhookMinBackoff, "wait after a webhook event's first failed attempt; doubled after each further failure, with jitter", over[time.Duration](0))
	dur(&c.WebhookMaxBackoff, "webhook-max-backoff", "HONGBAO_WEBHOOK_MAX_BACKOFF", d.WebhookMaxBackoff, "longest wait between two attempts of a webhook event", over[time.Duration](0))
	num(&c.WebhookMaxAttempts, "webhook-max-attempts", "HONGBAO_WEBHOOK_MAX_ATTEMPTS", d.WebhookMaxAttempts, "attempts of a webhook event before it is kept as dead and counted (the defaults span about a day)", atLeast(1))
	str(&c.JWKSURL, "jwks-url", "HONGBAO_JWKS_URL", d.JWKSURL, "http(s) URL of an identity provider's JWK Set: RS256 and EdDSA tokens signed with its keys are accepted beside HS256 ones; empty accepts HS256 only", optional(web.ValidJWKSURL))
	str(&c.JWTIssuer, "jwt-issuer", "HONGBAO_JWT_ISSUER", d.JWTIssuer, "the iss that tokens verified with the JWKS must carry; empty does not check it")
	str(&c.JWTAudience, "jwt-audience", "HONGBAO_JWT_AUDIENCE", d.JWTAudience, "the aud that tokens verified with the JWKS must carry; empty does not check it")
	dur(&c.JWKSRefresh, "jwks-refresh", "HONGBAO_JWKS_REFRESH", d.JWKSRefresh, "how often the JWKS is fetched again (a token naming an unknown kid also fetches it, at most once per 10s)", over[time.Duration](0))
	i64(&c.DailySendTotal, "daily-send-total", "HONGBAO_DAILY_SEND_TOTAL", d.DailySendTotal, "fen one user may send per UTC day, all instances together; more is refused with daily_limit (-1: no limit)", noneOrAtLeast[int64](1))
	num(&c.DailySendCount, "daily-send-count", "HONGBAO_DAILY_SEND_COUNT", d.DailySendCount, "packets one user may send per UTC day (a rain counts as its packets); more is refused with daily_limit (-1: no limit)", noneOrAtLeast(1))
	num(&c.RoomPacketsPerMinute, "room-packets-per-minute", "HONGBAO_ROOM_PACKETS_PER_MINUTE", d.RoomPacketsPerMinute, "packets and rains one room may get per minute, all instances together; more is refused with room_rate_limited (-1: no limit)", noneOrAtLeast(1))
	i64(&c.MaxPacketTotal, "max-packet-total", "HONGBAO_MAX_PACKET_TOTAL", d.MaxPacketTotal, "largest total of one packet (of a rain: of each packet) in fen; more is refused with total_too_large (-1: only -max-count x -max-share)", noneOrAtLeast[int64](1))
	return rows, bad
}

// checker returns a setting's check: the value as show prints it, and the
// first rule it breaks.
func checker[T any](p *T, show func(T) string, rules []func(T) error) func() (string, error) {
	if len(rules) == 0 {
		return nil
	}
	return func() (string, error) {
		for _, rule := range rules {
			if err := rule(*p); err != nil {
				return show(*p), err
			}
		}
		return show(*p), nil
	}
}

func envOr(env, def string) string {
	if v, ok := os.LookupEnv(env); ok {
		return v
	}
	return def
}

// errBadConfig marks a setting that does not parse or is out of range: the
// process exits 2.
var errBadConfig = errors.New("bad setting")

// parseConfig reads flags and environment. A value that does not parse, or
// breaks its setting's rules, is an error naming its variable (and flag) and
// value, never a silent default.
func parseConfig(args []string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("hongbao", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rows, bad := registerFlags(fs, &c)
	fs.Usage = func() { usage(stderr, rows) }
	if len(bad) > 0 {
		return c, fmt.Errorf("%w: %w", errBadConfig, errors.Join(bad...))
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, fmt.Errorf("%w: %w", errBadConfig, err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%w: unexpected arguments: %s", errBadConfig, strings.Join(fs.Args(), " "))
	}
	for _, r := range rows {
		if r.check == nil {
			continue
		}
		if v, err := r.check(); err != nil {
			bad = append(bad, fmt.Errorf("%s=%s (-%s): %w", r.env, v, r.flag, err))
		}
	}
	bad = append(bad, c.webhookRules()...)
	if len(bad) > 0 {
		return c, fmt.Errorf("%w: %w", errBadConfig, errors.Join(bad...))
	}
	return c, nil
}

// trustedProxies parses TrustedProxies.
func (c Config) trustedProxies() ([]*net.IPNet, error) {
	var nets []*net.IPNet
	for _, s := range strings.Split(c.TrustedProxies, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR", s)
		}
		nets = append(nets, n)
	}
	return nets, nil
}

// webhookRules checks the webhook settings against each other: webhooks
// come out of the ledger's outbox, so they need the ledger.
func (c Config) webhookRules() []error {
	var bad []error
	switch {
	case c.WebhookURL != "" && c.DatabaseURL == "":
		bad = append(bad, errors.New("HONGBAO_WEBHOOK_URL (-webhook-url) needs HONGBAO_DATABASE_URL: webhooks are sent from the ledger's outbox"))
	case c.WebhookURL != "" && c.WebhookSecret == "":
		bad = append(bad, errors.New("HONGBAO_WEBHOOK_URL (-webhook-url) needs HONGBAO_WEBHOOK_SECRET (-webhook-secret) to sign with"))
	case c.WebhookURL == "" && c.WebhookSecret != "":
		bad = append(bad, errors.New("HONGBAO_WEBHOOK_SECRET (-webhook-secret) is set without HONGBAO_WEBHOOK_URL (-webhook-url)"))
	}
	if c.WebhookLease <= c.WebhookTimeout {
		bad = append(bad, fmt.Errorf("HONGBAO_WEBHOOK_LEASE=%v (-webhook-lease): must exceed HONGBAO_WEBHOOK_TIMEOUT=%v, or a slow receiver gets every event twice", c.WebhookLease, c.WebhookTimeout))
	}
	if c.WebhookMaxBackoff < c.WebhookMinBackoff {
		bad = append(bad, fmt.Errorf("HONGBAO_WEBHOOK_MAX_BACKOFF=%v (-webhook-max-backoff): must be at least HONGBAO_WEBHOOK_MIN_BACKOFF=%v", c.WebhookMaxBackoff, c.WebhookMinBackoff))
	}
	return bad
}

// Rules for registerFlags: each error says what the value must be.

func atLeast[T cmp.Ordered](lo T) func(T) error {
	return func(v T) error {
		if v < lo {
			return fmt.Errorf("must be at least %v", lo)
		}
		return nil
	}
}

func over[T cmp.Ordered](lo T) func(T) error {
	return func(v T) error {
		if v <= lo {
			return fmt.Errorf("must be more than %v", lo)
		}
		return nil
	}
}

func between[T cmp.Ordered](lo, hi T) func(T) error {
	return func(v T) error {
		if v < lo || v > hi {
			return fmt.Errorf("must be between %v and %v", lo, hi)
		}
		return nil
	}
}

func minusOneOrPositive(v int) error {
	if v != -1 && v < 1 {
		return errors.New("must be -1 or at least 1")
	}
	return nil
}

// noneOrAtLeast accepts -1 (none) or lo and above.
func noneOrAtLeast[T int | int64](lo T) func(T) error {
	return func(v T) error {
		if v != -1 && v < lo {
			return fmt.Errorf("must be -1 or at least %v", lo)
		}
		return nil
	}
}

func positiveRate(v float64) error {
	if !(v > 0) || math.IsInf(v, 0) {
		return errors.New("must be a finite number above 0")
	}
	return nil
}

func oneOf(vals ...string) func(string) error {
	return func(v string) error {
		if !slices.Contains(vals, v) {
			return fmt.Errorf("must be one of %s", strings.Join(vals, ", "))
		}
		return nil
	}
}

func optional(rule func(string) error) func(string) error {
	return func(v string) error {
		if v == "" {
			return nil
		}
		return rule(v)
	}
}

func hostPort(v string) error {
	if _, _, err := net.SplitHostPort(v); err != nil {
		return errors.New("must be host:port or :port")
	}
	return nil
}

func httpURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an http:// or https:// URL")
	}
	return nil
}

func longSecret(v string) error {
	if v != "" && len(v) < minSecret {
		return fmt.Errorf("too short: use at least %d bytes (e.g. openssl rand -hex 32), or leave it unset", minSecret)
	}
	return nil
}

// keyPrefix refuses braces: the prefix goes before each key's {hash tag},
// and a brace in it would move keys that must share a slot apart.
func keyPrefix(v string) error {
	if v == "" || strings.ContainsAny(v, "{}") {
		return errors.New("must be non-empty, without { or }")
	}
	return nil
}

func logLevel(v string) error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(v)); err != nil {
		return errors.New("must be debug, info, warn or error")
	}
	return nil
}

func cidrs(v string) error {
	_, err := Config{TrustedProxies: v}.trustedProxies()
	return err
}

func usage(w io.Writer, rows []setting) {
	fmt.Fprintln(w, "hongbao: real-time red packets over WebSocket, settled in Redis.")
	fmt.Fprintln(w, "\nUsage: server [flags]   (every flag can also be set by its environment variable)")
	fmt.Fprintln(w, "       server healthcheck [flags]   (exit 0 when the server at -addr answers /healthz)")
	fmt.Fprintln(w, "       server migrate [flags]       (apply the ledger's schema migrations to -database-url and exit)")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FLAG\tENV\tDEFAULT\tMEANING")
	for _, r := range rows {
		def := r.def
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(tw, "-%s\t%s\t%s\t%s\n", r.flag, r.env, def, r.help)
	}
	tw.Flush()
}
