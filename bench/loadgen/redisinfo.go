package loadgen

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// masterMeters reads INFO from every Redis master.
type masterMeters []*redisMeter

type masterSample struct {
	calls, usec int64
	cpu         float64
	cmds        map[string]CmdStat
	ok          bool
}

// CmdStat is one command's calls and time inside Redis (INFO commandstats).
type CmdStat struct {
	Calls int64 `json:"calls"`
	Usec  int64 `json:"usec"`
}

// commandStats reads every cmdstat_ line of INFO commandstats.
func commandStats(info string) map[string]CmdStat {
	out := map[string]CmdStat{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		var c CmdStat
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "calls":
				c.Calls = n
			case "usec":
				c.Usec = n
			}
		}
		out[strings.TrimPrefix(name, "cmdstat_")] = c
	}
	return out
}

// newMasterMeters takes a comma-separated list of redis:// URLs or
// host:port addresses.
func newMasterMeters(list string) (masterMeters, error) {
	var ms masterMeters
	for _, u := range strings.Split(list, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		if !strings.Contains(u, "://") {
			u = "redis://" + u
		}
		m := newRedisMeter(u)
		if m.rdb == nil {
			return nil, fmt.Errorf("-redis %s: %s", u, m.errorMessage)
		}
		ms = append(ms, m)
	}
	return ms, nil
}

func (ms masterMeters) close() {
	for _, m := range ms {
		_ = m.rdb.Close()
	}
}

func (ms masterMeters) sample(ctx context.Context) []masterSample {
	out := make([]masterSample, len(ms))
	for i, m := range ms {
		c, u, cpu, err := m.read(ctx)
		out[i] = masterSample{calls: c, usec: u, cpu: cpu, ok: err == nil}
		if info, err := m.rdb.Info(ctx, "commandstats").Result(); err == nil {
			out[i].cmds = commandStats(info)
		}
	}
	return out
}

func (ms masterMeters) stats(m0, m1, idle0, idle1 []masterSample, idleSec float64) []MasterStats {
	var out []MasterStats
	for i, m := range ms {
		s := MasterStats{Addr: m.rdb.Options().Addr, IdleSec: idleSec}
		if m0[i].ok && m1[i].ok {
			s.CPUSec, s.ScriptCalls, s.ScriptUsec = m1[i].cpu-m0[i].cpu, m1[i].calls-m0[i].calls, m1[i].usec-m0[i].usec
			s.Commands = map[string]CmdStat{}
			for k, c := range m1[i].cmds {
				if d := (CmdStat{Calls: c.Calls - m0[i].cmds[k].Calls, Usec: c.Usec - m0[i].cmds[k].Usec}); d.Calls > 0 {
					s.Commands[k] = d
				}
			}
		}
		if idle0[i].ok && idle1[i].ok {
			s.IdleCPUSec = idle1[i].cpu - idle0[i].cpu
		}
		out = append(out, s)
	}
	return out
}
