package qrswitch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/qr"
)

const defaultProvider = qr.ElectrumProvider

// maxQRLife bounds a retailer's expiryDate: a payment QR code is for a till,
// not a poster, and the store keeps every code for its life.
const maxQRLife = 24 * time.Hour

// CreateQR issues a QR code (createQrCode): the Electrum template for the
// partners that scan, and the templates of the pull rails that offer on
// the retailer's codes. raw is the request body as received, for the trace.
func (e *Engine) CreateQR(ctx context.Context, r Retailer, req *wire.CreateQrCodeRequest, raw []byte) (*wire.CreateQrCodeResponse, *wire.Failure) {
	if f := e.intake(r, req, req.ID, req.Originator); f != nil {
		return nil, f
	}
	_, resp, change, f := e.issue(ctx, r, req, raw, false)
	if f != nil {
		return nil, f
	}
	err := e.commit(ctx, change)
	switch {
	case errors.Is(err, ErrDuplicate):
		return nil, fail(400, wire.DuplicateRecord, "Duplicate request id", req.ID, "")
	case err != nil:
		return nil, storeFailure(err, req.ID, "")
	}
	return resp, nil
}

// issue builds a new QR code for req — its payload, the offers of the pull
// rails, and the change that stores them — without committing it.
func (e *Engine) issue(ctx context.Context, r Retailer, req *wire.CreateQrCodeRequest, raw []byte, checkout bool) (*QRCode, *wire.CreateQrCodeResponse, *Change, *wire.Failure) {
	now := e.now()
	expires := now.Add(e.opts.QRTTL)
	single := true
	scheme := qr.Scheme("")
	var value *wire.LedgerAmount
	if req.Amounts != nil {
		value = req.Amounts.RequestAmount
	}
	applied := &wire.QrProperties{}
	if p := req.QrProperties; p != nil {
		*applied = *p
		if p.ExpiryDate != "" {
			t, _ := time.Parse(time.RFC3339Nano, p.ExpiryDate) // validated
			if !t.After(now) || t.Sub(now) > maxQRLife {
				return nil, nil, nil, wire.FormatFailure(&wire.FieldError{Field: "qrProperties.expiryDate", Reason: "must be in the future and at most 24h away"}, req.ID)
			}
			expires = t
		}
		if p.SingleUse != nil {
			single = *p.SingleUse
		}
		if p.Scheme != "" {
			scheme = qr.Scheme(p.Scheme)
		}
		if p.Value != nil {
			value = p.Value
		}
	}
	if scheme == "" {
		// A full EMVCo code needs an ISO 4217 currency; a POS that asks for
		// a code before it knows the amount, or a checkout priced in a
		// rail's token, gets the same layout without one.
		scheme = qr.SchemePseudoEMVCo
		if value != nil && isoCurrency(value.Currency) {
			scheme = qr.SchemeEMVCo
		}
	}
	tranID := strings.ReplaceAll(wire.NewID(), "-", "")
	if e.tranIDs != nil {
		tranID = e.tranIDs.NewTranID(r.ID)
	}
	code := &QRCode{
		TranID:     tranID,
		RetailerID: r.ID,
		RequestID:  req.ID,
		Scheme:     string(scheme),
		SingleUse:  single,
		CreatedAt:  now,
		ExpiresAt:  expires,
		Request:    req,
	}
	payload := e.qrPayload(req.Originator, value, scheme, single, tranID)
	change := &Change{QR: code, TraceKey: qrTraceKey(tranID)}
	var notes []TraceEntry
	for _, partner := range e.offerers(r) {
		o, err := partner.Rail.(partners.Offerer).Offer(ctx, &partners.OfferRequest{
			TranID: tranID, RetailerID: r.ID, Amount: value.Clone(), Merchant: &req.Originator.Merchant,
			Customer: req.Customer, ExpiresAt: expires, Checkout: checkout, Now: now,
		})
		if err != nil {
			// The code goes out without this rail: the others can still
			// be paid. Support sees why in the trace.
			if !errors.Is(err, partners.ErrNotOffered) {
				e.logger(ctx).Warn().Err(err).Str("partner", partner.ID).Str("tranId", tranID).Msg("a rail could not offer on a new QR code")
			}
			notes = append(notes, event(now, "offerSkipped", partner.ID+": "+err.Error()))
			continue
		}
		payload.Accounts = append(payload.Accounts, o.Accounts...)
		code.Offers = append(code.Offers, Offer{PartnerID: partner.ID, Reference: o.Reference, Display: o.Display})
		change.Records = append(change.Records, placed(r.ID, owned(partner.ID, o.Records))...)
		for _, na := range o.Advices {
			change.Advices = append(change.Advices, e.newAdvice(partner.ID, qrTraceKey(tranID), tranID, na, now))
		}
	}
	if len(payload.Accounts) == 0 {
		return nil, nil, nil, fail(503, wire.RoutingError, "No rail can take this code", req.ID, "")
	}
	text, err := qr.Encode(payload)
	if err != nil {
		// The request's fields do not fit the scheme (a name too long for
		// tag 59, a currency without a known exponent, …).
		fe := &wire.FieldError{Reason: err.Error()}
		var qfe *qr.FieldError
		if errors.As(err, &qfe) {
			fe = &wire.FieldError{Field: qrRequestField[qfe.Field], Reason: fmt.Sprintf("%s (QR tag %s)", qfe.Msg, qfe.Tag)}
		}
		return nil, nil, nil, wire.FormatFailure(fe, req.ID)
	}
	code.Payload = text
	// The properties the switch applied are echoed, whether the request
	// gave them or not: the interface marks qrProperties required in the
	// answer.
	applied.Value = value.Clone()
	applied.ExpiryDate = expires.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	applied.SingleUse = &single
	applied.Scheme = string(scheme)
	resp := &wire.CreateQrCodeResponse{CreateQrCodeRequest: *req, TranID: tranID, QrCode: text}
	resp.QrProperties = applied
	answer := answered(now, "retailer:"+r.ID, "createQrCode", req.ID, 201, resp, 0)
	answer.Note = "QR code issued, expires " + expires.UTC().Format(time.RFC3339)
	change.Trace = append([]TraceEntry{inbound(now, "retailer:"+r.ID, "createQrCode", req.ID, raw)}, notes...)
	change.Trace = append(change.Trace, answer)
	return code, resp, change, nil
}

// offerers are the pull rails that offer on the retailer's codes.
func (e *Engine) offerers(r Retailer) []*partners.Partner {
	var out []*partners.Partner
	for _, id := range e.partnerIDs {
		p := e.partners[id]
		if _, ok := p.Rail.(partners.Offerer); !ok {
			continue
		}
		if only, ok := e.opts.Offers[r.ID]; ok && !slices.Contains(only, id) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// newAdvice builds an advice a rail or surface asked for, due now.
func (e *Engine) newAdvice(partnerID, paymentKey, tranID string, na *partners.NewAdvice, now time.Time) *Advice {
	dest := na.Destination
	if dest == "" {
		dest = partnerID
	}
	id := na.ID
	if id == "" {
		id = wire.NewID()
	}
	a := &Advice{Sender: SwitchSender, ID: id, Kind: AdviceKind(na.Kind), PaymentKey: paymentKey, TranID: tranID,
		Destination: dest, Payload: na.Payload, CreatedAt: now, UpdatedAt: now}
	e.queue(a, now)
	return a
}

// qrRequestField names the createQrCode field each QR payload field comes
// from, so that a value the QR code cannot carry is reported where the
// retailer can fix it.
var qrRequestField = map[string]string{
	"MCC":           "originator.merchant.merchantType",
	"Country":       "originator.merchant.merchantName.country",
	"MerchantName":  "originator.merchant.merchantName.name",
	"City":          "originator.merchant.merchantName.city",
	"TerminalLabel": "originator.terminalId",
	"Currency":      "qrProperties.value.currency",
	"Amount":        "qrProperties.value.amount",
}

// qrTraceKey is where the story of a QR code is kept before a payment uses it.
func qrTraceKey(tranID string) string { return "qr/" + tranID }

func (e *Engine) qrPayload(o *wire.Originator, value *wire.LedgerAmount, scheme qr.Scheme, single bool, tranID string) *qr.Payload {
	p := &qr.Payload{
		Scheme:        scheme,
		Static:        !single,
		MCC:           o.Merchant.MerchantType,
		Country:       o.Merchant.MerchantName.Country,
		MerchantName:  o.Merchant.MerchantName.Name,
		City:          o.Merchant.MerchantName.City,
		TerminalLabel: o.TerminalID,
	}
	if e.scannable {
		p.Accounts = []qr.MerchantAccount{electrumAccount(e.opts.ProviderGUID, tranID)}
	}
	if value != nil && isoCurrency(value.Currency) {
		p.Currency = value.Currency
		if value.Amount > 0 {
			p.Amount, p.HasAmount = value.Amount, true
		}
	}
	return p
}

func electrumAccount(provider, tranID string) qr.MerchantAccount {
	a := qr.ElectrumAccount(tranID)
	a.GUID = provider
	return a
}

// QRPayload returns the payload of a QR code the retailer issued and that is
// still payable, for rendering.
func (e *Engine) QRPayload(ctx context.Context, r Retailer, tranID string) (string, *wire.Failure) {
	code, err := e.store.QR(ctx, tranID)
	switch {
	case errors.Is(err, ErrNotFound) || err == nil && code.RetailerID != r.ID:
		// Another retailer's code is as unknown as a code never issued.
		return "", fail(404, wire.UnableToLocateRecord, "Unknown QR code", "", tranID)
	case err != nil:
		return "", storeFailure(err, "", tranID)
	case code.Expired(e.now()):
		return "", fail(404, wire.InvalidTranID, "QR code expired", "", tranID)
	}
	return code.Payload, nil
}

// intake refuses a new request the engine will not take: while it drains, a
// malformed one (400 FORMAT_ERROR naming the field), or one whose
// originator is not the authenticated retailer's institution.
func (e *Engine) intake(r Retailer, msg interface{ Validate() error }, id string, o *wire.Originator) *wire.Failure {
	if e.Draining() {
		return drainFailure(id)
	}
	if err := msg.Validate(); err != nil {
		return wire.FormatFailure(err, id)
	}
	return checkInstitution(r, o, id)
}

// checkInstitution refuses a message whose originator is not the
// authenticated retailer's institution.
func checkInstitution(r Retailer, o *wire.Originator, id string) *wire.Failure {
	if r.InstitutionID == "" || o == nil || o.Institution.ID == r.InstitutionID {
		return nil
	}
	return wire.FormatFailure(&wire.FieldError{Field: "originator.institution.id", Reason: "does not match the authenticated retailer's institution"}, id)
}

// DefaultImageSize is the edge of a QR image in pixels when none is asked.
const DefaultImageSize = 256

// QRImage renders a QR code the retailer issued as a size×size PNG.
func (e *Engine) QRImage(ctx context.Context, r Retailer, tranID string, size int) ([]byte, *wire.Failure) {
	if size < qr.MinPNGSize || size > qr.MaxPNGSize {
		return nil, wire.FormatFailure(&wire.FieldError{Field: "size", Reason: fmt.Sprintf("must be from %d to %d pixels", qr.MinPNGSize, qr.MaxPNGSize)}, "")
	}
	payload, f := e.QRPayload(ctx, r, tranID)
	if f != nil {
		return nil, f
	}
	img, err := qr.PNG(payload, size)
	if errors.Is(err, qr.ErrImageSize) {
		return nil, wire.FormatFailure(&wire.FieldError{Field: "size", Reason: "too small for this QR code"}, "")
	}
	if err != nil {
		f := fail(500, wire.GeneralError, "Rendering failed", "", tranID)
		f.Cause = err
		return nil, f
	}
	return img, nil
}

// isoCurrency reports whether c is an ISO 4217 numeric code, which the
// EMVCo layout can carry (tag 53); a rail's token is not.
func isoCurrency(c string) bool {
	return len(c) == 3 && c[0] >= '0' && c[0] <= '9' && c[1] >= '0' && c[1] <= '9' && c[2] >= '0' && c[2] <= '9'
}
