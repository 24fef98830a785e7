package webhook

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hongbao-dev/hongbao/internal/pgtest"
	"github.com/hongbao-dev/hongbao/ledger"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var testSecret = []byte("webhook-test-secret-0123456789abcdef")

// receiver is an httptest webhook endpoint that records every request and
// answers with answer(id, attempt) (attempt counts this id's requests,
// from 1).
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	answer func(id string, attempt int) int
	mu     sync.Mutex
	got    []received
	seen   chan struct{}
}

type received struct {
	id     string
	body   []byte
	sigErr error
}

func newReceiver(t *testing.T, answer func(id string, attempt int) int) *receiver {
	r := &receiver{t: t, answer: answer, seen: make(chan struct{}, 1)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var e struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.ID != req.Header.Get(EventIDHeader) {
		r.t.Errorf("body %s (%v) does not carry the id %q of its header", body, err, req.Header.Get(EventIDHeader))
	}
	r.mu.Lock()
	r.got = append(r.got, received{e.ID, body, Verify(testSecret, req.Header.Get(SignatureHeader), body, DefaultTolerance)})
	attempt := 0
	for _, g := range r.got {
		if g.id == e.ID {
			attempt++
		}
	}
	r.mu.Unlock()
	select {
	case r.seen <- struct{}{}:
	default:
	}
	w.WriteHeader(r.answer(e.ID, attempt))
}

// requests returns how many requests each event id got.
func (r *receiver) requests() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := map[string]int{}
	for _, g := range r.got {
		if g.sigErr != nil {
			r.t.Errorf("request for %s: %v", g.id, g.sigErr)
		}
		n[g.id]++
	}
	return n
}

// waitFor polls until cond holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// eventsLedger is a migrated ledger with webhooks, holding n packet.created
// events; it returns their ids.
func eventsLedger(t *testing.T, n int) (*ledger.Ledger, []string) {
	t.Helper()
	ctx := context.Background()
	l, err := ledger.Open(ctx, pgtest.New(t), ledger.Config{Logger: slog.New(slog.DiscardHandler), Webhooks: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	if _, err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		return l, nil
	}
	if _, _, err := l.Fund(ctx, "s", int64(n)*100, "fund"); err != nil {
		t.Fatal(err)
	}
	var ids []string
	now := time.Now().UnixMilli()
	for range n {
		id := uuid.NewString()
		p := ledger.Packet{ID: id, Room: "r", SenderID: "s", SenderName: "S", Kind: "equal", Total: 100, Count: 1,
			CreatedAt: now, VisibleAt: now, ExpiresAt: now + 60_000, DueAt: now + 60_000, Shares: []int64{100}}
		if _, err := l.Open(ctx, []ledger.Packet{p}, nil); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ledger.EventPacketCreated+":"+id)
	}
	return l, ids
}

// value reads a counter.
func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// fastConfig retries at once, so tests take no backoff.
func fastConfig(url string) Config {
	return Config{URL: url, Secret: testSecret, Timeout: 5 * time.Second, Lease: 6 * time.Second, Poll: 20 * time.Millisecond,
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
}

// start runs d until the test ends (or stop is called), and waits for it.
func start(t *testing.T, d *Dispatcher) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func queueEmpty(t *testing.T, l *ledger.Ledger) func() bool {
	return func() bool {
		q, err := l.WebhookQueue(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return q.Waiting == 0 && q.Dead == 0
	}
}

// A receiver that fails the first 3 attempts of every event gets each one
// on the 4th, signed every time, and the outbox empties.
func TestRetriesUntilAcknowledged(t *testing.T) {
	l, ids := eventsLedger(t, 5)
	r := newReceiver(t, func(_ string, attempt int) int {
		if attempt <= 3 {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	reg := prometheus.NewRegistry()
	cfg := fastConfig(r.srv.URL)
	cfg.Metrics = NewMetrics(reg)
	d, err := New(l, cfg)
	if err != nil {
		t.Fatal(err)
	}
	start(t, d)
	waitFor(t, "every event delivered", 30*time.Second, queueEmpty(t, l))
	got := r.requests()
	for _, id := range ids {
		if got[id] != 4 {
			t.Errorf("%s: %d requests, want 4", id, got[id])
		}
	}
	if len(got) != len(ids) {
		t.Errorf("receiver saw %d events, want %d", len(got), len(ids))
	}
	if n := value(cfg.Metrics.deliveries.WithLabelValues("delivered")); n != float64(len(ids)) {
		t.Errorf("deliveries{delivered} = %v, want %d", n, len(ids))
	}
	if n := value(cfg.Metrics.attempts.WithLabelValues("5xx")); n != float64(3*len(ids)) {
		t.Errorf("attempts{5xx} = %v, want %d", n, 3*len(ids))
	}
}

// An event whose every attempt fails is kept as dead after MaxAttempts, and
// counted; nothing else is delivered twice.
func TestGivesUpAfterMaxAttempts(t *testing.T) {
	l, ids := eventsLedger(t, 2)
	r := newReceiver(t, func(id string, _ int) int {
		if id == ids[0] {
			return http.StatusGone
		}
		return http.StatusOK
	})
	cfg := fastConfig(r.srv.URL)
	cfg.MaxAttempts = 3
	cfg.Metrics = NewMetrics(prometheus.NewRegistry())
	d, err := New(l, cfg)
	if err != nil {
		t.Fatal(err)
	}
	start(t, d)
	waitFor(t, "one dead event", 30*time.Second, func() bool {
		q, err := l.WebhookQueue(context.Background())
		return err == nil && q.Waiting == 0 && q.Dead == 1
	})
	if got := r.requests(); got[ids[0]] != 3 || got[ids[1]] != 1 {
		t.Fatalf("requests %v: want 3 for the refused event, 1 for the other", got)
	}
	if n := value(cfg.Metrics.deliveries.WithLabelValues("dead")); n != 1 {
		t.Fatalf("deliveries{dead} = %v, want 1", n)
	}
}

// A dispatcher that dies after its POST reached the receiver, before it
// recorded the answer, loses nothing: once the lease runs out, another
// dispatcher sends the same event again.
func TestCrashBetweenSendAndAcknowledgement(t *testing.T) {
	l, ids := eventsLedger(t, 1)
	release := make(chan struct{})
	r := newReceiver(t, func(_ string, attempt int) int {
		if attempt == 1 {
			<-release // the first dispatcher dies while it waits for this answer
		}
		return http.StatusOK
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	cfg := fastConfig(r.srv.URL)
	cfg.Timeout, cfg.Lease = 2*time.Second, 3*time.Second
	first, err := New(l, cfg)
	if err != nil {
		t.Fatal(err)
	}
	stopFirst := start(t, first)
	waitFor(t, "the first POST", 30*time.Second, func() bool { return r.requests()[ids[0]] == 1 })
	stopFirst() // the process dies mid-request
	close(release)

	leasedAt := time.Now()
	second, err := New(l, cfg)
	if err != nil {
		t.Fatal(err)
	}
	start(t, second)
	waitFor(t, "the event delivered again", 60*time.Second, queueEmpty(t, l))
	if got := r.requests(); got[ids[0]] != 2 {
		t.Fatalf("requests %v: want the event twice (once lost with the dispatcher)", got)
	}
	t.Logf("redelivered %v after the first dispatcher died (lease %v)", time.Since(leasedAt), cfg.Lease)
}

// Two dispatchers on one outbox deliver each event exactly once when
// nothing fails.
func TestTwoDispatchersShareTheOutbox(t *testing.T) {
	l, ids := eventsLedger(t, 60)
	r := newReceiver(t, func(string, int) int { return http.StatusOK })
	cfg := fastConfig(r.srv.URL)
	cfg.Batch = 4 // several rounds each, so the two overlap
	for range 2 {
		d, err := New(l, cfg)
		if err != nil {
			t.Fatal(err)
		}
		start(t, d)
	}
	waitFor(t, "every event delivered", 60*time.Second, queueEmpty(t, l))
	got := r.requests()
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("%s: %d requests, want 1", id, got[id])
		}
	}
	if len(got) != len(ids) {
		t.Errorf("receiver saw %d events, want %d", len(got), len(ids))
	}
}

func TestConfigRefusesNonsense(t *testing.T) {
	l, _ := eventsLedger(t, 0)
	tests := []struct {
		name string
		edit func(*Config)
	}{
		{"no url", func(c *Config) { c.URL = "" }},
		{"not http", func(c *Config) { c.URL = "ftp://x/y" }},
		{"no secret", func(c *Config) { c.Secret = nil }},
		{"lease not above timeout", func(c *Config) { c.Lease = c.Timeout }},
		{"max backoff below min", func(c *Config) { c.MaxBackoff = c.MinBackoff / 2 }},
		{"negative batch", func(c *Config) { c.Batch = -1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fastConfig("http://127.0.0.1:1/hook")
			tc.edit(&cfg)
			if _, err := New(l, cfg); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
}
