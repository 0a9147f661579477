package qrswitch

import (
	"context"
	"errors"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
)

// A checkout is a web shop's payment: no till holds a request open for it.
// It is a QR code, offered on the pull rails like any other, and a payment
// waiting on it until the checkout expires; a rail's report of the money
// approves it, the switch confirms it with the rail itself, and the shop is
// told by a postback (see settleCheckout). Its id is the shop's handle, and
// the payment's request id.

// CheckoutRequest is a web shop's request to be paid.
type CheckoutRequest struct {
	// ID is the checkout's id, unique per shop: the payment's request id.
	ID string
	// Amount is what the shop asks, in its checkout currency's minor units.
	Amount *wire.LedgerAmount
	// AmountText is the amount as the shop wrote it (a decimal string).
	AmountText string
	// Data is the shop's own data, echoed in postbacks.
	Data []byte
	// PostbackURL, when set, is told when the checkout is paid.
	PostbackURL string
	// ExpiresAt ends the checkout: unpaid by then, it expires.
	ExpiresAt time.Time
	// Merchant names the shop on the QR code.
	Merchant wire.Merchant
}

// checkoutTerminal is the terminal id of checkouts in the interface's
// messages (exactly 8 characters).
const checkoutTerminal = "WEBSHOP1"

// CreateCheckout issues a checkout: its QR code, with every pull rail's
// offer, and its payment, waiting until ExpiresAt, in one commit.
func (e *Engine) CreateCheckout(ctx context.Context, r Retailer, c *CheckoutRequest) (*Payment, *QRCode, *wire.Failure) {
	if e.Draining() {
		return nil, nil, drainFailure(c.ID)
	}
	now := e.now()
	if !c.ExpiresAt.After(now) {
		return nil, nil, wire.FormatFailure(&wire.FieldError{Field: "expiry", Reason: "must be in the future"}, c.ID)
	}
	orig := &wire.Originator{Institution: wire.Institution{ID: r.InstitutionID, Name: r.ID}, TerminalID: checkoutTerminal, Merchant: c.Merchant}
	stamp := now.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	single := true
	qreq := &wire.CreateQrCodeRequest{
		ID: wire.NewID(), Time: stamp, Originator: orig, Client: &wire.Institution{ID: r.ID, Name: "web shop checkout"},
		QrProperties: &wire.QrProperties{Value: c.Amount.Clone(), ExpiryDate: c.ExpiresAt.UTC().Format(time.RFC3339Nano), SingleUse: &single},
	}
	code, _, change, f := e.issue(ctx, r, qreq, nil, true)
	if f != nil {
		return nil, nil, f
	}
	p := &Payment{
		RetailerID: r.ID,
		RequestID:  c.ID,
		TranID:     code.TranID,
		State:      outcome.AwaitingScan,
		// The payment request as partners see it: the interface wants a
		// UUID for its id, which a checkout's id is not.
		Request: &wire.PaymentRequest{
			Transaction: wire.Transaction{ID: wire.NewID(), Time: stamp, Originator: orig, Client: &wire.Institution{ID: r.ID, Name: "web shop checkout"},
				ThirdPartyIdentifiers: []wire.ThirdPartyIdentifier{}},
			Amounts: &wire.Amounts{RequestAmount: c.Amount.Clone()},
			TranID:  code.TranID,
		},
		// Nobody holds a checkout: it waits for its expiry, after which
		// recovery ends it like any payment whose hold ended.
		HoldUntil: c.ExpiresAt,
		Checkout:  &Checkout{PostbackURL: c.PostbackURL, Data: c.Data, Amount: c.AmountText, ExpiresAt: c.ExpiresAt},
		CreatedAt: now,
		UpdatedAt: now,
	}
	code.PaymentKey = p.Key()
	change.Payment = p
	change.Trace = append(change.Trace, event(now, "checkoutStarted", "checkout "+c.ID+" for "+c.AmountText+", expires "+c.ExpiresAt.UTC().Format(time.RFC3339)))
	change.TraceKey = p.Key()
	switch err := e.commit(ctx, change); {
	case errors.Is(err, ErrDuplicate):
		return nil, nil, fail(400, wire.DuplicateRecord, "Duplicate checkout id", c.ID, "")
	case err != nil:
		return nil, nil, storeFailure(err, c.ID, "")
	}
	return p, code, nil
}

// Checkout returns a shop's checkout (its payment) and the checkout's QR
// code, by the checkout's id.
func (e *Engine) Checkout(ctx context.Context, retailerID, id string) (*Payment, *QRCode, error) {
	p, err := e.store.Payment(ctx, PaymentKey(retailerID, id))
	if err != nil {
		return nil, nil, err
	}
	if p.Checkout == nil {
		return nil, nil, ErrNotFound
	}
	code, err := e.store.QR(ctx, p.TranID)
	if err != nil {
		return nil, nil, err
	}
	return p, code, nil
}

// FindCheckout returns the checkout with the id, of whichever shop (the
// public status page names a checkout by its id alone: ids are random).
func (e *Engine) FindCheckout(ctx context.Context, id string) (*Payment, *QRCode, error) {
	ps, err := e.store.Lookup(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range ps {
		if p.Checkout != nil && p.RequestID == id {
			code, err := e.store.QR(ctx, p.TranID)
			if err != nil {
				return nil, nil, err
			}
			return p, code, nil
		}
	}
	return nil, nil, ErrNotFound
}
