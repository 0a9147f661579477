package conform

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
)

// Results of a case.
const (
	Pass = "pass"
	Fail = "fail"
	// Skip: the case could not run (a case it needs failed, no
	// credentials to get wrong, the run was stopped).
	Skip = "skip"
)

// Report is the outcome of a run, as written to --report.
type Report struct {
	// Partner is the partner's base URL.
	Partner  string    `json:"partner"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// TimeoutMS is the timeout every answer was held to.
	TimeoutMS int64   `json:"timeoutMs"`
	Passed    int     `json:"passed"`
	Failed    int     `json:"failed"`
	Skipped   int     `json:"skipped"`
	Cases     []*Case `json:"cases"`
	// Stray are scan notifications that came while no code was waiting
	// for one.
	Stray []*Exchange `json:"stray,omitempty"`
}

// Case is one scenario of the interface and how the partner did.
type Case struct {
	// ID names the case in reports and exit messages, such as
	// "confirm-repeated".
	ID string `json:"id"`
	// Title says what the case checks.
	Title  string `json:"title"`
	Result string `json:"result"`
	// Problems say why a case failed or was skipped.
	Problems []string `json:"problems,omitempty"`
	// Notes are observations that do not fail the case.
	Notes     []string    `json:"notes,omitempty"`
	Exchanges []*Exchange `json:"exchanges"`
}

// Exchange is one message and its answer: a call the kit made to the
// partner ("out"), or a scan notification the partner's app made to the
// kit ("in"). Bodies are masked (payment tokens, card numbers).
type Exchange struct {
	Direction string `json:"direction"`
	Operation string `json:"operation"`
	Method    string `json:"method"`
	URL       string `json:"url"`
	Request   Body   `json:"request,omitempty"`
	// Status is the answer's HTTP status; 0 when none came (Error says
	// why).
	Status    int     `json:"status"`
	Answer    Body    `json:"answer,omitempty"`
	LatencyMS float64 `json:"latencyMs"`
	Error     string  `json:"error,omitempty"`

	answer  []byte // the answer as received, for the checks
	timeout bool   // no answer came in time
}

// Body is a message body in a report: JSON as it is, anything else as a
// JSON string, masked either way.
type Body []byte

// body masks b for a report.
func body(b []byte) Body {
	if len(b) == 0 {
		return nil
	}
	return Body(wire.Mask(b))
}

// MarshalJSON writes a JSON body as it is and any other as a string.
func (b Body) MarshalJSON() ([]byte, error) {
	if json.Valid(b) {
		return b, nil
	}
	return json.Marshal(string(b))
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (b *Body) UnmarshalJSON(data []byte) error {
	var s string
	if len(data) > 0 && data[0] == '"' && json.Unmarshal(data, &s) == nil {
		*b = Body(s)
		return nil
	}
	*b = append((*b)[:0], data...)
	return nil
}

// OK reports whether no case failed.
func (r *Report) OK() bool { return r.Failed == 0 }

// FailedCases returns the ids of the failed cases.
func (r *Report) FailedCases() []string {
	var ids []string
	for _, c := range r.Cases {
		if c.Result == Fail {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

// Case returns the case with the id, or nil.
func (r *Report) Case(id string) *Case {
	for _, c := range r.Cases {
		if c.ID == id {
			return c
		}
	}
	return nil
}

func (r *Report) count() {
	r.Passed, r.Failed, r.Skipped = 0, 0, 0
	for _, c := range r.Cases {
		switch c.Result {
		case Pass:
			r.Passed++
		case Fail:
			r.Failed++
		default:
			r.Skipped++
		}
	}
}

// WriteText writes the report for people: one line per case, the problems
// and notes under it, and every message of a case that did not pass.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "\nqrswitch conform: %s — %d passed, %d failed, %d skipped (answers held to %s)\n\n",
		r.Partner, r.Passed, r.Failed, r.Skipped, time.Duration(r.TimeoutMS)*time.Millisecond)
	for _, c := range r.Cases {
		fmt.Fprintf(w, "%-4s  %-22s %s\n", strings.ToUpper(c.Result), c.ID, c.Title)
		for _, p := range c.Problems {
			fmt.Fprintf(w, "        ✗ %s\n", p)
		}
		for _, n := range c.Notes {
			fmt.Fprintf(w, "        · %s\n", n)
		}
		for _, x := range c.Exchanges {
			fmt.Fprintf(w, "        %s\n", x.line())
			if c.Result != Pass {
				if len(x.Request) > 0 {
					fmt.Fprintf(w, "            request: %s\n", x.Request)
				}
				if len(x.Answer) > 0 {
					fmt.Fprintf(w, "            answer:  %s\n", x.Answer)
				}
			}
		}
	}
	for _, x := range r.Stray {
		fmt.Fprintf(w, "stray scan: %s\n            request: %s\n", x.line(), x.Request)
	}
	if ids := r.FailedCases(); len(ids) > 0 {
		fmt.Fprintf(w, "\nFAILED: %s\n", strings.Join(ids, ", "))
	} else {
		fmt.Fprintf(w, "\nPASSED\n")
	}
}

// line is an exchange on one line.
func (x *Exchange) line() string {
	arrow := "→"
	if x.Direction == "in" {
		arrow = "←"
	}
	answer := fmt.Sprint(x.Status)
	if x.Status == 0 {
		answer = "no answer: " + x.Error
	}
	return fmt.Sprintf("%s %s %s %s = %s (%.0f ms)", arrow, x.Operation, x.Method, x.URL, answer, x.LatencyMS)
}
