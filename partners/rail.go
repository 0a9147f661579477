// Package partners owns how the switch reaches payment partners: the Rail
// interface every partner adapter implements, the registry rails join by
// name, and the partner directory built from configuration. The HTTP handler
// partners call to notify scans lives in package partners/scanapi; each rail
// lives in its own sub-package (partners/electrum first).
//
// A rail never interprets HTTP statuses itself beyond calling
// outcome.Classify, and never re-sends a payment on its own: once bytes may
// have left, the partner may have acted, so an unknown is resolved by the
// engine (timeout reversal), never by a blind retry.
package partners

import (
	"context"
	"crypto/tls"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
)

// Rail sends the interface's upstream operations to one partner.
// Implementations must be safe for concurrent use, honour ctx's deadline on
// every call, and always return a non-nil Answer.
type Rail interface {
	Pay(ctx context.Context, req *wire.PaymentRequest) *Answer
	Confirm(ctx context.Context, adv *wire.PaymentConfirmation) *Answer
	Reverse(ctx context.Context, adv *wire.PaymentReversal) *Answer
}

// Answer is what one upstream exchange came to.
type Answer struct {
	// Outcome is outcome.Classify of the exchange.
	Outcome outcome.Outcome
	// Status is the HTTP status received, 0 when none arrived.
	Status int
	// Response is the partner's approval of a payment (Pay, successful).
	Response *wire.PaymentResponse
	// Error is the partner's ErrorDetail when it sent a valid one.
	Error *wire.ErrorDetail
	// Sent is the request body as sent and Body the answer body as received;
	// both raw (callers mask them before tracing).
	Sent []byte
	Body []byte
	// Err is the transport or decoding error, if any.
	Err error
	// Latency is the time from sending to the end of the answer.
	Latency time.Duration
}

// Config is what a rail is built from: one partner's entry of the
// configuration, with its TLS trust already loaded.
type Config struct {
	PartnerID string
	Name      string
	BaseURL   string        // the rail appends its own paths
	Username  string        // Basic auth the switch presents upstream
	Password  string        // secret
	TLS       *tls.Config   // trust (and client certificate) for the partner
	Timeout   time.Duration // the partner's agreed timeout; default 60 s
}

// Factory builds a rail for one partner.
type Factory func(Config) (Rail, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Register makes a rail available by name. It is meant to be called from an
// init function; it panics on an empty name, a nil factory or a name already
// taken, since either is a programming error that must not reach production.
func Register(name string, f Factory) {
	if name == "" || f == nil {
		panic("partners: Register needs a name and a factory")
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("partners: rail " + name + " registered twice")
	}
	registry[name] = f
}

// Rails returns the names of the registered rails, sorted.
func Rails() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// New builds the rail called name for one partner.
func New(name string, c Config) (Rail, error) {
	registryMu.RLock()
	f, ok := registry[name]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("partner %s: unknown rail %q (have %v)", c.PartnerID, name, Rails())
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	r, err := f(c)
	if err != nil {
		return nil, fmt.Errorf("partner %s: building rail %s: %w", c.PartnerID, name, err)
	}
	return r, nil
}

// DefaultTimeout is the interface's timeout unless a partner agreed another.
const DefaultTimeout = 60 * time.Second

// Partner is one partner as the engine sees it.
type Partner struct {
	ID      string
	Name    string
	Timeout time.Duration
	Rail    Rail
}

// Institution returns the partner as the interface's Institution.
func (p *Partner) Institution() *wire.Institution {
	return &wire.Institution{ID: p.ID, Name: p.Name}
}
