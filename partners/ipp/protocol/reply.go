package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
)

// Reply is a verifier's response (section 7) in JSON: the code, its
// status, a message for errors, and for a decision the record as decided
// with its verification (so the notifier can verify the decision as it
// would a notification).
type Reply struct {
	Code    Code   `json:"code"`
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	// A reset's new amount and the original's (section 7's example).
	Amount    string `json:"amount,omitempty"`
	RefAmount string `json:"ref_amount,omitempty"`
	// Scheme and VerData verify the decision's record (Data).
	Scheme  string `json:"ver_scheme,omitempty"`
	VerData string `json:"ver_data,omitempty"`
	// Data is the decided record's canonical parameters, when a decision
	// was made at once.
	Data string `json:"data,omitempty"`
}

// ErrReply is what every unreadable reply unwraps to.
var ErrReply = errors.New("unreadable IPP reply")

// ParseReply reads a verifier's JSON reply: a known code (600–999) is
// required; unknown members are ignored (section 7 lets a reply carry
// more).
func ParseReply(b []byte) (*Reply, error) {
	var r struct {
		Code      json.Number     `json:"code"`
		Status    string          `json:"status"`
		Message   string          `json:"message"`
		Amount    json.RawMessage `json:"amount"`
		RefAmount json.RawMessage `json:"ref_amount"`
		Scheme    string          `json:"ver_scheme"`
		VerData   string          `json:"ver_data"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrReply, err)
	}
	c, err := r.Code.Int64()
	if err != nil || c < 600 || c > 999 {
		return nil, fmt.Errorf("%w: code %q is not an IPP code", ErrReply, r.Code)
	}
	out := &Reply{Code: Code(c), Status: r.Status, Message: r.Message, Scheme: r.Scheme, VerData: r.VerData,
		Amount: jsonDecimal(r.Amount), RefAmount: jsonDecimal(r.RefAmount)}
	if len(r.Data) > 0 {
		var s string
		if json.Unmarshal(r.Data, &s) == nil {
			out.Data = s
		}
	}
	return out, nil
}

// jsonDecimal reads an amount that may be a JSON number (the seed's
// example) or a string.
func jsonDecimal(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// replyOf returns the reply for code with a message.
func replyOf(c Code, format string, a ...any) *Reply {
	return &Reply{Code: c, Status: c.Status(), Message: fmt.Sprintf(format, a...)}
}

// HTTPStatus is the HTTP status the rail answers a reply with: 200 for the
// 6xx answers, 400 for the notifier's errors and 7xx (the notifier's
// brand), 500 for 900, 422 for the verifier's refusals. The code in the
// body is what counts (docs/ipp.md).
func (r *Reply) HTTPStatus() int {
	switch {
	case r.Code < 700:
		return 200
	case r.Code < 900:
		return 400
	case r.Code == CodeServerError:
		return 500
	}
	return 422
}

// Decision reads the decided record a reply carries (Data, in canonical
// form) with the reply's verification, as a notification of the decision,
// for the notifier to verify like any other.
func (r *Reply) Decision() (*Notification, error) {
	if r.Data == "" {
		return nil, fmt.Errorf("%w: the decision carries no record", ErrReply)
	}
	if len(r.Data) > maxBody {
		return nil, fmt.Errorf("%w: the decision's record is too long", ErrReply)
	}
	v, err := url.ParseQuery(r.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: the decision's record: %w", ErrReply, err)
	}
	v.Set("ver_scheme", r.Scheme)
	v.Set("ver_data", r.VerData)
	return FromValues(v)
}
