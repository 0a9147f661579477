package electrum

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
)

// cannedAnswer is a transport that answers every request with one status
// and body, without a network: the fuzzer's partner.
type cannedAnswer struct {
	status int
	body   []byte
}

func (c cannedAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	io.Copy(io.Discard, r.Body)
	r.Body.Close()
	return &http.Response{
		StatusCode: c.status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}}, Request: r,
		Body: io.NopCloser(bytes.NewReader(c.body)), ContentLength: int64(len(c.body)),
	}, nil
}

// FuzzAnswer feeds the rail every partner answer it could get — any status,
// any body — to a payment, a confirmation and a reversal, and checks what
// the rail makes of it: the outcome is Classify's; a payment is successful
// only with an approval that validates, and a 2xx without one is unknown,
// never failed; an advice's outcome depends on the status alone; a failed
// payment always carries a Decline the interface allows (400 or 503, a
// valid ErrorDetail), and nothing else does.
//
//	go test ./partners/electrum -run '^$' -fuzz FuzzAnswer -fuzztime 10m
func FuzzAnswer(f *testing.F) {
	for _, s := range []struct {
		status int
		body   string
	}{
		{201, approval},
		{201, `{"id":"x","amounts":{}}`},
		{201, `{"id":"x"}`},
		{201, ``},
		{200, `{"id":"x","amounts":{"approvedAmount":{"amount":-1,"currency":"710"}}}`},
		{202, `not json`},
		{400, `{"id":"e","errorType":"INSUFFICIENT_FUNDS","errorMessage":"No money"}`},
		{400, `{"id":"e","errorType":"NOPE","errorMessage":"No"}`},
		{404, ``},
		{500, `{"id":"e","errorType":"GENERAL_ERROR","errorMessage":"Boom","detailMessage":{"a":1}}`},
		{503, `<html>down</html>`},
		{504, `{"errorType":"UPSTREAM_UNAVAILABLE"}`},
		{302, ``},
		{429, `{"id":"e","errorType":"GENERAL_ERROR","errorMessage":"Slow down"}`},
	} {
		for op := range 3 {
			f.Add(uint8(op), uint16(s.status), []byte(s.body))
		}
	}
	rail, err := New(partners.Config{BaseURL: "https://partner.invalid"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, opByte uint8, rawStatus uint16, body []byte) {
		status := 100 + int(rawStatus)%500
		rail.(*Rail).client.Transport = cannedAnswer{status: status, body: body} // one input at a time per process
		ctx := context.Background()
		var a *partners.Answer
		op := []outcome.Operation{outcome.Pay, outcome.Confirm, outcome.Reverse}[int(opByte)%3]
		switch op {
		case outcome.Pay:
			a = rail.Pay(ctx, payment())
		case outcome.Confirm:
			a = rail.Confirm(ctx, &partners.Advice{Confirmation: &wire.PaymentConfirmation{BasicAdvice: wire.BasicAdvice{ID: "c", RequestID: "r"}}})
		default:
			a = rail.Reverse(ctx, &partners.Advice{Reversal: &wire.PaymentReversal{BasicAdvice: wire.BasicAdvice{ID: "v", RequestID: "r"}, ReversalReason: wire.ReasonTimeout}})
		}
		if a.Code != Code(status) {
			t.Fatalf("code = %q, want %q", a.Code, Code(status))
		}
		if a.Outcome != outcome.Classify(op, status, a.Err) {
			t.Fatalf("outcome %s is not Classify's for %d, %v", a.Outcome, status, a.Err)
		}
		// The interface's successes; any other 2xx is "every other
		// status", failed (see docs/reliability.md on that choice).
		ok2xx := status == 200 || status == 201 || status == 202
		switch {
		case op == outcome.Pay && a.Outcome == outcome.Successful:
			if a.Response == nil || a.Response.Amounts == nil || a.Response.Validate() != nil {
				t.Fatalf("successful payment without a valid approval: %+v (body %q)", a.Response, body)
			}
		case op == outcome.Pay && ok2xx:
			if a.Outcome != outcome.Unknown || !errors.Is(a.Err, outcome.ErrMalformedAnswer) {
				t.Fatalf("%d with an unreadable approval = %s, %v; want unknown, malformed", status, a.Outcome, a.Err)
			}
		case op != outcome.Pay && a.Outcome != outcome.Classify(op, status, nil):
			t.Fatalf("advice answered %d is %s: the body changed the outcome (%v)", status, a.Outcome, a.Err)
		}
		if a.Response != nil && (op != outcome.Pay || status < 200 || status > 299) {
			t.Fatalf("an approval was read from a %d answer to %s", status, op)
		}
		if failed := op == outcome.Pay && a.Outcome == outcome.Failed; failed != (a.Decline != nil) {
			t.Fatalf("Decline %+v on a %s %s answered %d", a.Decline, a.Outcome, op, status)
		}
		if f := a.Decline; f != nil {
			if f.Status != 400 && f.Status != 503 || f.Detail.Validate() != nil || len(f.Detail.ID) > 20 {
				t.Fatalf("Decline %d %+v of a %d answer: not what the interface allows", f.Status, f.Detail, status)
			}
		}
		if !bytes.Equal(a.Received, wire.Mask(body)) {
			t.Fatalf("Answer.Received is not the masked body received")
		}
	})
}
