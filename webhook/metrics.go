package webhook

import (
	"strconv"

	"github.com/hongbao-dev/hongbao/ledger"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the dispatcher's Prometheus series. A nil *Metrics records
// nothing.
type Metrics struct {
	attempts   *prometheus.CounterVec
	deliveries *prometheus.CounterVec
	queue      *prometheus.GaugeVec
	oldest     prometheus.Gauge
}

// NewMetrics registers the dispatcher's series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hongbao_webhook_attempts_total",
			Help: "Webhook POSTs by outcome: the receiver's status class (2xx, 3xx, 4xx, 5xx) or error (no answer in time).",
		}, []string{"result"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hongbao_webhook_deliveries_total",
			Help: "Webhook events done with, by result: delivered (acknowledged with a 2xx) or dead (every attempt failed).",
		}, []string{"result"}),
		queue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hongbao_webhook_queue",
			Help: "Webhook events in the outbox at the last look: waiting (to be delivered or retried) and dead.",
		}, []string{"state"}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hongbao_webhook_oldest_seconds",
			Help: "Age of the oldest webhook event still waiting, at the last look.",
		}),
	}
	reg.MustRegister(m.attempts, m.deliveries, m.queue, m.oldest)
	return m
}

func (m *Metrics) attempt(status int, err error) {
	if m == nil {
		return
	}
	result := "error"
	if err == nil {
		result = strconv.Itoa(status/100) + "xx"
	}
	m.attempts.WithLabelValues(result).Inc()
}

func (m *Metrics) done(result string) {
	if m != nil {
		m.deliveries.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) looked(q ledger.WebhookQueue) {
	if m != nil {
		m.queue.WithLabelValues("waiting").Set(float64(q.Waiting)) // a count, not money
		m.queue.WithLabelValues("dead").Set(float64(q.Dead))       // a count, not money
		m.oldest.Set(q.Oldest.Seconds())
	}
}
