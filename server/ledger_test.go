package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hongbao-dev/hongbao/internal/pgtest"
	"github.com/hongbao-dev/hongbao/internal/redistest"
	"github.com/jackc/pgx/v5"
)

// With a ledger, Redis holds nothing that cannot be lost once settled: 200
// clients race over two instances, settlement finishes, Redis is emptied and
// both instances start again on it. Every balance, total, claim history and
// packet detail is unchanged.
func TestLedgerSurvivesEmptyRedis(t *testing.T) {
	db, rdb := redistest.New(t)
	cfg := testLedgerConfig(t, db.URL())
	a, b := startServer(t, cfg), startServer(t, cfg)
	race := raceTwoInstances(t, a, b)
	awaitSettled(t, a, 10*time.Second)
	awaitNothingPending(t, a, race.members)

	type view struct {
		Me     meResponse
		Claims string
	}
	look := func(s *server) (map[string]view, string) {
		views := map[string]view{}
		for _, m := range race.members {
			views[m.id] = view{Me: getMe(t, s, m.tok), Claims: rawGet(t, s, "/api/v1/me/claims?limit=100", m.tok)}
		}
		sender := rawGet(t, s, "/api/v1/me/packets", race.senderTok) + rawGet(t, s, "/api/v1/me/summary", race.senderTok)
		return views, rawGet(t, s, "/api/v1/packets/"+race.packetID, race.senderTok) + sender
	}
	before, detail := look(b)

	for _, s := range []*server{a, b} {
		if err := s.stop(t); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	a2, b2 := startServer(t, cfg), startServer(t, cfg)
	for _, s := range []*server{a2, b2} {
		after, detail2 := look(s)
		if !reflect.DeepEqual(after, before) {
			t.Fatalf("after Redis was emptied:\n%v\nbefore:\n%v", after, before)
		}
		if detail2 != detail {
			t.Fatalf("packet detail after Redis was emptied:\n%s\nbefore:\n%s", detail2, detail)
		}
	}
	auditClean(t, a2)
}

// A settled packet leaves nothing in Redis after HONGBAO_RETAIN_SETTLED.
func TestLedgerRetainSettled(t *testing.T) {
	db, rdb := redistest.New(t)
	cfg := testLedgerConfig(t, db.URL())
	cfg.RetainSettled = 2 * time.Second
	s := startServer(t, cfg)
	_, tok := session(t, s, "Alice")
	c := mustDial(t, s, "r", tok)
	p := newPacket(t, s, tok, "r", map[string]any{"kind": "equal", "total": 300, "count": 3})
	for i := 0; i < 3; i++ {
		_, tok := session(t, s, fmt.Sprint("g", i))
		g := mustDial(t, s, "r", tok)
		if r := g.request(map[string]any{"type": "grab", "packet_id": p.ID}, 5*time.Second); !r.OK {
			t.Fatalf("grab: %s", r.Raw)
		}
	}
	c.waitFor("finished", func(f frame) bool { return f.PacketID == p.ID }, 5*time.Second)
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := s.led.Packet(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if v.Settled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("packet not settled: %+v", v)
		}
		time.Sleep(20 * time.Millisecond)
	}
	settled := time.Now()
	for {
		keys, err := rdb.Keys(ctx, "*"+p.ID+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) == 0 {
			break
		}
		if time.Since(settled) > 5*time.Second {
			t.Fatalf("5 s after it settled, Redis still holds %v", keys)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("keys gone %v after the packet settled", time.Since(settled).Round(10*time.Millisecond))
	if body := rawGet(t, s, "/api/v1/packets/"+p.ID, tok); !strings.Contains(body, `"status":"empty"`) {
		t.Fatalf("detail from the ledger: %s", body)
	}
	for _, path := range []string{"/api/v1/me/claims?cursor=nonsense", "/api/v1/rooms/r/packets?cursor=nonsense"} {
		var e apiError
		if st := call(t, s, "GET", path, tok, nil, &e); st != 400 || e.Error.Code != "invalid_request" {
			t.Fatalf("%s: %d %+v", path, st, e)
		}
	}
}

// The same Idempotency-Key gives one packet and one debit; reused for
// another body it is refused.
func TestIdempotentCreate(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			db, _ := redistest.New(t)
			s := startServer(t, mode.config(t, db.URL()))
			_, tok := session(t, s, "Alice")
			body := `{"kind":"equal","total":500,"count":5}`
			first := postWithKey(t, s, "/api/v1/rooms/r/packets", tok, "k-1", body)
			again := postWithKey(t, s, "/api/v1/rooms/r/packets", tok, "k-1", body)
			if first.status != 201 || again.status != 201 || again.body != first.body || again.replayed != "true" {
				t.Fatalf("first %+v, again %+v", first, again)
			}
			if b := meBalance(t, s, tok); b != 10000-500 {
				t.Fatalf("balance %d after two creates with one key", b)
			}
			other := postWithKey(t, s, "/api/v1/rooms/r/packets", tok, "k-1", `{"kind":"equal","total":600,"count":5}`)
			if other.status != 409 || !strings.Contains(other.body, "idempotency_conflict") {
				t.Fatalf("same key, other body: %+v", other)
			}
			rain := `{"packets":3,"total_per_packet":100,"count_per_packet":2,"duration_seconds":3}`
			r1 := postWithKey(t, s, "/api/v1/rooms/r/rains", tok, "k-2", rain)
			r2 := postWithKey(t, s, "/api/v1/rooms/r/rains", tok, "k-2", rain)
			if r1.status != 201 || r2.body != r1.body {
				t.Fatalf("rain %+v, again %+v", r1, r2)
			}
			if b := meBalance(t, s, tok); b != 10000-500-300 {
				t.Fatalf("balance %d after two rains with one key", b)
			}
			auditClean(t, s)
		})
	}
}

// A Redis that may evict keys is refused at startup.
func TestRefusesEvictingRedis(t *testing.T) {
	srv, rdb := redistest.Durable(t)
	if err := rdb.ConfigSet(context.Background(), "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, srv.URL(0))
	_, err := newInstance(cfg, testLogger(), nil)
	if err == nil || !strings.Contains(err.Error(), "noeviction") {
		t.Fatalf("started on an evicting Redis: %v", err)
	}
}

// `server migrate` applies the ledger's migrations and exits.
func TestMigrateCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the server")
	}
	url := pgtest.New(t)
	out, err := exec.Command("go", "run", ".", "migrate").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "HONGBAO_DATABASE_URL") {
		t.Fatalf("migrate without a database: %v %s", err, out)
	}
	cmd := exec.Command("go", "run", ".", "migrate")
	cmd.Env = append(os.Environ(), "HONGBAO_DATABASE_URL="+url)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "migrations applied") {
		t.Fatalf("migrate: %v %s", err, out)
	}
}

type posted struct {
	status         int
	body, replayed string
}

func postWithKey(t *testing.T, s *server, path, token, key, body string) posted {
	t.Helper()
	req, _ := http.NewRequest("POST", s.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return posted{resp.StatusCode, string(raw), resp.Header.Get("Idempotent-Replayed")}
}

func rawGet(t *testing.T, s *server, path, token string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, raw)
	}
	return string(raw)
}

// awaitNothingPending waits until no member has a claim on its way.
func awaitNothingPending(t *testing.T, s *server, members []member) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, m := range members {
		for getMe(t, s, m.tok).Pending.Count != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s still has claims pending", m.id)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// The reconciliation endpoint reports a clean ledger, then the difference a
// tampered balance makes.
func TestReconcileEndpoint(t *testing.T) {
	db, _ := redistest.New(t)
	s := startServer(t, testLedgerConfig(t, db.URL()))
	_, tok := session(t, s, "Alice")
	newPacket(t, s, tok, "r", map[string]any{"kind": "equal", "total": 300, "count": 3})
	var rep struct {
		OK     bool `json:"ok"`
		Report struct {
			Problems []string `json:"problems"`
			Journal  []string `json:"journal"`
		} `json:"report"`
	}
	if st := call(t, s, "GET", "/api/v1/admin/reconcile?full=true", testAdmin, nil, &rep); st != 200 || !rep.OK {
		t.Fatalf("clean books: %d %+v", st, rep)
	}
	conn, err := pgx.Connect(context.Background(), s.cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `UPDATE accounts SET balance = balance + 5 WHERE kind = 'wallet'`); err != nil {
		t.Fatal(err)
	}
	if st := call(t, s, "GET", "/api/v1/admin/reconcile?full=true", testAdmin, nil, &rep); st != 200 || rep.OK || len(rep.Report.Journal) == 0 {
		t.Fatalf("tampered books: %d %+v", st, rep)
	}
	t.Log(rep.Report)
	if _, err := conn.Exec(context.Background(), `UPDATE accounts SET balance = balance - 5 WHERE kind = 'wallet'`); err != nil {
		t.Fatal(err)
	}
}
