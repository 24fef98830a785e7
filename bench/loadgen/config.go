// Package loadgen is hongbao's load generator: it opens WebSocket
// connections that speak docs/protocol.md like real clients (or Centrifugo's
// JSON protocol, for the side-by-side fan-out comparison), runs a named
// scenario, measures it, and audits the money afterwards.
//
// The command is bench/load; this package holds the logic so that its test
// can run every scenario against a real server at tiny N.
package loadgen

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
)

// Scenarios the tool knows.
const (
	ScenarioHot    = "hot"
	ScenarioSpread = "spread"
	ScenarioRain   = "rain"
	ScenarioFanout = "fanout"
	// ScenarioScale and ScenarioScaleRain run across several load processes
	// (see scale.go): a dropper and viewer processes meet at a barrier
	// directory, and Merge joins their reports.
	ScenarioScale     = "scale"      // a packet drops every Interval to every viewer
	ScenarioScaleRain = "scale-rain" // a rain that every viewer grabs
)

// Roles of a process in the scale scenarios.
const (
	RoleDropper = "dropper" // creates the packets and samples servers and Redis
	RoleViewers = "viewers" // holds Conns viewers, numbered from FirstConn
)

// Targets the tool can drive.
const (
	TargetHongbao    = "hongbao"
	TargetCentrifugo = "centrifugo"
)

// Config is one run. Zero fields take the defaults set by Defaults.
type Config struct {
	Target   string   // hongbao (default) or centrifugo (fanout only)
	URLs     []string // server base URLs (http://host:port); connections are spread round-robin
	Scenario string

	Conns     int // N: connections (hot: the K racers)
	Shares    int // S: shares per packet (hot, spread, rain); spread: 0 = members of the room
	Rounds    int // hot: packets raced for one after another; spread: waves
	Rooms     int // spread: rooms
	Packets   int // spread: packets per room per wave; rain: packets in the rain; fanout: broadcasts
	Duration  time.Duration
	Interval  time.Duration   // fanout: time between broadcasts
	Intervals []time.Duration // fanout: several phases on the same connections (overrides Interval)
	Room      string          // room name (a run id is appended unless it is set explicitly)

	// Scale scenarios: this process's role, the global number of its first
	// viewer (viewers go to URLs[(FirstConn+i) % len(URLs)]), how many viewer
	// processes the dropper waits for, and the directory they meet in.
	Role      string
	FirstConn int
	Procs     int
	Barrier   string

	Secret     string // HS256 secret shared with the server (hongbao: HONGBAO_SECRET; centrifugo: client.token.hmac_secret_key)
	AdminToken string // hongbao admin token: funds senders and runs the audit
	APIKey     string // centrifugo HTTP API key

	PIDs      []int    // server processes to sample for CPU and RSS (fanout, hot); scale: one per URL, in the same order
	RedisURL  string   // optional: the Redis behind the servers, for INFO commandstats / cpu per grab; scale: every master, comma-separated
	SourceIPs []string // local addresses to dial from (127.0.0.x) to spread ephemeral ports

	DialConcurrency int
	Settle          time.Duration // fanout: pause after connecting before measuring RSS
	Timeout         time.Duration // bound on the whole run
	RunID           string
	NoAudit         bool

	Progress io.Writer // live progress line; nil: none
}

// Defaults fills the zero fields.
func (c Config) Defaults() Config {
	if c.Target == "" {
		c.Target = TargetHongbao
	}
	if len(c.URLs) == 0 {
		c.URLs = []string{"http://127.0.0.1:8080"}
	}
	if c.Scenario == ScenarioScale || c.Scenario == ScenarioScaleRain {
		if c.Role == "" {
			c.Role = RoleViewers
		}
		if c.Interval <= 0 && len(c.Intervals) > 0 {
			c.Interval = c.Intervals[0]
		}
		if c.Interval <= 0 {
			c.Interval = 5 * time.Second
		}
		if c.Procs <= 0 {
			c.Procs = 1
		}
	}
	if c.Conns <= 0 {
		c.Conns = map[string]int{ScenarioHot: 1000, ScenarioSpread: 1000, ScenarioRain: 1000, ScenarioFanout: 1000}[c.Scenario]
	}
	if c.Shares < 0 {
		c.Shares = 0
	}
	if c.Shares == 0 && c.Scenario != ScenarioSpread {
		c.Shares = map[string]int{ScenarioHot: 500, ScenarioRain: 500, ScenarioScaleRain: 500}[c.Scenario]
	}
	if c.Rounds <= 0 {
		c.Rounds = map[string]int{ScenarioHot: 20, ScenarioSpread: 10}[c.Scenario]
	}
	if c.Rooms <= 0 {
		c.Rooms = 100
	}
	if c.Packets <= 0 {
		c.Packets = map[string]int{ScenarioSpread: 1, ScenarioRain: 20, ScenarioFanout: 20, ScenarioScale: 12, ScenarioScaleRain: 20}[c.Scenario]
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.DialConcurrency <= 0 {
		c.DialConcurrency = 200
	}
	if c.Settle <= 0 {
		c.Settle = 3 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Minute
	}
	if c.RunID == "" {
		c.RunID = fmt.Sprintf("%x", time.Now().UnixNano()&0xffffffffff)
	}
	if c.Room == "" {
		c.Room = "bench-" + c.Scenario + "-" + c.RunID
	}
	return c
}

// Validate reports a configuration the tool cannot run.
func (c Config) Validate() error {
	switch c.Scenario {
	case ScenarioHot, ScenarioSpread, ScenarioRain, ScenarioFanout:
	case ScenarioScale, ScenarioScaleRain:
		if err := c.validateScale(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown scenario %q: want hot, spread, rain, fanout, scale or scale-rain", c.Scenario)
	}
	switch c.Target {
	case TargetHongbao:
		if c.AdminToken == "" && c.Role != RoleViewers {
			return fmt.Errorf("-admin-token is required: it funds the senders and runs the audit")
		}
	case TargetCentrifugo:
		if c.Scenario != ScenarioFanout {
			return fmt.Errorf("-target centrifugo runs the fanout scenario only")
		}
		if c.APIKey == "" {
			return fmt.Errorf("-api-key (Centrifugo http_api.key) is required to publish")
		}
	default:
		return fmt.Errorf("unknown target %q: want hongbao or centrifugo", c.Target)
	}
	if c.Secret == "" {
		return fmt.Errorf("-secret is required: the tool mints its users' tokens with it")
	}
	for _, u := range c.URLs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("bad server URL %q: want http://host:port", u)
		}
	}
	if (c.Scenario == ScenarioRain || c.Scenario == ScenarioScaleRain) && c.Packets > 200 {
		return fmt.Errorf("a rain has at most 200 packets")
	}
	return nil
}

func (c Config) validateScale() error {
	if c.Barrier == "" {
		return fmt.Errorf("-barrier is required: the directory where the dropper and the viewer processes meet")
	}
	switch c.Role {
	case RoleDropper:
		if len(c.PIDs) > 0 && len(c.PIDs) != len(c.URLs) {
			return fmt.Errorf("-pids must name one server process per -url, in the same order (%d pids, %d urls)", len(c.PIDs), len(c.URLs))
		}
	case RoleViewers:
		if c.Conns <= 0 {
			return fmt.Errorf("-n is required for viewers")
		}
		if c.FirstConn < 0 {
			return fmt.Errorf("-first must be at least 0")
		}
	default:
		return fmt.Errorf("unknown role %q: want dropper or viewers", c.Role)
	}
	return nil
}

// wsURL turns an http base URL into the WebSocket endpoint of the target.
func wsURL(base, target string) string {
	u := strings.TrimRight(base, "/")
	u = "ws" + strings.TrimPrefix(u, "http")
	if target == TargetCentrifugo {
		return u + "/connection/websocket"
	}
	return u + "/ws"
}
