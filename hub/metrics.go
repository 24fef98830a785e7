package hub

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics instruments a Hub. A nil *Metrics is valid and records nothing, so
// the hot paths never branch on configuration beyond the nil check.
type Metrics struct {
	connections    prometheus.Gauge
	rooms          prometheus.Gauge
	messagesIn     prometheus.Counter
	messagesOut    prometheus.Counter
	writes         prometheus.Counter
	brokerPub      prometheus.Counter
	brokerRecv     prometheus.Counter
	evictions      prometheus.Counter
	cuts           *prometheus.CounterVec
	fanoutDuration prometheus.Histogram
	panics         prometheus.Counter
	recoveries     *prometheus.CounterVec
}

// NewMetrics creates the hub's collectors and registers them with reg (when
// reg is non-nil). Registering twice on one registry panics, as with any
// Prometheus collector, so create one Metrics per registry.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = "hongbao", "hub"
	m := &Metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "connections",
			Help: "WebSocket connections currently served by this instance.",
		}),
		rooms: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "rooms",
			Help: "Rooms with at least one local member.",
		}),
		messagesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "messages_in_total",
			Help: "Text frames read from clients.",
		}),
		messagesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "messages_out_total",
			Help: "Data frames written to clients.",
		}),
		writes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "socket_writes_total",
			Help: "Socket writes of data frames and pings; one write carries every frame waiting for its connection, up to a limit.",
		}),
		brokerPub: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "broker_published_total",
			Help: "Frames published to the broker.",
		}),
		brokerRecv: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "broker_received_total",
			Help: "Frames received from the broker.",
		}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "slow_client_evictions_total",
			Help: "Clients closed because their send queue overflowed.",
		}),
		cuts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "cut_connections_total",
			Help: "Sockets the timekeeper cut: reason=write_timeout for a write stuck longer than WriteTimeout, " +
				"reason=silent for a peer that sent nothing for PingInterval+PongTimeout.",
		}, []string{"reason"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "panics_total",
			Help: "Panics while serving a connection (handler or writer); each closed its connection with 1011.",
		}),
		fanoutDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "broadcast_fanout_seconds",
			Help:    "Time from broker receipt of a frame to its last local enqueue.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 4, 10), // 10µs .. ~2.6s
		}),
		recoveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "recoveries_total",
			Help: "Catch-ups from history: scope=client for a joiner that gave a position, scope=room for a room " +
				"that lost its subscription or saw a seq gap; result=recovered or resync.",
		}, []string{"scope", "result"}),
	}
	if reg != nil {
		reg.MustRegister(m.connections, m.rooms, m.messagesIn, m.messagesOut, m.writes,
			m.brokerPub, m.brokerRecv, m.evictions, m.cuts, m.fanoutDuration, m.panics, m.recoveries)
	}
	return m
}

func (m *Metrics) connAdd(d float64) {
	if m != nil {
		m.connections.Add(d)
	}
}

func (m *Metrics) roomAdd(d float64) {
	if m != nil {
		m.rooms.Add(d)
	}
}

func (m *Metrics) in() {
	if m != nil {
		m.messagesIn.Inc()
	}
}

// out counts frames written in writes socket writes.
func (m *Metrics) out(frames, writes int) {
	if m != nil {
		m.messagesOut.Add(float64(frames))
		m.writes.Add(float64(writes))
	}
}

func (m *Metrics) published() {
	if m != nil {
		m.brokerPub.Inc()
	}
}

func (m *Metrics) received() {
	if m != nil {
		m.brokerRecv.Inc()
	}
}

func (m *Metrics) evicted() {
	if m != nil {
		m.evictions.Inc()
	}
}

// cut counts a socket the timekeeper cut, by reason.
func (m *Metrics) cut(reason string) {
	if m != nil {
		m.cuts.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) fanout(since time.Time) {
	if m != nil {
		m.fanoutDuration.Observe(time.Since(since).Seconds())
	}
}

func (m *Metrics) panicked() {
	if m != nil {
		m.panics.Inc()
	}
}

func (m *Metrics) recovery(scope string, recovered bool) {
	if m != nil {
		result := "resync"
		if recovered {
			result = "recovered"
		}
		m.recoveries.WithLabelValues(scope, result).Inc()
	}
}
