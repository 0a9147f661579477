package qrswitch

import (
	"bytes"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
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

	// Version is the store's optimistic-concurrency counter: 0 for a record
	// not yet stored; Commit checks it and increments it.
	Version int64 `json:"version"`
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

// AdviceKind says what an advice asks of the partner.
type AdviceKind string

// The advice kinds.
const (
	Confirmation AdviceKind = "confirmation"
	Reversal     AdviceKind = "reversal"
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
)

// SwitchSender is the sender scope of advices the switch creates itself
// (timeout reversals).
const SwitchSender = "switch"

// Advice is a confirmation or reversal and its store-and-forward life.
type Advice struct {
	Sender      string     `json:"sender"` // retailer id, or SwitchSender
	ID          string     `json:"id"`     // the advice message id
	Kind        AdviceKind `json:"kind"`
	PaymentKey  string     `json:"paymentKey"`
	TranID      string     `json:"tranId,omitempty"`
	Destination string     `json:"destination,omitempty"`

	// Confirmation or Reversal is the message as it will be sent upstream.
	Confirmation *wire.PaymentConfirmation `json:"confirmation,omitempty"`
	Reversal     *wire.PaymentReversal     `json:"reversal,omitempty"`

	State   AdviceState     `json:"state"`
	Outcome outcome.Outcome `json:"outcome"`
	Note    string          `json:"note,omitempty"` // how it ended, in words
	// MergedInto is the advice that carries this one's effect upstream when
	// two reversals of one payment meet (only one is ever sent).
	MergedInto string `json:"mergedInto,omitempty"`

	Attempts int `json:"attempts"`
	// QueuedAt is when the advice last became due (queued, or replayed);
	// give_up_after counts from it.
	QueuedAt   time.Time `json:"queuedAt,omitzero"`
	NextAt     time.Time `json:"nextAt,omitzero"`
	LeaseOwner string    `json:"leaseOwner,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil,omitzero"`
	LastStatus int       `json:"lastStatus,omitempty"`
	LastError  string    `json:"lastError,omitempty"`

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
	Status    int       `json:"status,omitempty"`
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
	out.AnswerBody = bytes.Clone(a.AnswerBody)
	return &out
}
