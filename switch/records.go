package qrswitch

import (
	"bytes"
	"encoding/json"
	"maps"
	"strconv"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
)

// QRCode is a QR code the switch issued to a retailer. Its TranID links the
// payment request and the partner's scan. It also carries the two pieces of
// linking state that must change atomically with a payment: which payment is
// using the code, and a scan that arrived before any payment request.
type QRCode struct {
	TranID     string    `json:"tranId"`
	RetailerID string    `json:"retailerId"`
	RequestID  string    `json:"requestId"` // the createQrCode message id
	Payload    string    `json:"payload"`   // the EMVCo data string to render
	Scheme     string    `json:"scheme"`
	SingleUse  bool      `json:"singleUse"`
	CreatedAt  time.Time `json:"createdAt"`
	ExpiresAt  time.Time `json:"expiresAt"`

	// Request is the createQrCode request as received, echoed in the answer.
	Request *wire.CreateQrCodeRequest `json:"request,omitempty"`

	// PaymentKey is the payment currently using the code ("" when none).
	PaymentKey string `json:"paymentKey,omitempty"`
	// HeldScan is a scan that arrived before its payment request and is
	// waiting (up to early_scan_grace) to be linked.
	HeldScan *Scan `json:"heldScan,omitempty"`
	// Offers are the pull rails' offers on the code (see partners.Offerer).
	Offers []Offer `json:"offers,omitempty"`

	// Version is the store's optimistic-concurrency counter: 0 for a record
	// not yet stored; Commit checks it and increments it.
	Version int64 `json:"version"`
}

// Offer is a pull rail's offer on a QR code.
type Offer struct {
	PartnerID string `json:"partnerId"`
	// Reference is the rail's own name for the offer.
	Reference string `json:"reference,omitempty"`
	// Display is what a checkout or a POS may show beside the code.
	Display map[string]string `json:"display,omitempty"`
}

// Offer returns the offer of the partner on the code, if it has one.
func (q *QRCode) Offer(partnerID string) (*Offer, bool) {
	for i := range q.Offers {
		if q.Offers[i].PartnerID == partnerID {
			return &q.Offers[i], true
		}
	}
	return nil, false
}

// Expired reports whether the code can no longer be paid at time now.
func (q *QRCode) Expired(now time.Time) bool { return !now.Before(q.ExpiresAt) }

// Scan is a partner's scan notification as the switch keeps it.
type Scan struct {
	ID           string    `json:"id"` // the ScanNotification id
	PartnerID    string    `json:"partnerId"`
	PartnerName  string    `json:"partnerName"`
	PaymentToken string    `json:"paymentToken,omitempty"` // secret: never traced or shown
	ReceivedAt   time.Time `json:"receivedAt"`
	// Until is when a held early scan gives up waiting for its payment request.
	Until time.Time `json:"until,omitzero"`
}

// Payment is one payment request and everything that happened to it.
type Payment struct {
	RetailerID string        `json:"retailerId"`
	RequestID  string        `json:"requestId"` // the PaymentRequest id, unique per retailer
	TranID     string        `json:"tranId,omitempty"`
	State      outcome.State `json:"state"`

	// Request is the payment request as received and validated.
	Request *wire.PaymentRequest `json:"request,omitempty"`

	// Scan is the partner's scan linked to the payment, once linked.
	Scan *Scan `json:"scan,omitempty"`

	// The answer to the payment leg: the partner's approval, or the error the
	// retailer was given, with its HTTP status.
	PayOutcome outcome.Outcome       `json:"payOutcome"`
	Response   *wire.PaymentResponse `json:"response,omitempty"`
	Error      *wire.ErrorDetail     `json:"error,omitempty"`
	Status     int                   `json:"status,omitempty"`

	// Paid is what a pull rail reported when the money arrived (the scan
	// then names the rail's partner); nil for a push payment.
	Paid *PaidMoney `json:"paid,omitempty"`
	// Seen is a pull rail's latest progress short of payment.
	Seen *SeenMoney `json:"seen,omitempty"`
	// Checkout is set for a web shop's checkout: a payment without a till
	// holding a request open, waiting until the checkout expires.
	Checkout *Checkout `json:"checkout,omitempty"`

	// HeldReversal is the key of a retailer reversal that arrived while the
	// payment was still FORWARDED; it is applied when the outcome is known.
	HeldReversal string `json:"heldReversal,omitempty"`
	// AdviceKey is the advice carrying the payment's one upstream
	// confirmation or reversal, once there is one.
	AdviceKey string `json:"adviceKey,omitempty"`

	// Owner is the switch process holding the retailer's request open, and
	// HoldUntil when that hold ends at the latest. A payment still
	// AWAITING_SCAN or FORWARDED after HoldUntil lost its owner (a crash) and
	// is recovered: no scan becomes NO_SCAN, forwarded becomes a timeout
	// reversal.
	Owner     string    `json:"owner,omitempty"`
	HoldUntil time.Time `json:"holdUntil,omitzero"`

	// Tombstone marks a record created by a reversal whose payment request
	// the switch never saw; it makes that request id unusable.
	Tombstone bool `json:"tombstone,omitempty"`

	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	Version   int64     `json:"version"`
}

// PaidMoney is money a pull rail received for a payment.
type PaidMoney struct {
	Reference string             `json:"reference"`
	Amount    *wire.LedgerAmount `json:"amount,omitempty"`
	Payer     *wire.Institution  `json:"payer,omitempty"`
	At        time.Time          `json:"at"`
}

// SeenMoney is a pull rail's progress on a payment short of payment.
type SeenMoney struct {
	Received  *wire.LedgerAmount `json:"received,omitempty"`
	Reference string             `json:"reference,omitempty"`
	// First is when money was first seen, At when last reported.
	First time.Time `json:"first"`
	At    time.Time `json:"at"`
}

// Checkout is a web shop's checkout on a payment.
type Checkout struct {
	// PostbackURL, when set, is told when the payment is paid (a postback
	// advice to the shop's destination, repeated until it answers 2xx).
	PostbackURL string `json:"postbackUrl,omitempty"`
	// Data is the shop's own data for the payment, echoed in postbacks.
	Data []byte `json:"data,omitempty"`
	// Amount is the amount as the shop asked for it (a decimal string).
	Amount    string    `json:"amount,omitempty"`
	ExpiresAt time.Time `json:"expiresAt"`
	// PaidAt is when the checkout was paid, by whichever rail, and
	// Reference that rail's name for the money (a transaction hash, the
	// partner's reference).
	PaidAt    time.Time `json:"paidAt,omitzero"`
	Reference string    `json:"reference,omitempty"`
}

// Key returns the payment's store key.
func (p *Payment) Key() string { return PaymentKey(p.RetailerID, p.RequestID) }

// PaymentKey builds the store key of a payment: request ids are unique per
// sender, so the key is scoped by retailer.
func PaymentKey(retailerID, requestID string) string { return retailerID + "/" + requestID }

// PartnerID returns the partner linked to the payment, or "".
func (p *Payment) PartnerID() string {
	if p.Scan == nil {
		return ""
	}
	return p.Scan.PartnerID
}

// LegOutcome is the outcome of the payment leg by name, as support staff
// search for it: "successful", "unknown" or "failed" once the leg is over,
// and "" while the payment is still AWAITING_SCAN or FORWARDED (it has no
// outcome yet) or for a tombstone (it had no payment leg). Stores index it.
func (p *Payment) LegOutcome() string {
	if p.Tombstone || p.State == outcome.AwaitingScan || p.State == outcome.Forwarded {
		return ""
	}
	return p.PayOutcome.String()
}

// AdviceKind says what an advice asks of its destination.
type AdviceKind string

// The advice kinds of the engine; rails and surfaces add their own (see
// partners.NewAdvice), delivered by their destination's Deliverer.
const (
	Confirmation AdviceKind = partners.KindConfirmation
	Reversal     AdviceKind = partners.KindReversal
	Postback     AdviceKind = partners.KindPostback
)

// AdviceState is where an advice stands in store-and-forward.
type AdviceState string

// The advice states.
const (
	// AdviceHeld: accepted from the retailer but waiting for the payment's
	// outcome before anything is sent (a reversal while FORWARDED).
	AdviceHeld AdviceState = "HELD"
	// AdvicePending: queued for sending at NextAt.
	AdvicePending AdviceState = "PENDING"
	// AdviceDone: final; Outcome says how it ended.
	AdviceDone AdviceState = "DONE"
	// AdviceDead: gave up after give_up_after; kept for support to replay.
	AdviceDead AdviceState = "DEAD"
	// AdviceMerged: final; another advice of the same payment (MergedInto)
	// carries its effect upstream, so it is never sent itself.
	AdviceMerged AdviceState = "MERGED"
	// AdviceOperator: nothing the switch can send carries it out (the
	// reversal of money a pull rail received, on a rail that cannot refund):
	// it waits for an operator, who settles it by other means and marks it
	// final. Never a pretend success.
	AdviceOperator AdviceState = "OPERATOR"
)

// SwitchSender is the sender scope of advices the switch creates itself
// (timeout reversals, checkout confirmations, postbacks, rails'
// notifications).
const SwitchSender = "switch"

// RetailerDestination is the destination of advices to a retailer's own
// endpoint (a web shop's postbacks).
func RetailerDestination(retailerID string) string { return "retailer:" + retailerID }

// Advice is an advice — a confirmation or reversal for a partner, or
// another kind (a rail's notification, a shop's postback) — and its
// store-and-forward life.
type Advice struct {
	Sender     string     `json:"sender"` // retailer id, or SwitchSender
	ID         string     `json:"id"`     // the advice message id
	Kind       AdviceKind `json:"kind"`
	PaymentKey string     `json:"paymentKey"`
	TranID     string     `json:"tranId,omitempty"`
	// Destination is the queue the advice is sent from: a partner id, or
	// RetailerDestination(id).
	Destination string `json:"destination,omitempty"`

	// Confirmation or Reversal is the message as it will be sent upstream.
	Confirmation *wire.PaymentConfirmation `json:"confirmation,omitempty"`
	Reversal     *wire.PaymentReversal     `json:"reversal,omitempty"`
	// Payload is the body of other kinds, as their author built it.
	Payload json.RawMessage `json:"payload,omitempty"`

	State   AdviceState     `json:"state"`
	Outcome outcome.Outcome `json:"outcome"`
	Note    string          `json:"note,omitempty"` // how it ended, in words
	// MergedInto is the advice that carries this one's effect upstream when
	// two reversals of one payment meet (only one is ever sent).
	MergedInto string `json:"mergedInto,omitempty"`

	Attempts int `json:"attempts"`
	// QueuedAt is when the advice last became due (queued, or replayed);
	// give_up_after counts from it, leaving out the time its queue was
	// paused since: PauseBase is the queue's QueueControl.PausedBy then.
	QueuedAt   time.Time     `json:"queuedAt,omitzero"`
	PauseBase  time.Duration `json:"pauseBase,omitempty"`
	NextAt     time.Time     `json:"nextAt,omitzero"`
	LeaseOwner string        `json:"leaseOwner,omitempty"`
	LeaseUntil time.Time     `json:"leaseUntil,omitzero"`
	// LastCode is the destination's code of the last answer ("HTTP 500",
	// "ILP T04"), "" when none came.
	LastCode  string `json:"lastCode,omitempty"`
	LastError string `json:"lastError,omitempty"`

	// Answer is what the retailer was told, repeated verbatim when the same
	// advice id arrives again.
	AnswerStatus int    `json:"answerStatus,omitempty"`
	AnswerBody   []byte `json:"answerBody,omitempty"`

	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	DoneAt    time.Time `json:"doneAt,omitzero"`
	Version   int64     `json:"version"`
}

// Key returns the advice's store key.
func (a *Advice) Key() string { return AdviceKey(a.Sender, a.ID) }

// AdviceKey builds the store key of an advice, scoped by sender.
func AdviceKey(sender, id string) string { return sender + "/" + id }

// Direction of a traced message, seen from the switch.
type Direction string

// Trace directions.
const (
	Inbound  Direction = "in"       // a message that reached the switch
	Outbound Direction = "out"      // a message the switch sent
	Internal Direction = "internal" // a decision or event inside the switch
)

// Kinds of trace entries.
const (
	KindRequest = "request"
	KindAnswer  = "answer"
	KindEvent   = "event"
)

// TraceEntry is one message of a payment's story, or one event in it. Read in
// order, a trace is a sequence diagram: retailer ↔ switch ↔ partner.
type TraceEntry struct {
	At        time.Time `json:"at"`
	Direction Direction `json:"direction"`
	Peer      string    `json:"peer"`      // "retailer:shop-1", "partner:wallet-a", "operator:alice", "switch"
	Operation string    `json:"operation"` // pay, notifyScan, confirmPayment, reversePayment, createQrCode, or an event name
	Kind      string    `json:"kind"`      // request, answer or event
	MessageID string    `json:"messageId,omitempty"`
	Status    int       `json:"status,omitempty"`  // an HTTP status the switch answered
	Code      string    `json:"code,omitempty"`    // a partner's own code of its answer ("HTTP 404", "ILP F02")
	Outcome   string    `json:"outcome,omitempty"` // an outcome's name, where one applies
	LatencyMS float64   `json:"latencyMs,omitempty"`
	Body      string    `json:"body,omitempty"` // masked JSON
	Note      string    `json:"note,omitempty"`
}

// Clone returns a deep copy of q.
func (q *QRCode) Clone() *QRCode {
	if q == nil {
		return nil
	}
	out := *q
	out.Request = q.Request.Clone()
	out.HeldScan = q.HeldScan.Clone()
	if q.Offers != nil {
		out.Offers = make([]Offer, len(q.Offers))
		for i, o := range q.Offers {
			o.Display = maps.Clone(o.Display)
			out.Offers[i] = o
		}
	}
	return &out
}

// Clone returns a deep copy of s.
func (s *Scan) Clone() *Scan {
	if s == nil {
		return nil
	}
	out := *s
	return &out
}

// Clone returns a deep copy of p.
func (p *Payment) Clone() *Payment {
	if p == nil {
		return nil
	}
	out := *p
	out.Request = p.Request.Clone()
	out.Scan = p.Scan.Clone()
	out.Response = p.Response.Clone()
	out.Error = p.Error.Clone()
	if p.Paid != nil {
		m := *p.Paid
		m.Amount = p.Paid.Amount.Clone()
		m.Payer = p.Paid.Payer.Clone()
		out.Paid = &m
	}
	if p.Seen != nil {
		m := *p.Seen
		m.Received = p.Seen.Received.Clone()
		out.Seen = &m
	}
	if p.Checkout != nil {
		c := *p.Checkout
		c.Data = bytes.Clone(p.Checkout.Data)
		out.Checkout = &c
	}
	return &out
}

// Clone returns a deep copy of a.
func (a *Advice) Clone() *Advice {
	if a == nil {
		return nil
	}
	out := *a
	out.Confirmation = a.Confirmation.Clone()
	out.Reversal = a.Reversal.Clone()
	out.Payload = bytes.Clone(a.Payload)
	out.AnswerBody = bytes.Clone(a.AnswerBody)
	return &out
}

// UnmarshalJSON reads an advice, including those stored before advices had
// destinations (their "partnerId") and codes (their "lastStatus").
func (a *Advice) UnmarshalJSON(b []byte) error {
	type plain Advice
	var v struct {
		plain
		LegacyPartner string `json:"partnerId"`
		LegacyStatus  int    `json:"lastStatus"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*a = Advice(v.plain)
	if a.Destination == "" {
		a.Destination = v.LegacyPartner
	}
	if a.LastCode == "" && v.LegacyStatus != 0 {
		a.LastCode = "HTTP " + strconv.Itoa(v.LegacyStatus)
	}
	return nil
}
