// Package webhook delivers hongbao's money events (packet.created,
// claim.settled, packet.finished, packet.refunded) to an app's backend as
// signed HTTP POSTs, at least once.
//
// The events are not produced here: the ledger writes each one into its
// webhook_outbox table in the transaction that makes the change (see
// ledger.Config.Webhooks), so an event exists if and only if its change
// committed, and survives any crash. A Dispatcher on each instance leases
// due events from that table (SKIP LOCKED, so instances share the work
// without waiting for each other), POSTs each one signed (see Sign and
// Verify), and deletes it on a 2xx. Anything else, or no answer within
// Timeout, schedules a retry with capped exponential backoff and jitter,
// until MaxAttempts; then the event is kept as dead, counted, and no longer
// tried. A dispatcher that dies between the POST and the acknowledgement
// leaves the event leased: when the lease runs out, another dispatcher (or
// the same one, restarted) sends it again, with the same id.
//
// Receivers therefore deduplicate by the event's id. Events carry no order
// promise: retries can overtake each other.
package webhook

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// Config tunes a Dispatcher. URL and Secret are required; every other zero
// field takes its default from DefaultConfig.
type Config struct {
	// URL receives the POSTs: http or https. Required.
	URL string
	// Secret signs every request (HMAC-SHA256). Required; hongbao's server
	// asks for 32 bytes or more.
	Secret []byte
	// Timeout bounds one POST, answer included. Default 10 s.
	Timeout time.Duration
	// Lease is how long a leased event is this dispatcher's alone; one whose
	// dispatcher died is sent again after it. Must exceed Timeout, or a slow
	// receiver would get every event twice. Default 1 min.
	Lease time.Duration
	// Poll is how often an idle dispatcher looks for due events. Default
	// 1 s.
	Poll time.Duration
	// Batch is how many events one look leases and POSTs at once. Default
	// 16.
	Batch int
	// MinBackoff is the wait after a first failed attempt; each later
	// failure doubles it, up to MaxBackoff, and every wait is drawn at
	// random between its half and itself. Default 10 s.
	MinBackoff time.Duration
	// MaxBackoff caps the wait between attempts. Default 1 h.
	MaxBackoff time.Duration
	// MaxAttempts is how many POSTs an event gets before it is kept as
	// dead. The default, 30, with the default backoffs spans about a day.
	MaxAttempts int
	// StatsEvery is how often the queue's depth is read for the metrics.
	// Default 10 s.
	StatsEvery time.Duration
	// Client sends the POSTs; it must not follow redirects (a 3xx is a
	// failed attempt). Default: a client that does not follow them.
	Client *http.Client
	// Metrics records attempts, deliveries and the queue. Default (nil):
	// none.
	Metrics *Metrics
	// Logger receives failed attempts and dead events. Default (nil):
	// slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the defaults of every optional field.
func DefaultConfig() Config {
	return Config{
		Timeout:     10 * time.Second,
		Lease:       time.Minute,
		Poll:        time.Second,
		Batch:       16,
		MinBackoff:  10 * time.Second,
		MaxBackoff:  time.Hour,
		MaxAttempts: 30,
		StatsEvery:  10 * time.Second,
	}
}

// withDefaults fills cfg's zero fields and checks the result.
func (cfg Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	fill := func(p *time.Duration, def time.Duration) {
		if *p == 0 {
			*p = def
		}
	}
	fill(&cfg.Timeout, d.Timeout)
	fill(&cfg.Lease, d.Lease)
	fill(&cfg.Poll, d.Poll)
	fill(&cfg.MinBackoff, d.MinBackoff)
	fill(&cfg.MaxBackoff, d.MaxBackoff)
	fill(&cfg.StatsEvery, d.StatsEvery)
	if cfg.Batch == 0 {
		cfg.Batch = d.Batch
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = d.MaxAttempts
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, cfg.check()
}

func (cfg Config) check() error {
	u, err := url.Parse(cfg.URL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("webhook: URL %q: want an http:// or https:// URL", cfg.URL)
	case len(cfg.Secret) == 0:
		return errors.New("webhook: no secret")
	case cfg.Timeout < 0 || cfg.Poll < 0 || cfg.StatsEvery < 0 || cfg.MinBackoff < 0 || cfg.Batch < 0 || cfg.MaxAttempts < 0:
		return errors.New("webhook: a negative setting")
	case cfg.Lease <= cfg.Timeout:
		return fmt.Errorf("webhook: lease %v must exceed the timeout %v", cfg.Lease, cfg.Timeout)
	case cfg.MaxBackoff < cfg.MinBackoff:
		return fmt.Errorf("webhook: max backoff %v is below min backoff %v", cfg.MaxBackoff, cfg.MinBackoff)
	}
	return nil
}
