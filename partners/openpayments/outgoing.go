package openpayments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/ilp/ilphttp"
	"github.com/qrswitch/qrswitch/partners/ilp/stream"
)

// Kinds of the rail's records for the paying side.
const (
	kindQuote    = "quote"
	kindOutgoing = "outgoing"
)

// Rate is one entry of the rate table: units of To per unit of From, in
// major units (a decimal such as "0.92").
type Rate struct {
	From string `yaml:"from"`
	To   string `yaml:"to"`
	Rate string `yaml:"rate"`
}

// Upstream is the ILP peer outgoing payments are sent through.
type Upstream struct {
	// URL is its ILP-over-HTTP endpoint and Token the bearer token the
	// switch presents there.
	URL   string `yaml:"url"`
	Token string `yaml:"token"`
	// Timeout bounds one packet's round trip. Default 30s.
	Timeout time.Duration `yaml:"timeout"`
}

// quote is a quote as the rail keeps it: the rate it was computed with is
// pinned on it, so the outgoing payment pays what the quote said.
type quote struct {
	ID        string    `json:"id"`
	Wallet    string    `json:"wallet"`
	Receiver  string    `json:"receiver"`   // the incoming payment URL
	Incoming  string    `json:"incomingId"` // its id here
	Debit     uint64    `json:"debit"`
	Receive   uint64    `json:"receive"`
	Fee       uint64    `json:"fee"`
	Rate      string    `json:"rate"` // destination per source units, a fraction
	ExpiresAt time.Time `json:"expiresAt"`
	CreatedAt time.Time `json:"createdAt"`
	Used      string    `json:"used,omitempty"` // the outgoing payment that took it
}

// outgoing is an outgoing payment and its STREAM sender's state.
type outgoing struct {
	ID        string          `json:"id"`
	Wallet    string          `json:"wallet"`
	Quote     string          `json:"quote"`
	Receiver  string          `json:"receiver"`
	Incoming  string          `json:"incomingId"`
	Debit     uint64          `json:"debit"`
	Receive   uint64          `json:"receive"`
	Fee       uint64          `json:"fee"`
	Failed    bool            `json:"failed"`
	Done      bool            `json:"done"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
	Client    string          `json:"client,omitempty"`
	CreatedAt time.Time       `json:"createdAt"`
	UpdatedAt time.Time       `json:"updatedAt"`
	State     stream.State    `json:"state"`
}

func (r *Rail) quoteURL(id string) string    { return r.base + "/quotes/" + id }
func (r *Rail) outgoingURL(id string) string { return r.base + "/outgoing-payments/" + id }

// rateFor is the pinned rate from one wallet's asset to another's, in
// smallest units: destination units per source unit.
func (r *Rail) rateFor(from, to *Wallet) (*big.Rat, error) {
	major := big.NewRat(1, 1)
	if from.AssetCode != to.AssetCode {
		found := false
		for _, e := range r.opts.Rates {
			if e.From == from.AssetCode && e.To == to.AssetCode {
				v, ok := new(big.Rat).SetString(e.Rate)
				if !ok || v.Sign() <= 0 {
					return nil, fmt.Errorf("rate %s→%s %q is not a positive decimal", e.From, e.To, e.Rate)
				}
				major, found = v, true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("no exchange rate from %s to %s", from.AssetCode, to.AssetCode)
		}
	}
	scale := new(big.Rat).SetFrac(pow10(int(to.AssetScale)), pow10(int(from.AssetScale)))
	return major.Mul(major, scale), nil
}

func pow10(n int) *big.Int { return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil) }

// ceilDiv and floor of rationals, as uint64 when they fit.
func ceilRat(x *big.Rat) (uint64, bool) {
	q, m := new(big.Int).DivMod(x.Num(), x.Denom(), new(big.Int))
	if m.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	return q.Uint64(), q.IsUint64()
}

func floorRat(x *big.Rat) (uint64, bool) {
	q := new(big.Int).Quo(x.Num(), x.Denom())
	return q.Uint64(), q.IsUint64()
}

// fee is what wallet w charges on sending net: fixed plus basis points,
// rounded up.
func fee(w *Wallet, net uint64) uint64 {
	bps, _ := ceilRat(new(big.Rat).SetFrac(new(big.Int).Mul(new(big.Int).SetUint64(net), big.NewInt(int64(w.FeeBPS))), big.NewInt(10_000)))
	return w.FeeFixed + bps
}

// price computes a quote's amounts: exactly one of debit and receive is
// set (non-zero); the other is derived through rate and the fees.
func price(w *Wallet, rate *big.Rat, debit, receive uint64) (d, rcv, f uint64, err error) {
	if receive > 0 {
		net, ok := ceilRat(new(big.Rat).Quo(new(big.Rat).SetInt(new(big.Int).SetUint64(receive)), rate))
		if !ok {
			return 0, 0, 0, errors.New("amount too large")
		}
		f = fee(w, net)
		if net+f < net {
			return 0, 0, 0, errors.New("amount too large")
		}
		return net + f, receive, f, nil
	}
	if debit <= w.FeeFixed {
		return 0, 0, 0, errors.New("debitAmount does not cover the fixed fee")
	}
	// net + fee(net) ≤ debit, with net as large as it can be.
	net, _ := floorRat(new(big.Rat).SetFrac(new(big.Int).Mul(new(big.Int).SetUint64(debit-w.FeeFixed), big.NewInt(10_000)), big.NewInt(10_000+int64(w.FeeBPS))))
	for net > 0 && net+fee(w, net) > debit {
		net--
	}
	rcv, ok := floorRat(new(big.Rat).Mul(new(big.Rat).SetInt(new(big.Int).SetUint64(net)), rate))
	if !ok || rcv == 0 {
		return 0, 0, 0, errors.New("debitAmount delivers nothing after fees and exchange")
	}
	return debit, rcv, debit - net, nil
}

type createQuoteRequest struct {
	WalletAddress string  `json:"walletAddress"`
	Receiver      string  `json:"receiver"`
	Method        string  `json:"method"`
	DebitAmount   *amount `json:"debitAmount,omitempty"`
	ReceiveAmount *amount `json:"receiveAmount,omitempty"`
}

// localIncoming resolves a receiver URL to an incoming payment this rail
// serves. Receivers elsewhere would need a grant from their own auth
// server, which the switch does not obtain (docs/openpayments.md).
func (r *Rail) localIncoming(ctx context.Context, u string) (*incoming, error) {
	id, ok := strings.CutPrefix(u, r.base+"/incoming-payments/")
	if !ok || !validSegment(id) {
		return nil, fmt.Errorf("%w: not an incoming payment of this resource server", errReceiver)
	}
	ip, _, err := r.readIncoming(ctx, id)
	if errors.Is(err, partners.ErrNotFound) || (err == nil && r.wallets[ip.Wallet] == nil) {
		return nil, fmt.Errorf("%w: not found", errReceiver)
	}
	return ip, err
}

// errReceiver is a quote's receiver the rail cannot pay.
var errReceiver = errors.New("receiver")

func (r *Rail) createQuote(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "body too large or unreadable")
		return
	}
	var q createQuoteRequest
	derr := decodeStrict(body, &q)
	if _, ok := r.authorize(w, req, Access{Type: "quote", Actions: []string{"create"}, Identifier: q.WalletAddress}); !ok {
		return
	}
	if derr != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "decoding body: "+derr.Error())
		return
	}
	qt, status, code, err := r.newQuote(req.Context(), &q)
	if err != nil {
		if status == http.StatusServiceUnavailable {
			r.storeDown(w, err)
			return
		}
		writeError(w, status, code, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, r.quoteView(req.Context(), qt))
}

// newQuote prices and stores a quote.
func (r *Rail) newQuote(ctx context.Context, q *createQuoteRequest) (*quote, int, string, error) {
	bad := func(msg string) (*quote, int, string, error) {
		return nil, http.StatusBadRequest, "invalid_request", errors.New(msg)
	}
	from := r.walletOf(q.WalletAddress)
	if from == nil {
		return bad("walletAddress is not served here")
	}
	if q.Method != "ilp" {
		return bad(`method must be "ilp"`)
	}
	if q.DebitAmount != nil && q.ReceiveAmount != nil {
		return bad("give debitAmount or receiveAmount, not both")
	}
	ip, err := r.localIncoming(ctx, q.Receiver)
	if err != nil {
		if errors.Is(err, errReceiver) {
			return bad(err.Error())
		}
		return nil, http.StatusServiceUnavailable, "", err
	}
	now := r.now().UTC()
	if ip.closed(now) {
		return bad("receiver is completed or expired")
	}
	to := r.wallets[ip.Wallet]
	rate, err := r.rateFor(from, to)
	if err != nil {
		return bad(err.Error())
	}
	var debit, receive uint64
	switch {
	case q.DebitAmount != nil:
		if debit, err = q.DebitAmount.parse(from); err != nil || debit == 0 {
			return bad("debitAmount must be a positive amount in the wallet's asset")
		}
	case q.ReceiveAmount != nil:
		if receive, err = q.ReceiveAmount.parse(to); err != nil || receive == 0 {
			return bad("receiveAmount must be a positive amount in the receiver's asset")
		}
	case ip.Amount != nil:
		receive = *ip.Amount - ip.Received
	default:
		return bad("the receiver has no incomingAmount: give debitAmount or receiveAmount")
	}
	d, rcv, f, err := price(from, rate, debit, receive)
	if err != nil {
		return bad(err.Error())
	}
	if ip.Amount != nil && rcv > *ip.Amount-ip.Received {
		return bad("receiveAmount exceeds what the receiver still takes")
	}
	qt := &quote{ID: newID(now), Wallet: from.Name, Receiver: r.incomingURL(ip.ID), Incoming: ip.ID, Debit: d, Receive: rcv, Fee: f,
		Rate: rate.String(), ExpiresAt: now.Add(r.opts.QuoteTTL), CreatedAt: now}
	if !ip.ExpiresAt.IsZero() && ip.ExpiresAt.Before(qt.ExpiresAt) {
		qt.ExpiresAt = ip.ExpiresAt
	}
	b, _ := json.Marshal(qt)
	if err := r.records.Commit(ctx, &partners.Record{Kind: kindQuote, Key: qt.ID, Data: b, Index: []string{"wallet:" + from.Name}}); err != nil {
		return nil, http.StatusServiceUnavailable, "", err
	}
	return qt, 0, "", nil
}

func (r *Rail) quoteView(ctx context.Context, q *quote) map[string]any {
	from := r.wallets[q.Wallet]
	to := r.wallets[r.incomingWallet(ctx, q.Incoming)]
	v := map[string]any{"id": r.quoteURL(q.ID), "walletAddress": r.walletURL(q.Wallet), "receiver": q.Receiver, "method": "ilp",
		"debitAmount": amountOf(q.Debit, from), "expiresAt": q.ExpiresAt.Format(timeFormat), "createdAt": q.CreatedAt.Format(timeFormat)}
	if to != nil {
		v["receiveAmount"] = amountOf(q.Receive, to)
	}
	return v
}

// incomingWallet names the wallet of a local incoming payment; its id
// alone does not say, so the record is read.
func (r *Rail) incomingWallet(ctx context.Context, id string) string {
	ip, _, err := r.readIncoming(ctx, id)
	if err != nil {
		return ""
	}
	return ip.Wallet
}

func (r *Rail) readQuote(ctx context.Context, id string) (*quote, *partners.Record, error) {
	rec, err := r.records.Get(ctx, kindQuote, id)
	if err != nil {
		return nil, nil, err
	}
	var q quote
	if err := json.Unmarshal(rec.Data, &q); err != nil {
		return nil, nil, fmt.Errorf("decoding quote %s: %w", id, err)
	}
	return &q, rec, nil
}

func (r *Rail) getQuote(w http.ResponseWriter, req *http.Request) {
	q, _, err := r.readQuote(req.Context(), req.PathValue("id"))
	if errors.Is(err, partners.ErrNotFound) || (err == nil && r.wallets[q.Wallet] == nil) {
		writeError(w, http.StatusNotFound, "not_found", "no quote has this id")
		return
	}
	if err != nil {
		r.storeDown(w, err)
		return
	}
	if _, ok := r.authorize(w, req, Access{Type: "quote", Actions: []string{"read", "read-all"}, Identifier: r.walletURL(q.Wallet)}); !ok {
		return
	}
	writeJSON(w, http.StatusOK, r.quoteView(req.Context(), q))
}

type createOutgoingRequest struct {
	WalletAddress string          `json:"walletAddress"`
	QuoteID       string          `json:"quoteId"`
	Metadata      json.RawMessage `json:"metadata,omitempty"`
}

func (r *Rail) createOutgoing(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "body too large or unreadable")
		return
	}
	var o createOutgoingRequest
	derr := decodeStrict(body, &o)
	g, ok := r.authorize(w, req, Access{Type: "outgoing-payment", Actions: []string{"create"}, Identifier: o.WalletAddress})
	if !ok {
		return
	}
	if derr != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "decoding body: "+derr.Error())
		return
	}
	wal := r.walletOf(o.WalletAddress)
	if wal == nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "walletAddress is not served here")
		return
	}
	if len(o.Metadata) > 0 && string(o.Metadata) != "null" {
		var m map[string]any
		if json.Unmarshal(o.Metadata, &m) != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", "metadata must be an object")
			return
		}
	} else {
		o.Metadata = nil
	}
	qid, _ := strings.CutPrefix(o.QuoteID, r.base+"/quotes/")
	q, qrec, err := r.readQuote(req.Context(), qid)
	switch {
	case errors.Is(err, partners.ErrNotFound) || (err == nil && q.Wallet != wal.Name):
		writeError(w, http.StatusBadRequest, "invalid_quote", "quoteId is not a quote of this wallet address")
		return
	case err != nil:
		r.storeDown(w, err)
		return
	}
	now := r.now().UTC()
	if !now.Before(q.ExpiresAt) {
		writeError(w, http.StatusBadRequest, "invalid_quote", "the quote has expired")
		return
	}
	if q.Used != "" {
		writeError(w, http.StatusBadRequest, "invalid_quote", "the quote was used by another outgoing payment")
		return
	}
	op := &outgoing{ID: newID(now), Wallet: wal.Name, Quote: q.ID, Receiver: q.Receiver, Incoming: q.Incoming, Debit: q.Debit,
		Receive: q.Receive, Fee: q.Fee, Metadata: o.Metadata, Client: g.Client, CreatedAt: now, UpdatedAt: now}
	q.Used = op.ID
	qrec.Data, _ = json.Marshal(q)
	orec, _ := r.outgoingRecord(op, 0)
	err = r.records.Commit(req.Context(), qrec, orec)
	if errors.Is(err, partners.ErrConflict) {
		writeError(w, http.StatusBadRequest, "invalid_quote", "the quote was used by another outgoing payment")
		return
	}
	if err != nil {
		r.storeDown(w, err)
		return
	}
	r.startSending(op.ID)
	writeJSON(w, http.StatusCreated, r.outgoingView(req.Context(), op))
}

func (r *Rail) outgoingRecord(op *outgoing, version int64) (*partners.Record, error) {
	b, err := json.Marshal(op)
	if err != nil {
		return nil, fmt.Errorf("encoding outgoing payment: %w", err)
	}
	idx := []string{"wallet:" + op.Wallet}
	if !op.Done && !op.Failed {
		idx = append(idx, "sending")
	}
	return &partners.Record{Kind: kindOutgoing, Key: op.ID, Data: b, Index: idx, Version: version}, nil
}

func (r *Rail) readOutgoing(ctx context.Context, id string) (*outgoing, *partners.Record, error) {
	rec, err := r.records.Get(ctx, kindOutgoing, id)
	if err != nil {
		return nil, nil, err
	}
	var op outgoing
	if err := json.Unmarshal(rec.Data, &op); err != nil {
		return nil, nil, fmt.Errorf("decoding outgoing payment %s: %w", id, err)
	}
	return &op, rec, nil
}

func (r *Rail) outgoingView(ctx context.Context, op *outgoing) map[string]any {
	from := r.wallets[op.Wallet]
	to := r.wallets[r.incomingWallet(ctx, op.Incoming)]
	v := map[string]any{"id": r.outgoingURL(op.ID), "walletAddress": r.walletURL(op.Wallet), "quoteId": r.quoteURL(op.Quote),
		"failed": op.Failed, "receiver": op.Receiver, "debitAmount": amountOf(op.Debit, from),
		"sentAmount": amountOf(op.State.Sent, from), "createdAt": op.CreatedAt.Format(timeFormat)}
	if to != nil {
		v["receiveAmount"] = amountOf(op.Receive, to)
	}
	if op.Metadata != nil {
		v["metadata"] = op.Metadata
	}
	return v
}

func (r *Rail) getOutgoing(w http.ResponseWriter, req *http.Request) {
	op, _, err := r.readOutgoing(req.Context(), req.PathValue("id"))
	if errors.Is(err, partners.ErrNotFound) || (err == nil && r.wallets[op.Wallet] == nil) {
		writeError(w, http.StatusNotFound, "not_found", "no outgoing payment has this id")
		return
	}
	if err != nil {
		r.storeDown(w, err)
		return
	}
	if _, ok := r.authorize(w, req, Access{Type: "outgoing-payment", Actions: []string{"read", "read-all"}, Identifier: r.walletURL(op.Wallet)}); !ok {
		return
	}
	writeJSON(w, http.StatusOK, r.outgoingView(req.Context(), op))
}

// --- settlement ---------------------------------------------------------------

// startSending settles an outgoing payment in the background, owned by
// the rail: Close stops it and a later Start resumes it from its saved
// STREAM state.
func (r *Rail) startSending(id string) {
	r.bgMu.Lock()
	defer r.bgMu.Unlock()
	if r.bgCtx.Err() != nil {
		return // closing: Start resumes it
	}
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		if err := r.send(r.bgCtx, id); err != nil && r.bgCtx.Err() == nil {
			r.log.Warn().Err(err).Str("outgoingPayment", id).Msg("sending an outgoing payment")
		}
	}()
}

// send runs the STREAM sender for one outgoing payment to its end:
// fixed-receive of the quote's receiveAmount, spending at most the debit
// amount less fees.
func (r *Rail) send(ctx context.Context, id string) error {
	op, _, err := r.readOutgoing(ctx, id)
	if err != nil {
		return err
	}
	if op.Done || op.Failed {
		return nil
	}
	if r.upstream == nil {
		return r.finish(ctx, id, func(op *outgoing) { op.Failed = true })
	}
	ip, _, err := r.readIncoming(ctx, op.Incoming)
	if err != nil {
		return fmt.Errorf("reading the receiver: %w", err)
	}
	_, secret, err := r.creds.Resolve(ip.Address)
	if err != nil {
		return fmt.Errorf("deriving the receiver's secret: %w", err)
	}
	s := &stream.Sender{Link: r.upstream.Send, PacketExpiry: r.opts.Upstream.Timeout,
		Save: func(ctx context.Context, st stream.State) error {
			return r.finish(ctx, id, func(op *outgoing) { op.State = st })
		}}
	st, err := s.Pay(ctx, stream.Payment{Destination: ip.Address, SharedSecret: secret, Mode: stream.FixedReceive,
		Amount: op.Receive, MaxSourceAmount: op.Debit - op.Fee}, op.State)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return r.finish(ctx, id, func(op *outgoing) {
		op.State = st
		op.Done = err == nil && st.Done
		op.Failed = !op.Done
	})
}

// finish applies change to an outgoing payment's record.
func (r *Rail) finish(ctx context.Context, id string, change func(*outgoing)) error {
	for range 16 {
		op, rec, err := r.readOutgoing(ctx, id)
		if err != nil {
			return err
		}
		change(op)
		op.UpdatedAt = r.now().UTC()
		upd, err := r.outgoingRecord(op, rec.Version)
		if err != nil {
			return err
		}
		if err = r.records.Commit(ctx, upd); !errors.Is(err, partners.ErrConflict) {
			return err
		}
	}
	return errors.New("updating an outgoing payment: too many concurrent changes")
}

// Start resumes the outgoing payments still sending (after a restart)
// and runs the sweeper of expired codes' incoming payments.
func (r *Rail) Start(ctx context.Context) error {
	if r.records == nil {
		return nil
	}
	recs, err := r.records.List(ctx, partners.RecordQuery{Kind: kindOutgoing, Index: "sending", Limit: 1000})
	if err != nil {
		return fmt.Errorf("listing outgoing payments to resume: %w", err)
	}
	for _, rec := range recs {
		r.startSending(rec.Key)
	}
	r.bgMu.Lock()
	defer r.bgMu.Unlock()
	if r.sweeping || r.bgCtx.Err() != nil {
		return nil
	}
	r.sweeping = true
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		partners.Every(r.bgCtx, r.opts.SweepInterval, r.log, "sweeping expired incoming payments", r.Sweep)
	}()
	return nil
}

// Close stops the senders and the sweeper and waits for them; the
// senders' state is saved.
func (r *Rail) Close() error {
	r.bgMu.Lock()
	r.bgStop()
	r.bgMu.Unlock()
	r.bg.Wait()
	return nil
}

// newUpstream builds the link to the upstream peer, or nil when none is
// configured.
func newUpstream(u Upstream, transport http.RoundTripper) (*ilphttp.Client, error) {
	if u.URL == "" {
		return nil, nil
	}
	if !strings.HasPrefix(u.URL, "https://") && !strings.HasPrefix(u.URL, "http://") {
		return nil, fmt.Errorf("options.upstream.url %q: want an http(s) URL", u.URL)
	}
	c := ilphttp.NewClient(u.URL, u.Token, u.Timeout)
	if transport != nil {
		c.HTTP.Transport = transport
	}
	return c, nil
}

// listOutgoing answers GET /outgoing-payments?wallet-address=…, paged as
// the incoming payments are.
func (r *Rail) listOutgoing(w http.ResponseWriter, req *http.Request) {
	listResource(r, w, req, "outgoing-payment", kindOutgoing,
		func(op *outgoing) (string, string) { return op.ID, op.Client },
		func(op *outgoing) (any, error) { return r.outgoingView(req.Context(), op), nil })
}
