package server

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// metrics are the server's Prometheus series, on a registry of its own so
// that several servers can live in one process (tests).
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.HistogramVec
	panics   *prometheus.CounterVec
}

func newMetrics(e *qrswitch.Engine) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "qrswitch_http_request_duration_seconds",
			Help:    "Requests to the HTTPS listener by route, method and status, with their duration.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"route", "method", "status"}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qrswitch_http_panics_total",
			Help: "Handler panics recovered (each answered 500), by route.",
		}, []string{"route"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.panics,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "qrswitch_requests_held",
			Help: "Payment requests and early scans this process is holding open.",
		}, func() float64 { return float64(e.Held()) }),
	)
	return m
}

// Request implements httpapi.Observer.
func (m *metrics) Request(route, method string, status int, took time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Observe(took.Seconds())
}

// Panic implements httpapi.Observer.
func (m *metrics) Panic(route string) { m.panics.WithLabelValues(route).Inc() }
