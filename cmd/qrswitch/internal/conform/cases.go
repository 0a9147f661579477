package conform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners/electrum"
)

// The kit's merchant, as its QR codes and payment requests name it.
const (
	merchantType    = "5411"
	merchantID      = "CONFORM00000001"
	merchantName    = "qrswitch conform"
	merchantCity    = "Cape Town"
	merchantRegion  = "WC"
	merchantCountry = "ZA"
	terminalID      = "CONFORM1"
)

// Operations, as the interface names them.
const (
	opPay     = "pay"
	opConfirm = "confirmPayment"
	opReverse = "reversePayment"
)

// declared are the statuses the interface declares for each operation of
// the partner side.
var declared = map[string][]int{
	opPay:     {201, 400, 500, 503, 504},
	opConfirm: {202, 400, 404, 500, 503, 504},
	opReverse: {202, 400, 404, 500, 503, 504},
}

var paths = map[string]string{opPay: electrum.PayPath, opConfirm: electrum.ConfirmPath, opReverse: electrum.ReversePath}

// caseTitles are the cases, in the order they run.
var caseTitles = []struct{ id, title string }{
	{"scan", "the app's scan notification reaches the switch, valid"},
	{"pay", "a payment is approved (201 PaymentResponse)"},
	{"confirm", "the approved payment is confirmed (202)"},
	{"confirm-repeated", "the same confirmation again (same id) gets the same answer"},
	{"pay-duplicate-id", "a payment id used before is refused (400 DUPLICATE_RECORD)"},
	{"reverse-unknown", "a reversal of a payment never sent is done (202, or 404: nothing to reverse)"},
	{"scan-2", "a second code's scan notification, valid"},
	{"pay-2", "a second payment is approved"},
	{"reverse", "the approved payment is reversed before any confirmation (202)"},
	{"reverse-repeated", "the same reversal again (same id) gets the same answer"},
	{"confirm-after-reverse", "a confirmation after the reversal is refused (400 ErrorDetail)"},
	{"malformed-pay", "malformed payment requests are refused (400 ErrorDetail)"},
	{"malformed-confirm", "malformed confirmations are refused (400 ErrorDetail)"},
	{"malformed-reverse", "malformed reversals are refused (400 ErrorDetail)"},
	{"wrong-credentials", "a payment request with wrong credentials is refused (401)"},
	{"answer-times", "every answer comes within the interface's timeout"},
}

// payment is one of the kit's payments and what became of it.
type payment struct {
	req      *wire.PaymentRequest
	approved bool
}

// runCases runs every case, in order, into the report.
func (k *kit) runCases(ctx context.Context) {
	cases := map[string]*Case{}
	for _, ct := range caseTitles {
		c := &Case{ID: ct.id, Title: ct.title, Exchanges: []*Exchange{}}
		cases[ct.id] = c
		k.report.Cases = append(k.report.Cases, c)
	}
	run := func(id string, needs []string, f func(*Case)) {
		c := cases[id]
		if ctx.Err() != nil {
			c.Result, c.Problems = Skip, append(c.Problems, "the run was stopped")
			return
		}
		for _, need := range needs {
			if cases[need].Result != Pass {
				c.Result = Skip
				c.Problems = append(c.Problems, fmt.Sprintf("needs case %s, which did not pass", need))
				return
			}
		}
		fmt.Fprintf(k.o.Out, "… %s: %s\n", c.ID, c.Title)
		f(c)
		if c.Result == "" {
			c.Result = Pass
			if len(c.Problems) > 0 {
				c.Result = Fail
			}
		}
	}

	var first, second *payment
	var scan1, scan2 *wire.ScanNotification
	var code1, code2 *code
	run("scan", nil, func(c *Case) { code1, scan1 = k.scanCase(ctx, c, "the first code") })
	run("pay", nil, func(c *Case) { first = k.payCase(ctx, c, code1, scan1) })
	var conf *wire.PaymentConfirmation
	var confAnswer *Exchange
	run("confirm", []string{"pay"}, func(c *Case) {
		conf = k.confirmation(first.req)
		confAnswer = k.advice(ctx, c, opConfirm, conf, http.StatusAccepted)
	})
	run("confirm-repeated", []string{"confirm"}, func(c *Case) {
		k.repeated(ctx, c, opConfirm, conf, confAnswer)
	})
	run("pay-duplicate-id", []string{"pay"}, func(c *Case) {
		x := k.call(ctx, c, opPay, mustJSON(first.req), k.o.Username, k.o.Password)
		k.expect(c, opPay, x, http.StatusBadRequest)
		if d := k.errorDetail(c, x, true); d != nil && d.ErrorType != wire.DuplicateRecord {
			c.Problems = append(c.Problems, fmt.Sprintf("errorType %s, want %s", d.ErrorType, wire.DuplicateRecord))
		}
		if x.Status >= 200 && x.Status < 300 {
			c.Problems = append(c.Problems, "the partner approved a payment whose id it had approved before: the customer may pay twice")
		}
	})
	run("reverse-unknown", nil, func(c *Case) {
		rev := k.reversal(&wire.PaymentRequest{Transaction: wire.Transaction{ID: wire.NewID()}, TranID: newTranID()}, wire.ReasonTimeout)
		x := k.call(ctx, c, opReverse, mustJSON(rev), k.o.Username, k.o.Password)
		k.expect(c, opReverse, x, http.StatusAccepted, http.StatusNotFound)
		switch x.Status {
		case http.StatusAccepted:
			k.adviceBody(c, opReverse, x)
		case http.StatusNotFound:
			c.Notes = append(c.Notes, "404 counts as reversed: there was nothing to reverse")
			k.errorDetail(c, x, false)
		}
	})
	run("scan-2", nil, func(c *Case) { code2, scan2 = k.scanCase(ctx, c, "the second code") })
	run("pay-2", nil, func(c *Case) { second = k.payCase(ctx, c, code2, scan2) })
	var rev *wire.PaymentReversal
	var revAnswer *Exchange
	run("reverse", []string{"pay-2"}, func(c *Case) {
		rev = k.reversal(second.req, wire.ReasonCancelled)
		revAnswer = k.advice(ctx, c, opReverse, rev, http.StatusAccepted)
	})
	run("reverse-repeated", []string{"reverse"}, func(c *Case) {
		k.repeated(ctx, c, opReverse, rev, revAnswer)
	})
	run("confirm-after-reverse", []string{"reverse"}, func(c *Case) {
		x := k.call(ctx, c, opConfirm, mustJSON(k.confirmation(second.req)), k.o.Username, k.o.Password)
		k.expect(c, opConfirm, x, http.StatusBadRequest)
		k.errorDetail(c, x, true)
		if x.Status >= 200 && x.Status < 300 {
			c.Problems = append(c.Problems, "the partner accepted a confirmation of a reversed payment: it must be settled or not, never both")
		}
	})
	run("malformed-pay", nil, func(c *Case) { k.malformed(ctx, c, opPay, k.malformedPayments(code1)) })
	run("malformed-confirm", nil, func(c *Case) { k.malformed(ctx, c, opConfirm, k.malformedAdvices(false)) })
	run("malformed-reverse", nil, func(c *Case) { k.malformed(ctx, c, opReverse, k.malformedAdvices(true)) })
	run("wrong-credentials", nil, func(c *Case) {
		if k.o.Username == "" && k.o.Password == "" {
			c.Result, c.Problems = Skip, []string{"no credentials were given to the kit, so none can be wrong"}
			return
		}
		req := k.paymentRequest(code1, nil)
		x := k.call(ctx, c, opPay, mustJSON(req), k.o.Username, k.o.Password+"-wrong")
		if x.Status != http.StatusUnauthorized {
			c.Problems = append(c.Problems, fmt.Sprintf("%s answered %s, want 401", opPay, x.answerText()))
		}
		if x.Status >= 200 && x.Status < 300 {
			k.cleanUp(ctx, c, req)
		}
	})
	run("answer-times", nil, func(c *Case) { k.timings(c) })
}

// scanCase shows a new code and checks the notification that comes.
func (k *kit) scanCase(ctx context.Context, c *Case, which string) (*code, *wire.ScanNotification) {
	cd, err := k.newCode()
	if err != nil {
		c.Problems = append(c.Problems, err.Error())
		return nil, nil
	}
	return cd, k.scan(ctx, c, cd, which)
}

// payCase sends a payment for a scanned code and checks its approval.
func (k *kit) payCase(ctx context.Context, c *Case, cd *code, scan *wire.ScanNotification) *payment {
	if cd == nil {
		c.Result, c.Problems = Skip, []string{"no code to pay"}
		return nil
	}
	if scan == nil {
		c.Notes = append(c.Notes, "no valid scan came: the payment is sent for the code all the same")
	}
	p := &payment{req: k.paymentRequest(cd, scan)}
	x := k.call(ctx, c, opPay, mustJSON(p.req), k.o.Username, k.o.Password)
	k.expect(c, opPay, x, http.StatusCreated)
	switch {
	case x.Status == http.StatusCreated:
		p.approved = k.approval(c, p.req, x)
	case x.Status == 0 || x.Status == 500 || x.Status == 504:
		// Unknown: the switch would reverse it, and so does the kit.
		k.cleanUp(ctx, c, p.req)
	default:
		k.errorDetail(c, x, true)
	}
	return p
}

// approval checks a 201's PaymentResponse, as the electrum rail reads it
// and against the interface.
func (k *kit) approval(c *Case, req *wire.PaymentRequest, x *Exchange) bool {
	before := len(c.Problems)
	if err := k.doc.CheckValue("PaymentResponse", x.answer); err != nil {
		c.Problems = append(c.Problems, "answer against the interface: "+err.Error())
	}
	var resp wire.PaymentResponse
	if err := wire.Decode(x.answer, &resp); err != nil {
		c.Problems = append(c.Problems, "malformed PaymentResponse: "+err.Error())
		return false
	}
	if err := resp.Validate(); err != nil {
		c.Problems = append(c.Problems, "PaymentResponse refused by the switch: "+err.Error())
	}
	if resp.ID != req.ID {
		c.Problems = append(c.Problems, fmt.Sprintf("PaymentResponse id %q, want the request's %q", resp.ID, req.ID))
	}
	if resp.TranID != "" && resp.TranID != req.TranID {
		c.Problems = append(c.Problems, fmt.Sprintf("PaymentResponse tranId %q, want the request's %q", resp.TranID, req.TranID))
	}
	if a := resp.Amounts; a != nil && a.ApprovedAmount != nil && a.ApprovedAmount.Amount > req.Amounts.RequestAmount.Amount {
		c.Problems = append(c.Problems, fmt.Sprintf("approvedAmount %d is more than the %d requested", a.ApprovedAmount.Amount, req.Amounts.RequestAmount.Amount))
	}
	return len(c.Problems) == before
}

// advice sends a confirmation or reversal and checks that it gets want.
func (k *kit) advice(ctx context.Context, c *Case, op string, msg any, want int) *Exchange {
	x := k.call(ctx, c, op, mustJSON(msg), k.o.Username, k.o.Password)
	k.expect(c, op, x, want)
	if x.Status == want {
		k.adviceBody(c, op, x)
	} else {
		k.errorDetail(c, x, false)
	}
	return x
}

// adviceBody checks the body of an accepted advice: none, or the advice
// echoed, as the interface's 202 declares.
func (k *kit) adviceBody(c *Case, op string, x *Exchange) {
	if len(bytes.TrimSpace(x.answer)) == 0 {
		c.Notes = append(c.Notes, "accepted without a body (the interface declares the advice echoed)")
		return
	}
	schema := "PaymentConfirmation"
	if op == opReverse {
		schema = "PaymentReversal"
	}
	if err := k.doc.CheckValue(schema, x.answer); err != nil {
		c.Problems = append(c.Problems, "answer against the interface: "+err.Error())
	}
}

// repeated sends an advice again with the same id and compares the answer
// with the first one: the same status and the same body.
func (k *kit) repeated(ctx context.Context, c *Case, op string, msg any, first *Exchange) {
	x := k.call(ctx, c, op, mustJSON(msg), k.o.Username, k.o.Password)
	if x.Status != first.Status {
		c.Problems = append(c.Problems, fmt.Sprintf("%s repeated answered %s, the first delivery %d: a repeated advice must get the same answer",
			op, x.answerText(), first.Status))
		return
	}
	if !sameBody(x.answer, first.answer) {
		c.Problems = append(c.Problems, fmt.Sprintf("%s repeated answered another body than the first delivery", op))
	}
}

// sameBody reports whether two answers carry the same JSON value (or the
// same bytes, when they are not JSON).
func sameBody(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return bytes.Equal(bytes.TrimSpace(a), bytes.TrimSpace(b))
	}
	return reflect.DeepEqual(va, vb)
}

// malformed sends each body and checks each is refused with 400 and an
// ErrorDetail; a payment that is accepted all the same is reversed.
func (k *kit) malformed(ctx context.Context, c *Case, op string, bodies []malformedBody) {
	for _, m := range bodies {
		x := k.call(ctx, c, op, m.body, k.o.Username, k.o.Password)
		if x.Status != http.StatusBadRequest {
			c.Problems = append(c.Problems, fmt.Sprintf("%s (%s) answered %s, want 400", op, m.what, x.answerText()))
		}
		k.errorDetail(c, x, x.Status == http.StatusBadRequest)
		if op == opPay && x.Status >= 200 && x.Status < 300 && m.id != "" {
			k.cleanUp(ctx, c, &wire.PaymentRequest{Transaction: wire.Transaction{ID: m.id}})
		}
	}
}

type malformedBody struct {
	what string
	body []byte
	id   string // the request id, when the body has a usable one
}

func (k *kit) malformedPayments(cd *code) []malformedBody {
	noAmounts := k.paymentRequest(cd, nil)
	noAmounts.Amounts = nil
	badCurrency := k.paymentRequest(cd, nil)
	badCurrency.Amounts.RequestAmount.Currency = "ZAR"
	return []malformedBody{
		{"broken JSON", []byte(`{"id":"` + wire.NewID() + `","amounts":`), ""},
		{"no amounts", mustJSON(noAmounts), noAmounts.ID},
		{"a currency that is not an ISO 4217 number", mustJSON(badCurrency), badCurrency.ID},
		{"an id of the wrong type", []byte(`{"id":12345}`), ""},
	}
}

func (k *kit) malformedAdvices(reversal bool) []malformedBody {
	noRequestID := map[string]any{"id": wire.NewID(), "time": k.now(), "thirdPartyIdentifiers": []any{}}
	out := []malformedBody{
		{"broken JSON", []byte(`{"id":"` + wire.NewID() + `","requestId":`), ""},
		{"no requestId", mustJSON(withReason(noRequestID, reversal)), ""},
	}
	if reversal {
		bad := map[string]any{"id": wire.NewID(), "requestId": wire.NewID(), "time": k.now(), "thirdPartyIdentifiers": []any{},
			"reversalReason": "CHANGED_MY_MIND"}
		out = append(out, malformedBody{"a reversalReason the interface does not have", mustJSON(bad), ""})
	}
	return out
}

func withReason(m map[string]any, reversal bool) map[string]any {
	if reversal {
		m["reversalReason"] = wire.ReasonCancelled
	}
	return m
}

// expect checks that an answer came with one of the statuses wanted, and
// that its status is one the interface declares for op.
func (k *kit) expect(c *Case, op string, x *Exchange, want ...int) {
	if x.Status == 0 {
		c.Problems = append(c.Problems, fmt.Sprintf("%s got no answer: %s", op, x.Error))
		return
	}
	if !slices.Contains(declared[op], x.Status) {
		c.Problems = append(c.Problems, fmt.Sprintf("%s answered %d, a status the interface does not declare for it (%v)", op, x.Status, declared[op]))
	}
	if !slices.Contains(want, x.Status) {
		c.Problems = append(c.Problems, fmt.Sprintf("%s answered %s, want %v", op, x.answerText(), want))
	}
}

// errorDetail checks a failure's ErrorDetail, as the switch reads it and
// against the interface. Without a body it is a problem only when required.
func (k *kit) errorDetail(c *Case, x *Exchange, required bool) *wire.ErrorDetail {
	if x.Status < 400 || x.Status == http.StatusUnauthorized {
		return nil
	}
	if len(bytes.TrimSpace(x.answer)) == 0 {
		if required {
			c.Problems = append(c.Problems, fmt.Sprintf("answer %d has no ErrorDetail", x.Status))
		}
		return nil
	}
	if err := k.doc.CheckValue("ErrorDetail", x.answer); err != nil {
		c.Problems = append(c.Problems, fmt.Sprintf("answer %d against the interface: %v", x.Status, err))
	}
	var d wire.ErrorDetail
	if err := wire.Decode(x.answer, &d); err != nil {
		c.Problems = append(c.Problems, fmt.Sprintf("answer %d is not an ErrorDetail: %v", x.Status, err))
		return nil
	}
	if err := d.Validate(); err != nil {
		c.Problems = append(c.Problems, fmt.Sprintf("answer %d's ErrorDetail is refused by the switch: %v", x.Status, err))
	}
	return &d
}

// cleanUp reverses a payment whose outcome is unknown or that should not
// have been approved, as the switch would (reversalReason TIMEOUT).
func (k *kit) cleanUp(ctx context.Context, c *Case, req *wire.PaymentRequest) {
	x := k.call(ctx, c, opReverse, mustJSON(k.reversal(req, wire.ReasonTimeout)), k.o.Username, k.o.Password)
	c.Notes = append(c.Notes, fmt.Sprintf("the kit reversed payment %s, as the switch would (answer %s)", req.ID, x.answerText()))
}

// timings checks every answer of the run against the timeout.
func (k *kit) timings(c *Case) {
	var n int
	var slowest *Exchange
	for _, cs := range k.report.Cases {
		for _, x := range cs.Exchanges {
			if x.Direction != "out" {
				continue
			}
			n++
			if slowest == nil || x.LatencyMS > slowest.LatencyMS {
				slowest = x
			}
			limit := float64(k.o.Timeout.Milliseconds())
			switch {
			case x.Status == 0 && x.timeout:
				c.Problems = append(c.Problems, fmt.Sprintf("case %s: %s got no answer within %s", cs.ID, x.Operation, k.o.Timeout))
			case x.Status != 0 && x.LatencyMS >= limit:
				c.Problems = append(c.Problems, fmt.Sprintf("case %s: %s answered after %.0f ms, past the %s timeout", cs.ID, x.Operation, x.LatencyMS, k.o.Timeout))
			case x.Status != 0 && x.LatencyMS >= limit/2:
				c.Notes = append(c.Notes, fmt.Sprintf("case %s: %s answered after %.0f ms, over half the timeout: the switch gives a partner what is left of the POS's 60 s after the scan, often less", cs.ID, x.Operation, x.LatencyMS))
			}
		}
	}
	if slowest != nil {
		c.Notes = append(c.Notes, fmt.Sprintf("%d answers; the slowest %.0f ms (%s)", n, slowest.LatencyMS, slowest.Operation))
	}
}

// call posts body to the partner's operation and records the exchange in c.
func (k *kit) call(ctx context.Context, c *Case, op string, msg []byte, user, pass string) *Exchange {
	url := k.base + paths[op]
	x := &Exchange{Direction: "out", Operation: op, Method: http.MethodPost, URL: url, Request: body(msg)}
	c.Exchanges = append(c.Exchanges, x)
	ctx, cancel := context.WithTimeout(ctx, k.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(msg))
	if err != nil {
		x.Error = err.Error()
		return x
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if user != "" || pass != "" {
		req.SetBasicAuth(user, pass)
	}
	start := time.Now()
	resp, err := k.client.Do(req)
	if err != nil {
		x.LatencyMS = millis(time.Since(start))
		x.Error, x.timeout = err.Error(), isTimeout(err)
		return x
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	x.LatencyMS = millis(time.Since(start))
	x.Status, x.answer, x.Answer = resp.StatusCode, answer, body(answer)
	if err != nil {
		x.Error = "reading the answer: " + err.Error()
	}
	return x
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// isTimeout reports whether err is a call that ran out of time.
func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &t) && t.Timeout()
}

// answerText is the answer's status and errorType, for problems.
func (x *Exchange) answerText() string {
	if x.Status == 0 {
		return "nothing (" + x.Error + ")"
	}
	var d struct {
		ErrorType string `json:"errorType"`
	}
	if json.Unmarshal(x.answer, &d) == nil && d.ErrorType != "" {
		return strconv.Itoa(x.Status) + " " + d.ErrorType
	}
	return strconv.Itoa(x.Status)
}

// The kit's messages, as the switch builds them.

func (k *kit) originator() *wire.Originator {
	return &wire.Originator{
		Institution: wire.Institution{ID: "conform", Name: merchantName},
		TerminalID:  terminalID,
		Merchant: wire.Merchant{
			MerchantType: merchantType, MerchantID: merchantID,
			MerchantName: wire.MerchantName{Name: merchantName, City: merchantCity, Region: merchantRegion, Country: merchantCountry},
		},
	}
}

// paymentRequest is a payment for cd, with the partner and payment token
// of its scan, as the electrum rail fills them in.
func (k *kit) paymentRequest(cd *code, scan *wire.ScanNotification) *wire.PaymentRequest {
	tranID := newTranID()
	if cd != nil {
		tranID = cd.tranID
	}
	req := &wire.PaymentRequest{
		Transaction: wire.Transaction{
			ID: wire.NewID(), Time: k.now(), Originator: k.originator(),
			Client:                &wire.Institution{ID: "qrswitch-conform", Name: "qrswitch conform"},
			ThirdPartyIdentifiers: []wire.ThirdPartyIdentifier{},
			Rrn:                   strconv.FormatInt(k.o.Now().UnixNano()%1e12, 10),
			TranType:              "GOODS_AND_SERVICES",
		},
		Amounts: &wire.Amounts{RequestAmount: &wire.LedgerAmount{Amount: k.o.Amount, Currency: k.o.Currency}},
		TranID:  tranID,
	}
	if scan != nil && scan.Partner != nil {
		req.Partner = scan.Partner
		req.PartnerPaymentToken = scan.PartnerPaymentToken
	} else if k.o.PartnerID != "" {
		req.Partner = &wire.Institution{ID: k.o.PartnerID, Name: k.o.PartnerID}
	}
	return req
}

func (k *kit) basicAdvice(req *wire.PaymentRequest) wire.BasicAdvice {
	a := wire.BasicAdvice{
		ID: wire.NewID(), RequestID: req.ID, Time: k.now(),
		ThirdPartyIdentifiers: req.ThirdPartyIdentifiers, Rrn: req.Rrn, TranID: req.TranID, Partner: req.Partner,
	}
	if a.ThirdPartyIdentifiers == nil {
		a.ThirdPartyIdentifiers = []wire.ThirdPartyIdentifier{}
	}
	return a
}

func (k *kit) confirmation(req *wire.PaymentRequest) *wire.PaymentConfirmation {
	return &wire.PaymentConfirmation{BasicAdvice: k.basicAdvice(req)}
}

func (k *kit) reversal(req *wire.PaymentRequest, reason string) *wire.PaymentReversal {
	return &wire.PaymentReversal{BasicAdvice: k.basicAdvice(req), ReversalReason: reason}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("conform: encoding %T: %v", v, err)) // the kit's own messages always encode
	}
	return b
}
