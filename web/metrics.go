package web

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the App's Prometheus series; a nil *metrics records nothing.
type metrics struct {
	grabs    *prometheus.CounterVec
	grabTime prometheus.Histogram
	created  *prometheus.CounterVec
	chats    prometheus.Counter
	rejected *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		grabs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hongbao_grabs_total", Help: "Grabs by result code (ok or the refusal code).",
		}, []string{"result"}),
		grabTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hongbao_grab_duration_seconds", Help: "Time to settle one grab in Redis (grab and credit).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		created: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hongbao_packets_created_total", Help: "Packets created, by kind.",
		}, []string{"kind"}),
		chats: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hongbao_chat_messages_total", Help: "Chat messages accepted.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hongbao_ws_upgrades_rejected_total", Help: "WebSocket upgrades refused, by reason.",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.grabs, m.grabTime, m.created, m.chats, m.rejected)
	return m
}

func (m *metrics) grab(result string, since time.Time) {
	if m == nil {
		return
	}
	m.grabs.WithLabelValues(result).Inc()
	m.grabTime.Observe(time.Since(since).Seconds())
}

func (m *metrics) packet(kind string) {
	if m != nil {
		m.created.WithLabelValues(kind).Inc()
	}
}

func (m *metrics) chat() {
	if m != nil {
		m.chats.Inc()
	}
}

func (m *metrics) reject(reason string) {
	if m != nil {
		m.rejected.WithLabelValues(reason).Inc()
	}
}
