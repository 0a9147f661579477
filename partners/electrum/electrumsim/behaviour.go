package electrumsim

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/qrswitch/qrswitch/internal/wire"
)

// Bodies a Behaviour answers with, as Behaviour.Body names them.
const (
	BodyPaymentResponse = "PaymentResponse"
	BodyErrorDetail     = "ErrorDetail"
	BodyNone            = "none"
	BodyMalformed       = "malformed JSON"
)

// kind is what the sim does with a payment, beyond the status it answers.
type kind uint8

const (
	kindApprove      kind = iota // 201 at once
	kindFlakyAdvice              // approve; the first 3 advice deliveries get 500
	kindFailedAdvice             // approve; every advice delivery gets 503
	kindDecline                  // ErrorDetail or bare status at once, nothing reserved
	kindLate                     // approve, answer after LateAfter
	kindDrop                     // approve, then close the connection unanswered
	kindSlow                     // approve, answer after SlowAfter
	kindMalformed                // approve, answer 201 with a broken body
)

// approves reports whether a payment of this kind reserves funds.
func (k kind) approves() bool { return k != kindDecline }

// Behaviour is one row of the table that decides how the sim answers a
// payment request: by the last two digits of requestAmount.amount (the amount
// modulo 100).
type Behaviour struct {
	// From and To are the range of last two digits the row covers, inclusive.
	From, To int
	// Name is the row's short name, as the ledger shows it.
	Name string
	// Status is the HTTP status answered to pay; 0 when none is sent.
	Status int
	// Body is what the answer carries: BodyPaymentResponse,
	// BodyErrorDetail, BodyNone or BodyMalformed.
	Body string
	// ErrorType is the ErrorDetail's errorType when Body is BodyErrorDetail.
	ErrorType string
	// Answer says what the sim does, for people.
	Answer string

	kind    kind
	message string // the ErrorDetail's errorMessage
}

// Approves reports whether the sim approves (reserves funds for) a payment
// answered by this row, whether or not the switch gets to see the approval.
func (b Behaviour) Approves() bool { return b.kind.approves() }

// Digits renders the row's range as the table shows it: "07" or "00-49".
func (b Behaviour) Digits() string {
	if b.From == b.To {
		return fmt.Sprintf("%02d", b.From)
	}
	return fmt.Sprintf("%02d-%02d", b.From, b.To)
}

func approveRow(from, to int) Behaviour {
	return Behaviour{From: from, To: to, Name: "approve", Status: http.StatusCreated, Body: BodyPaymentResponse,
		Answer: "approve at once: funds reserved", kind: kindApprove}
}

func declineRow(digits, status int, name, errorType, message, answer string) Behaviour {
	return Behaviour{From: digits, To: digits, Name: name, Status: status, Body: BodyErrorDetail,
		ErrorType: errorType, Answer: answer, message: message, kind: kindDecline}
}

func bareRow(digits, status int, name, answer string) Behaviour {
	return Behaviour{From: digits, To: digits, Name: name, Status: status, Body: BodyNone, Answer: answer, kind: kindDecline}
}

// behaviours is the table, in order of digits, covering 00 to 99 once.
var behaviours = []Behaviour{
	approveRow(0, 49),
	{From: 50, To: 50, Name: "approve-flaky-advice", Status: http.StatusCreated, Body: BodyPaymentResponse,
		Answer: "approve; the payment's first 3 confirmation/reversal deliveries get 500", kind: kindFlakyAdvice},
	declineRow(51, http.StatusBadRequest, "decline", wire.DeclinedByPartner, "Declined by partner", "decline, nothing reserved"),
	declineRow(52, http.StatusBadRequest, "decline", wire.InsufficientFunds, "Insufficient funds", "decline, nothing reserved"),
	declineRow(53, http.StatusBadRequest, "decline", wire.DoNotHonor, "Do not honour", "decline, nothing reserved"),
	declineRow(54, http.StatusBadRequest, "decline", wire.InvalidAccount, "Invalid account", "decline, nothing reserved"),
	declineRow(55, http.StatusNotFound, "decline", wire.UnableToLocateRecord, "Customer account not found", "decline (not found), nothing reserved"),
	bareRow(56, http.StatusBadRequest, "decline-no-body", "decline without an ErrorDetail, nothing reserved"),
	approveRow(57, 59),
	declineRow(60, http.StatusInternalServerError, "error", wire.GeneralError, "Partner system error", "partner error, nothing reserved"),
	declineRow(61, http.StatusNotImplemented, "not-supported", wire.FunctionNotSupported, "Function not supported", "refuse, nothing reserved"),
	approveRow(62, 62),
	declineRow(63, http.StatusServiceUnavailable, "unavailable", wire.UpstreamUnavailable, "Partner system unavailable", "partner unavailable, nothing reserved"),
	bareRow(64, http.StatusGatewayTimeout, "gateway-timeout", "gateway timeout without a body, nothing reserved"),
	approveRow(65, 69),
	{From: 70, To: 70, Name: "late", Status: http.StatusCreated, Body: BodyPaymentResponse,
		Answer: "approve, answer only after LateAfter (the switch times out first)", kind: kindLate},
	{From: 71, To: 71, Name: "drop", Status: 0, Body: BodyNone,
		Answer: "approve, then drop the connection without answering", kind: kindDrop},
	{From: 72, To: 72, Name: "slow", Status: http.StatusCreated, Body: BodyPaymentResponse,
		Answer: "approve, answer after SlowAfter (slow but in time)", kind: kindSlow},
	{From: 73, To: 73, Name: "malformed", Status: http.StatusCreated, Body: BodyMalformed,
		Answer: "approve, answer 201 with a malformed JSON body", kind: kindMalformed},
	{From: 74, To: 74, Name: "approve-failed-advice", Status: http.StatusCreated, Body: BodyPaymentResponse,
		Answer: "approve; every confirmation/reversal of the payment gets 503 (a final failed advice)", kind: kindFailedAdvice},
	approveRow(75, 99),
}

// byDigits maps every last-two-digits value to its row of behaviours.
var byDigits = func() (t [100]uint8) {
	for i, b := range behaviours {
		for d := b.From; d <= b.To; d++ {
			t[d] = uint8(i)
		}
	}
	return t
}()

// Behaviours returns the table that decides how the sim answers a payment,
// one row per range of last two digits of the requested amount, in order,
// covering 00 to 99 exactly once. The slice is a copy.
func Behaviours() []Behaviour {
	return append([]Behaviour(nil), behaviours...)
}

// BehaviourFor returns the row that answers a payment of amount (minor
// units). Negative amounts, which validation refuses, use their absolute
// value.
func BehaviourFor(amount int64) Behaviour {
	d := amount % 100
	if d < 0 {
		d = -d
	}
	return behaviours[byDigits[d]]
}

// BehaviourTable renders Behaviours as a Markdown table, for the package
// documentation, the README and the partnersim command's start-up banner.
func BehaviourTable() string {
	var sb strings.Builder
	sb.WriteString("| last two digits | status | body | answer to pay |\n")
	sb.WriteString("|---|---|---|---|\n")
	for _, b := range behaviours {
		status := "none"
		if b.Status != 0 {
			status = fmt.Sprint(b.Status)
		}
		body := b.Body
		if b.ErrorType != "" {
			body += " " + b.ErrorType
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %s |\n", b.Digits(), status, body, b.Answer)
	}
	return sb.String()
}
