package packet

import (
	"context"
	"embed"
	"strings"

	"github.com/redis/go-redis/v9"
)

//go:embed lua/*.lua
var luaFiles embed.FS

// scripts are the Lua programs of the store, run with EVALSHA and falling
// back to EVAL when Redis does not have them cached (after a restart or on a
// new cluster node).
type scripts struct {
	fund, create, debit, void, activate, cancel *redis.Script
	grab, credit, expire, refund, claimDue      *redis.Script
	readPacket                                  *redis.Script
}

// loadScripts reads the embedded scripts; without shebang it drops their
// "#!lua" first line (for servers that cannot parse it).
func loadScripts(shebang bool) scripts {
	load := func(name string) *redis.Script {
		src, err := luaFiles.ReadFile("lua/" + name + ".lua")
		if err != nil {
			panic("packet: missing embedded script " + name) // a build defect, not input
		}
		text := string(src)
		if _, rest, ok := strings.Cut(text, "\n"); ok && !shebang && strings.HasPrefix(text, "#!") {
			text = rest
		}
		return redis.NewScript(text)
	}
	return scripts{
		fund: load("fund"), create: load("create"), debit: load("debit"), void: load("void"),
		activate: load("activate"), cancel: load("cancel"), grab: load("grabmany"),
		credit: load("credit"), expire: load("expire"), refund: load("refund"),
		claimDue: load("claimdue"), readPacket: load("readpacket"),
	}
}

func (sc scripts) all() []*redis.Script {
	return []*redis.Script{sc.fund, sc.create, sc.debit, sc.void, sc.activate, sc.cancel,
		sc.grab, sc.credit, sc.expire, sc.refund, sc.claimDue, sc.readPacket}
}

// load caches every script in Redis (on every master of a cluster).
func (sc scripts) load(ctx context.Context, c redis.Scripter) error {
	for _, s := range sc.all() {
		if err := s.Load(ctx, c).Err(); err != nil {
			return err
		}
	}
	return nil
}

// pipelined runs build on a pipeline and executes it. Scripts in a pipeline go
// as EVALSHA with no per-command fallback, so when Redis has lost its script
// cache (a restart, a failover) the scripts are loaded and the pipeline is
// built and sent once more. Every pipelined step in this package is
// idempotent, which makes the repeat safe.
func (s *Store) pipelined(ctx context.Context, build func(pipe redis.Pipeliner)) error {
	return s.pipelinedOn(ctx, s.rdb, build)
}

// pipelinedOn is pipelined on a given client: one node of a cluster, so
// that every command of the pipeline shares one connection.
func (s *Store) pipelinedOn(ctx context.Context, c interface{ Pipeline() redis.Pipeliner }, build func(pipe redis.Pipeliner)) error {
	for attempt := 0; ; attempt++ {
		pipe := c.Pipeline()
		build(pipe)
		cmds, err := pipe.Exec(ctx)
		if err == nil || isNil(err) {
			return nil
		}
		noScript := false
		for _, c := range cmds {
			if e := c.Err(); e != nil && strings.HasPrefix(e.Error(), "NOSCRIPT") {
				noScript = true
			}
		}
		if !noScript || attempt > 0 {
			return err
		}
		if err := s.lua.load(ctx, s.rdb); err != nil {
			return err
		}
	}
}
