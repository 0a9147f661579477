// Package openpayments is the rail of seed 000: the switch as its
// retailers' Open Payments account servicing entity. Every retailer named
// in the options has a wallet address the switch serves (the wallet
// address document and its jwks.json), and the switch is the resource
// server of those wallet addresses: incoming payments (create, get in full
// and in public, list with cursors, complete), each with a unique ILP
// address and STREAM shared secret, paid over ILP-over-HTTP by the rail's
// ILP peers. A QR code offered on the rail carries the URL of an incoming
// payment created for its amount; when that incoming payment completes the
// held POS payment request is approved through Host.Paid.
//
// Credentials are derived, not stored: the ILP address of an incoming
// payment carries an encrypted token naming it (stream.Server), and the
// shared secret is an HMAC of that token under the rail's server secret,
// so a Prepare is matched to its incoming payment by decryption alone and
// no table of secrets can be lost. Everything else the rail keeps
// (incoming payments, the packets credited to them) is its records in the
// switch's store, so a credit is durable before a Prepare is fulfilled and
// every replica answers alike. Decisions where the specifications are
// silent are in docs/openpayments.md.
package openpayments

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/ilp"
	"github.com/qrswitch/qrswitch/partners/ilp/ilphttp"
	"github.com/qrswitch/qrswitch/partners/ilp/stream"
)

// Name is the rail's registered name.
const Name = "openpayments"

func init() { partners.Register(Name, New) }

// GUID is the provider id of the rail's merchant-account template: sub-tag
// 01 holds the incoming payment's URL. It is short on purpose: an EMVCo
// template holds 99 characters in all.
const GUID = "openpayments"

// maxTemplate is the most an EMVCo merchant-account template may hold.
const maxTemplate = 99

// Options are the rail's own keys (a partner's `options:`).
type Options struct {
	// Path is where the rail's routes are mounted on the switch's public
	// URL: wallet addresses are {public_url}{path}/{wallet}, the resource
	// server is {public_url}{path}. Default "/op".
	Path string `yaml:"path"`
	// ILPAddress is the ILP address (RFC 15) under which incoming payments'
	// addresses are issued. Default "test.qrswitch".
	ILPAddress string `yaml:"ilp_address"`
	// StreamSecret is the 32-octet server secret (base64) the STREAM
	// credentials are derived from. Required in production; the
	// development setup derives one from the partner id. Changing it makes
	// every issued address unpayable.
	StreamSecret string `yaml:"stream_secret"`
	// AuthServer is the URL published as the wallet addresses'
	// authServer. Default {public_url}{path}/auth.
	AuthServer string `yaml:"auth_server"`
	// Wallets are the retailers' wallet addresses.
	Wallets []Wallet `yaml:"wallets"`
	// QuoteTTL is how long a quote may be acted on (capped by its
	// receiver's expiry). Default 5m.
	QuoteTTL time.Duration `yaml:"quote_ttl"`
	// SweepInterval is how often codes' incoming payments that expired
	// unpaid are looked for, to report their offers ended. Default 1s.
	SweepInterval time.Duration `yaml:"sweep_interval"`
	// Rates is the rate table quotes pin their exchange rate from.
	Rates []Rate `yaml:"rates"`
	// Upstream is the ILP peer outgoing payments are settled through;
	// without it outgoing payments fail.
	Upstream Upstream `yaml:"upstream"`
	// Peers are the ILP peers allowed to send Prepares to {path}/ilp, each
	// by its bearer token.
	Peers []Peer `yaml:"peers"`
	// GNAP is the authorisation server's policy.
	GNAP GNAPOptions `yaml:"gnap"`
}

// Wallet is one retailer's wallet address.
type Wallet struct {
	// Retailer is the retailer id whose QR codes are paid to this wallet.
	Retailer string `yaml:"retailer"`
	// Name is the wallet address's path segment ({path}/{name}). Default
	// the retailer id.
	Name string `yaml:"name"`
	// PublicName is shown to payers. Default the name.
	PublicName string `yaml:"public_name"`
	// AssetCode (ISO 4217 alphabetic, e.g. "USD") and AssetScale (decimal
	// places of the amounts) are the wallet's asset. Required.
	AssetCode  string `yaml:"asset_code"`
	AssetScale uint8  `yaml:"asset_scale"`
	// FeeFixed (smallest units of the asset) and FeeBPS (basis points of
	// the amount sent) are what the wallet's outgoing payments pay on top
	// of what they send. Default none.
	FeeFixed uint64 `yaml:"fee_fixed"`
	FeeBPS   uint32 `yaml:"fee_bps"`
}

// Peer is an ILP peer of the rail.
type Peer struct {
	// Name identifies the peer in logs.
	Name string `yaml:"name"`
	// Token is the bearer token it presents on ILP-over-HTTP. Required.
	Token string `yaml:"token"`
	// Address, AssetCode and AssetScale answer its IL-DCP request; an
	// empty address refuses IL-DCP.
	Address    string `yaml:"address"`
	AssetCode  string `yaml:"asset_code"`
	AssetScale uint8  `yaml:"asset_scale"`
}

// reserved are path segments of the resource server a wallet may not take.
var reserved = map[string]bool{"incoming-payments": true, "outgoing-payments": true, "quotes": true, "ilp": true, "auth": true, "jwks.json": true}

// Rail is the Open Payments resource server for one partner entry.
type Rail struct {
	id       string
	opts     Options
	base     string // {public_url}{path}
	path     string
	auth     string
	wallets  map[string]*Wallet // by name
	byShop   map[string]*Wallet // by retailer id
	creds    *stream.Server
	address  ilp.Address
	receiver *stream.Receiver
	ilp      *ilphttp.Handler
	host     partners.Host
	records  partners.Records
	log      zerolog.Logger
	now      func() time.Time // reads clock
	clock    atomic.Pointer[func() time.Time]
	// verify admits a request to a protected route: gnapVerify (tests of
	// the resource server alone stand another in).
	verify func(r *http.Request, need Access) (*Grant, error)

	upstream *ilphttp.Client
	keys     *keySets // clients' jwks.json
	bgMu     sync.Mutex
	bgCtx    context.Context
	bgStop   context.CancelFunc
	bg       sync.WaitGroup
	sweeping bool
}

// Access is what a protected route needs of a grant: a resource type
// (incoming-payment, quote, outgoing-payment), the actions any of which
// suffices, and the wallet address URL it concerns.
type Access struct {
	Type       string
	Actions    []string
	Identifier string
}

// Grant is what a verified request was granted.
type Grant struct {
	// Client identifies the client (its wallet address).
	Client string
	// Actions are the granted actions of the needed type.
	Actions []string
}

// Errors of authorisation.
var (
	// ErrUnauthorized: no valid token or signature (401).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: the grant does not cover the request (403).
	ErrForbidden = errors.New("forbidden")
)

// New builds the rail for one partner.
func New(c partners.Config) (partners.Rail, error) {
	var o Options
	if err := partners.DecodeOptions(c.Options, &o); err != nil {
		return nil, err
	}
	if o.Path == "" {
		o.Path = "/op"
	}
	if !strings.HasPrefix(o.Path, "/") || strings.HasSuffix(o.Path, "/") || strings.ContainsAny(o.Path, "{}? ") {
		return nil, fmt.Errorf("options.path %q: want an absolute path without a trailing slash, such as /op", o.Path)
	}
	if o.ILPAddress == "" {
		o.ILPAddress = "test.qrswitch"
	}
	addr, err := ilp.ParseAddress(o.ILPAddress)
	if err != nil {
		return nil, fmt.Errorf("options.ilp_address %q: %w", o.ILPAddress, err)
	}
	var secret []byte
	switch {
	case o.StreamSecret != "":
		secret, err = base64.StdEncoding.DecodeString(o.StreamSecret)
		if err != nil || len(secret) != 32 {
			return nil, fmt.Errorf("options.stream_secret: want 32 octets in base64")
		}
	case c.Development:
		s := sha256.Sum256([]byte("qrswitch development stream secret " + c.PartnerID))
		secret = s[:]
	default:
		return nil, errors.New("options.stream_secret: required in production (32 random octets, base64)")
	}
	creds, err := stream.NewServer(addr, secret)
	if err != nil {
		return nil, fmt.Errorf("options.stream_secret: %w", err)
	}
	base := strings.TrimRight(c.PublicURL, "/") + o.Path
	if o.AuthServer == "" {
		o.AuthServer = base + "/auth"
	}
	r := &Rail{
		id: c.PartnerID, opts: o, base: base, path: o.Path, auth: o.AuthServer,
		wallets: map[string]*Wallet{}, byShop: map[string]*Wallet{}, creds: creds, address: addr,
		receiver: &stream.Receiver{Address: addr},
		host:     c.Host, records: c.Records, log: c.Logger,
	}
	r.verify = r.gnapVerify
	clock := time.Now
	r.clock.Store(&clock)
	r.now = func() time.Time { return (*r.clock.Load())() }
	r.receiver.Now = r.now
	r.bgCtx, r.bgStop = context.WithCancel(context.Background())
	if o.QuoteTTL <= 0 {
		r.opts.QuoteTTL = 5 * time.Minute
	}
	if o.SweepInterval <= 0 {
		r.opts.SweepInterval = time.Second
	}
	if o.Upstream.Timeout <= 0 {
		r.opts.Upstream.Timeout = 30 * time.Second
	}
	if r.upstream, err = newUpstream(r.opts.Upstream, c.Transport); err != nil {
		return nil, err
	}
	if err := r.gnapDefaults(c.Development); err != nil {
		return nil, err
	}
	keyTransport := c.Transport
	if !r.opts.GNAP.PrivateClients && !c.Development {
		keyTransport = partners.PublicOnly(c.Transport)
	}
	keyClient := &http.Client{Timeout: 10 * time.Second, Transport: keyTransport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r.keys = &keySets{client: keyClient}
	for i := range o.Wallets {
		w := &o.Wallets[i]
		if w.Retailer == "" {
			return nil, fmt.Errorf("options.wallets[%d].retailer: required", i)
		}
		if w.Name == "" {
			w.Name = w.Retailer
		}
		if !validSegment(w.Name) || reserved[w.Name] {
			return nil, fmt.Errorf("options.wallets[%d].name %q: letters, digits, '.', '_', '-' and not a resource server path", i, w.Name)
		}
		if w.PublicName == "" {
			w.PublicName = w.Name
		}
		if len(w.AssetCode) < 3 || strings.ToUpper(w.AssetCode) != w.AssetCode {
			return nil, fmt.Errorf("options.wallets[%d].asset_code %q: want an upper-case asset code such as USD", i, w.AssetCode)
		}
		if w.FeeBPS > 10_000 {
			return nil, fmt.Errorf("options.wallets[%d].fee_bps %d: want 0 to 10000", i, w.FeeBPS)
		}
		if _, dup := r.wallets[w.Name]; dup {
			return nil, fmt.Errorf("options.wallets[%d].name %q used twice", i, w.Name)
		}
		if _, dup := r.byShop[w.Retailer]; dup {
			return nil, fmt.Errorf("options.wallets[%d].retailer %q has two wallets", i, w.Retailer)
		}
		r.wallets[w.Name], r.byShop[w.Retailer] = w, w
	}
	// A QR code's template carries an incoming payment's URL: check now
	// that it fits rather than when the first code is made.
	if n := templateLen(r.incomingURL(newID(time.Now()))); n > maxTemplate {
		return nil, fmt.Errorf("the incoming payment URLs under %s make a %d-character QR template, more than %d: shorten public_url or options.path", base, n, maxTemplate)
	}
	peers := make([]ilphttp.Peer, 0, len(o.Peers))
	for i, p := range o.Peers {
		if p.Token == "" {
			return nil, fmt.Errorf("options.peers[%d].token: required", i)
		}
		if p.Name == "" {
			p.Name = fmt.Sprintf("peer%d", i+1)
		}
		pa := ilp.Address(p.Address)
		if p.Address != "" && !pa.Valid() {
			return nil, fmt.Errorf("options.peers[%d].address %q: not an ILP address", i, p.Address)
		}
		peers = append(peers, ilphttp.Peer{Name: p.Name, Token: p.Token, Address: pa, AssetCode: p.AssetCode, AssetScale: p.AssetScale})
	}
	r.ilp = &ilphttp.Handler{Peers: peers, Address: addr, Handle: r.handlePrepare,
		OnError: func(req *http.Request, err error) { r.log.Warn().Err(err).Msg("answering an ILP prepare") }}
	return r, nil
}

// templateLen is the length of the rail's template carrying u.
func templateLen(u string) int { return 4 + len(GUID) + 4 + len(u) }

func validSegment(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Pay declines: nobody scans for this rail; payers pay incoming payments.
func (r *Rail) Pay(_ context.Context, p *partners.Payment) *partners.Answer {
	return &partners.Answer{Outcome: outcome.Failed, Err: fmt.Errorf("the Open Payments rail takes no scans: %w", outcome.ErrNotSent),
		Decline: wire.Fail(400, wire.FunctionNotSupported, "Not payable by scan", p.Request.ID, p.TranID)}
}

// Confirm has nothing to send: the incoming payment completed already.
func (r *Rail) Confirm(context.Context, *partners.Advice) *partners.Answer {
	return &partners.Answer{Outcome: outcome.Successful, Code: "OP completed"}
}

// Reverse has nothing to undo for a payment the rail never received.
func (r *Rail) Reverse(context.Context, *partners.Advice) *partners.Answer {
	return &partners.Answer{Outcome: outcome.Successful, Code: "OP nothing to reverse"}
}

// Routes is the rail's surface under options.path: the wallet address
// documents and keys (public), the incoming payments (GNAP-protected
// except the public form of one), and the ILP-over-HTTP endpoint (bearer
// token per peer). The rail authenticates every route itself.
func (r *Rail) Routes() []partners.Route {
	route := func(method, path string, h http.Handler) partners.Route {
		return partners.Route{Method: method, Path: r.path + path, Auth: partners.AuthRail, Handler: h}
	}
	signed := func(method, path string, h http.HandlerFunc) partners.Route { return route(method, path, keepBody(h)) }
	return []partners.Route{
		route(http.MethodPost, "/auth", http.HandlerFunc(r.requestGrant)),
		route(http.MethodPost, "/auth/continue/{id}", http.HandlerFunc(r.continueGrant)),
		route(http.MethodDelete, "/auth/continue/{id}", http.HandlerFunc(r.revokeGrant)),
		route(http.MethodPost, "/auth/token/{id}", http.HandlerFunc(r.rotateToken)),
		route(http.MethodDelete, "/auth/token/{id}", http.HandlerFunc(r.revokeToken)),
		route(http.MethodGet, "/{wallet}", http.HandlerFunc(r.getWallet)),
		// One pattern for every wallet sub-document: "/{wallet}/jwks.json"
		// would conflict with "/incoming-payments/{id}" in net/http.
		route(http.MethodGet, "/{wallet}/{doc}", http.HandlerFunc(r.getJWKS)),
		signed(http.MethodPost, "/incoming-payments", r.createIncoming),
		signed(http.MethodGet, "/incoming-payments", r.listIncoming),
		signed(http.MethodGet, "/incoming-payments/{id}", r.getIncoming),
		signed(http.MethodPost, "/incoming-payments/{id}/complete", r.completeIncoming),
		signed(http.MethodPost, "/quotes", r.createQuote),
		signed(http.MethodGet, "/quotes/{id}", r.getQuote),
		signed(http.MethodPost, "/outgoing-payments", r.createOutgoing),
		signed(http.MethodGet, "/outgoing-payments", r.listOutgoing),
		signed(http.MethodGet, "/outgoing-payments/{id}", r.getOutgoing),
		route(http.MethodPost, "/ilp", r.ilp),
	}
}

// Interface guards
var (
	_ partners.Rail    = (*Rail)(nil)
	_ partners.Offerer = (*Rail)(nil)
	_ partners.Surface = (*Rail)(nil)
	_ partners.Starter = (*Rail)(nil)
)
