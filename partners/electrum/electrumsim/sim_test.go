package electrumsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
)

const (
	testUser  = "switch"
	testPass  = "switch-dev-password"
	testToken = "tok-1234567890"
	testTran  = "f82d7f64feea4f2ab24da94aaf5c2941"
)

// env is a sim behind a real TLS server, and a client that trusts it.
type env struct {
	t      testing.TB
	sim    *Sim
	srv    *httptest.Server
	client *http.Client
}

// newEnv starts a sim with c over TLS. Credentials default to the test's.
func newEnv(t testing.TB, c Config) *env {
	t.Helper()
	if c.Username == "" && c.Password == "" {
		c.Username, c.Password = testUser, testPass
	}
	sim := New(c)
	srv := httptest.NewUnstartedServer(sim.Handler())
	srv.Config.ReadHeaderTimeout = 5 * time.Second
	srv.Config.ErrorLog = log.New(testLog{t}, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close) // before srv.Close, which waits for held answers
	client := srv.Client()
	client.Timeout = 5 * time.Second
	return &env{t: t, sim: sim, srv: srv, client: client}
}

// testLog sends a server's error log to the test's log, where it shows
// only for failed tests and with -v.
type testLog struct{ t testing.TB }

func (l testLog) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	if strings.Contains(line, "panic") {
		l.t.Error(line)
	} else {
		l.t.Log(line)
	}
	return len(p), nil
}

// response is what a request to the sim came to.
type response struct {
	status int
	header http.Header
	body   []byte
	err    error
}

// do sends body (bytes as they are, anything else as JSON) with the test's
// credentials.
func (e *env) do(method, path string, body any) response {
	return e.doAuth(e.client, method, path, body, testUser, testPass)
}

func (e *env) doAuth(c *http.Client, method, path string, body any, user, pass string) response {
	e.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			e.t.Fatalf("encoding %T: %v", body, err)
		}
	}
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(raw))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if user != "" || pass != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := c.Do(req)
	if err != nil {
		return response{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

func (e *env) pay(req *wire.PaymentRequest) response {
	return e.do(http.MethodPost, "/qr/v1/payments", req)
}

func (e *env) confirm(c *wire.PaymentConfirmation) response {
	return e.do(http.MethodPost, "/qr/v1/payments/confirmations", c)
}

func (e *env) reverse(r *wire.PaymentReversal) response {
	return e.do(http.MethodPost, "/qr/v1/payments/reversals", r)
}

// approved pays amount and fails the test unless the sim answers 201.
func (e *env) approved(amount int64) *wire.PaymentRequest {
	e.t.Helper()
	req := paymentRequest(amount)
	if r := e.pay(req); r.err != nil || r.status != http.StatusCreated {
		e.t.Fatalf("pay %d = %d %v %s, want 201", amount, r.status, r.err, r.body)
	}
	return req
}

func (e *env) payment(id string) PaymentEntry {
	e.t.Helper()
	for _, p := range e.sim.Ledger().Payments {
		if p.ID == id {
			return p
		}
	}
	e.t.Fatalf("payment %s not in the ledger", id)
	return PaymentEntry{}
}

func (e *env) advice(id string) AdviceEntry {
	e.t.Helper()
	for _, a := range e.sim.Ledger().Advices {
		if a.ID == id {
			return a
		}
	}
	e.t.Fatalf("advice %s not in the ledger", id)
	return AdviceEntry{}
}

func paymentRequest(amount int64) *wire.PaymentRequest {
	shop := wire.Institution{ID: "1234", Name: "Corner Shop Group"}
	return &wire.PaymentRequest{
		Transaction: wire.Transaction{
			ID:   wire.NewID(),
			Time: time.Now().UTC().Format(time.RFC3339Nano),
			Originator: &wire.Originator{
				Institution: shop,
				TerminalID:  "TERM0001",
				Merchant: wire.Merchant{
					MerchantType: "5411",
					MerchantID:   "MERCHANT0000001",
					MerchantName: wire.MerchantName{Name: "Corner Shop", City: "Cape Town", Region: "WC", Country: "ZA"},
				},
			},
			Client:                &shop,
			ThirdPartyIdentifiers: []wire.ThirdPartyIdentifier{{InstitutionID: "1234", TransactionIdentifier: "pos-1"}},
			Rrn:                   "000000000001",
		},
		Amounts:             &wire.Amounts{RequestAmount: &wire.LedgerAmount{Amount: amount, Currency: "710"}},
		TranID:              testTran,
		Partner:             &wire.Institution{ID: DefaultPartnerID, Name: DefaultPartnerName},
		PartnerPaymentToken: testToken,
	}
}

func basicAdvice(requestID string) wire.BasicAdvice {
	return wire.BasicAdvice{
		ID:                    wire.NewID(),
		RequestID:             requestID,
		Time:                  time.Now().UTC().Format(time.RFC3339Nano),
		ThirdPartyIdentifiers: []wire.ThirdPartyIdentifier{},
		TranID:                testTran,
	}
}

func confirmation(requestID string) *wire.PaymentConfirmation {
	return &wire.PaymentConfirmation{BasicAdvice: basicAdvice(requestID)}
}

func reversal(requestID string) *wire.PaymentReversal {
	return &wire.PaymentReversal{BasicAdvice: basicAdvice(requestID), ReversalReason: wire.ReasonTimeout}
}

// errorDetail decodes and checks an ErrorDetail body.
func errorDetail(t *testing.T, body []byte) *wire.ErrorDetail {
	t.Helper()
	var d wire.ErrorDetail
	if err := wire.Decode(body, &d); err != nil {
		t.Fatalf("body %q is not an ErrorDetail: %v", body, err)
	}
	if err := d.Validate(); err != nil {
		t.Fatalf("ErrorDetail %s: %v", body, err)
	}
	if d.ID == "" || len(d.ID) > 20 {
		t.Errorf("ErrorDetail id = %q, want 1 to 20 characters (the interface's maxLength)", d.ID)
	}
	return &d
}

// wantError checks that r is status with an ErrorDetail of errorType.
func wantError(t *testing.T, what string, r response, status int, errorType string) *wire.ErrorDetail {
	t.Helper()
	if r.err != nil {
		t.Fatalf("%s: %v, want %d %s", what, r.err, status, errorType)
	}
	if r.status != status {
		t.Fatalf("%s = %d %s, want %d %s", what, r.status, r.body, status, errorType)
	}
	d := errorDetail(t, r.body)
	if d.ErrorType != errorType {
		t.Errorf("%s errorType = %s, want %s", what, d.ErrorType, errorType)
	}
	return d
}

// eventually polls cond for up to two seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// specRows is the behaviour table as the brief gives it, written out
// independently of the implementation: digits → status, errorType, body.
var specRows = map[int]struct {
	status    int
	errorType string
	body      string
}{
	51: {400, wire.DeclinedByPartner, BodyErrorDetail},
	52: {400, wire.InsufficientFunds, BodyErrorDetail},
	53: {400, wire.DoNotHonor, BodyErrorDetail},
	54: {400, wire.InvalidAccount, BodyErrorDetail},
	55: {404, wire.UnableToLocateRecord, BodyErrorDetail},
	56: {400, "", BodyNone},
	60: {500, wire.GeneralError, BodyErrorDetail},
	61: {501, wire.FunctionNotSupported, BodyErrorDetail},
	63: {503, wire.UpstreamUnavailable, BodyErrorDetail},
	64: {504, "", BodyNone},
	70: {201, "", BodyPaymentResponse},
	71: {0, "", BodyNone},
	72: {201, "", BodyPaymentResponse},
	73: {201, "", BodyMalformed},
}

func TestBehavioursTable(t *testing.T) {
	rows := Behaviours()
	next := 0
	for _, b := range rows {
		if b.From != next || b.To < b.From {
			t.Fatalf("row %s starts at %d, want %d: rows must cover 00-99 in order, once", b.Digits(), b.From, next)
		}
		next = b.To + 1
	}
	if next != 100 {
		t.Fatalf("rows end at %d, want 99", next-1)
	}
	for d := range 100 {
		b := BehaviourFor(int64(1200 + d))
		want, special := specRows[d]
		if !special {
			want.status, want.body = http.StatusCreated, BodyPaymentResponse
		}
		if b.Status != want.status || b.ErrorType != want.errorType || b.Body != want.body {
			t.Errorf("BehaviourFor(..%02d) = %d %s %q, want %d %s %q", d, b.Status, b.Body, b.ErrorType, want.status, want.body, want.errorType)
		}
	}
	if b := BehaviourFor(-51); b.ErrorType != wire.DeclinedByPartner {
		t.Errorf("BehaviourFor(-51) = %s, want the 51 row", b.Name)
	}

	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	for _, line := range strings.SplitAfter(strings.TrimSuffix(BehaviourTable(), "\n"), "\n") {
		table.WriteString("//\t" + line)
	}
	if !strings.Contains(string(doc), table.String()) {
		t.Errorf("doc.go does not hold BehaviourTable(); paste this into the package comment:\n%s", table.String())
	}
}

func TestPayBehaviours(t *testing.T) {
	const late = 150 * time.Millisecond
	e := newEnv(t, Config{LateAfter: late, SlowAfter: 20 * time.Millisecond})
	for _, b := range Behaviours() {
		digitsOf := []int{b.From}
		if b.To != b.From {
			digitsOf = append(digitsOf, b.To)
		}
		for _, digits := range digitsOf {
			amount := int64(7900 + digits)
			t.Run(fmt.Sprintf("%s/%s/%02d", b.Digits(), b.Name, digits), func(t *testing.T) {
				t.Parallel()
				req := paymentRequest(amount)
				start := time.Now()
				r := e.pay(req)
				elapsed := time.Since(start)
				checkPayAnswer(t, b, req, r)
				if b.kind == kindLate && elapsed < late {
					t.Errorf("late answer came after %v, want at least %v", elapsed, late)
				}
				p := e.payment(req.ID)
				wantState := StateDeclined
				if b.Approves() {
					wantState = StateReserved
				}
				if p.State != wantState || p.Status != b.Status || p.Behaviour != b.Name {
					t.Errorf("ledger payment = %s status %d %s, want %s status %d %s", p.State, p.Status, p.Behaviour, wantState, b.Status, b.Name)
				}
				if p.Amount != amount || p.Currency != "710" || p.TranID != testTran || p.Deliveries != 1 {
					t.Errorf("ledger payment = %+v, want amount %d 710, tranId %s, 1 delivery", p, amount, testTran)
				}
				if p.PartnerPaymentToken != "****7890" {
					t.Errorf("ledger token = %q, want ****7890", p.PartnerPaymentToken)
				}
			})
		}
	}
}

// checkPayAnswer checks a payment's answer against its behaviour row.
func checkPayAnswer(t *testing.T, b Behaviour, req *wire.PaymentRequest, r response) {
	t.Helper()
	if b.Status == 0 {
		if r.err == nil {
			t.Fatalf("pay = %d %s, want a dropped connection", r.status, r.body)
		}
		if !errors.Is(r.err, io.EOF) && !errors.Is(r.err, io.ErrUnexpectedEOF) && !strings.Contains(r.err.Error(), "reset") {
			t.Errorf("pay error = %v, want EOF or connection reset", r.err)
		}
		return
	}
	if r.err != nil || r.status != b.Status {
		t.Fatalf("pay = %d %v %s, want %d", r.status, r.err, r.body, b.Status)
	}
	switch b.Body {
	case BodyNone:
		if len(r.body) != 0 {
			t.Errorf("pay body = %q, want none", r.body)
		}
	case BodyMalformed:
		if json.Valid(r.body) {
			t.Errorf("pay body = %s, want malformed JSON", r.body)
		}
	case BodyErrorDetail:
		d := errorDetail(t, r.body)
		if d.ErrorType != b.ErrorType || d.OriginalID != req.ID || d.TranID != req.TranID {
			t.Errorf("ErrorDetail = %+v, want %s for %s/%s", d, b.ErrorType, req.ID, req.TranID)
		}
	case BodyPaymentResponse:
		checkApproval(t, req, r.body)
	default:
		t.Fatalf("row %s has body %q", b.Digits(), b.Body)
	}
}

func checkApproval(t *testing.T, req *wire.PaymentRequest, body []byte) {
	t.Helper()
	var resp wire.PaymentResponse
	if err := wire.Decode(body, &resp); err != nil {
		t.Fatalf("body %s is not a PaymentResponse: %v", body, err)
	}
	if err := resp.Validate(); err != nil {
		t.Errorf("PaymentResponse: %v", err)
	}
	if resp.ID != req.ID || resp.TranID != req.TranID || resp.Time != req.Time || resp.PartnerPaymentToken != req.PartnerPaymentToken {
		t.Errorf("PaymentResponse id/tranId/time/token = %s/%s/%s/%s, want the request's echoed", resp.ID, resp.TranID, resp.Time, resp.PartnerPaymentToken)
	}
	if resp.Originator == nil || resp.Originator.TerminalID != req.Originator.TerminalID {
		t.Errorf("PaymentResponse originator = %+v, want the request's", resp.Originator)
	}
	if resp.Partner == nil || *resp.Partner != (wire.Institution{ID: DefaultPartnerID, Name: DefaultPartnerName}) {
		t.Errorf("PaymentResponse partner = %+v, want the sim", resp.Partner)
	}
	want := *req.Amounts.RequestAmount
	if resp.Amounts == nil || resp.Amounts.ApprovedAmount == nil || *resp.Amounts.ApprovedAmount != want ||
		resp.Amounts.RequestAmount == nil || *resp.Amounts.RequestAmount != want {
		t.Errorf("PaymentResponse amounts = %+v, want request and approved %+v", resp.Amounts, want)
	}
	if len(resp.Tenders) != 1 || resp.Tenders[0].TenderType != "WALLET" || resp.Tenders[0].Reference == "" ||
		resp.Tenders[0].Amount == nil || *resp.Tenders[0].Amount != want {
		t.Errorf("PaymentResponse tenders = %+v, want one WALLET tender of %+v with a reference", resp.Tenders, want)
	}
}

func TestLateAnswerClientTimesOut(t *testing.T) {
	e := newEnv(t, Config{LateAfter: 200 * time.Millisecond})
	// Warm the shared transport up, so the 100 ms go to the answer and not
	// to a TLS handshake.
	if r := e.do(http.MethodGet, "/sim/v1/health", nil); r.status != http.StatusOK {
		t.Fatalf("health = %d %v", r.status, r.err)
	}
	impatient := *e.client
	impatient.Timeout = 100 * time.Millisecond
	req := paymentRequest(7970)
	r := e.doAuth(&impatient, http.MethodPost, "/qr/v1/payments", req, testUser, testPass)
	var timeout interface{ Timeout() bool }
	if r.err == nil || !errors.As(r.err, &timeout) || !timeout.Timeout() {
		t.Fatalf("pay ..70 with a 100ms client = %d %v, want a client timeout", r.status, r.err)
	}
	if p := e.payment(req.ID); p.State != StateReserved || p.Behaviour != "late" {
		t.Errorf("ledger payment = %s %s, want reserved late", p.State, p.Behaviour)
	}
	// The sim stops waiting when it sees the client go; if the timer wins
	// that race, the answer goes to a closed connection.
	eventually(t, "the late answer to end", func() bool { return e.sim.held.Load() == 0 })
	if p := e.payment(req.ID); p.Status == 0 && p.Note == "" {
		t.Errorf("ledger payment unanswered without a note saying why")
	}
}

func TestDuplicatePayment(t *testing.T) {
	e := newEnv(t, Config{})
	req := e.approved(1000)
	d := wantError(t, "pay again", e.pay(req), http.StatusBadRequest, wire.DuplicateRecord)
	if d.OriginalID != req.ID {
		t.Errorf("DUPLICATE_RECORD originalId = %s, want %s", d.OriginalID, req.ID)
	}
	l := e.sim.Ledger()
	if len(l.Payments) != 1 || l.Payments[0].Deliveries != 2 || l.Payments[0].State != StateReserved {
		t.Errorf("ledger payments = %+v, want one reserved with 2 deliveries", l.Payments)
	}
	if l.Totals.DuplicateDeliveries != 1 {
		t.Errorf("totals duplicate deliveries = %d, want 1", l.Totals.DuplicateDeliveries)
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t, Config{})
	paths := map[string]any{
		"/qr/v1/payments":               paymentRequest(1000),
		"/qr/v1/payments/confirmations": confirmation(wire.NewID()),
		"/qr/v1/payments/reversals":     reversal(wire.NewID()),
	}
	for _, tc := range []struct{ name, user, pass string }{
		{"missing", "", ""},
		{"wrong user", "someone", testPass},
		{"wrong password", testUser, "guess"},
		{"empty password", testUser, ""},
	} {
		for path, body := range paths {
			t.Run(tc.name+path, func(t *testing.T) {
				r := e.doAuth(e.client, http.MethodPost, path, body, tc.user, tc.pass)
				wantError(t, "POST "+path, r, http.StatusUnauthorized, wire.GeneralError)
				if h := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Basic ") {
					t.Errorf("WWW-Authenticate = %q, want Basic", h)
				}
			})
		}
	}
	if n := len(e.sim.Ledger().Payments); n != 0 {
		t.Errorf("ledger holds %d payments after refused requests, want 0", n)
	}

	t.Run("no credentials configured", func(t *testing.T) {
		sim := New(Config{})
		srv := httptest.NewTLSServer(sim.Handler())
		defer srv.Close()
		defer sim.Close()
		open := &env{t: t, sim: sim, srv: srv, client: srv.Client()}
		r := open.doAuth(open.client, http.MethodPost, "/qr/v1/payments", paymentRequest(1000), "", "")
		if r.status != http.StatusCreated {
			t.Errorf("pay without credentials to an open sim = %d %s, want 201", r.status, r.body)
		}
	})
}

func TestMalformedBody(t *testing.T) {
	e := newEnv(t, Config{})
	modify := func(f func(*wire.PaymentRequest)) []byte {
		req := paymentRequest(1000)
		f(req)
		b, _ := json.Marshal(req)
		return b
	}
	badReversal := reversal(wire.NewID())
	badReversal.ReversalReason = "BECAUSE"
	badConfirmation := confirmation("not-a-uuid")
	for _, tc := range []struct {
		name, path string
		body       []byte
		field      string
	}{
		{"empty", "/qr/v1/payments", nil, ""},
		{"not JSON", "/qr/v1/payments", []byte(`{"id":`), ""},
		{"array", "/qr/v1/payments", []byte(`[]`), ""},
		{"trailing data", "/qr/v1/payments", append(modify(func(*wire.PaymentRequest) {}), []byte(`{}`)...), ""},
		{"no tranId", "/qr/v1/payments", modify(func(r *wire.PaymentRequest) { r.TranID = "" }), "tranId"},
		{"short terminalId", "/qr/v1/payments", modify(func(r *wire.PaymentRequest) { r.Originator.TerminalID = "T1" }), "originator.terminalId"},
		{"no amounts", "/qr/v1/payments", modify(func(r *wire.PaymentRequest) { r.Amounts = nil }), "amounts"},
		{"amount as string", "/qr/v1/payments", bytes.Replace(modify(func(*wire.PaymentRequest) {}),
			[]byte(`"amount":1000`), []byte(`"amount":"1000"`), 1), "amounts.requestAmount.amount"},
		{"bad requestId", "/qr/v1/payments/confirmations", mustJSON(t, badConfirmation), "requestId"},
		{"bad reversalReason", "/qr/v1/payments/reversals", mustJSON(t, badReversal), "reversalReason"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := wantError(t, "POST "+tc.path, e.do(http.MethodPost, tc.path, tc.body), http.StatusBadRequest, wire.FormatError)
			detail := d.DetailMessage.Message()
			if tc.field != "" && (!strings.Contains(detail, tc.field) || !strings.Contains(d.ErrorMessage, tc.field[:min(len(tc.field), 20)])) {
				t.Errorf("FORMAT_ERROR message %q detail %q, want them to name %s", d.ErrorMessage, detail, tc.field)
			}
			if detail == "" {
				t.Errorf("FORMAT_ERROR has no detailMessage")
			}
		})
	}
	if l := e.sim.Ledger(); len(l.Payments)+len(l.Advices) != 0 {
		t.Errorf("ledger = %+v after malformed requests, want empty", l)
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHealth(t *testing.T) {
	e := newEnv(t, Config{})
	r := e.do(http.MethodGet, "/sim/v1/health", nil)
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("GET /sim/v1/health = %d %v, want 200", r.status, r.err)
	}
	if r := e.do(http.MethodGet, "/qr/v1/payments", nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET /qr/v1/payments = %d, want 405", r.status)
	}
}

func TestDropOverHTTP2(t *testing.T) {
	sim := New(Config{LateAfter: time.Minute})
	srv := httptest.NewUnstartedServer(sim.Handler())
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(testLog{t}, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close)
	e := &env{t: t, sim: sim, srv: srv, client: srv.Client()}
	e.client.Timeout = 5 * time.Second
	resp, err := e.client.Get(srv.URL + "/sim/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("test server speaks %s, want HTTP/2", resp.Proto)
	}

	r := e.doAuth(e.client, http.MethodPost, "/qr/v1/payments", paymentRequest(1071), "", "")
	if r.err == nil {
		t.Fatalf("pay ..71 over HTTP/2 = %d %s, want the stream reset unanswered", r.status, r.body)
	}
	late := make(chan response, 1)
	go func() { late <- e.doAuth(e.client, http.MethodPost, "/qr/v1/payments", paymentRequest(1070), "", "") }()
	eventually(t, "the late answer to be held", func() bool { return sim.held.Load() == 1 })
	sim.Close()
	if r := <-late; r.err == nil {
		t.Errorf("late pay over HTTP/2 after Close = %d, want the stream reset", r.status)
	}
	r = e.doAuth(e.client, http.MethodPost, "/qr/v1/payments", paymentRequest(1000), "", "")
	if r.err != nil || r.status != http.StatusCreated {
		t.Errorf("pay over HTTP/2 after resets = %d %v, want 201", r.status, r.err)
	}
}
