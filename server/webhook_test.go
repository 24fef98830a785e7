package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hongbao-dev/hongbao/internal/redistest"
	"github.com/hongbao-dev/hongbao/webhook"
)

const testWebhookSecret = "webhook-secret-for-tests-0123456789"

// hookEvent is a webhook event as a receiver parses it.
type hookEvent struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	CreatedAt int64  `json:"created_at"`
	Data      struct {
		PacketID  string `json:"packet_id"`
		Room      string `json:"room"`
		SenderID  string `json:"sender_id"`
		UserID    string `json:"user_id"`
		Seq       int    `json:"seq"`
		Amount    int64  `json:"amount"`
		Remaining int64  `json:"remaining"`
		Total     int64  `json:"total"`
		Status    string `json:"status"`
		Claimed   int64  `json:"claimed"`
		Refunded  int64  `json:"refunded"`
	} `json:"data"`
}

// hookReceiver is an httptest webhook endpoint that verifies and records
// every request, and answers with answer(id, attempt) (attempt counts this
// id's requests, from 1).
type hookReceiver struct {
	t      *testing.T
	srv    *httptest.Server
	answer func(id string, attempt int) int
	mu     sync.Mutex
	tries  map[string]int       // requests per event id
	acked  map[string]hookEvent // events answered with a 2xx, by id
	bodies map[string]string    // the first body of each id
	start  time.Time
}

func newHookReceiver(t *testing.T, answer func(id string, attempt int) int) *hookReceiver {
	r := &hookReceiver{t: t, answer: answer, tries: map[string]int{}, acked: map[string]hookEvent{}, bodies: map[string]string{}, start: time.Now()}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

// serve is what the docs tell a receiver to do: verify the signature over
// the raw body, then deduplicate by id.
func (r *hookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	if err := webhook.Verify([]byte(testWebhookSecret), req.Header.Get(webhook.SignatureHeader), body, webhook.DefaultTolerance); err != nil {
		r.t.Errorf("request %s: %v", req.Header.Get(webhook.EventIDHeader), err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var e hookEvent
	if err := json.Unmarshal(body, &e); err != nil || e.ID == "" || e.ID != req.Header.Get(webhook.EventIDHeader) {
		r.t.Errorf("body %s (%v) does not carry its header's id %q", body, err, req.Header.Get(webhook.EventIDHeader))
	}
	r.mu.Lock()
	r.tries[e.ID]++
	attempt := r.tries[e.ID]
	if first, seen := r.bodies[e.ID]; seen && first != string(body) {
		r.t.Errorf("event %s came back with another body:\n%s\nfirst:\n%s", e.ID, body, first)
	} else if !seen {
		r.bodies[e.ID] = string(body)
	}
	r.mu.Unlock()
	status := r.answer(e.ID, attempt)
	if status/100 == 2 {
		r.mu.Lock()
		r.acked[e.ID] = e
		r.mu.Unlock()
		r.t.Logf("answered %s with a 2xx at request %d, %v in", e.ID, attempt, time.Since(r.start).Round(time.Millisecond))
	}
	w.WriteHeader(status)
}

func (r *hookReceiver) snapshot() (tries map[string]int, acked map[string]hookEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tries, acked = map[string]int{}, map[string]hookEvent{}
	for k, v := range r.tries {
		tries[k] = v
	}
	for k, v := range r.acked {
		acked[k] = v
	}
	return tries, acked
}

// withWebhooks points cfg's webhooks at r, with fast retries.
func withWebhooks(cfg Config, r *hookReceiver) Config {
	cfg.WebhookURL, cfg.WebhookSecret = r.srv.URL+"/hooks/hongbao", testWebhookSecret
	cfg.WebhookPoll = 20 * time.Millisecond
	cfg.WebhookMinBackoff, cfg.WebhookMaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	cfg.WebhookTimeout, cfg.WebhookLease = 5*time.Second, 10*time.Second
	return cfg
}

// awaitOutboxEmpty waits until s's ledger has no webhook event left, dead
// ones included.
func awaitOutboxEmpty(t *testing.T, s *server, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		q, err := s.led.WebhookQueue(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if q.Waiting == 0 && q.Dead == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook outbox still holds %+v after %v", q, timeout)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
}

// A webhook receiver that rejects the first 3 attempts of every event ends
// up with every event exactly once after deduplication by id, each request
// with a valid signature: a packet grabbed empty through two instances, and
// a packet that expires with a share taken and is refunded the rest.
func TestWebhooksSurviveAFailingReceiver(t *testing.T) {
	db, _ := redistest.New(t)
	r := newHookReceiver(t, func(_ string, attempt int) int {
		if attempt <= 3 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	cfg := withWebhooks(testLedgerConfig(t, db.URL()), r)
	cfg.SettleGrace = 200 * time.Millisecond
	a, b := startServer(t, cfg), startServer(t, cfg)

	sender, senderTok := session(t, a, "Sender")
	g1, g1Tok := session(t, a, "G1")
	g2, g2Tok := session(t, b, "G2")
	full := newPacket(t, a, senderTok, "hooks", map[string]any{"kind": "equal", "total": 300, "count": 2})
	for _, g := range []struct {
		s   *server
		tok string
	}{{a, g1Tok}, {b, g2Tok}} {
		var out struct {
			Amount int64 `json:"amount"`
		}
		if st := call(t, g.s, "POST", "/api/v1/packets/"+full.ID+"/grab", g.tok, nil, &out); st != http.StatusOK || out.Amount != 150 {
			t.Fatalf("grab: %d, amount %d", st, out.Amount)
		}
	}
	// A packet that expires with one share taken (a grab also brings the
	// sweeper's first look forward to its expiry).
	left := newPacket(t, b, senderTok, "hooks", map[string]any{"kind": "lucky", "total": 500, "count": 3, "ttl_seconds": 1})
	var took struct {
		Amount int64 `json:"amount"`
	}
	if st := call(t, a, "POST", "/api/v1/packets/"+left.ID+"/grab", g1Tok, nil, &took); st != http.StatusOK || took.Amount <= 0 {
		t.Fatalf("grab: %d, amount %d", st, took.Amount)
	}

	want := []string{
		"packet.created:" + full.ID, "claim.settled:" + full.ID + ":1", "claim.settled:" + full.ID + ":2", "packet.finished:" + full.ID,
		"packet.created:" + left.ID, "claim.settled:" + left.ID + ":1", "packet.finished:" + left.ID, "packet.refunded:" + left.ID,
	}
	sort.Strings(want)
	deadline := time.Now().Add(60 * time.Second)
	var tries map[string]int
	var acked map[string]hookEvent
	for {
		tries, acked = r.snapshot()
		if len(acked) == len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
	var ids []string
	for id := range acked {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if !slices.Equal(ids, want) {
		t.Fatalf("acknowledged events:\n%v\nwant\n%v\n(tries %v)", ids, want, tries)
	}
	for id, n := range tries {
		if n < 4 {
			t.Errorf("%s acknowledged after %d requests; the receiver refuses the first 3", id, n)
		}
	}
	awaitOutboxEmpty(t, a, 30*time.Second)

	grabbers := map[string]bool{}
	var remaining []int64 // after each claim, in the order the ledger took them
	for _, id := range want {
		e := acked[id]
		if e.Data.SenderID != sender.ID || e.Data.Room != "hooks" || e.CreatedAt <= 0 {
			t.Errorf("%s: sender %q, room %q, created_at %d", id, e.Data.SenderID, e.Data.Room, e.CreatedAt)
		}
		switch {
		case id == "claim.settled:"+left.ID+":1":
			if e.Data.UserID != g1.ID || e.Data.Amount != took.Amount || e.Data.Remaining != 500-took.Amount {
				t.Errorf("%s: user %s, amount %d, remaining %d; want %s, %d, %d", id, e.Data.UserID, e.Data.Amount, e.Data.Remaining, g1.ID, took.Amount, 500-took.Amount)
			}
		case e.Type == "claim.settled":
			grabbers[e.Data.UserID] = true
			remaining = append(remaining, e.Data.Remaining)
			if e.Data.Amount != 150 {
				t.Errorf("%s: amount %d, want 150", id, e.Data.Amount)
			}
		case id == "packet.created:"+full.ID && e.Data.Total != 300,
			id == "packet.created:"+left.ID && e.Data.Total != 500:
			t.Errorf("%s: total %d", id, e.Data.Total)
		case id == "packet.finished:"+full.ID && (e.Data.Status != "empty" || e.Data.Claimed != 300 || e.Data.Refunded != 0),
			id == "packet.finished:"+left.ID && (e.Data.Status != "expired" || e.Data.Claimed != took.Amount || e.Data.Refunded != 500-took.Amount),
			id == "packet.refunded:"+left.ID && e.Data.Refunded != 500-took.Amount:
			t.Errorf("%s: status %q, claimed %d, refunded %d", id, e.Data.Status, e.Data.Claimed, e.Data.Refunded)
		}
	}
	slices.Sort(remaining)
	if !slices.Equal(remaining, []int64{0, 150}) {
		t.Errorf("claim.settled remaining %v, want 150 after one claim and 0 after the other", remaining)
	}
	if !grabbers[g1.ID] || !grabbers[g2.ID] {
		t.Errorf("claim.settled users %v, want %s and %s", grabbers, g1.ID, g2.ID)
	}
	// The refund is in the sender's /me too.
	var me struct {
		Balance  int64 `json:"balance"`
		Refunded int64 `json:"refunded"`
	}
	if st := call(t, b, "GET", "/api/v1/me", senderTok, nil, &me); st != http.StatusOK || me.Refunded != 500-took.Amount {
		t.Errorf("sender's /me: %d, refunded %d, want %d", st, me.Refunded, 500-took.Amount)
	}
	auditClean(t, a)
	t.Logf("done %v in", time.Since(r.start).Round(time.Millisecond))
}

// An instance killed (SIGKILL) while a receiver holds its POST, before it
// could record the answer, loses no event: once the lease runs out the other
// instance sends it again, with the same id and body.
func TestWebhookSurvivesInstanceKilledMidSend(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a server process")
	}
	bin := filepath.Join(t.TempDir(), "hongbao")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	db, _ := redistest.New(t)
	held, release := make(chan string, 1), make(chan struct{})
	r := newHookReceiver(t, func(id string, attempt int) int {
		if attempt == 1 {
			held <- id
			<-release
		}
		return http.StatusOK
	})
	defer close(release)
	cfg := withWebhooks(testLedgerConfig(t, db.URL()), r)
	cfg.WebhookTimeout, cfg.WebhookLease = 2*time.Second, 3*time.Second

	// Instance A is a real process, so it can die without a goodbye. It
	// alone sends webhooks until it dies.
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"HONGBAO_ADDR="+addr, "REDIS_URL="+db.URL(), "HONGBAO_SECRET="+testSecret,
		"HONGBAO_KEY_PREFIX="+cfg.KeyPrefix, "HONGBAO_DATABASE_URL="+cfg.DatabaseURL, "HONGBAO_LOG_LEVEL=error",
		"HONGBAO_WEBHOOK_URL="+cfg.WebhookURL, "HONGBAO_WEBHOOK_SECRET="+testWebhookSecret,
		"HONGBAO_WEBHOOK_TIMEOUT=2s", "HONGBAO_WEBHOOK_LEASE=3s", "HONGBAO_WEBHOOK_POLL=20ms")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	a := &server{URL: "http://" + addr}
	waitListening(t, addr)

	_, tok := session(t, a, "Sender")
	p := newPacket(t, a, tok, "crash", map[string]any{"kind": "equal", "total": 100, "count": 1})
	var id string
	select {
	case id = <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("instance A never sent the packet.created event")
	}
	if id != "packet.created:"+p.ID {
		t.Fatalf("first event %q, want packet.created:%s", id, p.ID)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	release <- struct{}{} // A's request ends; A never hears the answer

	b := startServer(t, cfg)
	awaitOutboxEmpty(t, b, 30*time.Second)
	tries, acked := r.snapshot()
	if tries[id] != 2 {
		t.Fatalf("%s was sent %d times, want 2 (once to the dead instance)", id, tries[id])
	}
	if _, ok := acked[id]; !ok {
		t.Fatalf("%s never acknowledged", id)
	}
	auditClean(t, b)
}

// Webhook settings that cannot work stop startup with exit status 2 and a
// message naming them; the secret is never shown.
func TestWebhookSettings(t *testing.T) {
	secret := strings.Repeat("s", 32)
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string // in the error; "" for accepted
	}{
		{"off", map[string]string{}, ""},
		{"on", map[string]string{"HONGBAO_DATABASE_URL": "postgres://x/y", "HONGBAO_WEBHOOK_URL": "https://app.example/hooks", "HONGBAO_WEBHOOK_SECRET": secret}, ""},
		{"no database", map[string]string{"HONGBAO_WEBHOOK_URL": "https://app.example/hooks", "HONGBAO_WEBHOOK_SECRET": secret}, "needs HONGBAO_DATABASE_URL"},
		{"no secret", map[string]string{"HONGBAO_DATABASE_URL": "postgres://x/y", "HONGBAO_WEBHOOK_URL": "https://app.example/hooks"}, "needs HONGBAO_WEBHOOK_SECRET"},
		{"short secret", map[string]string{"HONGBAO_DATABASE_URL": "postgres://x/y", "HONGBAO_WEBHOOK_URL": "https://app.example/hooks", "HONGBAO_WEBHOOK_SECRET": "short-secret"}, "HONGBAO_WEBHOOK_SECRET=<12 bytes>"},
		{"secret alone", map[string]string{"HONGBAO_WEBHOOK_SECRET": secret}, "without HONGBAO_WEBHOOK_URL"},
		{"not http", map[string]string{"HONGBAO_DATABASE_URL": "postgres://x/y", "HONGBAO_WEBHOOK_URL": "app.example/hooks", "HONGBAO_WEBHOOK_SECRET": secret}, "HONGBAO_WEBHOOK_URL"},
		{"lease within timeout", map[string]string{"HONGBAO_WEBHOOK_TIMEOUT": "1m", "HONGBAO_WEBHOOK_LEASE": "30s"}, "HONGBAO_WEBHOOK_LEASE"},
		{"backoffs crossed", map[string]string{"HONGBAO_WEBHOOK_MIN_BACKOFF": "2h"}, "HONGBAO_WEBHOOK_MAX_BACKOFF"},
		{"no attempts", map[string]string{"HONGBAO_WEBHOOK_MAX_ATTEMPTS": "0"}, "HONGBAO_WEBHOOK_MAX_ATTEMPTS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := parseConfig(nil, io.Discard)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, errBadConfig) || exitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v (exit %d), want exit 2 mentioning %q", err, exitCode(err), tc.want)
			}
			if s := tc.env["HONGBAO_WEBHOOK_SECRET"]; s != "" && strings.Contains(err.Error(), s) {
				t.Fatalf("the message shows the secret: %v", err)
			}
		})
	}
}

// The webhook settings' defaults are webhook.DefaultConfig's.
func TestWebhookDefaultsComeFromPackage(t *testing.T) {
	c, d := defaultConfig(), webhook.DefaultConfig()
	got := []any{c.WebhookTimeout, c.WebhookLease, c.WebhookPoll, c.WebhookMinBackoff, c.WebhookMaxBackoff, c.WebhookMaxAttempts}
	want := []any{d.Timeout, d.Lease, d.Poll, d.MinBackoff, d.MaxBackoff, d.MaxAttempts}
	if !slices.Equal(got, want) {
		t.Fatalf("server defaults %v, webhook.DefaultConfig %v", got, want)
	}
	if c.WebhookURL != "" || c.WebhookSecret != "" {
		t.Fatal("webhooks are on by default")
	}
}
