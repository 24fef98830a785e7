package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hongbao-dev/hongbao/bench/watchmulti"
	"github.com/hongbao-dev/hongbao/internal/redistest"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { redistest.Main(m) }

const (
	testSecret = "loadgen-test-secret-0123456789abc"
	testAdmin  = "loadgen-test-admin-0123456789abcd"
)

// startServer builds the hongbao server and runs it on a free port against
// redisURL; it stops when the test ends.
func startServer(t *testing.T, redisURL string) (base string, pid int) {
	t.Helper()
	return runServer(t, buildServer(t), redisURL)
}

// buildServer builds the hongbao server into a temp dir.
func buildServer(t *testing.T) string {
	t.Helper()
	return goBuild(t, "hongbao", "github.com/hongbao-dev/hongbao/server", false)
}

// goBuild builds pkg into a temp dir as name, with the race detector when
// asked.
func goBuild(t *testing.T, name, pkg string, race bool) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, pkg)...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// runServer runs the server binary bin on a free port against redisURL (a
// URL, or comma-separated cluster seeds); it stops when the test ends.
func runServer(t *testing.T, bin, redisURL string) (base string, pid int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"HONGBAO_ADDR="+addr, "REDIS_URL="+redisURL, "HONGBAO_SECRET="+testSecret, "HONGBAO_ADMIN_TOKEN="+testAdmin,
		"HONGBAO_GRAB_RATE=1000", "HONGBAO_GRAB_BURST=1000", "HONGBAO_ALLOWED_ORIGINS=*", "HONGBAO_LOG_LEVEL=warn",
		// Every load client comes from 127.0.0.1: the per-address caps are raised.
		"HONGBAO_FRAME_RATE=1000", "HONGBAO_FRAME_BURST=1000", "HONGBAO_MAX_CONNS_PER_IP=1000000", "HONGBAO_NEW_ROOMS_PER_IP=1000000",
		"HONGBAO_ROOM_PACKETS_PER_MINUTE=-1", "HONGBAO_SHUTDOWN_TIMEOUT=2s", "HONGBAO_DRAIN_DELAY=0s")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	base = "http://" + addr
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server on %s not ready: %v", addr, err)
		}
	}
	return base, cmd.Process.Pid
}

// TestScenarios runs every scenario at tiny N against a real server and
// checks the figures it must always produce, and the audit.
func TestScenarios(t *testing.T) {
	db, _ := redistest.New(t)
	base, pid := startServer(t, db.URL())
	common := Config{URLs: []string{base}, Secret: testSecret, AdminToken: testAdmin, PIDs: []int{pid}, RedisURL: db.URL()}
	cases := []struct {
		name string
		cfg  Config
		want func(t *testing.T, r *Result)
	}{
		{"hot", Config{Scenario: ScenarioHot, Conns: 20, Shares: 10, Rounds: 3}, func(t *testing.T, r *Result) {
			if r.Grabs.OK != 30 || r.Grabs.Codes["sold_out"] != 30 {
				t.Errorf("hot: %d ok, codes %v; want 30 ok and 30 sold_out", r.Grabs.OK, r.Grabs.Codes)
			}
			if r.Grabs.OKPerSec <= 0 || r.Grabs.Latency.Count != 60 {
				t.Errorf("hot: rate %v, latency %+v", r.Grabs.OKPerSec, r.Grabs.Latency)
			}
			if r.Redis == nil || r.Redis.ScriptCalls == 0 {
				t.Errorf("hot: no redis figures: %+v", r.Redis)
			}
		}},
		{"spread", Config{Scenario: ScenarioSpread, Conns: 24, Rooms: 4, Packets: 2, Rounds: 2}, func(t *testing.T, r *Result) {
			if r.Grabs.OK != 24*2*2 || r.Grabs.Attempts != r.Grabs.OK {
				t.Errorf("spread: %d ok of %d", r.Grabs.OK, r.Grabs.Attempts)
			}
		}},
		{"rain", Config{Scenario: ScenarioRain, Conns: 20, Packets: 2, Shares: 10, Duration: time.Second}, func(t *testing.T, r *Result) {
			if r.Rain.Emptied != 2 || r.Grabs.OK != 20 || r.Grabs.Codes["sold_out"] != 20 {
				t.Errorf("rain: %+v, grabs %+v", r.Rain, r.Grabs)
			}
		}},
		{"fanout", Config{Scenario: ScenarioFanout, Conns: 30, Packets: 4, Intervals: []time.Duration{50 * time.Millisecond, 20 * time.Millisecond}, Settle: 200 * time.Millisecond}, func(t *testing.T, r *Result) {
			if len(r.Delivery) != 2 {
				t.Fatalf("fanout: %d phases, want 2", len(r.Delivery))
			}
			for _, d := range r.Delivery {
				if d.Delivered != 120 || d.Missing != 0 || d.Latency.Count != 120 {
					t.Errorf("fanout: %+v", d)
				}
			}
			if r.Server == nil || r.Server.RSSAfter == 0 {
				t.Errorf("fanout: no server figures: %+v", r.Server)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.URLs, cfg.Secret, cfg.AdminToken, cfg.PIDs, cfg.RedisURL = common.URLs, common.Secret, common.AdminToken, common.PIDs, common.RedisURL
			cfg.Timeout = 30 * time.Second
			r, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatalf("run: %v (%+v)", err, r)
			}
			if r.Audit == nil || !r.Audit.OK {
				t.Fatalf("audit: %+v", r.Audit)
			}
			tc.want(t, r)
			var out nopWriter
			WriteTable(&out, r)
		})
	}

	// A fen out of place must fail the run loudly.
	t.Run("audit-detects", func(t *testing.T) {
		rdb := redis.NewClient(db.Options(db.Index))
		defer rdb.Close()
		keys, err := rdb.Keys(context.Background(), "hb:{u:bench-*}:wallet").Result()
		if err != nil || len(keys) == 0 {
			t.Fatalf("no wallet to tamper with: %v", err)
		}
		rdb.HIncrBy(context.Background(), keys[0], "balance", 1)
		defer rdb.HIncrBy(context.Background(), keys[0], "balance", -1)
		cfg := common
		cfg.Scenario, cfg.Conns, cfg.Packets, cfg.Interval, cfg.Settle = ScenarioFanout, 2, 1, 10*time.Millisecond, 10*time.Millisecond
		_, err = Run(context.Background(), cfg)
		if !errors.Is(err, ErrAudit) {
			t.Fatalf("a tampered wallet passed the audit: %v", err)
		}
	})
}

func TestWatchMultiBaseline(t *testing.T) {
	db, rdb := redistest.New(t)
	_ = db
	o := *rdb.Options()
	o.PoolSize = 40
	c := redis.NewClient(&o)
	defer c.Close()
	r, err := watchmulti.Run(context.Background(), c, watchmulti.Config{Racers: 30, Shares: 10, Rounds: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.Grabs != 20 || r.SoldOut != 40 || !r.Conserved {
		t.Fatalf("baseline: %+v", r)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []Config{
		{Scenario: "nope", Secret: "s", AdminToken: "a"},
		{Scenario: ScenarioHot, Secret: "s"},
		{Scenario: ScenarioHot, Target: TargetCentrifugo, Secret: "s", APIKey: "k"},
		{Scenario: ScenarioFanout, Secret: "s", AdminToken: "a", URLs: []string{"ws://x"}},
	} {
		if err := c.Defaults().Validate(); err == nil {
			t.Errorf("%+v: want an error", c)
		}
	}
	if got := wsURL("http://h:1/", TargetCentrifugo); got != "ws://h:1/connection/websocket" {
		t.Errorf("wsURL: %s", got)
	}
	if p := percentiles([]int64{4e6, 1e6, 3e6, 2e6}); p.P50 != 2 || p.Max != 4 || p.Count != 4 {
		t.Errorf("percentiles: %+v", p)
	}
}

type nopWriter struct{}

func (nopWriter) Write(b []byte) (int, error) { return len(b), nil }

// recordingHandler keeps what a connection dispatched.
type recordingHandler struct {
	events []string
	seqs   []int
}

func (r *recordingHandler) onEvent(_ *conn, ev *event, _ int64) {
	id := ""
	if ev.Packet != nil {
		id = ev.Packet.ID + "/" + ev.Packet.Greeting
	}
	r.events = append(r.events, ev.Type+":"+id+ev.PacketID)
}
func (r *recordingHandler) onResult(*conn, *event, time.Duration, int64) {}
func (r *recordingHandler) onBroadcast(_ *conn, seq int, _ int64)        { r.seqs = append(r.seqs, seq) }

func TestFrameType(t *testing.T) {
	for _, tc := range []struct{ frame, want string }{
		{`{"type":"progress","packet_id":"x"}`, "progress"},
		{`{"seq":18446744073709551615,"epoch":"46UrvLknGfsS","type":"packet","packet":{"id":"p"}}`, "packet"},
		{`{"seq":1,"epoch":"` + strings.Repeat("e", 100) + `","type":"packet"}`, ""}, // too far: decoded instead
		{`{"type":"`, ""},
		{`{"type":""}`, ""},
		{``, ""},
	} {
		if got := frameType([]byte(tc.frame)); got != tc.want {
			t.Errorf("frameType(%.40q) = %q, want %q", tc.frame, got, tc.want)
		}
	}
}

// resultFrame reads results as the server writes them, and as encoding/json
// would.
func TestResultFrame(t *testing.T) {
	for _, frame := range []string{
		`{"type":"result","ref":"g1","ok":true,"packet_id":"p","amount":12,"remaining":3}`,
		`{"type":"result","ref":"g2","ok":false,"error":{"code":"sold_out","message":"no share left"}}`,
		`{"type":"result","ref":"g3","ok":false,"error":{"code":"rate_limited","message":"say \"slow\""}}`,
	} {
		got, ok := resultFrame([]byte(frame))
		var want event
		if err := json.Unmarshal([]byte(frame), &want); err != nil {
			t.Fatal(err)
		}
		show := func(e event) string {
			code := "<nil>"
			if e.Error != nil {
				code = e.Error.Code
			}
			e.Error = nil
			return fmt.Sprintf("%+v code=%s", e, code)
		}
		if !ok || show(got) != show(want) {
			t.Errorf("resultFrame(%s) = %s, %v; want %s", frame, show(got), ok, show(want))
		}
	}
	if _, ok := resultFrame([]byte(`{"type":"result","ref":"g4","ok":false}`)); ok {
		t.Error("a refusal without a code was cut, not decoded")
	}
}

func TestFrameParsing(t *testing.T) {
	h := &recordingHandler{}
	c := &conn{h: h, pending: map[string]int64{}}
	c.hongbaoFrame([]byte(`{"type":"progress","packet_id":"x","remaining":3}`), 0)
	c.hongbaoFrame([]byte(`{"type":"packet","packet":{"id":"p1","room":"r","sender":{"id":"s","name":"n"},"greeting":"seq 7"}}`), 0)
	c.hongbaoFrame([]byte(`{"type":"packet","packet":{"id":"p2","greeting":"say \"hi\""}}`), 0) // escaped: decoded by encoding/json
	c.hongbaoFrame([]byte(`{"type":"finished","packet_id":"p1","reason":"empty","duration_ms":5}`), 0)
	// As the server sends them: durable (seq and epoch first), with the final count.
	c.hongbaoFrame([]byte(`{"seq":9,"epoch":"e1","type":"finished","packet_id":"p2","reason":"expired","remaining":3,"duration_ms":null,"luckiest":null}`), 0)
	c.hongbaoFrame([]byte(`{"seq":10,"epoch":"e1","type":"packet","packet":{"id":"p3","greeting":"seq 8"}}`), 0)
	c.hongbaoFrame([]byte(`{"seq":11,"epoch":"e1","type":"presence","count":3}`), 0)
	want := []string{"packet:p1/seq 7", `packet:p2/say "hi"`, "finished:p1", "finished:p2", "packet:p3/seq 8"}
	if fmt.Sprint(h.events) != fmt.Sprint(want) || fmt.Sprint(h.seqs) != "[7 8]" {
		t.Fatalf("events %q seqs %v; want %q [7]", h.events, h.seqs, want)
	}
	h2 := &recordingHandler{}
	c2 := &conn{h: h2, target: TargetCentrifugo}
	c2.centrifugoFrame([]byte(`{"push":{"channel":"r","pub":{"data":{"seq":3}}}}`+"\n"+`{"push":{"channel":"r","pub":{"data":{"seq":4},"offset":1}}}`), 0)
	if fmt.Sprint(h2.seqs) != "[3 4]" {
		t.Fatalf("centrifugo seqs %v", h2.seqs)
	}
}

// FuzzResultFrame checks resultFrame against encoding/json on results in
// the server's shape (web/wsjson.go's appendResult), whatever the strings
// in them: where it cuts a frame, it reads what encoding/json reads.
func FuzzResultFrame(f *testing.F) {
	f.Add("g1", true, "p", "", "", int64(12))
	f.Add("g2", false, "", "sold_out", "no share left", int64(0))
	f.Add(`a"b`, false, "", `c\d`, "<&>", int64(0))
	f.Fuzz(func(t *testing.T, ref string, ok bool, packetID, code, message string, amount int64) {
		q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
		frame := `{"type":"result","ref":` + q(ref) + `,"ok":` + strconv.FormatBool(ok)
		if packetID != "" {
			frame += `,"packet_id":` + q(packetID) + `,"amount":` + strconv.FormatInt(amount, 10)
		}
		if !ok {
			frame += `,"error":{"code":` + q(code) + `,"message":` + q(message) + `}`
		}
		frame += "}"
		var want event
		if err := json.Unmarshal([]byte(frame), &want); err != nil {
			t.Fatalf("%s: %v", frame, err)
		}
		got, cut := resultFrame([]byte(frame))
		if !cut {
			return // decoded by encoding/json instead
		}
		if got.Ref != want.Ref || got.OK != want.OK || got.PacketID != want.PacketID ||
			(got.Error == nil) != (want.Error == nil) || got.Error != nil && got.Error.Code != want.Error.Code {
			t.Fatalf("%s: cut %+v (error %+v), encoding/json %+v (error %+v)", frame, got, got.Error, want, want.Error)
		}
	})
}
