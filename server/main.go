// Command server runs hongbao: the REST API, the WebSocket hub, the expiry
// sweeper and the demo page. With no REDIS_URL it runs on an embedded
// in-memory Redis, so `go run ./server` works with nothing else installed.
//
// `server -h` lists every setting with its environment variable and default.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hongbao-dev/hongbao/ledger"
	"github.com/redis/go-redis/v9"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "hongbao:", err)
		os.Exit(exitCode(err))
	}
}

// exitCode is 2 for a setting that does not parse (as for a bad flag), 1
// for any other failure.
func exitCode(err error) int {
	if errors.Is(err, errBadConfig) {
		return 2
	}
	return 1
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(args[1:])
	}
	if len(args) > 0 && args[0] == "migrate" {
		return migrate(args[1:])
	}
	cfg, err := parseConfig(args, os.Stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg)
	if err != nil {
		return err
	}
	// go-redis keeps one logger for the whole process: this process's.
	redis.SetLogger(redisLog{log})
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	in, err := newInstance(cfg, log, ln)
	if err != nil {
		ln.Close()
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal starts the drain, a second one ends the
		// process at once (the default action), for impatient operators.
		<-ctx.Done()
		stop()
	}()
	return in.run(ctx)
}

func newLogger(cfg Config) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", cfg.LogLevel, err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch cfg.LogFormat {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", cfg.LogFormat)
}

// migrate applies the ledger's schema migrations and exits, for deployments
// that migrate before they roll out (the server also migrates at startup).
func migrate(args []string) error {
	cfg, err := parseConfig(args, os.Stderr)
	if err != nil {
		return err
	}
	if cfg.DatabaseURL == "" {
		return errors.New("migrate: HONGBAO_DATABASE_URL is not set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	led, err := ledger.Open(ctx, cfg.DatabaseURL, ledger.Config{})
	if err != nil {
		return err
	}
	defer led.Close()
	applied, err := led.Migrate(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "hongbao: %d migrations applied %v\n", len(applied), applied)
	return nil
}

// healthcheck asks a running server's /healthz, for container HEALTHCHECKs
// on images without curl. It reads the address like the server does.
func healthcheck(args []string) error {
	cfg, err := parseConfig(args, os.Stderr)
	if err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return err
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort(host, port) + "/healthz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz: %s", resp.Status)
	}
	return nil
}
