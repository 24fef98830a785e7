// Command watchmulti runs the WATCH/MULTI baseline (see package watchmulti)
// against a Redis and prints grabs/s and aborted transactions per grab.
//
//	go run ./bench/watchmulti/cmd -redis redis://127.0.0.1:6390/0 -k 1000 -shares 500 -rounds 20
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/hongbao-dev/hongbao/bench/watchmulti"
	"github.com/redis/go-redis/v9"
)

func main() {
	url := flag.String("redis", "redis://127.0.0.1:6379/0", "Redis URL (use a scratch Redis: keys are created and deleted)")
	var cfg watchmulti.Config
	flag.IntVar(&cfg.Racers, "k", 1000, "racers, each with its own connection")
	flag.IntVar(&cfg.Shares, "shares", 500, "shares per packet")
	flag.IntVar(&cfg.Rounds, "rounds", 20, "packets raced for, one after another")
	asJSON := flag.Bool("json", false, "print JSON")
	flag.Parse()
	o, err := redis.ParseURL(*url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "watchmulti:", err)
		os.Exit(2)
	}
	o.PoolSize = cfg.Racers + 16
	o.MinIdleConns = cfg.Racers
	rdb := redis.NewClient(o)
	defer rdb.Close()
	res, err := watchmulti.Run(context.Background(), rdb, cfg)
	if res != nil {
		if *asJSON {
			_ = json.NewEncoder(os.Stdout).Encode(res)
		} else {
			fmt.Printf("watch/multi baseline: %d racers, %d shares, %d rounds\n", res.Racers, res.Shares, res.Rounds)
			fmt.Printf("grabs            %d ok, %d sold out, in %.2fs of grab phases\n", res.Grabs, res.SoldOut, res.PhaseSec)
			fmt.Printf("grabs/s          %.0f\n", res.GrabsPerSec)
			fmt.Printf("aborted EXECs    %d (%.2f per successful grab)\n", res.Aborted, res.AbortsPerOK)
			fmt.Printf("conserved        %v\n", res.Conserved)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "watchmulti:", err)
		os.Exit(1)
	}
}
