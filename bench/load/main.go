// Command load drives one or more hongbao servers (or Centrifugo, for the
// fan-out comparison) with WebSocket clients that speak the wire protocol,
// runs a named scenario, prints a table (or -json), and then audits the
// money: a single fen out of place makes it exit non-zero.
//
//	go run ./bench/load -scenario hot    -n 1000 -shares 500 -rounds 20   -secret S -admin-token A
//	go run ./bench/load -scenario spread -n 1000 -rooms 100 -rounds 10   -secret S -admin-token A
//	go run ./bench/load -scenario rain   -n 10000 -packets 20 -shares 500 -duration 10s -secret S -admin-token A
//	go run ./bench/load -scenario fanout -n 10000 -packets 20 -interval 1s,200ms -pids $(pgrep -d, -x hb) -secret S -admin-token A
//	go run ./bench/load -target centrifugo -scenario fanout -url http://127.0.0.1:8000 -n 10000 -secret S -api-key K -pids ...
//
// Several servers: -url http://127.0.0.1:8080,http://127.0.0.1:8081 spreads
// the connections round-robin. See bench/README.md.
//
// Several load processes (scale, scale-rain): one dropper and viewer
// processes meet in a fresh -barrier directory; each prints its report, and
// -merge joins them and judges the run:
//
//	load -scenario scale -role dropper -procs 2 -barrier /tmp/b -url $URLS -pids $PIDS -redis $MASTERS -packets 12 -interval 5s -json >d.json &
//	load -scenario scale -role viewers -n 17000 -first 0     -barrier /tmp/b -url $URLS -source-ips 127.0.0.10 -json >v0.json &
//	load -scenario scale -role viewers -n 17000 -first 17000 -barrier /tmp/b -url $URLS -source-ips 127.0.0.11 -json >v1.json &
//	wait; load -merge d.json,v0.json,v1.json
//
// Exit status: 0 on success, 1 when the run failed (missing results or
// deliveries), 3 when the audit failed, 2 for bad flags.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hongbao-dev/hongbao/bench/loadgen"
)

func main() {
	var cfg loadgen.Config
	var urls, pids, sources, intervals, merge string
	var asJSON, quiet bool
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	fs.StringVar(&cfg.Scenario, "scenario", "", "hot, spread, rain, fanout, scale or scale-rain (required, unless -merge)")
	fs.StringVar(&cfg.Target, "target", "hongbao", "hongbao, or centrifugo (fanout only)")
	fs.StringVar(&urls, "url", envOr("HB_URL", "http://127.0.0.1:8080"), "comma-separated server base URLs; connections are spread round-robin (env HB_URL)")
	fs.IntVar(&cfg.Conns, "n", 0, "connections (hot: the racers K); default 1000")
	fs.IntVar(&cfg.Shares, "shares", 0, "S: shares per packet (hot 500, rain 500; spread: 0 = one per room member)")
	fs.IntVar(&cfg.Rounds, "rounds", 0, "hot: packets raced for, one after another (20); spread: waves (10)")
	fs.IntVar(&cfg.Rooms, "rooms", 0, "spread: rooms (100)")
	fs.IntVar(&cfg.Packets, "packets", 0, "spread: packets per room per wave (1); rain: packets (20); fanout: broadcasts (20)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "rain: how long the rain lasts (10s)")
	fs.StringVar(&intervals, "interval", "", "fanout: time between broadcasts (1s); a comma-separated list (1s,200ms) runs one phase per interval on the same connections; scale: time between drops (5s)")
	fs.StringVar(&cfg.Room, "room", "", "room name (default bench-<scenario>-<run id>)")
	fs.StringVar(&cfg.Role, "role", "", "scale, scale-rain: dropper (makes the packets, samples -pids and -redis, audits) or viewers (default)")
	fs.IntVar(&cfg.FirstConn, "first", 0, "scale viewers: the global number of this process's first viewer (viewer i goes to -url[(first+i) % len])")
	fs.IntVar(&cfg.Procs, "procs", 0, "scale dropper: viewer processes to wait for (1)")
	fs.StringVar(&cfg.Barrier, "barrier", "", "scale: the directory the dropper and viewer processes meet in; a fresh one per run")
	fs.StringVar(&merge, "merge", "", "comma-separated -json reports of one scale run (the dropper's and every viewer process's): join them, judge the run, print the result")
	fs.StringVar(&cfg.Secret, "secret", os.Getenv("HONGBAO_SECRET"), "HS256 secret the tool signs its users' tokens with (env HONGBAO_SECRET; Centrifugo: client.token.hmac_secret_key)")
	fs.StringVar(&cfg.AdminToken, "admin-token", os.Getenv("HONGBAO_ADMIN_TOKEN"), "hongbao admin token: funds the senders and runs the audit (env HONGBAO_ADMIN_TOKEN)")
	fs.StringVar(&cfg.APIKey, "api-key", os.Getenv("CENTRIFUGO_API_KEY"), "Centrifugo http_api.key (env CENTRIFUGO_API_KEY)")
	fs.StringVar(&pids, "pids", "", "comma-separated server pids to sample for CPU (utime+stime) and RSS (VmRSS); scale: one per -url, in the same order")
	fs.StringVar(&cfg.RedisURL, "redis", "", "the servers' Redis (redis://host:port): report Redis CPU per grab from INFO; scale: every master, comma-separated")
	fs.StringVar(&sources, "source-ips", "", "comma-separated local IPs to dial from (e.g. 127.0.0.2,127.0.0.3) to spread ephemeral ports")
	fs.IntVar(&cfg.DialConcurrency, "dial-concurrency", 0, "connections opened at once (200)")
	fs.DurationVar(&cfg.Settle, "settle", 0, "fanout: pause after connecting before reading RSS (3s)")
	fs.DurationVar(&cfg.Timeout, "timeout", 0, "bound on the whole run (10m)")
	fs.BoolVar(&cfg.NoAudit, "no-audit", false, "skip the audit (never for published figures)")
	fs.BoolVar(&asJSON, "json", false, "print the result as JSON on stdout")
	fs.BoolVar(&quiet, "q", false, "no live progress line")
	_ = fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "load: unexpected arguments %q\n", fs.Args())
		os.Exit(2)
	}
	if merge != "" {
		os.Exit(runMerge(splitList(merge), asJSON))
	}
	cfg.URLs = splitList(urls)
	for _, iv := range splitList(intervals) {
		d, err := time.ParseDuration(iv)
		if err != nil || d <= 0 {
			fmt.Fprintf(os.Stderr, "load: bad interval %q\n", iv)
			os.Exit(2)
		}
		cfg.Intervals = append(cfg.Intervals, d)
	}
	cfg.SourceIPs = splitList(sources)
	for _, p := range splitList(pids) {
		n, err := strconv.Atoi(p)
		if err != nil {
			fmt.Fprintf(os.Stderr, "load: bad pid %q\n", p)
			os.Exit(2)
		}
		cfg.PIDs = append(cfg.PIDs, n)
	}
	if !quiet {
		cfg.Progress = os.Stderr
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := loadgen.Run(ctx, cfg)
	if res == nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(2)
	}
	os.Exit(report(res, err, asJSON))
}

// runMerge joins a scale run's reports and returns the exit status.
func runMerge(paths []string, asJSON bool) int {
	rs, err := loadgen.ReadResults(paths)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load: -merge:", err)
		return 2
	}
	res, err := loadgen.Merge(rs)
	if res == nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		return 2
	}
	return report(res, err, asJSON)
}

// report prints res and returns the exit status for err.
func report(res *loadgen.Result, err error, asJSON bool) int {
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		if res.Viewers == nil {
			enc.SetIndent("", "  ") // a viewer report is large and for -merge only
		}
		_ = enc.Encode(res)
	} else {
		loadgen.WriteTable(os.Stdout, res)
	}
	switch {
	case errors.Is(err, loadgen.ErrAudit):
		fmt.Fprintln(os.Stderr, "\nload: !!!", err)
		return 3
	case err != nil:
		fmt.Fprintln(os.Stderr, "load: run failed:", err)
		return 1
	}
	return 0
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
