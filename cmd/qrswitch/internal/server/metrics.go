package server

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/qrswitch/qrswitch/outcome"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// metrics are the server's Prometheus series, on a registry of its own so
// that several servers can live in one process (tests). Every name starts
// with qrswitch_ and every label is bounded: route templates, methods,
// statuses, partner ids from the configuration, operations, outcomes, Store
// method names, operator actions — never an id of a payment. The series are
// listed, with their meaning, in docs/operations.md.
type metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.HistogramVec
	panics       *prometheus.CounterVec
	outcomes     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	late         *prometheus.CounterVec
	linkDelay    *prometheus.HistogramVec
	storeLatency *prometheus.HistogramVec
	storeErrors  *prometheus.CounterVec
	actions      *prometheus.CounterVec
}

// latencyBuckets suit calls that take from a millisecond to a partner's
// timeout (60 s by default) and a hold's end.
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "qrswitch_http_request_duration_seconds",
			Help:    "Requests to the HTTPS listener by route, method and status, with their duration.",
			Buckets: latencyBuckets,
		}, []string{"route", "method", "status"}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qrswitch_http_panics_total",
			Help: "Handler panics recovered (each answered 500), by route.",
		}, []string{"route"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qrswitch_partner_outcomes_total",
			Help: "Exchanges with partners (pay, confirmPayment, reversePayment) by partner, operation and classified outcome; a timeout counts as unknown.",
		}, []string{"partner", "operation", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "qrswitch_partner_latency_seconds",
			Help:    "Time partners took to answer, by partner and operation; a timeout counts as the partner's timeout.",
			Buckets: latencyBuckets,
		}, []string{"partner", "operation"}),
		late: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qrswitch_partner_late_answers_total",
			Help: "Partner answers that came after the partner's timeout, recorded and ignored, by partner and operation.",
		}, []string{"partner", "operation"}),
		linkDelay: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "qrswitch_scan_link_delay_seconds",
			Help: "Time between a payment request and the scan linked to it: order request_first (the usual: the customer scans a waiting request) " +
				"or scan_first (an early scan held for its request).",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 5, 10, 20, 30, 45, 60, 90, 120},
		}, []string{"order"}),
		storeLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "qrswitch_store_operation_duration_seconds",
			Help:    "Calls of the store by the engine, by Store method, with their duration.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"operation"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qrswitch_store_errors_total",
			Help: "Store calls that failed, by Store method and error: unavailable (the store could not be reached: answers were 503), " +
				"conflict or duplicate (optimistic concurrency at work: retried), other. A record not found is no error.",
		}, []string{"operation", "error"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qrswitch_operator_actions_total",
			Help: "Operator actions carried out through the support API, by action.",
		}, []string{"action"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.panics, m.outcomes, m.latency, m.late, m.linkDelay, m.storeLatency, m.storeErrors, m.actions,
	)
	return m
}

// watch adds the series read from the engine when scraped: requests held
// here, and the store-and-forward queues.
func (m *metrics) watch(e *qrswitch.Engine, log zerolog.Logger) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "qrswitch_requests_held",
			Help: "Payment requests and early scans this process is holding open.",
		}, func() float64 { return float64(e.Held()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "qrswitch_payment_requests_waiting",
			Help: "Payment requests this process is holding open, waiting for their scan or their partner's answer.",
		}, func() float64 { return float64(e.Waiting()) }),
		newSAFCollector(e, log),
	)
}

// Request implements httpapi.Observer.
func (m *metrics) Request(route, method string, status int, took time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Observe(took.Seconds())
}

// Panic implements httpapi.Observer.
func (m *metrics) Panic(route string) { m.panics.WithLabelValues(route).Inc() }

// Exchange implements qrswitch.Observer.
func (m *metrics) Exchange(destination, op string, o outcome.Outcome, latency time.Duration) {
	m.outcomes.WithLabelValues(destination, op, o.String()).Inc()
	m.latency.WithLabelValues(destination, op).Observe(latency.Seconds())
}

// LateAnswer implements qrswitch.Observer.
func (m *metrics) LateAnswer(destination, op string) {
	m.late.WithLabelValues(destination, op).Inc()
}

// ScanLinked implements qrswitch.Observer.
func (m *metrics) ScanLinked(early bool, gap time.Duration) {
	order := "request_first"
	if early {
		order = "scan_first"
	}
	m.linkDelay.WithLabelValues(order).Observe(max(gap, 0).Seconds())
}

// StoreCall implements qrswitch.Observer.
func (m *metrics) StoreCall(method string, took time.Duration, err error) {
	m.storeLatency.WithLabelValues(method).Observe(took.Seconds())
	var kind string
	switch {
	case err == nil, errors.Is(err, qrswitch.ErrNotFound):
		return
	case errors.Is(err, qrswitch.ErrUnavailable):
		kind = "unavailable"
	case errors.Is(err, qrswitch.ErrConflict):
		kind = "conflict"
	case errors.Is(err, qrswitch.ErrDuplicate):
		kind = "duplicate"
	default:
		kind = "other"
	}
	m.storeErrors.WithLabelValues(method, kind).Inc()
}

// OperatorAction implements qrswitch.Observer.
func (m *metrics) OperatorAction(action string) { m.actions.WithLabelValues(action).Inc() }

// safCollector reports the store-and-forward queues. Their figures come
// from the store (shared by every replica: aggregate them with max, not
// sum) and cost a few reads per partner, so they are read at most once
// per safCacheFor whatever the scrape rate; "sending" is this process's own
// and always fresh.
type safCollector struct {
	e   *qrswitch.Engine
	log zerolog.Logger

	mu      sync.Mutex
	at      time.Time
	queues  []qrswitch.PartnerQueue
	lastErr time.Time

	pending, held, dead, oldest, byAttempts, paused, sending *prometheus.Desc
	failures                                                 prometheus.Counter
}

const safCacheFor = 5 * time.Second

// attemptBuckets group pending advices by attempts for the
// qrswitch_saf_pending_by_attempts series: few label values, whatever the
// attempts.
var attemptBuckets = []struct {
	label  string
	lo, hi int
}{{"0", 0, 0}, {"1", 1, 1}, {"2", 2, 2}, {"3-5", 3, 5}, {"6-10", 6, 10}, {"11-20", 11, 20}, {"21+", 21, int(^uint(0) >> 1)}}

func newSAFCollector(e *qrswitch.Engine, log zerolog.Logger) *safCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append([]string{"partner"}, labels...), nil)
	}
	return &safCollector{
		e: e, log: log,
		pending:    d("qrswitch_saf_pending", "Advices queued for the partner (PENDING: due, backing off or being sent), on the shared store."),
		held:       d("qrswitch_saf_held", "Retailer reversals held until their payment's outcome is known."),
		dead:       d("qrswitch_saf_dead_letters", "Advices dead-lettered after give_up_after without a final answer, waiting for an operator."),
		oldest:     d("qrswitch_saf_oldest_age_seconds", "Age of the partner's oldest queued advice (since it was queued or replayed); 0 when none is queued."),
		byAttempts: d("qrswitch_saf_pending_by_attempts", "Queued advices by attempts so far, over the 1000 queued longest.", "attempts"),
		paused:     d("qrswitch_saf_paused", "1 while operators hold the partner's queue paused."),
		sending:    d("qrswitch_saf_sending", "Advices this process is sending to the partner right now."),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qrswitch_saf_stats_errors_total",
			Help: "Scrapes whose store-and-forward figures could not be read from the store (they are left out of that scrape).",
		}),
	}
}

// Describe implements prometheus.Collector.
func (c *safCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.pending, c.held, c.dead, c.oldest, c.byAttempts, c.paused, c.sending} {
		ch <- d
	}
	c.failures.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *safCollector) Collect(ch chan<- prometheus.Metric) {
	queues := c.read()
	now := time.Now()
	for _, q := range queues {
		id := q.Destination
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{id}, labels...)...)
		}
		gauge(c.pending, float64(q.Pending))
		gauge(c.held, float64(q.Held))
		gauge(c.dead, float64(q.Dead))
		age := 0.0
		if q.Pending > 0 && !q.OldestQueuedAt.IsZero() {
			age = max(now.Sub(q.OldestQueuedAt).Seconds(), 0)
		}
		gauge(c.oldest, age)
		for _, b := range attemptBuckets {
			n := 0
			for attempts, count := range q.Attempts {
				if attempts >= b.lo && attempts <= b.hi {
					n += count
				}
			}
			gauge(c.byAttempts, float64(n), b.label)
		}
		paused := 0.0
		if q.Paused {
			paused = 1
		}
		gauge(c.paused, paused)
		gauge(c.sending, float64(c.e.Sending(id)))
	}
	c.failures.Collect(ch)
}

// read returns the queues, from the cache while it is fresh.
func (c *safCollector) read() []qrswitch.PartnerQueue {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) < safCacheFor {
		return c.queues
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	qs, err := c.e.Queues(ctx)
	if err != nil {
		c.failures.Inc()
		if time.Since(c.lastErr) > time.Minute {
			c.lastErr = time.Now()
			c.log.Warn().Err(err).Msg("reading store-and-forward figures for /metrics")
		}
		c.queues, c.at = nil, time.Time{}
		return nil
	}
	c.queues, c.at = qs, time.Now()
	return qs
}
