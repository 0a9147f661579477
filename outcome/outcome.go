// Package outcome owns the three outcomes of an Electrum QR exchange
// (successful, unknown, failed), the one function that turns an HTTP answer
// into an outcome, and the payment states with their allowed transitions.
//
// It is a leaf: it imports no package of this project, so every surface and
// every rail agrees on what an answer means by calling Classify.
package outcome

import (
	"errors"
	"fmt"
	"net/http"
)

// Outcome is the classified result of one upstream exchange.
type Outcome uint8

// The outcomes of the interface. The zero value is Unknown on purpose: an
// exchange nobody classified must never count as final.
const (
	Unknown Outcome = iota
	Successful
	Failed
)

// String returns the lower-case name used in traces, logs and metrics.
func (o Outcome) String() string {
	switch o {
	case Successful:
		return "successful"
	case Failed:
		return "failed"
	default:
		return "unknown"
	}
}

// Final reports whether the outcome ends the exchange: successful and failed
// are final, unknown is not.
func (o Outcome) Final() bool { return o == Successful || o == Failed }

// MarshalText encodes the outcome by name.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText decodes an outcome name.
func (o *Outcome) UnmarshalText(b []byte) error {
	switch string(b) {
	case "successful":
		*o = Successful
	case "failed":
		*o = Failed
	case "unknown", "":
		*o = Unknown
	default:
		return fmt.Errorf("outcome: unknown name %q", b)
	}
	return nil
}

// Operation names an exchange of the interface whose answer is classified.
type Operation uint8

// The classified operations.
const (
	Pay Operation = iota + 1
	Confirm
	Reverse
)

// String returns the operation's interface nickname.
func (op Operation) String() string {
	switch op {
	case Pay:
		return "pay"
	case Confirm:
		return "confirmPayment"
	case Reverse:
		return "reversePayment"
	default:
		return fmt.Sprintf("operation(%d)", uint8(op))
	}
}

// IsAdvice reports whether the operation is an advice subject to
// store-and-forward (confirmations and reversals).
func (op Operation) IsAdvice() bool { return op == Confirm || op == Reverse }

// ErrNotSent marks a transport error that happened before any byte of the
// request could have reached the partner: the dial was refused, the TLS
// handshake failed, the URL was bad. Rails wrap such errors with it; only then
// may an error be treated as something other than unknown.
var ErrNotSent = errors.New("request not sent")

// ErrMalformedAnswer marks an answer whose status line arrived but whose body
// could not be read or understood. A malformed success cannot prove what the
// partner approved, so it counts as unknown.
var ErrMalformedAnswer = errors.New("malformed answer")

// Classify turns one upstream exchange into an outcome. status is the HTTP
// status of the answer (0 when none arrived); err is the transport or decoding
// error, if any.
//
// The table is the interface's:
//
//	200, 201, 202                       successful
//	404 on a reversal                   successful (nothing to reverse)
//	404 on a payment or a confirmation  failed
//	500, 504, timeout, connection lost  unknown
//	400, 501, 503, every other status   failed
//
// with two readings of "every other status", both on the side of not
// losing money. 408 and 429 on an advice are unknown: the partner said "not
// now" without acting, and an advice is repeated with the same id, so
// store-and-forward sends it again rather than ending a confirmation or
// reversal as failed over a rate limit (on a payment they stay failed:
// nothing was authorised). And a 2xx other than 200, 201 and 202 is
// unknown: a partner that answers 203 or 204 to a payment may well think it
// approved it, so the switch reverses rather than declines.
//
// Two rules sit on top for errors. A request that provably never left
// (ErrNotSent) failed when it was a payment — the partner cannot have
// authorised it — but stays unknown for an advice, because store-and-forward
// must repeat an advice until the partner gives a final answer. Every other
// error (timeout, reset after sending, a 2xx body that cannot be read) is
// unknown: once bytes may have left, we have to assume the partner acted.
func Classify(op Operation, status int, err error) Outcome {
	if err != nil {
		if errors.Is(err, ErrNotSent) && op == Pay {
			return Failed
		}
		return Unknown
	}
	switch status {
	case http.StatusOK, http.StatusCreated, http.StatusAccepted:
		return Successful
	case http.StatusNotFound:
		if op == Reverse {
			return Successful
		}
		return Failed
	case http.StatusInternalServerError, http.StatusGatewayTimeout, 0:
		return Unknown
	case http.StatusTooManyRequests, http.StatusRequestTimeout:
		if op.IsAdvice() {
			return Unknown
		}
		return Failed
	default:
		if status >= 200 && status < 300 {
			return Unknown
		}
		return Failed
	}
}
