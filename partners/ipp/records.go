package ipp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/ipp/protocol"
	"github.com/qrswitch/qrswitch/qr"
)

// Kinds of the rail's records.
const (
	kindRelay   = "relay"   // a QR code's one-time relay, by relay
	kindPayment = "payment" // an IPP payment record, by protocol.PaymentKey
	kindOwn     = "own"     // a record the switch authored, by its SHA1 (verification queries)
)

// Roles of a payment record.
const (
	rolePayee    = "payee"    // a counterpart's offer to one of the switch's brands
	roleReversal = "reversal" // the switch's reversal offer of a payee payment
)

// relay is a QR code's relay: what an offer naming it may pay.
type relay struct {
	Relay     string    `json:"relay"`
	TranID    string    `json:"tranId"`
	Retailer  string    `json:"retailer"`
	Brand     string    `json:"brand"`
	Amount    int64     `json:"amount"` // minor units of Currency
	Currency  string    `json:"currency"`
	ExpiresAt time.Time `json:"expiresAt"`
	// Payment is the payment record that used the relay (it is one-time).
	Payment string `json:"payment,omitempty"`
}

// payment is one IPP payment record and what the switch saw of it.
type payment struct {
	Key   string         `json:"key"`
	Role  string         `json:"role"`
	State protocol.State `json:"state"`
	// Offer is the offer notification, URL-encoded with its verification.
	Offer       string `json:"offer"`
	Counterpart string `json:"counterpart"`
	TranID      string `json:"tranId,omitempty"`
	Relay       string `json:"relay,omitempty"`
	// Decision is the deciding code and the decision's record (canonical),
	// with its verification.
	Decision       protocol.Code `json:"decision,omitempty"`
	DecisionRecord string        `json:"decisionRecord,omitempty"`
	DecisionScheme string        `json:"decisionScheme,omitempty"`
	DecisionData   string        `json:"decisionData,omitempty"`
	// Evidence is how the counterpart's part was verified (its offer, or
	// its decision on the switch's offer).
	Evidence *protocol.Evidence `json:"evidence,omitempty"`
	// Retailer is the retailer of the code whose relay the offer named
	// (the original's, on a reversal): on a store spread over shards the
	// record, and the switch's own records of its decisions, live with
	// that retailer's payments (partners.ShardSafe).
	Retailer string `json:"retailer,omitempty"`
	// Replies are the replies given, by the SHA1 of the notification they
	// answered: a repeat is answered the same.
	Replies map[string]*protocol.Reply `json:"replies,omitempty"`
	// Reversal names the switch's reversal offer of this payment;
	// Original, on the reversal, the payment it reverses.
	Reversal string    `json:"reversal,omitempty"`
	Original string    `json:"original,omitempty"`
	Created  time.Time `json:"created"`
	Decided  time.Time `json:"decided,omitzero"`
	Note     string    `json:"note,omitempty"`
	// Due is when the sweeper takes the record up again: a pending offer
	// to decide, or a decision to notify (Notify).
	Due            time.Time `json:"due,omitzero"`
	Notify         bool      `json:"notify,omitempty"`
	NotifyAttempts int       `json:"notifyAttempts,omitempty"`
	Version        int64     `json:"-"`
}

// own is a record the switch authored, answered to verification queries.
type own struct {
	Code   protocol.Code `json:"code"`
	Status string        `json:"status"`
	Record string        `json:"record"`
}

func (r *Rail) encode(kind, key string, v any, version int64, index ...string) *partners.Record {
	b, _ := json.Marshal(v)
	return &partners.Record{Kind: kind, Key: key, Data: b, Index: index, Version: version}
}

func (r *Rail) paymentRecord(p *payment) *partners.Record {
	off, _ := parseStored(p.Offer)
	index := []string{}
	if p.TranID != "" {
		index = append(index, "tran:"+p.TranID)
	}
	if off != nil {
		index = append(index, "brand:"+off.From, "brand:"+off.To)
	}
	if p.State.Reportable() {
		index = append(index, "reportable")
	}
	rec := r.encode(kindPayment, p.Key, p, p.Version, index...)
	rec.DueAt, rec.Retailer = p.Due, p.Retailer
	return rec
}

// relayRecord is a relay's record, which lives with its retailer's
// payments.
func (r *Rail) relayRecord(v *relay, version int64) *partners.Record {
	rec := r.encode(kindRelay, v.Relay, v, version, "tran:"+v.TranID)
	rec.Retailer = v.Retailer
	return rec
}

// ownRecord is the switch's own record of a decision on a payment of
// retailer's.
func (r *Rail) ownRecord(n *protocol.Notification, retailer string) *partners.Record {
	rec := r.encode(kindOwn, n.SHA1(), &own{Code: n.Code, Status: n.Status, Record: n.Canonical()}, 0)
	rec.Retailer = retailer
	return rec
}

// parseStored reads a notification the rail stored (URL-encoded).
func parseStored(s string) (*protocol.Notification, error) {
	return protocol.ParseNotification([]byte(s))
}

func (r *Rail) readPayment(ctx context.Context, key string) (*payment, error) {
	rec, err := r.records.Get(ctx, kindPayment, key)
	if err != nil {
		return nil, err
	}
	var p payment
	if err := json.Unmarshal(rec.Data, &p); err != nil {
		return nil, fmt.Errorf("decoding payment %s: %w", key, err)
	}
	p.Version = rec.Version
	return &p, nil
}

func (r *Rail) readRelay(ctx context.Context, id string) (*relay, int64, error) {
	rec, err := r.records.Get(ctx, kindRelay, id)
	if err != nil {
		return nil, 0, err
	}
	var v relay
	if err := json.Unmarshal(rec.Data, &v); err != nil {
		return nil, 0, fmt.Errorf("decoding relay %s: %w", id, err)
	}
	return &v, rec.Version, nil
}

// ShardSafe: a relay, the payments that name it, their reversals and the
// switch's own records of their decisions all carry the code's retailer,
// and are the only records committed with a payment (partners.ShardSafe).
func (r *Rail) ShardSafe() bool { return true }

// Offer gives a new QR code a one-time relay for the retailer's brand:
// the code carries both, and the payer's accountant names the relay in its
// offer.
func (r *Rail) Offer(_ context.Context, o *partners.OfferRequest) (*partners.Offer, error) {
	if o.Amount == nil || o.Amount.Amount <= 0 {
		return nil, fmt.Errorf("%w: an IPP offer needs an amount", partners.ErrNotOffered)
	}
	if o.Amount.Currency != r.opts.Currency {
		return nil, fmt.Errorf("%w: the rail's unit is %s, the code is in %s", partners.ErrNotOffered, r.opts.Currency, o.Amount.Currency)
	}
	brand := r.brandOf(o.RetailerID)
	if len(o.RetailerID) > 16 || !protocol.ValidBrand(brand) {
		return nil, fmt.Errorf("%w: retailer id %q cannot name an IPP brand (up to 16 lowercase letters, digits, '-', '.', '_', '~')", partners.ErrNotOffered, o.RetailerID)
	}
	v := &relay{Relay: newRelay(), TranID: o.TranID, Retailer: o.RetailerID, Brand: brand,
		Amount: o.Amount.Amount, Currency: o.Amount.Currency, ExpiresAt: o.ExpiresAt}
	return &partners.Offer{
		Accounts:  []qr.MerchantAccount{{GUID: GUID, Fields: []qr.Field{{Tag: "01", Value: brand}, {Tag: "02", Value: v.Relay}}}},
		Reference: v.Relay,
		Display:   map[string]string{"ippBrand": brand, "ippRelay": v.Relay},
		Records:   []*partners.Record{r.relayRecord(v, 0)},
	}, nil
}

// commitRetry runs f until its commit does not conflict.
func commitRetry(ctx context.Context, f func() error) error {
	for range 16 {
		err := f()
		if !errors.Is(err, partners.ErrConflict) && !errors.Is(err, partners.ErrDuplicate) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return errors.New("too many concurrent changes")
}
