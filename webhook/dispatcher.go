package webhook

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/hongbao-dev/hongbao/ledger"
)

// Dispatcher delivers the ledger's webhook outbox to one URL. Run as many as
// there are instances: they share the outbox without delivering an event
// twice, unless one dies mid-delivery.
type Dispatcher struct {
	led *ledger.Ledger
	cfg Config
}

// New returns a dispatcher of led's outbox. led must have been opened with
// ledger.Config.Webhooks, or nothing is ever queued.
func New(led *ledger.Ledger, cfg Config) (*Dispatcher, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Dispatcher{led: led, cfg: cfg}, nil
}

// Run delivers until ctx ends. POSTs in flight then are abandoned, their
// events still leased: another dispatcher sends them again when the lease
// runs out (the receiver may have seen them: at least once). An answer
// already received is still recorded.
func (d *Dispatcher) Run(ctx context.Context) {
	poll := time.NewTicker(d.cfg.Poll)
	defer poll.Stop()
	stats := time.NewTicker(d.cfg.StatsEvery)
	defer stats.Stop()
	d.look(ctx)
	for {
		if d.round(ctx) == d.cfg.Batch {
			continue // a full batch: more may be due
		}
		select {
		case <-ctx.Done():
			return
		case <-stats.C:
			d.look(ctx)
		case <-poll.C:
		}
	}
}

// round leases one batch of due events and delivers them concurrently,
// returning how many it leased.
func (d *Dispatcher) round(ctx context.Context) int {
	due, err := d.led.LeaseWebhooks(ctx, d.cfg.Lease, d.cfg.Batch)
	if err != nil {
		if ctx.Err() == nil {
			d.cfg.Logger.Warn("webhook: lease", "err", err)
		}
		return 0
	}
	var wg sync.WaitGroup
	for _, w := range due {
		wg.Go(func() { d.deliver(ctx, w) })
	}
	wg.Wait()
	return len(due)
}

// recordTimeout bounds writing an attempt's outcome, which goes on when
// the dispatcher is stopping: an acknowledged event recorded then is not
// sent again.
const recordTimeout = 5 * time.Second

// deliver POSTs one leased event and records the outcome.
func (d *Dispatcher) deliver(ctx context.Context, w ledger.Webhook) {
	status, err := d.post(ctx, w)
	if err != nil && ctx.Err() != nil {
		return // stopping cut the attempt short: the lease runs out and it goes again
	}
	d.cfg.Metrics.attempt(status, err)
	rec, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err == nil && status >= 200 && status < 300 {
		if err := d.led.WebhookDelivered(rec, w.ID); err != nil {
			d.cfg.Logger.Warn("webhook: delivered but not recorded; it will be sent again", "id", w.ID, "err", err)
			return
		}
		d.cfg.Metrics.done("delivered")
		return
	}
	reason := fmt.Sprintf("status %d", status)
	if err != nil {
		reason = err.Error()
	}
	dead := w.Attempt >= d.cfg.MaxAttempts
	wait := backoff(w.Attempt, d.cfg.MinBackoff, d.cfg.MaxBackoff)
	if err := d.led.WebhookFailed(rec, w.ID, w.Attempt, reason, wait, dead); err != nil {
		d.cfg.Logger.Warn("webhook: failure not recorded; retried when the lease runs out", "id", w.ID, "err", err)
		return
	}
	if dead {
		d.cfg.Metrics.done("dead")
		d.cfg.Logger.Error("webhook: giving up on an event", "id", w.ID, "attempts", w.Attempt, "last", reason)
		return
	}
	d.cfg.Logger.Info("webhook: attempt failed", "id", w.ID, "attempt", w.Attempt, "reason", reason, "retry_in", wait)
}

// post sends one signed attempt and returns the receiver's status.
func (d *Dispatcher) post(ctx context.Context, w ledger.Webhook) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.cfg.URL, bytes.NewReader(w.Body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hongbao-webhook/1")
	req.Header.Set(EventIDHeader, w.ID)
	req.Header.Set(EventTypeHeader, w.Type)
	req.Header.Set(SignatureHeader, Sign(d.cfg.Secret, time.Now(), w.Body))
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	// Read a little of the answer so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

// look refreshes the queue metrics.
func (d *Dispatcher) look(ctx context.Context) {
	if d.cfg.Metrics == nil {
		return
	}
	q, err := d.led.WebhookQueue(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.cfg.Logger.Warn("webhook: queue depth", "err", err)
		}
		return
	}
	d.cfg.Metrics.looked(q)
}

// backoff is the wait after failed attempt n (from 1): lo doubled n-1
// times, capped at hi, then drawn between its half and itself so that
// events that failed together do not come back together.
func backoff(n int, lo, hi time.Duration) time.Duration {
	wait := lo
	for i := 1; i < n && wait < hi; i++ {
		wait *= 2
	}
	wait = min(wait, hi)
	if half := wait / 2; half > 0 {
		wait = half + rand.N(wait-half+1)
	}
	return wait
}
