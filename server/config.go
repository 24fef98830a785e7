package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hongbao-dev/hongbao/web"
)

// Config is every setting of the server. Each has a flag and an environment
// variable; the flag wins. Defaults live in one place: registerFlags.
type Config struct {
	Addr            string
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
	CoalesceAbove   int
	SendQueue       int
	SessionRate     float64 // requests per second: a rate, not money
	SessionBurst    int
	GrabRate        float64 // requests per second: a rate, not money
	GrabBurst       int
	ChatRate        float64 // messages per second: a rate, not money
	ChatBurst       int
	ShutdownTimeout time.Duration
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
	// Connection caps and the frame budget (web.Config documents each).
	MaxConnsPerUser int
	MaxConnsPerIP   int
	MaxRooms        int
	NewRoomsPerIP   int
	FrameRate       float64 // frames per second: a rate, not money
	FrameBurst      int
}

// setting is one row of the table that `server -h` prints.
type setting struct {
	flag, env, def, help string
}

// registerFlags declares every setting on fs with its env var and default,
// and returns the rows for the help text and one error for each
// environment variable whose value does not parse.
func registerFlags(fs *flag.FlagSet, c *Config) ([]setting, []error) {
	var rows []setting
	var bad []error
	// fromEnv parses env's value with parse, or returns def when env is unset.
	fromEnv := func(env string, parse func(string) error) {
		if v, ok := os.LookupEnv(env); ok {
			if err := parse(v); err != nil {
				bad = append(bad, fmt.Errorf("%s=%q: %w", env, v, err))
			}
		}
	}
	str := func(p *string, name, env, def, help string) {
		fs.StringVar(p, name, envOr(env, def), help)
		rows = append(rows, setting{name, env, def, help})
	}
	i64 := func(p *int64, name, env string, def int64, help string) {
		fs.Int64Var(p, name, def, help)
		fromEnv(env, func(v string) (err error) { *p, err = strconv.ParseInt(v, 10, 64); return })
		rows = append(rows, setting{name, env, strconv.FormatInt(def, 10), help})
	}
	num := func(p *int, name, env string, def int, help string) {
		fs.IntVar(p, name, def, help)
		fromEnv(env, func(v string) (err error) { *p, err = strconv.Atoi(v); return })
		rows = append(rows, setting{name, env, strconv.Itoa(def), help})
	}
	rate := func(p *float64, name, env string, def float64, help string) {
		fs.Float64Var(p, name, def, help)
		fromEnv(env, func(v string) (err error) { *p, err = strconv.ParseFloat(v, 64); return })
		rows = append(rows, setting{name, env, strconv.FormatFloat(def, 'g', -1, 64), help})
	}
	boolean := func(p *bool, name, env string, def bool, help string) {
		fs.BoolVar(p, name, def, help)
		fromEnv(env, func(v string) (err error) { *p, err = strconv.ParseBool(v); return })
		rows = append(rows, setting{name, env, strconv.FormatBool(def), help})
	}
	dur := func(p *time.Duration, name, env string, def time.Duration, help string) {
		fs.DurationVar(p, name, def, help)
		fromEnv(env, func(v string) (err error) { *p, err = time.ParseDuration(v); return })
		rows = append(rows, setting{name, env, def.String(), help})
	}
	str(&c.Addr, "addr", "HONGBAO_ADDR", ":8080", "listen address")
	str(&c.DatabaseURL, "database-url", "HONGBAO_DATABASE_URL", "", "postgres:// URL of the ledger, the system of record for wallets and claims; empty keeps wallets in Redis (demo mode: no durable ledger)")
	dur(&c.RetainSettled, "retain-settled", "HONGBAO_RETAIN_SETTLED", 10*time.Minute, "how long a finished, fully settled packet stays in Redis before it is read from the ledger (ledger mode)")
	dur(&c.ReconcileEvery, "reconcile-every", "HONGBAO_RECONCILE_EVERY", 5*time.Minute, "how often each instance reconciles Redis with the ledger and checks the journal (ledger mode)")
	num(&c.WaitReplicas, "redis-wait-replicas", "HONGBAO_REDIS_WAIT_REPLICAS", 0, "answer a grab batch only after this many Redis replicas confirmed it (WAIT); 0 answers at once")
	str(&c.RedisURL, "redis-url", "REDIS_URL", "", "redis:// or rediss:// URL, or comma-separated cluster seeds; empty runs an embedded in-memory Redis (demo only: one instance, nothing kept)")
	str(&c.Secret, "secret", "HONGBAO_SECRET", "", "HS256 secret for user tokens; every instance must share it; empty makes a random one per process")
	str(&c.AdminToken, "admin-token", "HONGBAO_ADMIN_TOKEN", "", "bearer token for POST /api/v1/admin/credit; empty disables the admin API")
	str(&c.AllowedOrigins, "allowed-origins", "HONGBAO_ALLOWED_ORIGINS", "", "comma-separated browser origins allowed to open a WebSocket, or *; empty allows the same origin only")
	str(&c.KeyPrefix, "key-prefix", "HONGBAO_KEY_PREFIX", "hb", "prefix of every Redis key and channel")
	i64(&c.StartingBalance, "starting-balance", "HONGBAO_STARTING_BALANCE", 10000, "fen credited to each new guest session (-1: none)")
	num(&c.MaxCount, "max-count", "HONGBAO_MAX_COUNT", 1000, "most shares in one packet")
	i64(&c.MaxShare, "max-share", "HONGBAO_MAX_SHARE", 20000, "largest share in fen")
	dur(&c.PacketTTL, "packet-ttl", "HONGBAO_PACKET_TTL", 24*time.Hour, "how long a packet stays open by default (at most 72h)")
	dur(&c.SweepInterval, "sweep-interval", "HONGBAO_SWEEP_INTERVAL", time.Second, "how often this instance looks for expired packets and unfinished steps")
	dur(&c.SettleGrace, "settle-grace", "HONGBAO_SETTLE_GRACE", 10*time.Second, "how long after a grab the sweeper looks at its packet, to pay what a crashed instance left unpaid")
	dur(&c.SweepLease, "sweep-lease", "HONGBAO_SWEEP_LEASE", 30*time.Second, "how long a sweeper owns a due packet; a dead instance's packets wait this long for another")
	boolean(&c.CoalesceGrabs, "coalesce-grabs", "HONGBAO_COALESCE_GRABS", true, "settle grabs of a hot packet that arrive together in one Redis script call")
	num(&c.CoalesceAbove, "coalesce-above", "HONGBAO_COALESCE_ABOVE", 1000, "local room size from which grabbed events become progress events every 200ms (-1: never)")
	num(&c.SendQueue, "send-queue", "HONGBAO_SEND_QUEUE", 256, "frames queued per connection before a slow client is evicted")
	rate(&c.SessionRate, "session-rate", "HONGBAO_SESSION_RATE", 1, "guest sessions per second per client IP")
	num(&c.SessionBurst, "session-burst", "HONGBAO_SESSION_BURST", 20, "guest sessions a client IP may create at once")
	rate(&c.GrabRate, "grab-rate", "HONGBAO_GRAB_RATE", 10, "grabs per second per connection or user")
	num(&c.GrabBurst, "grab-burst", "HONGBAO_GRAB_BURST", 20, "grabs a connection or user may send at once")
	rate(&c.ChatRate, "chat-rate", "HONGBAO_CHAT_RATE", 2, "chat messages per second per connection")
	num(&c.ChatBurst, "chat-burst", "HONGBAO_CHAT_BURST", 5, "chat messages a connection may send at once")
	dur(&c.ShutdownTimeout, "shutdown-timeout", "HONGBAO_SHUTDOWN_TIMEOUT", 10*time.Second, "how long a graceful shutdown may take")
	str(&c.LogLevel, "log-level", "HONGBAO_LOG_LEVEL", "info", "debug, info, warn or error")
	str(&c.LogFormat, "log-format", "HONGBAO_LOG_FORMAT", "text", "text or json")
	str(&c.PprofAddr, "pprof-addr", "HONGBAO_PPROF_ADDR", "", "listen address for net/http/pprof (e.g. 127.0.0.1:6060); empty disables it")
	str(&c.TrustedProxies, "trusted-proxies", "HONGBAO_TRUSTED_PROXIES", "", "comma-separated CIDRs of the proxies whose X-Forwarded-For is believed; empty believes nobody's")
	// Caps and the frame budget: defaults from web.DefaultConfig.
	wd := web.DefaultConfig
	num(&c.MaxConnsPerUser, "max-conns-per-user", "HONGBAO_MAX_CONNS_PER_USER", wd.MaxConnsPerUser, "WebSockets one user may hold on this instance; one more is closed with 4001 (-1: no cap)")
	num(&c.MaxConnsPerIP, "max-conns-per-ip", "HONGBAO_MAX_CONNS_PER_IP", wd.MaxConnsPerIP, "WebSockets one client address (IPv6: its /64) may hold on this instance; one more is closed with 4002 (-1: no cap)")
	num(&c.MaxRooms, "max-rooms", "HONGBAO_MAX_ROOMS", wd.MaxRooms, "rooms with members on this instance; a connection opening one more is closed with 4003 (-1: no cap)")
	num(&c.NewRoomsPerIP, "new-rooms-per-ip", "HONGBAO_NEW_ROOMS_PER_IP", wd.NewRoomsPerIP, "rooms one client address may open on this instance per minute; one more is closed with 4004 (-1: no limit)")
	rate(&c.FrameRate, "frame-rate", "HONGBAO_FRAME_RATE", float64(wd.FrameRate), "frames per second one WebSocket may send, of any type, pings included")
	num(&c.FrameBurst, "frame-burst", "HONGBAO_FRAME_BURST", wd.FrameBurst, "frames one WebSocket may send at once")
	return rows, bad
}

func envOr(env, def string) string {
	if v, ok := os.LookupEnv(env); ok {
		return v
	}
	return def
}

// errBadConfig marks a setting that does not parse: the process exits 2.
var errBadConfig = errors.New("bad setting")

// parseConfig reads flags and environment. A value that does not parse is
// an error naming its variable (or flag) and value, never a silent default.
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
	if _, err := c.trustedProxies(); err != nil {
		return c, fmt.Errorf("%w: %w", errBadConfig, err)
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
			return nil, fmt.Errorf("HONGBAO_TRUSTED_PROXIES: %q is not a CIDR", s)
		}
		nets = append(nets, n)
	}
	return nets, nil
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
