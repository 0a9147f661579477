// Package load is the switch's load tool: it drives complete QR payment
// flows against a running switch and partner simulator — createQrCode, the
// payment request held for its scan, the simulator's customer app scanning,
// the answer, a confirmation or a void — and measures throughput, errors by
// type, and latency percentiles of every step and of the whole flow from HDR
// histograms. Three more modes measure what users choose a switch for:
//
//   - baseline: the same payment and confirmation sent straight to the
//     simulator, so throughput through the switch is a ratio of the direct
//     path measured in the same run;
//   - recovery: the simulator stops answering, advices queue up, it comes
//     back, and the tool times how long until every advice is final;
//   - hold: many payment requests held open at once, with the switch's
//     memory read from its metrics.
//
// Latency is measured from when a flow was due to start, not from when a
// busy tool got round to it, so a saturated switch shows as latency rather
// than hiding as lower throughput (coordinated omission).
package load

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"
)

// Retailer is a retailer principal of the switch the tool pays as.
type Retailer struct {
	Username, Password string
	InstitutionID      string
}

// Options configure a run. Durations document their defaults.
type Options struct {
	// SwitchURL is the switch's HTTPS base URL. Default https://127.0.0.1:8443.
	SwitchURL string
	// SimURL is the partner simulator's HTTPS base URL. Default
	// https://127.0.0.1:9443.
	SimURL string
	// AdminURL is the switch's admin listener, for metrics (hold mode).
	// Default http://127.0.0.1:9090.
	AdminURL string
	// TLS trusts the switch's and the simulator's certificates.
	TLS *tls.Config
	// Retailers are the credentials to pay as, used round robin. At least one.
	Retailers []Retailer
	// Terminals is the number of terminals per retailer. Default 4.
	Terminals int
	// Rate is the target flows per second (open loop). 0 runs closed loop:
	// Concurrency flows at a time, each starting when one ends.
	Rate float64
	// Concurrency bounds the flows in flight. Default 64.
	Concurrency int
	// Duration is how long flows are measured, after Warmup. Defaults 30 s
	// and 5 s.
	Duration, Warmup time.Duration
	// VoidShare and DeclineShare are the fractions of flows that are voided
	// after approval (a reversal instead of a confirmation) and declined by
	// the partner (amount ending in 51). Defaults 0.
	VoidShare, DeclineShare float64
	// PartnerUsername and PartnerPassword are what the switch presents to
	// the simulator; baseline mode presents them too.
	PartnerUsername, PartnerPassword string
	// Connections is how many connections the tool keeps to each of the
	// switch and the simulator. Default 16 (HTTP/1.1: grows with demand).
	Connections int
	// HTTP2 makes the tool speak HTTP/2 (many flows per connection).
	// POS terminals commonly speak HTTP/1.1 with keep-alive, the default.
	HTTP2 bool
	// Progress receives a line a second; nil is silent.
	Progress io.Writer
	// Seed makes the mix of voids and declines repeatable. 0 = 1.
	Seed int64
	// Baseline first runs the same flows' payment and confirmation straight
	// against the simulator for Duration, and reports the switch's
	// throughput as a ratio of it.
	Baseline bool
	// Processes are other processes on this machine (a redis-server, the
	// simulator) whose CPU per measured flow the report gives, read from
	// /proc/PID/stat, by name.
	Processes map[string]int
}

func (o *Options) defaults() error {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.SwitchURL, "https://127.0.0.1:8443")
	def(&o.SimURL, "https://127.0.0.1:9443")
	def(&o.AdminURL, "http://127.0.0.1:9090")
	if o.Terminals <= 0 {
		o.Terminals = 4
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.Duration <= 0 {
		o.Duration = 30 * time.Second
	}
	if o.Warmup < 0 {
		o.Warmup = 0
	}
	if o.Connections <= 0 {
		o.Connections = 16
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if len(o.Retailers) == 0 {
		return errors.New("load: at least one retailer is needed")
	}
	if o.VoidShare < 0 || o.VoidShare > 1 || o.DeclineShare < 0 || o.DeclineShare > 1 || o.VoidShare+o.DeclineShare > 1 {
		return errors.New("load: void and decline shares must be fractions that add up to at most 1")
	}
	for _, u := range []string{o.SwitchURL, o.SimURL, o.AdminURL} {
		if p, err := url.Parse(u); err != nil || p.Host == "" {
			return fmt.Errorf("load: %q is not a URL", u)
		}
	}
	return nil
}

// clients is a pool of HTTP clients, each with its own transport, so that
// load spreads over several connections even with HTTP/2.
type clients struct {
	cs []*http.Client
	n  atomic.Uint64
}

func newClients(o *Options, timeout time.Duration) *clients {
	pool := &clients{}
	per := max(o.Concurrency/o.Connections, 1) * 2
	for range o.Connections {
		t := &http.Transport{
			TLSClientConfig:     o.TLS.Clone(),
			MaxIdleConns:        per * 2,
			MaxIdleConnsPerHost: per,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
			ForceAttemptHTTP2:   o.HTTP2,
		}
		if !o.HTTP2 {
			t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			t.TLSClientConfig.NextProtos = []string{"http/1.1"}
		}
		pool.cs = append(pool.cs, &http.Client{Transport: t, Timeout: timeout})
	}
	return pool
}

func (c *clients) next() *http.Client {
	return c.cs[c.n.Add(1)%uint64(len(c.cs))]
}

func (c *clients) close() {
	for _, cl := range c.cs {
		cl.CloseIdleConnections()
	}
}
