package qrswitch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
)

// The engine is the rails' Host: what a rail reports reaches the payments
// through these methods (and Scanned, in scan.go).

// Paid links and approves the payment waiting on a code a pull rail was
// paid for, committing the rail's records with it: the held payment
// request answers 201 with the rail's partner (or the payer it names) and
// the amount that arrived. It is idempotent by reference: the same money
// reported again gets nil.
func (e *Engine) Paid(ctx context.Context, n *partners.Paid) error {
	partner, ok := e.partners[n.PartnerID]
	if !ok {
		return fmt.Errorf("paid: partner %s is not configured", n.PartnerID)
	}
	var lastVersion int64 = -1
	for range maxRetries {
		now := e.now()
		at := n.At
		if at.IsZero() {
			at = now
		}
		code, err := e.store.QR(ctx, n.TranID)
		switch {
		case errors.Is(err, ErrNotFound):
			return fmt.Errorf("%w: no QR code %s", partners.ErrNotWaiting, n.TranID)
		case err != nil:
			return err
		}
		if _, ok := code.Offer(n.PartnerID); !ok {
			return fmt.Errorf("%w: code %s was not offered on %s", partners.ErrNotWaiting, n.TranID, n.PartnerID)
		}
		if code.PaymentKey == "" {
			if code.Expired(now) {
				return fmt.Errorf("%w: code %s expired unpaid", partners.ErrNotWaiting, n.TranID)
			}
			return fmt.Errorf("%w: no payment request for code %s yet", partners.ErrNoRequestYet, n.TranID)
		}
		p, err := e.store.Payment(ctx, code.PaymentKey)
		if err != nil {
			return err
		}
		if p.Paid != nil && p.Paid.Reference == n.Reference && p.PartnerID() == n.PartnerID {
			return nil // reported before
		}
		if p.Version == lastVersion && len(n.Records) > 0 {
			// The payment did not move since the last conflict: the rail's
			// own records did, and only the rail can decide again.
			return fmt.Errorf("paid: the rail's records changed: %w", partners.ErrConflict)
		}
		lastVersion = p.Version
		if p.State != outcome.AwaitingScan {
			return fmt.Errorf("%w: payment %s is %s", partners.ErrNotWaiting, p.Key(), p.State)
		}
		if f := paidAmount(p, n.Amount); f != "" {
			return fmt.Errorf("%w: %s", partners.ErrAmount, f)
		}
		q, err := move(p, outcome.Approved, now)
		if err != nil {
			return err
		}
		q.Scan = &Scan{ID: "paid:" + n.Reference, PartnerID: n.PartnerID, PartnerName: partner.Name, ReceivedAt: at}
		q.Paid = &PaidMoney{Reference: n.Reference, Amount: n.Amount.Clone(), Payer: n.Payer.Clone(), At: at}
		q.PayOutcome = outcome.Successful
		q.HoldUntil = time.Time{}
		q.Status = 201
		resp := &wire.PaymentResponse{}
		resp.Transaction = p.Request.Transaction
		resp.Partner = partner.Institution()
		if n.Payer != nil && n.Payer.ID != "" {
			resp.Partner = n.Payer.Clone()
		}
		amounts := p.Request.Amounts.Clone()
		if amounts == nil {
			amounts = &wire.Amounts{}
		}
		amounts.ApprovedAmount = n.Amount.Clone()
		resp.Amounts = amounts
		q.Response = retailerResponse(q, partner, resp)
		q.Error = nil
		note := n.Note
		if note == "" {
			note = "paid on " + n.PartnerID + " (" + n.Reference + ")"
		}
		change := &Change{Payment: q, Records: placed(q.RetailerID, owned(n.PartnerID, n.Records)), Trace: []TraceEntry{
			{At: at, Direction: Inbound, Peer: "partner:" + n.PartnerID, Operation: "paid", Kind: KindEvent, MessageID: n.Reference, Outcome: outcome.Successful.String(), Note: note},
		}}
		if p.Checkout != nil {
			if err := e.settleCheckout(q, change, now, n.Reference); err != nil {
				return err
			}
		} else {
			change.Trace = append(change.Trace, answered(now, "retailer:"+p.RetailerID, "pay", p.RequestID, 201, q.Response, now.Sub(p.CreatedAt)))
		}
		switch err := e.commit(ctx, change); {
		case err == nil:
			e.wake(ctx, p.Key())
			e.obs.ScanLinked(false, now.Sub(p.CreatedAt))
			return nil
		case errors.Is(err, ErrConflict):
			continue
		default:
			return err
		}
	}
	return errContention
}

// paidAmount says what is wrong with the money a rail received for p, or
// "": it must be in the request's currency and at least its amount.
func paidAmount(p *Payment, got *wire.LedgerAmount) string {
	want := p.Request.Amounts.RequestAmount
	switch {
	case got == nil:
		return "no amount reported"
	case want == nil:
		return ""
	case got.Currency != want.Currency:
		return fmt.Sprintf("currency %s, the payment is in %s", got.Currency, want.Currency)
	case got.Amount < want.Amount:
		return fmt.Sprintf("%d received, the payment asks %d", got.Amount, want.Amount)
	}
	return ""
}

// owned stamps rail records with their owner: a rail writes only its own.
func owned(partnerID string, rs []*partners.Record) []*partners.Record {
	for _, r := range rs {
		r.Owner = partnerID
	}
	return rs
}

// placed gives the records created with a retailer's QR code or payment
// that retailer (partners.Record.Retailer), so that a store spread over
// shards keeps them with its payments.
func placed(retailerID string, rs []*partners.Record) []*partners.Record {
	for _, r := range rs {
		if r.Version == 0 && r.Retailer == "" {
			r.Retailer = retailerID
		}
	}
	return rs
}

// settleCheckout finishes an approved checkout in the change that
// approves it: no till will send an advice, so the switch confirms the
// payment with its rail itself, and tells the shop (a postback, repeated
// until its endpoint answers 2xx) when it gave a postback URL.
func (e *Engine) settleCheckout(q *Payment, change *Change, now time.Time, reference string) error {
	confirming, err := move(q, outcome.Confirming, now)
	if err != nil {
		return err
	}
	*q = *confirming
	c := *q.Checkout
	c.PaidAt, c.Reference = now, reference
	q.Checkout = &c
	req := q.Request
	conf := &Advice{
		Sender: SwitchSender, ID: wire.NewID(), Kind: Confirmation, PaymentKey: q.Key(),
		TranID: q.TranID, Destination: q.PartnerID(), CreatedAt: now, UpdatedAt: now,
		Confirmation: &wire.PaymentConfirmation{BasicAdvice: wire.BasicAdvice{
			ID: "", RequestID: req.ID, Time: now.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
			ThirdPartyIdentifiers: req.ThirdPartyIdentifiers, Amounts: req.Amounts, TranID: q.TranID,
		}},
	}
	conf.Confirmation.ID = conf.ID
	if partner, ok := e.partners[q.PartnerID()]; ok {
		conf.Confirmation.Partner = partner.Institution()
	}
	e.queue(conf, now)
	q.AdviceKey = conf.Key()
	change.Advices = append(change.Advices, conf)
	change.Trace = append(change.Trace, event(now, "checkoutPaid", "checkout paid: confirmed with "+q.PartnerID()+" by the switch (no till sends advices)"))
	if q.Checkout.PostbackURL != "" {
		payload, _ := json.Marshal(map[string]string{"url": q.Checkout.PostbackURL})
		pb := &Advice{
			Sender: SwitchSender, ID: wire.NewID(), Kind: Postback, PaymentKey: q.Key(), TranID: q.TranID,
			Destination: RetailerDestination(q.RetailerID), Payload: payload, CreatedAt: now, UpdatedAt: now,
		}
		e.queue(pb, now)
		change.Advices = append(change.Advices, pb)
		change.Trace = append(change.Trace, event(now, "postbackQueued", "postback "+pb.ID+" to the shop queued"))
	}
	return nil
}

// Seen records a pull rail's progress on the payment waiting on a code.
func (e *Engine) Seen(ctx context.Context, n *partners.Seen) error {
	for range maxRetries {
		now := e.now()
		at := n.At
		if at.IsZero() {
			at = now
		}
		code, err := e.store.QR(ctx, n.TranID)
		if err != nil {
			return err
		}
		if code.PaymentKey == "" {
			return fmt.Errorf("%w: no payment request for code %s yet", partners.ErrNoRequestYet, n.TranID)
		}
		p, err := e.store.Payment(ctx, code.PaymentKey)
		if err != nil {
			return err
		}
		note := n.Note
		if note == "" && n.Received != nil {
			note = fmt.Sprintf("%d received so far on %s", n.Received.Amount, n.PartnerID)
		}
		entry := TraceEntry{At: at, Direction: Inbound, Peer: "partner:" + n.PartnerID, Operation: "seen", Kind: KindEvent, MessageID: n.Reference, Note: note}
		if p.State != outcome.AwaitingScan && p.Checkout == nil {
			// Paid or over: progress changes nothing, but support sees it.
			// (A checkout keeps it: money that came after its expiry is a
			// checkout paid late, which its shop must see.)
			return e.store.Commit(ctx, &Change{TraceKey: p.Key(), Trace: []TraceEntry{entry}})
		}
		q := p.Clone()
		first := at
		if p.Seen != nil {
			first = p.Seen.First
		}
		q.Seen = &SeenMoney{Received: n.Received.Clone(), Reference: n.Reference, First: first, At: at}
		q.UpdatedAt = now
		switch err := e.store.Commit(ctx, &Change{Payment: q, Trace: []TraceEntry{entry}}); {
		case err == nil:
			return nil
		case errors.Is(err, ErrConflict):
			continue
		default:
			return err
		}
	}
	return errContention
}

// OfferEnded records that a code's offer can no longer be paid on a rail.
func (e *Engine) OfferEnded(ctx context.Context, tranID, partnerID, reason string) error {
	key := qrTraceKey(tranID)
	if code, err := e.store.QR(ctx, tranID); err == nil && code.PaymentKey != "" {
		key = code.PaymentKey
	}
	return e.store.Commit(ctx, &Change{TraceKey: key, Trace: []TraceEntry{event(e.now(), "offerEnded", partnerID+": "+reason)}})
}

// RailRecords returns the records of a partner's rail in s (what
// partners.Config.Records is): the rail reads and writes its own only.
func RailRecords(s Store, partnerID string) partners.Records {
	return &railRecords{s: s, owner: partnerID}
}

type railRecords struct {
	s     Store
	owner string
}

func (r *railRecords) Get(ctx context.Context, kind, key string) (*partners.Record, error) {
	return r.s.Record(ctx, r.owner, kind, key)
}

func (r *railRecords) List(ctx context.Context, q partners.RecordQuery) ([]*partners.Record, error) {
	return r.s.Records(ctx, r.owner, q)
}

func (r *railRecords) Commit(ctx context.Context, rs ...*partners.Record) error {
	if len(rs) == 0 {
		return nil
	}
	return r.s.Commit(ctx, &Change{Records: owned(r.owner, rs)})
}

// Interface guards
var (
	_ partners.Host    = (*Engine)(nil)
	_ partners.Records = (*railRecords)(nil)
)
