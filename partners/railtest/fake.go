package railtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/qr"
)

// Fake is a rail whose answers a test scripts, for testing the engine and
// the wiring without a partner's protocol: it records every call, answers
// each operation with the next Step scripted for it (an approval when none
// is), and, as a pull rail (Pull set), offers a template on new QR codes
// and serves a route that reports a code paid, the way a real pull rail
// reports money arriving on its own protocol. It is safe for concurrent
// use.
type Fake struct {
	// ID and Name are the partner's.
	ID, Name string
	// Pull makes the fake a pull rail: it implements Offerer and Surface.
	Pull bool
	// NoRefund makes a pull fake one that cannot refund (no Refunder).
	NoRefund bool
	// Records makes a pull fake keep a record of each offer (kind
	// "offer", key the tranId), written with the QR code and committed
	// again, read back and marked paid, with the payment it pays, as the
	// token rail keeps its addresses.
	Records bool
	// Host is what the fake reports to, and records its records (set by
	// New from the Config).
	Host  partners.Host
	store partners.Records

	mu     sync.Mutex
	script map[string][]Step
	calls  []Call
}

// GUID is the provider id of the fake's merchant-account template.
const GUID = "test.qrswitch.fake"

// Step is one scripted answer.
type Step struct {
	Outcome outcome.Outcome
	// Code is the answer's code ("FAKE 500"); default "FAKE ok", "FAKE
	// declined" or "FAKE unknown" by outcome, "" with NotSent.
	Code string
	// Decline is a failed payment's retailer answer; default 400
	// DECLINED_BY_PARTNER, none with NoDecline (a rail's bug, which the
	// engine must survive).
	Decline   *wire.Failure
	NoDecline bool
	// NotSent makes the call fail before anything left (outcome.ErrNotSent).
	NotSent bool
	// Release, when set, holds the answer until it is closed (or the call's
	// context ends first, which yields no answer): a slow or late partner.
	Release <-chan struct{}
}

// Call is one call the fake received.
type Call struct {
	Op      string // pay, confirm, reverse, refund, deliver, offer
	ID      string // the payment request's or advice's id, or the tranId offered
	Kind    string
	At      time.Time
	Payment *partners.Payment
	Advice  *partners.Advice
}

// Script queues answers for op ("pay", "confirm", "reverse", "refund",
// "deliver").
func (f *Fake) Script(op string, steps ...Step) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.script == nil {
		f.script = map[string][]Step{}
	}
	f.script[op] = append(f.script[op], steps...)
}

// Calls returns the calls of op so far ("" for all).
func (f *Fake) Calls(op string) []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Call
	for _, c := range f.calls {
		if op == "" || c.Op == op {
			out = append(out, c)
		}
	}
	return out
}

func (f *Fake) next(c Call) Step {
	f.mu.Lock()
	defer f.mu.Unlock()
	c.At = time.Now()
	f.calls = append(f.calls, c)
	q := f.script[c.Op]
	if len(q) == 0 {
		return Step{Outcome: outcome.Successful}
	}
	f.script[c.Op] = q[1:]
	return q[0]
}

// answer plays a step.
func (f *Fake) answer(ctx context.Context, s Step, sent any) *partners.Answer {
	start := time.Now()
	body, _ := json.Marshal(sent)
	a := &partners.Answer{Sent: wire.Mask(body)}
	if s.NotSent {
		a.Outcome = outcome.Failed
		a.Err = fmt.Errorf("fake partner refused the connection: %w", outcome.ErrNotSent)
		return a
	}
	if s.Release != nil {
		select {
		case <-s.Release:
		case <-ctx.Done():
			a.Err = ctx.Err()
			a.Latency = time.Since(start)
			return a // unknown, nothing came back
		}
	}
	a.Outcome = s.Outcome
	a.Code = s.Code
	if a.Code == "" {
		a.Code = map[outcome.Outcome]string{outcome.Successful: "FAKE ok", outcome.Failed: "FAKE declined", outcome.Unknown: "FAKE unknown"}[s.Outcome]
	}
	a.Latency = time.Since(start)
	return a
}

// ShardSafe: the fake's records (Records) are read back before they are
// written again, so they keep their Retailer (partners.ShardSafe).
func (f *Fake) ShardSafe() bool { return true }

// Pay answers a payment as scripted; an approval echoes the request.
func (f *Fake) Pay(ctx context.Context, p *partners.Payment) *partners.Answer {
	s := f.next(Call{Op: "pay", ID: p.Request.ID, Payment: p})
	a := f.answer(ctx, s, p.Request)
	switch a.Outcome {
	case outcome.Successful:
		resp := &wire.PaymentResponse{Transaction: p.Request.Transaction, Partner: p.Partner, Amounts: p.Request.Amounts, TranID: p.TranID}
		a.Response = resp
	case outcome.Failed:
		a.Decline = s.Decline
		if a.Decline == nil && !s.NoDecline {
			a.Decline = wire.Fail(400, wire.DeclinedByPartner, "Declined by fake partner", p.Request.ID, p.TranID)
		}
		if s.NotSent {
			a.Decline = wire.Fail(503, wire.UpstreamUnavailable, "Fake partner unreachable", p.Request.ID, p.TranID)
		}
	}
	return a
}

func (f *Fake) advise(ctx context.Context, op string, a *partners.Advice) *partners.Answer {
	s := f.next(Call{Op: op, ID: a.ID, Kind: a.Kind, Advice: a})
	if s.NotSent {
		s.Outcome = outcome.Unknown // an advice that was not sent is repeated
	}
	ans := f.answer(ctx, s, a)
	if s.NotSent {
		ans.Outcome = outcome.Unknown
	}
	return ans
}

// Confirm answers a confirmation as scripted.
func (f *Fake) Confirm(ctx context.Context, a *partners.Advice) *partners.Answer {
	return f.advise(ctx, "confirm", a)
}

// Reverse answers a reversal as scripted.
func (f *Fake) Reverse(ctx context.Context, a *partners.Advice) *partners.Answer {
	return f.advise(ctx, "reverse", a)
}

// Refund answers the refund of a pull payment as scripted.
func (f *Fake) Refund(ctx context.Context, a *partners.Advice) *partners.Answer {
	return f.advise(ctx, "refund", a)
}

// Deliver answers any other advice as scripted.
func (f *Fake) Deliver(ctx context.Context, a *partners.Advice) *partners.Answer {
	return f.advise(ctx, "deliver", a)
}

// pullFake is a Fake as a pull rail: an Offerer with a Surface. A separate
// type, so that a push fake is not found to offer by type assertion.
type pullFake struct{ *Fake }

// Pay declines: nobody scans for a pull rail, so nothing is sent.
func (f pullFake) Pay(_ context.Context, p *partners.Payment) *partners.Answer {
	f.next(Call{Op: "pay", ID: p.Request.ID, Payment: p})
	return &partners.Answer{Outcome: outcome.Failed, Err: fmt.Errorf("a pull rail takes no scans: %w", outcome.ErrNotSent),
		Decline: wire.Fail(400, wire.FunctionNotSupported, "Not payable by scan", p.Request.ID, p.TranID)}
}

// Offer adds the fake's template, carrying the tranId, to a new code.
func (f pullFake) Offer(_ context.Context, o *partners.OfferRequest) (*partners.Offer, error) {
	f.next(Call{Op: "offer", ID: o.TranID})
	of := &partners.Offer{
		Accounts:  []qr.MerchantAccount{{GUID: GUID, Fields: []qr.Field{{Tag: "01", Value: o.TranID}}}},
		Reference: "fake:" + o.TranID,
		Display:   map[string]string{"pay": "/fake/" + f.ID + "/pay/" + o.TranID},
	}
	if f.Records {
		of.Records = []*partners.Record{{Kind: OfferKind, Key: o.TranID, Data: json.RawMessage(`{"state":"open"}`)}}
	}
	return of, nil
}

// OfferKind is the kind of a Records fake's offer records.
const OfferKind = "offer"

// PayPath is the fake's route that reports a code paid:
// POST /fake/{partner}/pay/{tranId}?amount=N&currency=C.
const PayPath = "/fake/{partner}/pay/{tranId}"

// Routes serves PayPath: the customer's side of the fake's protocol.
func (f pullFake) Routes() []partners.Route {
	return []partners.Route{{Method: http.MethodPost, Path: "/fake/" + f.ID + "/pay/{tranId}", Auth: partners.AuthRail, Handler: http.HandlerFunc(f.pay)}}
}

func (f pullFake) pay(w http.ResponseWriter, r *http.Request) {
	amount, err := strconv.ParseInt(r.URL.Query().Get("amount"), 10, 64)
	if err != nil {
		http.Error(w, "amount: "+err.Error(), http.StatusBadRequest)
		return
	}
	tranID := r.PathValue("tranId")
	paid := &partners.Paid{
		PartnerID: f.ID, TranID: tranID, Reference: "fake-money-" + tranID,
		Amount: &wire.LedgerAmount{Amount: amount, Currency: r.URL.Query().Get("currency")},
	}
	if f.Records {
		rec, err := f.store.Get(r.Context(), OfferKind, tranID)
		if err != nil {
			http.Error(w, "the offer's record: "+err.Error(), http.StatusConflict)
			return
		}
		rec.Data = json.RawMessage(`{"state":"paid"}`)
		paid.Records = []*partners.Record{rec}
	}
	err = f.Host.Paid(r.Context(), paid)
	if err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// New builds the rail of a Fake from a partner's Config: f, with the
// partner's id, name and Host (for registering it in a test with
// partners.RegisterForTest).
func (f *Fake) New(c partners.Config) (partners.Rail, error) {
	f.ID, f.Name, f.Host, f.store = c.PartnerID, c.Name, c.Host, c.Records
	switch {
	case f.Pull && f.NoRefund:
		return pullNoRefund{pullFake{f}}, nil
	case f.Pull:
		return pullFake{f}, nil
	}
	return f, nil
}

// pullNoRefund is a pull fake without Refund: the engine must hold the
// reversal of its money for an operator.
type pullNoRefund struct{ p pullFake }

func (f pullNoRefund) Pay(ctx context.Context, p *partners.Payment) *partners.Answer {
	return f.p.Pay(ctx, p)
}
func (f pullNoRefund) Confirm(ctx context.Context, a *partners.Advice) *partners.Answer {
	return f.p.Confirm(ctx, a)
}
func (f pullNoRefund) Reverse(ctx context.Context, a *partners.Advice) *partners.Answer {
	return f.p.Reverse(ctx, a)
}
func (f pullNoRefund) Offer(ctx context.Context, o *partners.OfferRequest) (*partners.Offer, error) {
	return f.p.Offer(ctx, o)
}
func (f pullNoRefund) Routes() []partners.Route { return f.p.Routes() }

// Interface guards
var (
	_ partners.Rail      = (*Fake)(nil)
	_ partners.Refunder  = (*Fake)(nil)
	_ partners.Deliverer = (*Fake)(nil)
	_ partners.Offerer   = pullFake{}
	_ partners.Surface   = pullFake{}
)
