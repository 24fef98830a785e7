package packet

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the store's Prometheus series. A nil *Metrics records nothing.
type Metrics struct {
	settleLag   prometheus.Histogram
	differences *prometheus.CounterVec
	reconcile   *prometheus.GaugeVec
	local       *prometheus.CounterVec
}

// NewMetrics registers the store's series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		settleLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hongbao_settlement_lag_seconds",
			Help: "Time from a grab to its claim's committed ledger row.",
			Buckets: []float64{ // seconds, not money
				.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		differences: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hongbao_reconcile_differences_total",
			Help: "Differences between Redis and the ledger, by kind; each is logged with its packet and user.",
		}, []string{"kind"}),
		reconcile: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hongbao_reconcile_last_differences",
			Help: "Differences the last reconciliation run found: packet (Redis against the ledger) or journal.",
		}, []string{"source"}),
		local: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hongbao_grab_local_answers_total",
			Help: "Grabs of a packet known to be empty answered by this instance without Redis, by result.",
		}, []string{"result"}),
	}
	reg.MustRegister(m.settleLag, m.differences, m.reconcile, m.local)
	return m
}

func (m *Metrics) settled(lagMs int64) {
	if m != nil {
		m.settleLag.Observe((time.Duration(lagMs) * time.Millisecond).Seconds())
	}
}

func (m *Metrics) difference(kind string) {
	if m != nil {
		m.differences.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) reconciled(packets, journal int) {
	if m != nil {
		m.reconcile.WithLabelValues("packet").Set(float64(packets))  // a count, not money
		m.reconcile.WithLabelValues("journal").Set(float64(journal)) // a count, not money
	}
}

// answeredLocally counts a grab the finished-packet cache answered with err.
func (m *Metrics) answeredLocally(err error) {
	if m == nil {
		return
	}
	code := "error"
	var e *Error
	if errors.As(err, &e) {
		code = e.Code
	}
	m.local.WithLabelValues(code).Inc()
}
