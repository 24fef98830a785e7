package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hongbao-dev/hongbao/hub"
	"github.com/hongbao-dev/hongbao/ledger"
	"github.com/hongbao-dev/hongbao/packet"
	"github.com/hongbao-dev/hongbao/static"
	"github.com/hongbao-dev/hongbao/web"
	"github.com/hongbao-dev/hongbao/webhook"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// instance is one running hongbao server: Redis client, store, hub, web app
// and HTTP server, wired together.
type instance struct {
	cfg   Config
	log   *slog.Logger
	rdb   redis.UniversalClient
	mini  *miniredis.Miniredis // nil unless running the embedded demo Redis
	led   *ledger.Ledger       // nil without HONGBAO_DATABASE_URL
	hooks *webhook.Dispatcher  // nil without HONGBAO_WEBHOOK_URL
	store *packet.Store
	hub   *hub.Hub
	app   *web.App
	srv   *http.Server
	ln    net.Listener
	// metrics serves /metrics on HONGBAO_METRICS_ADDR; nil without one.
	metrics   *http.Server
	metricsLn net.Listener
}

// openRedis connects to REDIS_URL: one URL for a single Redis, a URL with
// addr= parameters or a comma-separated list for a cluster. With no URL it
// starts an embedded in-memory Redis. Every client honours its callers'
// deadlines (ContextTimeoutEnabled): without it go-redis bounds a command by
// its own read timeout, so a stalled Redis would hold a request past the
// timeout it was promised.
func openRedis(url string) (redis.UniversalClient, *miniredis.Miniredis, bool, error) {
	switch {
	case url == "":
		m := miniredis.NewMiniRedis()
		if err := m.Start(); err != nil {
			return nil, nil, false, fmt.Errorf("embedded redis: %w", err)
		}
		return redis.NewClient(&redis.Options{Addr: m.Addr(), ContextTimeoutEnabled: true}), m, false, nil
	case strings.Contains(url, ","):
		var addrs []string
		var base *redis.Options
		for _, seed := range strings.Split(url, ",") {
			seed = strings.TrimSpace(seed)
			if !strings.Contains(seed, "://") {
				seed = "redis://" + seed
			}
			o, err := redis.ParseURL(seed)
			if err != nil {
				return nil, nil, false, fmt.Errorf("REDIS_URL seed %q: %w", seed, err)
			}
			if base == nil {
				base = o
			}
			addrs = append(addrs, o.Addr)
		}
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:                 addrs,
			Username:              base.Username,
			Password:              base.Password,
			TLSConfig:             base.TLSConfig,
			ContextTimeoutEnabled: true,
		}), nil, true, nil
	case strings.Contains(url, "addr="):
		o, err := redis.ParseClusterURL(url)
		if err != nil {
			return nil, nil, false, fmt.Errorf("REDIS_URL: %w", err)
		}
		o.ContextTimeoutEnabled = true
		return redis.NewClusterClient(o), nil, true, nil
	default:
		o, err := redis.ParseURL(url)
		if err != nil {
			return nil, nil, false, fmt.Errorf("REDIS_URL: %w", err)
		}
		o.ContextTimeoutEnabled = true
		return redis.NewClient(o), nil, false, nil
	}
}

// newInstance wires a server from cfg, listening on ln.
func newInstance(cfg Config, log *slog.Logger, ln net.Listener) (*instance, error) {
	rdb, mini, cluster, err := openRedis(cfg.RedisURL)
	if err != nil {
		return nil, err
	}
	if mini != nil {
		log.Warn("running with an embedded in-memory Redis: for trying hongbao out only (one instance, nothing survives a restart); set REDIS_URL for real use")
	}
	secret := []byte(cfg.Secret)
	if len(secret) == 0 {
		secret = make([]byte, 32)
		_, _ = rand.Read(secret)
		log.Warn("HONGBAO_SECRET is not set: using a random secret, so tokens die with this process and other instances reject them")
	}
	var origins []string
	for _, o := range strings.Split(cfg.AllowedOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			origins = append(origins, o)
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if mini == nil {
		if err := checkEviction(ctx, rdb, log); err != nil {
			return nil, err
		}
	}
	led, err := openLedger(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	hooks, err := newDispatcher(cfg, led, log, reg)
	if err != nil {
		if led != nil {
			led.Close()
		}
		return nil, err
	}
	// The app tells rooms about grab batches; it is made after the store,
	// and before any grab can be served.
	var app *web.App
	store, err := packet.NewStore(rdb, packet.Config{
		Prefix:            cfg.KeyPrefix,
		Limits:            packet.Limits{MaxCount: cfg.MaxCount, MaxShare: cfg.MaxShare, DefaultTTL: cfg.PacketTTL},
		Ledger:            led,
		Logger:            log,
		Metrics:           packet.NewMetrics(reg),
		DisableCoalescing: !cfg.CoalesceGrabs,
		SettleGrace:       cfg.SettleGrace,
		SweepLease:        cfg.SweepLease,
		RetainSettled:     cfg.RetainSettled,
		WaitReplicas:      cfg.WaitReplicas,
		NoShebang:         mini != nil,
		OnGrabs:           func(ctx context.Context, b packet.GrabBatch) { app.OnGrabs(ctx, b) },
	})
	if err != nil {
		if led != nil {
			led.Close()
		}
		return nil, err
	}
	broker := hub.NewRedisBroker(rdb, hub.RedisBrokerConfig{
		Prefix:         cfg.KeyPrefix,
		Sharded:        cluster,
		HistorySize:    cfg.HistorySize,
		HistoryTTL:     cfg.HistoryTTL,
		HistoryMetaTTL: cfg.HistoryMetaTTL,
		RecentSize:     cfg.RecentChat,
		NoShebang:      mini != nil,
	})
	h := hub.New(hub.Config{
		NewThrottle:  web.ProgressThrottles(cfg.ProgressAbove),
		SendQueue:    cfg.SendQueue,
		WriteTimeout: cfg.WriteTimeout,
		PingInterval: cfg.PingInterval,
		PongTimeout:  cfg.PongTimeout,
		Presence:     hub.NewRedisPresence(rdb, hub.RedisPresenceConfig{Prefix: cfg.KeyPrefix}),
	}, broker, log, hub.NewMetrics(reg))
	proxies, err := cfg.trustedProxies()
	if err != nil {
		return nil, err
	}
	// On the main port only with the admin token; on its own listener when
	// there is one.
	var gatherer prometheus.Gatherer = reg
	var metricsLn net.Listener
	if cfg.MetricsAddr != "" {
		gatherer = nil
		if metricsLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			if led != nil {
				led.Close()
			}
			return nil, fmt.Errorf("metrics listener: %w", err)
		}
	}
	balance := cfg.StartingBalance
	if balance == 0 {
		balance = -1 // web's "none"; its zero means "the default"
	}
	app = web.New(web.Config{
		Secret:          secret,
		TrustedProxies:  proxies,
		AdminToken:      cfg.AdminToken,
		AllowedOrigins:  origins,
		StartingBalance: balance,
		SessionRate:     rate.Limit(cfg.SessionRate),
		SessionBurst:    cfg.SessionBurst,
		GrabRate:        rate.Limit(cfg.GrabRate),
		GrabBurst:       cfg.GrabBurst,
		ChatRate:        rate.Limit(cfg.ChatRate),
		ChatBurst:       cfg.ChatBurst,
		MaxConnsPerUser: cfg.MaxConnsPerUser,
		MaxConnsPerIP:   cfg.MaxConnsPerIP,
		MaxRooms:        cfg.MaxRooms,
		NewRoomsPerIP:   cfg.NewRoomsPerIP,
		FrameRate:       rate.Limit(cfg.FrameRate),
		FrameBurst:      cfg.FrameBurst,
		Static:          static.FS(),
		Registerer:      reg,
		Gatherer:        gatherer,
		Ready:           store.Ping,
		Logger:          log,

		JWKSURL:              cfg.JWKSURL,
		JWTIssuer:            cfg.JWTIssuer,
		JWTAudience:          cfg.JWTAudience,
		JWKSRefresh:          cfg.JWKSRefresh,
		Counters:             rdb,
		KeyPrefix:            cfg.KeyPrefix,
		DailySendTotal:       cfg.DailySendTotal,
		DailySendCount:       cfg.DailySendCount,
		RoomPacketsPerMinute: cfg.RoomPacketsPerMinute,
		MaxPacketTotal:       cfg.MaxPacketTotal,
	}, store, h)
	in := &instance{
		cfg: cfg, log: log, rdb: rdb, mini: mini, led: led, hooks: hooks, store: store, hub: h, app: app, ln: ln,
		srv: &http.Server{
			Handler: app.Echo(),
			// ReadTimeout bounds reading a whole request; an upgraded
			// WebSocket is not bound by it (gorilla clears the deadline,
			// and the hub sets its own).
			ReadHeaderTimeout: min(readHeaderTimeout, cfg.ReadTimeout),
			ReadTimeout:       cfg.ReadTimeout,
			IdleTimeout:       cfg.IdleTimeout,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		metricsLn: metricsLn,
	}
	if metricsLn != nil {
		in.metrics = &http.Server{
			Handler:           promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
			ReadHeaderTimeout: min(readHeaderTimeout, cfg.ReadTimeout),
			ReadTimeout:       cfg.ReadTimeout,
			IdleTimeout:       cfg.IdleTimeout,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
	}
	return in, nil
}

// readHeaderTimeout bounds reading a request's headers, so a client that
// trickles them cannot hold a connection for the whole ReadTimeout.
const readHeaderTimeout = 10 * time.Second

// run serves until ctx ends, then shuts down in phases, each with its own
// budget:
//
//  1. drain delay (DrainDelay): /readyz answers 503, so load balancers take
//     this instance out, while everything is still served;
//  2. in flight (ShutdownTimeout): the listener closes; REST requests in
//     flight finish, and WebSockets read no new frames while the frames
//     being handled finish, their answers queued;
//  3. close (CloseTimeout): each WebSocket gets what is queued for it, then
//     1001 going-away; connections still open after it are cut.
//
// Then the settler commits what it holds and the background jobs stop.
func (in *instance) run(ctx context.Context) error {
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	settle, stopSettle := context.WithCancel(context.WithoutCancel(ctx))
	var wg, settled sync.WaitGroup
	settled.Add(1)
	go func() {
		defer settled.Done()
		in.store.RunSettler(settle)
	}()
	wg.Add(3)
	go func() {
		defer wg.Done()
		in.store.RunReconciler(bg, in.cfg.ReconcileEvery)
	}()
	go func() {
		defer wg.Done()
		if err := in.hub.Run(bg); err != nil && !errors.Is(err, context.Canceled) {
			in.log.Error("hub stopped", "err", err)
		}
	}()
	go func() {
		defer wg.Done()
		in.store.RunSweeper(bg, in.cfg.SweepInterval, in.app.SweepHooks())
	}()
	if in.hooks != nil {
		// Stops with the other background jobs: what the last settles
		// queued waits in the outbox for the next instance to run.
		wg.Go(func() { in.hooks.Run(bg) })
	}
	if in.cfg.PprofAddr != "" {
		go servePprof(in.cfg.PprofAddr, in.log)
	}
	metricsDone := make(chan struct{})
	if in.metrics != nil {
		go func() {
			defer close(metricsDone)
			if err := in.metrics.Serve(in.metricsLn); !errors.Is(err, http.ErrServerClosed) {
				in.log.Warn("metrics listener stopped", "err", err)
			}
		}()
		in.log.Info("metrics listening", "addr", in.metricsLn.Addr().String())
	} else {
		close(metricsDone)
	}

	served := make(chan error, 1)
	go func() { served <- in.srv.Serve(in.ln) }()
	in.log.Info("hongbao listening", "addr", in.ln.Addr().String())

	var err error
	select {
	case <-ctx.Done():
		in.drainDelay(served, &err)
	case err = <-served:
	}
	in.stopServing()

	// Every grab has been answered: commit what the settler still holds.
	stopSettle()
	settled.Wait()
	stopBG()
	wg.Wait()
	if in.metrics != nil {
		_ = in.metrics.Close()
	}
	<-metricsDone
	if in.led != nil {
		in.led.Close()
	}
	_ = in.rdb.Close()
	if in.mini != nil {
		in.mini.Close()
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// drainDelay is phase 1: /readyz answers 503 for DrainDelay while
// everything else is served, unless the server fails first (into *err).
func (in *instance) drainDelay(served <-chan error, err *error) {
	in.app.Drain()
	in.log.Info("draining: /readyz answers 503; the listener closes after the drain delay", "drain_delay", in.cfg.DrainDelay)
	t := time.NewTimer(in.cfg.DrainDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case *err = <-served:
	}
}

// stopServing runs phases 2 and 3: new connections are refused, what is in
// flight finishes, then every WebSocket closes with 1001.
func (in *instance) stopServing() {
	in.log.Info("shutting down: finishing requests in flight", "shutdown_timeout", in.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), in.cfg.ShutdownTimeout)
	var wg sync.WaitGroup
	wg.Go(func() {
		// New connections stop; REST requests in flight finish.
		if e := in.srv.Shutdown(sctx); e != nil {
			in.log.Warn("http shutdown", "err", e)
		}
	})
	wg.Go(func() {
		// WebSockets take no new frames; those being handled finish.
		_ = in.hub.Drain(sctx)
	})
	wg.Wait()
	cancel()
	in.app.Close()
	cctx, cancel := context.WithTimeout(context.Background(), in.cfg.CloseTimeout)
	defer cancel()
	in.hub.Shutdown(cctx)
}

// openLedger connects to HONGBAO_DATABASE_URL and applies the migrations;
// nil without one.
func openLedger(ctx context.Context, cfg Config, log *slog.Logger) (*ledger.Ledger, error) {
	if cfg.DatabaseURL == "" {
		log.Warn("HONGBAO_DATABASE_URL is not set: wallets live in Redis, with no durable ledger (demo mode)")
		return nil, nil
	}
	led, err := ledger.Open(ctx, cfg.DatabaseURL, ledger.Config{Logger: log, Webhooks: cfg.WebhookURL != ""})
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	applied, err := led.Migrate(ctx)
	if err != nil {
		led.Close()
		return nil, fmt.Errorf("ledger migrations: %w", err)
	}
	if len(applied) > 0 {
		log.Info("ledger migrated", "applied", applied)
	}
	return led, nil
}

// newDispatcher is the webhook dispatcher of led's outbox; nil without
// HONGBAO_WEBHOOK_URL (parseConfig has made sure there is a ledger then).
func newDispatcher(cfg Config, led *ledger.Ledger, log *slog.Logger, reg prometheus.Registerer) (*webhook.Dispatcher, error) {
	if cfg.WebhookURL == "" {
		return nil, nil
	}
	if led == nil {
		return nil, errors.New("webhooks need HONGBAO_DATABASE_URL")
	}
	d, err := webhook.New(led, webhook.Config{
		URL:         cfg.WebhookURL,
		Secret:      []byte(cfg.WebhookSecret),
		Timeout:     cfg.WebhookTimeout,
		Lease:       cfg.WebhookLease,
		Poll:        cfg.WebhookPoll,
		MinBackoff:  cfg.WebhookMinBackoff,
		MaxBackoff:  cfg.WebhookMaxBackoff,
		MaxAttempts: cfg.WebhookMaxAttempts,
		Metrics:     webhook.NewMetrics(reg),
		Logger:      log,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadConfig, err)
	}
	// The host only: a URL may carry a token in its path or query.
	if u, err := url.Parse(cfg.WebhookURL); err == nil {
		log.Info("webhooks on", "host", u.Host)
	}
	return d, nil
}

// checkEviction refuses a Redis that may evict keys: an evicted claim or
// share is money lost. Every master of a cluster is asked. A Redis that
// does not let clients read its configuration (some managed services) is
// let through with a warning: its operator must see to the policy.
func checkEviction(ctx context.Context, rdb redis.UniversalClient, log *slog.Logger) error {
	check := func(ctx context.Context, c *redis.Client) error {
		v, err := c.ConfigGet(ctx, "maxmemory-policy").Result()
		if err != nil && redis.HasErrorPrefix(err, "ERR") || redis.HasErrorPrefix(err, "NOPERM") {
			log.Warn("cannot read Redis maxmemory-policy; make sure it is noeviction", "addr", c.Options().Addr, "err", err)
			return nil
		}
		if err != nil {
			return fmt.Errorf("redis %s: CONFIG GET maxmemory-policy: %w", c.Options().Addr, err)
		}
		if p := v["maxmemory-policy"]; p != "" && p != "noeviction" {
			return fmt.Errorf("redis %s has maxmemory-policy %q: it may evict money keys; set it to noeviction", c.Options().Addr, p)
		}
		return nil
	}
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, check)
	}
	if c, ok := rdb.(*redis.Client); ok {
		return check(ctx, c)
	}
	return nil
}

func servePprof(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("pprof listening", "addr", addr)
	if err := http.ListenAndServe(addr, mux); err != nil {
		log.Warn("pprof stopped", "err", err)
	}
}
