// Package ilpinvoice is the rail of merchant invoices over SPSP/ILP (seed
// 001): the switch is the merchant's DFSP for its retailers, and customers'
// DFSPs are the ones who pay. For every QR code offered on the rail it
// issues an invoice (the code carries the invoice's URL), notifies the
// customer's DFSP when the POS names the customer (looked up in a central
// directory; the notification is an advice, repeated until final), serves
// the invoice, an SPSP receiver query and a destination-amount quote, and
// keeps a two-phase ledger of the merchants' and the DFSPs' accounts: a
// DFSP prepares a transfer with a PREIMAGE-SHA-256 execution condition and
// an expiry, and executes it with the DER fulfillment; an executed
// transfer that pays an invoice approves the held POS payment, with the
// paying DFSP named as its partner. A reversal after the money arrived is a
// refund transfer back to the paying DFSP's account.
//
// The document leaves most of the protocol "to be filled in"; each
// decision is in docs/ilpinvoice.md. Everything the rail keeps (invoices,
// accounts, transfers) is its records in the switch's store, so the ledger
// survives restarts and is shared by every replica; every change is a
// versioned commit, so concurrent prepares never take an account below
// zero.
//
// On a store spread over shards (redis+cluster://…?shards=N) the rail keeps
// to the shards (partners.ShardSafe): an invoice is its retailer's record,
// committed with the retailer's QR code and, at the approval, with its
// payment and nothing else; the ledger (every account, the merchants' and
// the shared ones — the DFSPs' and the fee account — and every transfer) is
// records of no retailer, in the home slot, each of its moves committed
// alone. Executing a transfer is therefore three steps — fence, approval,
// credit — rather than one commit; ledger.go says how a crash or a race
// between them is resolved. The ledger is not spread: its traffic stays on
// the home slot's master.
package ilpinvoice

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/ilpinvoice/dfspsim"
	"github.com/qrswitch/qrswitch/qr"
)

// Name is the rail's registered name.
const Name = "ilpinvoice"

func init() { partners.Register(Name, New) }

// GUID is the provider id of the rail's merchant-account template: sub-tag
// 01 holds the invoice's URL.
const GUID = "org.interledger.invoice"

// maxInvoiceURL is the longest invoice URL sub-tag 01 of the template can
// hold: 99 characters less the GUID's sub-tag (4 + 23) and 01's own tag
// and length (4).
const maxInvoiceURL = 99 - 4 - len(GUID) - 4

// Options are the rail's own keys (a partner's `options:`).
type Options struct {
	// Currency is the ISO 4217 numeric code of the ledger: invoices are
	// issued for codes in it only. Required.
	Currency string `yaml:"currency"`
	// LedgerPrefix is the ILP address prefix of the merchant ledger (RFC
	// 15), e.g. "g.qrswitch.". Default "test.qrswitch.".
	LedgerPrefix string `yaml:"ledger_prefix"`
	// DirectoryURL is the central directory where a customer's DFSP is
	// looked up (GET {directory_url}/resources?identifier=…&identifierType=…).
	// Default {base_url}/directory when the partner has a base_url (the
	// scheme the partner entry stands for); neither: customers are not
	// notified, they scan the code instead.
	DirectoryURL string `yaml:"directory_url"`
	// IdentifierType is the directory's identifier type. Default "eur" (the
	// document's example).
	IdentifierType string `yaml:"identifier_type"`
	// FeeFixed (a decimal in the ledger's currency) and FeeBPS (basis
	// points of the destination amount) make a quote's source amount.
	// Default none.
	FeeFixed string `yaml:"fee_fixed"`
	FeeBPS   int64  `yaml:"fee_bps"`
	// MaxTransferLife bounds a prepared transfer's expiry. Default 5m.
	MaxTransferLife time.Duration `yaml:"max_transfer_life"`
	// SweepInterval is how often expired prepared transfers are rejected
	// and executions a crash interrupted are finished. Default 1s.
	SweepInterval time.Duration `yaml:"sweep_interval"`
	// DFSPs are the customers' DFSPs that pay invoices: each has an
	// account in the ledger and credentials for the ledger's API.
	DFSPs []DFSP `yaml:"dfsps"`
}

// DFSP is a customer's DFSP as the merchant ledger knows it.
type DFSP struct {
	// ID names the DFSP (the partner the POS sees when it pays).
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	// Account is its settlement account in the ledger (default its id),
	// opened with Balance (a decimal; default 0): it is debited for the
	// invoices it pays and never goes below zero.
	Account string `yaml:"account"`
	Balance string `yaml:"balance"`
	// Username and PasswordHash (bcrypt; Password in development) are the
	// Basic-auth credentials it calls the ledger with.
	Username     string `yaml:"username"`
	PasswordHash string `yaml:"password_hash"`
	Password     string `yaml:"password"`
}

// Rail is the merchant DFSP for one partner entry.
type Rail struct {
	id, name string
	opts     Options
	exp      int    // the ledger currency's exponent
	alpha    string // its alphabetic code
	fee      int64  // fixed fee, minor units
	base     string // the switch's public URL of the rail: {public}/ilpinvoice/{partner}
	host     partners.Host
	records  partners.Records
	client   *http.Client
	log      zerolog.Logger
	now      func() time.Time
	dev      bool

	dfsps  map[string]*dfsp // by username
	byID   map[string]*dfsp
	authMu sync.Mutex
	authOK map[[sha256.Size]byte]string // verified credentials → DFSP id

	stop context.CancelFunc
	done chan struct{}
}

type dfsp struct {
	DFSP
	hash []byte
}

// New builds the rail for one partner.
func New(c partners.Config) (partners.Rail, error) {
	var o Options
	if err := partners.DecodeOptions(c.Options, &o); err != nil {
		return nil, err
	}
	exp, ok := qr.CurrencyExponent(o.Currency)
	if !ok {
		return nil, fmt.Errorf("options.currency %q: want an ISO 4217 numeric code", o.Currency)
	}
	alpha, _ := qr.CurrencyAlpha(o.Currency)
	if o.LedgerPrefix == "" {
		o.LedgerPrefix = "test.qrswitch."
	}
	if !strings.HasSuffix(o.LedgerPrefix, ".") || !validAddress(strings.TrimSuffix(o.LedgerPrefix, ".")) {
		return nil, fmt.Errorf("options.ledger_prefix %q: want an ILP address prefix ending in a dot, such as g.qrswitch.", o.LedgerPrefix)
	}
	if o.IdentifierType == "" {
		o.IdentifierType = "eur"
	}
	if o.MaxTransferLife <= 0 {
		o.MaxTransferLife = 5 * time.Minute
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = time.Second
	}
	if o.DirectoryURL == "" && c.BaseURL != "" {
		o.DirectoryURL = strings.TrimRight(c.BaseURL, "/") + "/directory"
	}
	if o.DirectoryURL != "" {
		if u, err := url.Parse(o.DirectoryURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("options.directory_url %q: want an http(s) URL", o.DirectoryURL)
		}
	}
	var fee int64
	if o.FeeFixed != "" {
		f, err := parseMoney(o.FeeFixed, exp)
		if err != nil || f < 0 {
			return nil, fmt.Errorf("options.fee_fixed %q: want a decimal amount", o.FeeFixed)
		}
		fee = f
	}
	if o.FeeBPS < 0 || o.FeeBPS > 10_000 {
		return nil, fmt.Errorf("options.fee_bps %d: want 0 to 10000", o.FeeBPS)
	}
	transport := c.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	r := &Rail{
		id: c.PartnerID, name: c.Name, opts: o, exp: exp, alpha: alpha, fee: fee,
		base: strings.TrimRight(c.PublicURL, "/") + "/ilpinvoice/" + c.PartnerID,
		host: c.Host, records: c.Records, log: c.Logger, now: time.Now, dev: c.Development,
		client: &http.Client{Transport: transport, Timeout: c.Timeout + 30*time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		dfsps: map[string]*dfsp{}, byID: map[string]*dfsp{}, authOK: map[[sha256.Size]byte]string{},
	}
	if n := len(r.invoiceURL(newInvoiceID())); n > maxInvoiceURL {
		return nil, fmt.Errorf("the invoice URLs %s/invoice/… would be %d characters, and a QR code's merchant-account template holds %d: shorten public_url or the partner id", r.base, n, maxInvoiceURL)
	}
	for i, d := range o.DFSPs {
		if d.ID == "" || d.Username == "" {
			return nil, fmt.Errorf("options.dfsps[%d]: id and username are required", i)
		}
		if d.Account == "" {
			d.Account = d.ID
		}
		if !validName(d.Account) {
			return nil, fmt.Errorf("options.dfsps[%d].account %q: letters, digits, '.', '_' and '-' only", i, d.Account)
		}
		if d.Balance == "" {
			d.Balance = "0"
		}
		if _, err := parseMoney(d.Balance, exp); err != nil {
			return nil, fmt.Errorf("options.dfsps[%d].balance %q: want a decimal amount", i, d.Balance)
		}
		var hash []byte
		switch {
		case d.PasswordHash != "":
			hash = []byte(d.PasswordHash)
		case d.Password != "" && c.Development:
			h, err := bcrypt.GenerateFromPassword([]byte(d.Password), bcrypt.MinCost)
			if err != nil {
				return nil, err
			}
			hash = h
		case d.Password != "":
			return nil, fmt.Errorf("options.dfsps[%d].password: plaintext passwords are refused in production: set password_hash", i)
		default:
			return nil, fmt.Errorf("options.dfsps[%d].password_hash: required", i)
		}
		if _, dup := r.dfsps[d.Username]; dup {
			return nil, fmt.Errorf("options.dfsps[%d].username %q used twice", i, d.Username)
		}
		if _, dup := r.byID[d.ID]; dup {
			return nil, fmt.Errorf("options.dfsps[%d].id %q used twice", i, d.ID)
		}
		r.opts.DFSPs[i] = d // with its defaults
		x := &dfsp{DFSP: d, hash: hash}
		r.dfsps[d.Username], r.byID[d.ID] = x, x
	}
	return r, nil
}

// authenticate returns the DFSP whose Basic-auth credentials r carries.
// bcrypt is paid once per distinct credentials; a wrong password costs it
// every time.
func (r *Rail) authenticate(req *http.Request) (*dfsp, bool) {
	user, pass, ok := req.BasicAuth()
	if !ok {
		return nil, false
	}
	key := sha256.Sum256([]byte(user + "\x00" + pass))
	r.authMu.Lock()
	id, cached := r.authOK[key]
	r.authMu.Unlock()
	if cached {
		return r.byID[id], true
	}
	d, known := r.dfsps[user]
	if !known {
		bcrypt.CompareHashAndPassword([]byte("$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z8mNMyFpFajZ4oSKnU4sVmsa"), []byte(pass))
		return nil, false
	}
	if bcrypt.CompareHashAndPassword(d.hash, []byte(pass)) != nil {
		return nil, false
	}
	r.authMu.Lock()
	r.authOK[key] = d.ID
	r.authMu.Unlock()
	return d, true
}

// Pay declines: nobody scans for this rail; customers' DFSPs pay invoices.
func (r *Rail) Pay(_ context.Context, p *partners.Payment) *partners.Answer {
	return &partners.Answer{Outcome: outcome.Failed, Err: fmt.Errorf("the invoice rail takes no scans: %w", outcome.ErrNotSent),
		Decline: wire.Fail(400, wire.FunctionNotSupported, "Not payable by scan", p.Request.ID, p.TranID)}
}

// Confirm closes the invoice the payment paid: nothing is sent anywhere.
func (r *Rail) Confirm(ctx context.Context, a *partners.Advice) *partners.Answer {
	start := time.Now()
	err := r.closeInvoice(ctx, a.TranID)
	ans := &partners.Answer{Outcome: outcome.Successful, Code: "LEDGER closed", Latency: time.Since(start)}
	if err != nil {
		ans.Outcome, ans.Code, ans.Err = outcome.Unknown, "", err
	}
	return ans
}

// Reverse is never asked of this rail for money that arrived (that is a
// Refund); for a payment it never saw, there is nothing to undo.
func (r *Rail) Reverse(context.Context, *partners.Advice) *partners.Answer {
	return &partners.Answer{Outcome: outcome.Successful, Code: "LEDGER nothing to reverse"}
}

// Routes is the rail's surface, under /ilpinvoice/{partner}: the invoice
// and receiver queries and the quote (public: an invoice URL is what a
// customer's DFSP is given), and the ledger's API (its DFSPs, by Basic
// auth, checked by the rail).
func (r *Rail) Routes() []partners.Route {
	p := "/ilpinvoice/" + r.id
	route := func(method, path string, h http.HandlerFunc) partners.Route {
		return partners.Route{Method: method, Path: p + path, Auth: partners.AuthRail, Handler: h}
	}
	return []partners.Route{
		route(http.MethodGet, "/invoice/{id}", r.getInvoice),
		route(http.MethodGet, "/receivers/{id}", r.getReceiver),
		route(http.MethodGet, "/quoteDestinationAmount", r.quote),
		route(http.MethodPut, "/ledger/transfers/{id}", r.putTransfer),
		route(http.MethodGet, "/ledger/transfers/{id}", r.getTransfer),
		route(http.MethodPut, "/ledger/transfers/{id}/fulfillment", r.putFulfillment),
		route(http.MethodGet, "/ledger/transfers/{id}/fulfillment", r.getFulfillment),
		route(http.MethodGet, "/ledger/accounts/{name}", r.getAccount),
	}
}

// Start runs the sweeper that rejects prepared transfers past their expiry
// and releases their funds, and finishes the execution of transfers a
// crash interrupted: once at start, then every sweep_interval.
func (r *Rail) Start(ctx context.Context) error {
	if err := r.openAccounts(ctx); err != nil {
		return err
	}
	ctx, r.stop = context.WithCancel(ctx)
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		partners.Every(ctx, r.opts.SweepInterval, r.log, "sweeping the ledger's transfers (expired, executing)", r.Sweep)
	}()
	return nil
}

// ShardSafe: the rail runs on a store spread over shards. The invoice is
// the only record it commits with a QR code or a payment, and it is the
// retailer's (created with its code, written again only as read back);
// the ledger's records are of no retailer and committed alone, so a
// payment's approval never joins them (the three steps of an execution in
// ledger.go). See partners.ShardSafe and docs/redis-cluster.md.
func (r *Rail) ShardSafe() bool { return true }

// Close stops the sweeper.
func (r *Rail) Close() error {
	if r.stop != nil {
		r.stop()
		<-r.done
	}
	return nil
}

// Simulator builds the directory and the customers' DFSPs: every DFSP
// whose password is in the options (the development setup) is played.
func (r *Rail) Simulator(env partners.SimEnv) (partners.Simulator, error) {
	var ds []dfspsim.DFSP
	for _, d := range r.opts.DFSPs {
		if d.Password != "" {
			ds = append(ds, dfspsim.DFSP{ID: d.ID, Name: d.Name, Username: d.Username, Password: d.Password, Account: d.Account})
		}
	}
	if len(ds) == 0 {
		return nil, errors.New("the simulator plays DFSPs whose password is in the options: none is")
	}
	base := "https://" + env.Listen
	ledger := strings.TrimRight(env.SwitchURL, "/") + "/ilpinvoice/" + r.id
	return &simulator{Sim: dfspsim.New(dfspsim.Config{LedgerURL: ledger, SwitchTLS: env.SwitchTLS, BaseURL: base, DFSPs: ds}), base: base, first: ds[0].ID}, nil
}

type simulator struct {
	*dfspsim.Sim
	base, first string
}

func (s *simulator) Close() error { s.Sim.Close(); return nil }
func (s *simulator) Describe() map[string]any {
	return map[string]any{
		"url":       s.base,
		"directory": s.base + "/directory/resources",
		"invoices":  s.base + "/sim/v1/dfsps/" + s.first + "/invoices",
		"pay":       s.base + "/sim/v1/pay",
		"ledger":    s.base + "/sim/v1/ledger",
		"faults":    s.base + "/sim/v1/faults",
		"reset":     s.base + "/sim/v1/reset",
	}
}

// Interface guards
var (
	_ partners.Rail      = (*Rail)(nil)
	_ partners.Offerer   = (*Rail)(nil)
	_ partners.Refunder  = (*Rail)(nil)
	_ partners.Deliverer = (*Rail)(nil)
	_ partners.Surface   = (*Rail)(nil)
	_ partners.Starter   = (*Rail)(nil)
	_ partners.Simulated = (*Rail)(nil)
	_ partners.ShardSafe = (*Rail)(nil)
)
