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
	refused  *prometheus.CounterVec
	limits   *prometheus.CounterVec
	floods   prometheus.Counter
	sends    *prometheus.CounterVec
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
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hongbao_ws_refused_total", Help: "WebSockets closed after the upgrade by a cap, by cap: user_conns (4001), address_conns (4002), rooms (4003), new_rooms (4004).",
	}, []string{"reason"})
	m.limits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hongbao_rate_limited_total", Help: "Requests and frames refused by a rate limit, by limit: grab, chat (per user) or frame (per connection).",
	}, []string{"limit"})
	m.floods = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hongbao_ws_flood_closed_total", Help: "WebSockets closed with 1008 for sending past their rate limits.",
	})
	m.sends = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hongbao_send_limited_total", Help: "Creates refused by a sending limit, by limit: daily_total, daily_count (daily_limit), room_rate (room_rate_limited) or max_total (total_too_large).",
	}, []string{"limit"})
	reg.MustRegister(m.grabs, m.grabTime, m.created, m.chats, m.rejected, m.refused, m.limits, m.floods, m.sends)
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

func (m *metrics) refuse(reason string) {
	if m != nil {
		m.refused.WithLabelValues(reason).Inc()
	}
}

func (m *metrics) limited(limit string) {
	if m != nil {
		m.limits.WithLabelValues(limit).Inc()
	}
}

func (m *metrics) flood() {
	if m != nil {
		m.floods.Inc()
	}
}

func (m *metrics) sendLimited(limit string) {
	if m != nil {
		m.sends.WithLabelValues(limit).Inc()
	}
}
