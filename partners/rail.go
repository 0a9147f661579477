// Package partners owns the seam between the switch's engine and the payment
// rails: the Rail interface every partner adapter implements and the
// optional capabilities the engine finds by type assertion (Offerer,
// Inquirer, Refunder, Deliverer, Surface, Starter, Simulated), the Host a
// rail reports to, the registry rails join by name, and the rail-neutral
// messages that cross the seam (Payment, Advice, Answer, Decline, Record).
//
// One folder per rail: a rail is a package under partners/ that registers a
// Factory in its init function, decodes its own options, and talks to the
// engine only through this package. No rail imports the engine (package
// switch), another rail, or an HTTP surface; cmd links every rail by
// importing partners/rails.
//
// Two kinds of rail meet here. A push rail (Electrum) is told of a scan by
// its partner and then sent the payment (Pay), and its partner answers. A
// pull rail (Open Payments, ILP invoices, a token chain, IPP) offers its own
// merchant-account template on a new QR code (Offerer) and is paid by the
// customer's side on its own protocol; it reports the money to the engine
// (Host.Paid), which links and approves the held payment request in one
// commit. Both kinds receive the retailer's advices (Confirm, Reverse) and
// may be given other kinds of advice (refunds, notifications) through the
// same store-and-forward queue.
//
// A rail never re-sends a payment on its own: once bytes may have left, the
// partner may have acted, so an unknown is resolved by the engine (a status
// inquiry where the rail offers one, else a timeout reversal), never by a
// blind retry.
package partners

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/qr"
)

// Rail sends the upstream operations to one partner. Implementations must
// be safe for concurrent use, honour ctx's deadline on every call, and
// always return a non-nil Answer.
type Rail interface {
	// Pay sends a payment a partner was linked to by its scan. A pull rail,
	// which is never scanned, answers it failed (FUNCTION_NOT_SUPPORTED).
	Pay(ctx context.Context, p *Payment) *Answer
	// Confirm delivers a confirmation advice.
	Confirm(ctx context.Context, a *Advice) *Answer
	// Reverse delivers a reversal advice.
	Reverse(ctx context.Context, a *Advice) *Answer
}

// Payment is a payment as the engine forwards it to the partner that
// scanned its code.
type Payment struct {
	// Key is the engine's key of the payment, stable across retries and
	// processes.
	Key string
	// TranID links the payment to its QR code.
	TranID string
	// Request is the retailer's payment request, as received.
	Request *wire.PaymentRequest
	// Partner is the partner as the interface names it.
	Partner *wire.Institution
	// Token is the partner's payment token from its scan, if any (secret).
	Token string
}

// Advice is one store-and-forward message as a rail or destination is given
// it: a confirmation or reversal for a partner, or another kind of advice
// (a refund, a notification, a postback) built by whoever queued it.
type Advice struct {
	// Kind says what the advice asks (KindConfirmation, KindReversal, …).
	Kind string
	// ID is the advice's message id: the same on every attempt, so a
	// receiver recognises a repeat.
	ID string
	// Sender is the retailer that sent it, or "switch".
	Sender string
	// Key is the engine's key of the advice.
	Key string
	// PaymentKey and TranID name the payment it concerns.
	PaymentKey string
	TranID     string
	// Attempt counts deliveries, 1 for the first.
	Attempt int
	// Confirmation or Reversal is the interface's message, for those kinds.
	Confirmation *wire.PaymentConfirmation
	Reversal     *wire.PaymentReversal
	// Payload is the body of other kinds, as its author built it.
	Payload json.RawMessage
	// Paid is what the payment's rail reported when the money arrived
	// (pull rails), for a reversal or refund that must undo it.
	Paid *Paid
}

// The kinds of advice the engine itself creates. Rails and surfaces may add
// their own (a rail's notification, a web shop's postback); such an advice
// is delivered by its destination's Deliverer.
const (
	KindConfirmation = "confirmation"
	KindReversal     = "reversal"
	KindRefund       = "refund"
	KindNotification = "notification"
	KindPostback     = "postback"
)

// Answer is what one upstream exchange came to, in terms every rail shares.
// The engine reads Outcome and, for a failed payment, Decline; it never
// interprets a rail's protocol status.
type Answer struct {
	// Outcome is the exchange's classified outcome.
	Outcome outcome.Outcome
	// Code is the rail's own code of the answer, for traces, metrics and
	// support: "HTTP 404", "ILP F02", "IPP 804". Empty when nothing came
	// back.
	Code string
	// Response is the partner's approval of a payment (Pay, successful),
	// as the retailer is to see it.
	Response *wire.PaymentResponse
	// Decline is the retailer-facing answer to a failed payment, built by
	// the rail (status and ErrorDetail within what the interface declares
	// for pay). A rail must set it on a failed Pay.
	Decline *wire.Failure
	// Sent is the request as sent and Received the answer as received,
	// both masked by the rail, for the trace.
	Sent, Received []byte
	// Err is the transport or decoding error, if any.
	Err error
	// Latency is the time from sending to the end of the answer.
	Latency time.Duration
}

// Answered reports whether anything came back from the partner.
func (a *Answer) Answered() bool { return a.Code != "" }

// Optional capabilities, found by type assertion on a Rail.

// ShardSafe is a rail that runs on a store spread over shards (Redis
// Cluster, shards=N), where a retailer's payments live apart from other
// retailers' and from records of no retailer: it commits with a QR code or
// a payment only records created with that retailer's code or payment, and
// keeps their Retailer when it writes them again. A rail without records
// is one. On such a store the switch refuses to start any other rail.
type ShardSafe interface {
	ShardSafe() bool
}

// Offerer is a pull rail: it adds its merchant-account template to every
// new QR code offered on it, so that a customer's app that speaks its
// protocol can pay the code. Several rails can share one EMVCo code.
type Offerer interface {
	// Offer returns the rail's template for a new code, with the records
	// and advices to commit with the code (all or nothing). An error
	// leaves the code without this rail's template; ErrNotOffered says the
	// rail does not take this code (a currency it cannot settle, say).
	Offer(ctx context.Context, o *OfferRequest) (*Offer, error)
}

// OfferRequest describes a new QR code to a pull rail.
type OfferRequest struct {
	TranID     string
	RetailerID string
	// Amount is the code's value, if it has one.
	Amount *wire.LedgerAmount
	// Merchant is the originator's merchant, for names on the offer.
	Merchant *wire.Merchant
	// Customer is the createQrCode request's customer object as received,
	// when it named one (a rail may notify the customer's provider).
	Customer json.RawMessage
	// ExpiresAt is when the code expires.
	ExpiresAt time.Time
	// Checkout says the code is a web shop's checkout rather than a till's.
	Checkout bool
	// Now is the engine's clock.
	Now time.Time
}

// Offer is a pull rail's part of a new QR code.
type Offer struct {
	// Accounts are the merchant-account templates to add to the code
	// (usually one).
	Accounts []qr.MerchantAccount
	// Reference is the rail's own name for the offer (an incoming payment
	// URL, an invoice id, an address, a relay), kept on the code.
	Reference string
	// Display is what a checkout page or a POS may show for this offer
	// beside the code (an address, a URI), by name.
	Display map[string]string
	// Records are the rail's own records, committed with the code.
	Records []*Record
	// Advices are queued with the code (a notification to the customer's
	// provider, say), each to this rail's partner.
	Advices []*NewAdvice
}

// ErrNotOffered is an Offerer's way to leave a code without its template.
var ErrNotOffered = errors.New("not offered on this rail")

// NewAdvice is an advice a rail or surface asks the engine to queue.
type NewAdvice struct {
	Kind    string
	ID      string // default: a fresh id
	Payload json.RawMessage
	// Destination is where it goes: "" for the rail's own partner, or a
	// destination registered with the engine (RetailerDestination).
	Destination string
}

// Inquirer resolves an unknown payment outcome by asking the partner
// before the engine falls back to a reversal.
type Inquirer interface {
	// Inquire asks for the outcome of a payment whose Pay ended unknown.
	// A final Outcome settles the payment as if Pay had answered it; an
	// unknown one leaves it to the timeout reversal.
	Inquire(ctx context.Context, p *Payment) *Answer
}

// Refunder undoes money that already arrived on a pull rail: the engine
// gives it the reversal of a payment the rail reported Paid (a reversal of
// a pull payment is a refund). A pull rail without it leaves such a
// reversal held for an operator, visible in the console; it never pretends
// success.
type Refunder interface {
	Refund(ctx context.Context, a *Advice) *Answer
}

// Deliverer delivers advices of kinds other than confirmations and
// reversals: a rail's notifications, a web shop's postbacks. A destination
// that is not a partner (a retailer's endpoint) is a Deliverer alone.
type Deliverer interface {
	Deliver(ctx context.Context, a *Advice) *Answer
}

// Surface is a rail's inbound HTTP: the routes its partner (or the paying
// side of its protocol) calls. The wiring mounts them on the switch's
// HTTPS listener, with request ids and access logs.
type Surface interface {
	Routes() []Route
}

// Route is one inbound HTTP route of a rail.
type Route struct {
	// Method and Path as net/http's ServeMux patterns take them, e.g.
	// "POST", "/qr/v1/scans" or "GET", "/op/{wallet}/incoming-payments/{id}".
	Method, Path string
	// Auth says who authenticates the caller.
	Auth Auth
	// Handler serves the route. With AuthPartner, CallerOf(r.Context())
	// names the authenticated partner.
	Handler http.Handler
}

// Auth says how a route's caller is authenticated.
type Auth int

const (
	// AuthPartner: the wiring admits only partners, by their Basic-auth
	// scan credentials (and client certificate where configured). Several
	// partners of one rail may share a path: the wiring dispatches each
	// request to the rail of the partner that authenticated.
	AuthPartner Auth = iota + 1
	// AuthRail: the protocol defines its own authentication (GNAP and HTTP
	// signatures, bearer tokens, IPP verification); the rail does it.
	AuthRail
)

type callerKey struct{}

// WithCaller returns ctx naming the authenticated partner (the wiring
// calls it for AuthPartner routes).
func WithCaller(ctx context.Context, partnerID string) context.Context {
	return context.WithValue(ctx, callerKey{}, partnerID)
}

// CallerOf returns the partner that authenticated the request, or "".
func CallerOf(ctx context.Context) string {
	s, _ := ctx.Value(callerKey{}).(string)
	return s
}

// SetCause hands the private cause of a failure answer to the wiring, which
// logs it with the request (it is never sent). w is the ResponseWriter a
// route's handler was given.
func SetCause(w http.ResponseWriter, err error) {
	if c, ok := w.(interface{ SetCause(error) }); ok {
		c.SetCause(err)
	}
}

// Currency is a unit a rail settles in that ISO 4217 does not name (a
// chain's token), so that prices can be in it: amounts in it are minor
// units of Exponent decimals, and its Code stands where an ISO 4217 numeric
// code would (never three digits, so the two cannot be confused).
type Currency struct {
	Code     string
	Exponent int
	Name     string
}

// Currencies is a rail that declares the currencies of its own it settles
// in (a token rail: its token), for shops to price in.
type Currencies interface {
	Currencies() []Currency
}

// Starter is a rail that watches something (a chain, an ILP peer) and
// must be started after the engine and closed before it.
type Starter interface {
	// Start starts the rail's background work; it returns once the work is
	// under way. The work ends when ctx ends.
	Start(ctx context.Context) error
	// Close waits for the background work to end and releases the rail.
	Close() error
}

// Simulated is a rail that ships a simulator of its partner side, so that
// the development setup and tests can run every rail without importing
// any simulator by name.
type Simulated interface {
	// Simulator builds the partner-side simulator for this partner.
	Simulator(env SimEnv) (Simulator, error)
}

// SimEnv is what a simulator needs from the switch it plays against.
type SimEnv struct {
	// SwitchURL is the switch's HTTPS base URL; SwitchTLS trusts it.
	SwitchURL string
	SwitchTLS *tls.Config
	// Listen is where the simulator will be served (host:port of the
	// partner's base_url), for URLs it prints.
	Listen string
	// PartnerUsername and PartnerPassword are the credentials the partner
	// presents when it calls the switch (its scan_username and plaintext
	// scan_password: the development setup has them in plaintext).
	PartnerUsername, PartnerPassword string
	// DataDir is a directory the simulator may keep files in.
	DataDir string
	Logger  zerolog.Logger
}

// Simulator is a running partner-side simulator.
type Simulator interface {
	// Handler serves the simulator (the partner's API and its controls).
	Handler() http.Handler
	// Describe names what a person or a test needs to drive it (entry
	// URLs, credentials), for var/dev.json.
	Describe() map[string]any
	// Close stops the simulator's background work.
	Close() error
}

// Host is what a rail may tell the engine. The engine implements it; rails
// are given it in their Config.
type Host interface {
	// Scanned reports a scan notification from the authenticated partner
	// (push rails): nil once linked to the payment request waiting on the
	// code (the partner is answered 202), else the decline to answer.
	Scanned(ctx context.Context, partnerID string, s *wire.ScanNotification, raw []byte) *wire.Failure
	// Paid reports that money for a code offered on the rail arrived (pull
	// rails): the engine links and approves the payment request waiting on
	// the code, and commits p.Records with it, in one commit. On an error
	// nothing was committed: ErrNotWaiting (no payment request can take it
	// any more: the money must be refused or refunded), ErrAmount (not
	// what the code asks), ErrNoRequestYet (paid before the POS's request
	// arrived: report it again shortly), ErrConflict (one of p.Records
	// changed since the rail read it: decide again), or a store error
	// (try again).
	Paid(ctx context.Context, p *Paid) error
	// Seen reports progress short of payment (money on its way, partly
	// received, or taken back by a reorg), recorded on the payment for a
	// checkout's status and the trace.
	Seen(ctx context.Context, s *Seen) error
	// OfferEnded reports that a code's offer can no longer be paid on the
	// rail (failed or expired there), for the trace.
	OfferEnded(ctx context.Context, tranID, partnerID, reason string) error
}

// Paid is a pull rail's report that a code was paid.
type Paid struct {
	PartnerID string
	TranID    string
	// Reference is the rail's name for the money (a transaction hash, an
	// incoming payment, a ledger transfer id), kept for refunds and
	// support.
	Reference string
	// Amount is what arrived, in the code's currency and minor units.
	Amount *wire.LedgerAmount
	// Payer names who paid, where the rail knows (a paying DFSP, a
	// brand); shown as the payment's partner when set.
	Payer *wire.Institution
	// Note is a line for the trace.
	Note string
	// Records are the rail's records to commit with the approval.
	Records []*Record
	// At is when the money arrived (zero: now).
	At time.Time
}

// Seen is a pull rail's report of progress on a code.
type Seen struct {
	PartnerID string
	TranID    string
	// Received is the amount received so far (zero after a reorg took
	// everything back).
	Received  *wire.LedgerAmount
	Reference string
	Note      string
	At        time.Time
}

// Errors of Host.Paid.
var (
	// ErrNotWaiting: no payment request can take the money (none came, it
	// ended, or the code expired).
	ErrNotWaiting = errors.New("no payment request waiting for this code")
	// ErrAmount: the money is not what the code or its payment asks.
	ErrAmount = errors.New("amount does not match the payment")
	// ErrNoRequestYet: the code was paid before its payment request
	// reached the switch (the interface has the POS send it before it
	// shows the code, so this is a race): report it again shortly.
	ErrNoRequestYet = errors.New("no payment request yet")
)

// Config is what a rail is built from: one partner's entry of the
// configuration, its own options still undecoded, and what the switch
// shares with every rail.
type Config struct {
	PartnerID string
	Name      string
	// BaseURL is the partner's base URL, where the rail appends its own
	// paths ("" for rails that need none).
	BaseURL string
	// Username and Password are the Basic-auth credentials the switch
	// presents upstream, where the rail uses them.
	Username, Password string
	// Timeout is the partner's agreed timeout. Default 60 s.
	Timeout time.Duration
	// Options is the partner's `options:` YAML node (nil when absent): the
	// rail decodes it with DecodeOptions, refusing unknown keys.
	Options *yaml.Node
	// Host is the engine, to report to.
	Host Host
	// Records keeps the rail's own state (invoices, transfers, incoming
	// payments, a chain cursor) in the switch's store, shared by every
	// replica and surviving restarts.
	Records Records
	// Transport is the outbound HTTP transport for the partner (its trust
	// and client certificate applied), shared connection pools included.
	Transport http.RoundTripper
	// TLS is the client TLS configuration of Transport, for rails that dial
	// other protocols (WebSocket).
	TLS *tls.Config
	// PublicURL is the switch's own HTTPS base URL as the outside world
	// reaches it (for URLs a rail publishes: invoice and wallet URLs).
	PublicURL string
	// Development says the switch runs the development setup.
	Development bool
	Logger      zerolog.Logger
}

// DecodeOptions decodes a partner's options into v, refusing unknown keys,
// so that a typo in a rail's option fails at start with its line.
func DecodeOptions(n *yaml.Node, v any) error {
	if n == nil {
		return nil
	}
	// Node.Decode has no strict mode: re-encode and decode strictly.
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("options: %w", err)
	}
	return nil
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

// RegisterForTest registers a rail for the life of one test: t.Cleanup
// removes it again.
func RegisterForTest(t interface{ Cleanup(func()) }, name string, f Factory) {
	Register(name, f)
	t.Cleanup(func() {
		registryMu.Lock()
		delete(registry, name)
		registryMu.Unlock()
	})
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

// Every calls sweep at once and then every interval until ctx ends,
// logging a sweep that failed (what it was doing: "rejecting expired
// transfers") as tried again at the next one: the loop of the pull rails'
// sweepers, which run it on their own goroutine from Start. The first
// sweep is at once so that a restart finishes at once what the store holds
// due (an expiry, an execution a crash interrupted).
func Every(ctx context.Context, interval time.Duration, log zerolog.Logger, what string, sweep func(context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := sweep(ctx); err != nil && ctx.Err() == nil {
			log.Warn().Err(err).Msg(what + "; tried again at the next sweep")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Inspector is a rail whose records support staff may read: the kinds it
// shows them, and each record as support should see it — what happened,
// without secrets (a shared secret, a token's hash). The support API lists
// them per partner and kind.
type Inspector interface {
	SupportKinds() []string
	SupportView(ctx context.Context, rec *Record) (any, error)
}
