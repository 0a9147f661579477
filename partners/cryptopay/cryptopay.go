// Package cryptopay is the rail of ERC-20 token payments on an EVM chain
// (seed 003's payment side): a pull rail that offers, on every QR code and
// web-shop checkout priced in its token, a fresh address derived from the
// operator's extended public key (BIP-32, so no private key is ever on the
// switch), watches the token's Transfer logs to those addresses through the
// chain's JSON-RPC (package chain: HTTP, WebSocket eth_subscribe, eth_getLogs
// catch-up from a durable cursor), and approves the payment waiting on the
// code once the transfers to its address add up to the amount with the
// configured number of confirmations.
//
// What it keeps is its records in the switch's store, one per offered
// address (kind "payment") with every transfer seen to it, the derivation
// counter and the watcher's cursor, so that a restart, a second replica or
// a crash between two blocks neither misses a transfer nor counts one twice
// (transfers are kept by block hash, transaction hash and log index). A
// reorganisation takes back what the blocks that left had brought: the
// progress the checkout shows goes down with it; an approval already given
// cannot be, so the record says so and the operator is told in the log.
//
// Money that arrives after the payment ended (expired, declined) stays on
// its address and the record says "late": the switch holds no key to send
// it back, so a refund is the operator's, with the address's derivation
// index from the record. The rail is therefore no Refunder, and the engine
// holds a reversal of a paid payment for an operator.
//
// Decisions the seed leaves open are in docs/cryptopay.md.
package cryptopay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/cryptopay/chain"
	"github.com/qrswitch/qrswitch/partners/cryptopay/hdkey"
	"github.com/qrswitch/qrswitch/qr"
)

// Name is the rail's registered name.
const Name = "cryptopay"

func init() { partners.Register(Name, New) }

// GUID is the provider id of the rail's merchant-account template: sub-tag
// 01 is the address to pay, 02 the chain id, 03 the amount in the token's
// base units. The whole EIP-681 URI (two addresses, 123 characters and
// more) cannot fit a template's 99; it is in the offer's display ("uri")
// for a checkout page or a POS to show as a code of its own.
const GUID = "org.ethereum.erc20"

// DefaultConfirmations is the confirmations a payment needs by default.
const DefaultConfirmations = 12

// maxExponent bounds the decimals of the rail's currency: amounts are int64
// minor units in the switch, and 8 decimals leave room for 92 billion
// tokens (0xbtcpay's amounts have at most 8 decimals too).
const maxExponent = 8

// Options are the rail's own keys (a partner's `options:`).
type Options struct {
	// RPCURL is the node's JSON-RPC over HTTP(S). Default the partner's
	// base_url.
	RPCURL string `yaml:"rpc_url"`
	// WSURL is the node's WebSocket endpoint for eth_subscribe; "auto"
	// derives it from rpc_url (http→ws, https→wss). Empty: polling only.
	WSURL string `yaml:"ws_url"`
	// ChainID, when set, is the chain the node must serve (checked at
	// start); else it is read from the node.
	ChainID uint64 `yaml:"chain_id"`
	// TokenAddress is the ERC-20 contract. Required.
	TokenAddress string `yaml:"token_address"`
	// TokenDecimals are the token's decimals (its decimals()). Required.
	TokenDecimals *int `yaml:"token_decimals"`
	// Currency is the code prices in the token are written with (a web
	// shop's `currency`, a QR code's currency): letters and digits, never
	// three digits (those are ISO 4217's). Required.
	Currency string `yaml:"currency"`
	// XPub is the extended public key addresses are derived from (child
	// i of it for offer i); typically the account's external chain,
	// m/44'/60'/0'/0. Required; a private key (xprv) is refused.
	XPub string `yaml:"xpub"`
	// Confirmations a transfer needs, its own block included. Default 12.
	Confirmations uint64 `yaml:"confirmations"`
	// StartBlock is the first block read on the very first start (no
	// cursor yet). Default: the node's head.
	StartBlock uint64 `yaml:"start_block"`
	// WatchAfterExpiry is how long an address is still watched after its
	// code expired, so money that comes late is recorded (for a refund).
	// Default 24h.
	WatchAfterExpiry time.Duration `yaml:"watch_after_expiry"`
	// PollInterval is how often the head is polled without a WebSocket
	// (and, with one, ten times that as a safety net). Default 2s.
	PollInterval time.Duration `yaml:"poll_interval"`
	// SweepInterval is how often addresses past their watch are let go.
	// Default 1m.
	SweepInterval time.Duration `yaml:"sweep_interval"`
	// Rates price codes in ISO 4217 currencies in the token: tokens per
	// major unit of the currency (a decimal), pinned on each offer. A
	// code in a currency without a rate is not offered on the rail. A
	// till's codes are in an ISO 4217 currency (the interface's amounts
	// are), so a token rail for tills needs a rate; a stablecoin's is 1.
	Rates []Rate `yaml:"rates"`
	// RetryInterval is how often money that came before its payment
	// request is reported again. Default 1s.
	RetryInterval time.Duration `yaml:"retry_interval"`
	// SimBlockTime is the development chain's block time. Default 2s.
	SimBlockTime time.Duration `yaml:"sim_block_time"`
}

// Rate is the price of the token in an ISO 4217 currency.
type Rate struct {
	// Currency is the ISO 4217 numeric code.
	Currency string `yaml:"currency"`
	// Tokens is how many tokens one major unit of the currency buys.
	Tokens string `yaml:"tokens"`
}

var currencyPattern = regexp.MustCompile(`^[A-Za-z0-9]{1,12}$`)

// Rail is the token rail of one partner entry.
type Rail struct {
	id       string
	opts     Options
	token    chain.Address
	decimals uint8
	exp      int      // the currency's exponent: min(decimals, 8)
	unit     *big.Int // base units per minor unit: 10^(decimals-exp)
	xpub     *hdkey.ExtendedKey
	rates    map[string]*big.Rat // ISO 4217 numeric → tokens per major unit
	rpc      *chain.Client
	ws       chain.WSConfig
	chainID  atomic.Uint64
	watching atomic.Bool // a cursor exists: addresses offered now are read
	host     partners.Host
	records  partners.Records
	log      zerolog.Logger
	now      func() time.Time

	mu      sync.Mutex
	watcher *chain.Watcher
	stop    context.CancelFunc
	done    chan struct{}
}

// New builds the rail for one partner.
func New(c partners.Config) (partners.Rail, error) {
	var o Options
	if err := partners.DecodeOptions(c.Options, &o); err != nil {
		return nil, err
	}
	r := &Rail{id: c.PartnerID, host: c.Host, records: c.Records, log: c.Logger, now: time.Now}
	if o.RPCURL == "" {
		o.RPCURL = c.BaseURL
	}
	if o.RPCURL == "" {
		return nil, errors.New("rpc_url: required (or the partner's base_url)")
	}
	u, err := url.Parse(o.RPCURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("rpc_url: %q is not an http(s) URL", o.RPCURL)
	}
	switch o.WSURL {
	case "":
	case "auto":
		o.WSURL = "ws" + strings.TrimPrefix(o.RPCURL, "http")
	default:
		w, err := url.Parse(o.WSURL)
		if err != nil || (w.Scheme != "ws" && w.Scheme != "wss") || w.Host == "" {
			return nil, fmt.Errorf("ws_url: %q is not a ws(s) URL (or \"auto\")", o.WSURL)
		}
	}
	if r.token, err = hdkey.ParseAddress(o.TokenAddress); err != nil || r.token.IsZero() {
		return nil, fmt.Errorf("token_address: %q is not a contract address", o.TokenAddress)
	}
	if o.TokenDecimals == nil || *o.TokenDecimals < 0 || *o.TokenDecimals > 36 {
		return nil, errors.New("token_decimals: required, 0 to 36")
	}
	r.decimals = uint8(*o.TokenDecimals)
	r.exp = min(int(r.decimals), maxExponent)
	r.unit = new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(int(r.decimals)-r.exp)), nil)
	if !currencyPattern.MatchString(o.Currency) || isDigits(o.Currency, 3) {
		return nil, fmt.Errorf("currency: %q must be 1 to 12 letters or digits, and not three digits (ISO 4217's)", o.Currency)
	}
	if o.XPub == "" {
		return nil, errors.New("xpub: required (the extended public key addresses are derived from)")
	}
	if r.xpub, err = hdkey.Parse(o.XPub); err != nil {
		return nil, fmt.Errorf("xpub: %w", err)
	}
	r.rates = map[string]*big.Rat{}
	for i, rt := range o.Rates {
		v, ok := new(big.Rat).SetString(rt.Tokens)
		if _, iso := qr.CurrencyExponent(rt.Currency); !iso || !ok || v.Sign() <= 0 || r.rates[rt.Currency] != nil {
			return nil, fmt.Errorf("rates[%d]: want a distinct ISO 4217 numeric currency and a positive decimal of tokens, got %q and %q", i, rt.Currency, rt.Tokens)
		}
		r.rates[rt.Currency] = v
	}
	if o.Confirmations == 0 {
		o.Confirmations = DefaultConfirmations
	}
	if o.WatchAfterExpiry <= 0 {
		o.WatchAfterExpiry = 24 * time.Hour
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 2 * time.Second
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = time.Minute
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = time.Second
	}
	if o.SimBlockTime <= 0 {
		o.SimBlockTime = 2 * time.Second
	}
	if r.records == nil {
		return nil, errors.New("the rail needs the switch's store for its records")
	}
	r.opts = o
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	r.rpc = chain.NewClient(chain.NewHTTP(chain.HTTPConfig{URL: o.RPCURL, Transport: c.Transport, Timeout: timeout}))
	// The WebSocket handshake needs HTTP/1.1: its own transport, with the
	// partner's TLS trust.
	wsTLS := &tls.Config{}
	if c.TLS != nil {
		wsTLS = c.TLS.Clone()
	}
	wsTLS.NextProtos = []string{"http/1.1"}
	r.ws = chain.WSConfig{URL: o.WSURL, HTTPClient: &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: wsTLS, Proxy: http.ProxyFromEnvironment, TLSHandshakeTimeout: 10 * time.Second}}}
	r.chainID.Store(o.ChainID)
	return r, nil
}

func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Currencies is the token, for shops to price in.
func (r *Rail) Currencies() []partners.Currency {
	return []partners.Currency{{Code: r.opts.Currency, Exponent: r.exp, Name: "token " + r.token.String()}}
}

// Pay declines: nobody scans for this rail; customers send tokens.
func (r *Rail) Pay(_ context.Context, p *partners.Payment) *partners.Answer {
	return &partners.Answer{Outcome: outcome.Failed, Err: fmt.Errorf("the token rail takes no scans: %w", outcome.ErrNotSent),
		Decline: wire.Fail(400, wire.FunctionNotSupported, "Not payable by scan", p.Request.ID, p.TranID)}
}

// Confirm has nothing to send: the chain is final once confirmed.
func (r *Rail) Confirm(context.Context, *partners.Advice) *partners.Answer {
	return &partners.Answer{Outcome: outcome.Successful, Code: "CHAIN nothing to confirm"}
}

// Reverse has nothing to undo for a payment the chain never paid (a paid
// one comes as a refund, which the engine holds for an operator: the switch
// has no key to send tokens back).
func (r *Rail) Reverse(context.Context, *partners.Advice) *partners.Answer {
	return &partners.Answer{Outcome: outcome.Successful, Code: "CHAIN nothing to reverse"}
}

// chainIDOf returns the chain's id: configured, or read from the node once.
func (r *Rail) chainIDOf(ctx context.Context) (uint64, error) {
	if id := r.chainID.Load(); id != 0 {
		return id, nil
	}
	id, err := r.rpc.ChainID(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading the chain id: %w", err)
	}
	r.chainID.Store(id)
	return id, nil
}

// ShardSafe: an address's payment record is created with its QR code and
// written again only with its retailer (the counter and the watcher's
// cursor, which are no retailer's, are written alone), so the rail runs on
// a store spread over shards (partners.ShardSafe).
func (r *Rail) ShardSafe() bool { return true }

// Offer derives the next address for a code priced in the token and
// records it, to be watched from the moment the code is stored.
func (r *Rail) Offer(ctx context.Context, o *partners.OfferRequest) (*partners.Offer, error) {
	if o.Amount == nil || o.Amount.Amount <= 0 {
		return nil, partners.ErrNotOffered
	}
	due, rate := r.due(o.Amount)
	if due == nil {
		return nil, partners.ErrNotOffered
	}
	id, err := r.chainIDOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.ensureCursor(ctx); err != nil {
		return nil, err
	}
	index, err := r.nextIndex(ctx)
	if err != nil {
		return nil, err
	}
	addr, err := r.xpub.Address(index)
	if err != nil {
		return nil, fmt.Errorf("deriving address %d: %w", index, err)
	}
	p := &payment{
		TranID: o.TranID, Retailer: o.RetailerID, Index: index, Address: addr, Due: due.String(),
		Currency: o.Amount.Currency, Asked: o.Amount.Amount, Rate: rate, ExpiresAt: o.ExpiresAt, WatchUntil: o.ExpiresAt.Add(r.opts.WatchAfterExpiry),
		Checkout: o.Checkout, State: stateOpen, CreatedAt: o.Now,
	}
	rec, err := p.record()
	if err != nil {
		return nil, err
	}
	return &partners.Offer{
		Accounts: []qr.MerchantAccount{{GUID: GUID, Fields: []qr.Field{
			{Tag: "01", Value: addr.String()}, {Tag: "02", Value: strconv.FormatUint(id, 10)}, {Tag: "03", Value: due.String()},
		}}},
		Reference: addr.String(),
		Display:   r.display(addr, id, due, rate),
		Records:   []*partners.Record{rec},
	}, nil
}

// display is what a checkout page or a POS shows beside the code: the
// EIP-681 URI to show as a code of its own, its parts, and the rate a
// price in another currency was converted at.
func (r *Rail) display(addr chain.Address, id uint64, due *big.Int, rate string) map[string]string {
	d := map[string]string{
		"address": addr.String(), "uri": chain.PaymentURI(r.token, id, addr, due), "token": r.token.String(), "chain_id": strconv.FormatUint(id, 10),
		"amount": chain.FormatAmount(due, r.decimals), "currency": r.opts.Currency,
		"confirmations": strconv.FormatUint(r.opts.Confirmations, 10),
	}
	if rate != "" {
		d["rate"] = rate
	}
	return d
}

// due is what a code's amount asks in base units of the token, rounded
// up, and the rate it was converted at ("" in the token itself); nil when
// the rail cannot price the currency.
func (r *Rail) due(a *wire.LedgerAmount) (*big.Int, string) {
	if a.Currency == r.opts.Currency {
		return new(big.Int).Mul(big.NewInt(a.Amount), r.unit), ""
	}
	rate, ok := r.rates[a.Currency]
	if !ok {
		return nil, ""
	}
	exp, _ := qr.CurrencyExponent(a.Currency)
	// amount / 10^exp × rate × 10^decimals, rounded up.
	v := new(big.Rat).SetFrac(big.NewInt(a.Amount), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(exp)), nil))
	v.Mul(v, rate)
	v.Mul(v, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(r.decimals)), nil)))
	q, m := new(big.Int).QuoRem(v.Num(), v.Denom(), new(big.Int))
	if m.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	return q, rate.FloatString(int(r.decimals))
}

// nextIndex takes the next derivation index, shared by every replica
// through the store. An index taken for a code that is then not stored is
// skipped for good: harmless, but the merchant's wallet must scan by the
// records' indexes rather than stop at a gap (docs/cryptopay.md).
func (r *Rail) nextIndex(ctx context.Context) (uint32, error) {
	for range 20 {
		rec, err := r.records.Get(ctx, kindCounter, keyAddresses)
		var c counter
		switch {
		case errors.Is(err, partners.ErrNotFound):
			rec = &partners.Record{Kind: kindCounter, Key: keyAddresses}
		case err != nil:
			return 0, err
		default:
			if err := decode(rec, &c); err != nil {
				return 0, err
			}
		}
		if c.Next >= hdkey.HardenedOffset {
			return 0, errors.New("every non-hardened child of the xpub is used: configure the next account's xpub")
		}
		index := c.Next
		c.Next++
		if err := encode(rec, c); err != nil {
			return 0, err
		}
		switch err := r.records.Commit(ctx, rec); {
		case err == nil:
			return index, nil
		case errors.Is(err, partners.ErrConflict), errors.Is(err, partners.ErrDuplicate):
			continue // another offer took it: take the next
		default:
			return 0, err
		}
	}
	return 0, errors.New("taking an address index: too much contention")
}

// ensureCursor makes sure the watcher's cursor exists before an address is
// offered. On the very first start the watcher begins at the head it
// reads then; an address offered before that read (the switch serving
// while its watcher starts) could be paid in a block the watcher then
// treats as already read. So the first offer saves the cursor itself, at
// the head (or start_block), before its address can be shown to anyone.
func (r *Rail) ensureCursor(ctx context.Context) error {
	if r.watching.Load() {
		return nil
	}
	c := cursor{r}
	if _, ok, err := c.load(ctx); err != nil {
		return err
	} else if ok {
		r.watching.Store(true)
		return nil
	}
	var h chain.Header
	var err error
	if r.opts.StartBlock == 0 {
		h, err = r.rpc.LatestHeader(ctx)
	} else {
		h, err = r.rpc.HeaderByNumber(ctx, r.opts.StartBlock-1)
	}
	if err != nil {
		return fmt.Errorf("reading the chain's head before the first offer: %w", err)
	}
	if err := c.create(ctx, h.Ref()); err != nil && !errors.Is(err, partners.ErrDuplicate) {
		return err
	}
	r.watching.Store(true)
	return nil
}

// Start starts the chain watcher and the sweeper of addresses past their
// watch. It returns at once: a node that cannot be reached yet is retried
// in the background (and logged), so the rest of the switch still serves.
func (r *Rail) Start(ctx context.Context) error {
	w, err := chain.NewWatcher(chain.Config{
		RPC: r.rpc, WS: r.ws, ChainID: r.opts.ChainID, Token: r.token, Confirmations: r.opts.Confirmations,
		// No StartBlock: the cursor's Load creates the first cursor
		// (ensureCursor), start_block included.
		Recipients: r.recipients, Cursor: cursor{r}, Sink: sink{r},
		PollInterval: r.opts.PollInterval, ResyncInterval: 10 * r.opts.PollInterval,
		Logger: r.log,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	r.mu.Lock()
	r.watcher, r.stop, r.done = w, cancel, make(chan struct{})
	r.mu.Unlock()
	go func() {
		defer close(r.done)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			partners.Every(ctx, r.opts.SweepInterval, r.log, "cryptopay sweep", r.sweep)
		}()
		go func() {
			defer wg.Done()
			partners.Every(ctx, r.opts.RetryInterval, r.log, "cryptopay retry", r.retry)
		}()
		if err := w.Run(ctx); err != nil && ctx.Err() == nil {
			r.log.Error().Err(err).Msg("the chain watcher stopped: payments on this rail are not seen")
		}
		wg.Wait()
	}()
	return nil
}

// Close stops the watcher and waits for it.
func (r *Rail) Close() error {
	r.mu.Lock()
	stop, done := r.stop, r.done
	r.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	return nil
}

// Status is the watcher's state, for support and tests.
func (r *Rail) Status() chain.Status {
	r.mu.Lock()
	w := r.watcher
	r.mu.Unlock()
	if w == nil {
		return chain.Status{}
	}
	return w.Status()
}

// Interface guards.
var (
	_ partners.Offerer    = (*Rail)(nil)
	_ partners.Starter    = (*Rail)(nil)
	_ partners.Currencies = (*Rail)(nil)
	_ partners.Simulated  = (*Rail)(nil)
	_ partners.Inspector  = (*Rail)(nil)
)
