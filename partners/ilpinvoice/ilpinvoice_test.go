package ilpinvoice_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/qrswitch/qrswitch/internal/jstest"
	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/ilpinvoice"
	"github.com/qrswitch/qrswitch/partners/ilpinvoice/dfspsim"
	"github.com/qrswitch/qrswitch/partners/railtest"
	"github.com/qrswitch/qrswitch/store/sqlite"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

const (
	partnerID = "ilp"
	currency  = "840" // USD, 2 decimals
)

// ledgerEnv is the rail on a real SQLite store and a TLS server, and the
// DFSP simulator on another, each calling the other over HTTPS.
type ledgerEnv struct {
	t       *testing.T
	dir     string
	store   *sqlite.Store
	records partners.Records
	host    *railtest.Host
	rail    partners.Rail
	mux     *http.ServeMux
	srv     *httptest.Server
	sim     *dfspsim.Sim
	simSrv  *httptest.Server
	client  *http.Client
	opts    string
}

// options are the rail's options for the tests: two DFSPs, the first with
// 1000.00, the second with 5.00; fee_fixed as given.
func options(directory, fee string) string {
	return fmt.Sprintf(`
currency: "840"
ledger_prefix: "test.qrswitch."
directory_url: %q
fee_fixed: %q
max_transfer_life: 1m
sweep_interval: 50ms
dfsps:
  - {id: dfsp1, name: "First DFSP", account: dfsp1, balance: "1000.00", username: dfsp1, password: "dfsp1-secret"}
  - {id: dfsp2, name: "Second DFSP", account: dfsp2, balance: "5.00", username: dfsp2, password: "dfsp2-secret"}
`, directory, fee)
}

func newLedgerEnv(t *testing.T, fee string) *ledgerEnv {
	t.Helper()
	return newLedgerEnvFor(t, fee, railtest.NewHost())
}

// newLedgerEnvFor builds the env reporting to host, which commits what
// Paid carries in the env's store.
func newLedgerEnvFor(t *testing.T, fee string, host *railtest.Host) *ledgerEnv {
	t.Helper()
	e := &ledgerEnv{t: t, dir: t.TempDir(), host: host, mux: http.NewServeMux()}
	e.simSrv = httptest.NewUnstartedServer(nil)
	e.simSrv.StartTLS()
	t.Cleanup(e.simSrv.Close)
	e.srv = httptest.NewUnstartedServer(e.mux)
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	e.client = e.srv.Client()
	e.opts = options(e.simSrv.URL+"/directory", fee)
	e.open()
	e.sim = dfspsim.New(dfspsim.Config{
		LedgerURL: e.srv.URL + "/ilpinvoice/" + partnerID, SwitchTLS: e.client.Transport.(*http.Transport).TLSClientConfig,
		BaseURL: e.simSrv.URL,
		DFSPs: []dfspsim.DFSP{
			{ID: "dfsp1", Username: "dfsp1", Password: "dfsp1-secret", Account: "dfsp1"},
			{ID: "dfsp2", Username: "dfsp2", Password: "dfsp2-secret", Account: "dfsp2"},
		},
	})
	e.simSrv.Config.Handler = e.sim.Handler()
	t.Cleanup(e.sim.Close)
	e.serve()
	return e
}

// open opens the store and builds and starts the rail on it.
func (e *ledgerEnv) open() {
	t := e.t
	st, err := sqlite.Open(context.Background(), "sqlite://"+filepath.Join(e.dir, "ledger.db")+"?synchronous=normal", sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.store = st
	e.records = qrswitch.RailRecords(st, partnerID)
	e.host.Records = e.records
	var node yaml.Node
	if err := yaml.Unmarshal([]byte(e.opts), &node); err != nil {
		t.Fatal(err)
	}
	r, err := ilpinvoice.New(partners.Config{
		PartnerID: partnerID, Name: "ILP invoices", Options: node.Content[0], Host: e.host, Records: e.records,
		Transport: e.client.Transport, PublicURL: e.srv.URL, Development: true, Timeout: 10 * time.Second, Logger: zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.(partners.Starter).Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.rail = r
	t.Cleanup(e.close)
}

// close stops the rail and closes the store (a restart opens them again).
func (e *ledgerEnv) close() {
	if e.rail != nil {
		e.rail.(partners.Starter).Close()
		e.rail = nil
	}
	if e.store != nil {
		e.store.Close()
		e.store = nil
	}
}

// serve routes the rail's surface on the switch's server (once: the
// handlers reach the rail of the moment through e).
func (e *ledgerEnv) serve() {
	for _, rt := range e.rail.(partners.Surface).Routes() {
		path := rt.Path
		e.mux.HandleFunc(rt.Method+" "+path, func(w http.ResponseWriter, r *http.Request) {
			for _, cur := range e.rail.(partners.Surface).Routes() {
				if cur.Method == rt.Method && cur.Path == path {
					cur.Handler.ServeHTTP(w, r)
					return
				}
			}
		})
	}
}

// offer issues an invoice for a new code and commits it, as the engine
// does when it issues the code.
func (e *ledgerEnv) offer(amount int64, customer string) (*partners.OfferRequest, *partners.Offer) {
	e.t.Helper()
	o := &partners.OfferRequest{
		TranID: wire.NewID(), RetailerID: "shop-1", Amount: &wire.LedgerAmount{Amount: amount, Currency: currency},
		Merchant:  &wire.Merchant{MerchantType: "5411", MerchantID: "M1", MerchantName: wire.MerchantName{Name: "Demo Shop", City: "Cape Town", Country: "ZA"}},
		ExpiresAt: time.Now().Add(5 * time.Minute), Now: time.Now(),
	}
	if customer != "" {
		o.Customer = json.RawMessage(`{"msisdn":"` + customer + `"}`)
	}
	of, err := e.rail.(partners.Offerer).Offer(e.t.Context(), o)
	if err != nil {
		e.t.Fatalf("Offer = %v", err)
	}
	if err := e.records.Commit(e.t.Context(), of.Records...); err != nil {
		e.t.Fatal(err)
	}
	return o, of
}

// do calls the switch with a DFSP's credentials (user "" for none).
func (e *ledgerEnv) do(method, path, user, pass string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.srv.URL+"/ilpinvoice/"+partnerID+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(raw, &out)
	if out == nil {
		out = map[string]any{"raw": string(raw)}
	}
	return resp.StatusCode, out
}

func (e *ledgerEnv) balance(user string) string {
	e.t.Helper()
	st, acct := e.do(http.MethodGet, "/ledger/accounts/"+user, user, user+"-secret", nil)
	if st != http.StatusOK {
		e.t.Fatalf("GET account %s = %d %v", user, st, acct)
	}
	return acct["balance"].(string)
}

func (e *ledgerEnv) invoice(of *partners.Offer) map[string]any {
	e.t.Helper()
	st, v := e.do(http.MethodGet, "/invoice/"+of.Reference[strings.LastIndex(of.Reference, "/")+1:], "", "", nil)
	if st != http.StatusOK {
		e.t.Fatalf("GET invoice = %d %v", st, v)
	}
	return v
}

func (e *ledgerEnv) pay(of *partners.Offer, p dfspsim.PayRequest) *dfspsim.Transfer {
	e.t.Helper()
	p.InvoiceURL = of.Reference
	tr, err := e.sim.Pay(e.t.Context(), p)
	if err != nil {
		e.t.Fatalf("Pay(%+v) = %v", p, err)
	}
	return tr
}

func status(s *dfspsim.Step) int {
	if s == nil {
		return 0
	}
	return s.Status
}

func errorID(s dfspsim.Step) string {
	var b struct{ ID string }
	json.Unmarshal(s.Body, &b)
	return b.ID
}

// TestPullConformance runs the pull rails' suite on the invoice rail, paid
// by the DFSP simulator over HTTPS, its records in SQLite.
func TestPullConformance(t *testing.T) {
	railtest.RunPull(t, railtest.Pull{
		New: func(t *testing.T, host partners.Host, _ partners.Records) partners.Rail {
			e := newLedgerEnvFor(t, "", host.(*railtest.Host))
			conformanceEnvs.Store(e.rail, e)
			return e.rail
		},
		PayOffer: func(t *testing.T, r partners.Rail, _ *partners.OfferRequest, of *partners.Offer, repeat bool) bool {
			v, _ := conformanceEnvs.Load(r)
			e := v.(*ledgerEnv)
			if repeat {
				last := e.sim.Transfers()
				tr := last[len(last)-1]
				st, _ := e.do(http.MethodPut, "/ledger/transfers/"+tr.ID+"/fulfillment", "dfsp1", "dfsp1-secret", map[string]string{"fulfillment": tr.Fulfillment})
				return st == http.StatusOK
			}
			tr := e.pay(of, dfspsim.PayRequest{})
			return status(tr.Fulfil) == http.StatusOK && tr.State == "executed"
		},
		Currency: currency,
		Amount:   12345,
	})
}

var conformanceEnvs sync.Map // rail → its env

// TestInvoicePaidByTransfer follows one invoice through the document's
// steps: the invoice and receiver as a DFSP reads them, the quote, a
// prepared transfer holding the DFSP's funds, the fulfillment executing it
// and approving the payment once, and a refund giving it back.
func TestInvoicePaidByTransfer(t *testing.T) {
	e := newLedgerEnv(t, "0.25")
	o, of := e.offer(10000, "")
	if v := e.invoice(of); v["amount"] != "100.00" || v["status"] != "unpaid" || v["currencyCode"] != "USD" || v["currencySymbol"] != "$" || !strings.HasSuffix(v["account"].(string), "/ledger/accounts/shop-1") {
		t.Fatalf("invoice = %v, want 100.00 USD unpaid to shop-1", v)
	}
	id := of.Reference[strings.LastIndex(of.Reference, "/")+1:]
	if st, rcv := e.do(http.MethodGet, "/receivers/"+id, "", "", nil); st != 200 || rcv["address"] != "test.qrswitch.shop-1."+id || rcv["type"] != "invoice" {
		t.Fatalf("receiver = %d %v", st, rcv)
	}
	if st, q := e.do(http.MethodGet, "/quoteDestinationAmount?destinationAmount=100&receiver="+of.Reference, "", "", nil); st != 200 || q["sourceAmount"] != "100.25" {
		t.Fatalf("quote = %d %v, want sourceAmount 100.25 (fee 0.25)", st, q)
	}

	tr := e.pay(of, dfspsim.PayRequest{})
	if status(&tr.Prepare) != http.StatusCreated || status(tr.Fulfil) != http.StatusOK || tr.State != "executed" {
		t.Fatalf("transfer = %+v, want prepared (201), fulfilled (200), executed", tr)
	}
	paid := e.host.WaitPaid(t, 1, 30*time.Second)[0]
	if paid.TranID != o.TranID || paid.Amount.Amount != 10000 || paid.Amount.Currency != currency || paid.Reference != tr.ID || paid.Payer == nil || paid.Payer.ID != "dfsp1" {
		t.Fatalf("Paid = %+v, want tranId %s, 10000 840, reference %s, payer dfsp1", paid, o.TranID, tr.ID)
	}
	if got := e.balance("dfsp1"); got != "899.75" {
		t.Fatalf("dfsp1 balance = %s, want 899.75 (1000.00 - 100.00 - fee 0.25)", got)
	}
	if v := e.invoice(of); v["status"] != "paid" {
		t.Fatalf("invoice status = %v, want paid", v["status"])
	}
	st, f := e.do(http.MethodGet, "/ledger/transfers/"+tr.ID+"/fulfillment", "dfsp1", "dfsp1-secret", nil)
	if st != 200 || f["raw"] != `"`+tr.Fulfillment+`"` {
		t.Fatalf("GET fulfillment = %d %v, want %q", st, f, tr.Fulfillment)
	}

	// A second DFSP cannot pay the paid invoice.
	again := e.pay(of, dfspsim.PayRequest{DFSP: "dfsp2"})
	if again.Prepare.Status != http.StatusUnprocessableEntity || errorID(again.Prepare) != "InvoiceNotPayableError" {
		t.Fatalf("prepare for a paid invoice = %+v, want 422 InvoiceNotPayableError", again.Prepare)
	}

	// The POS reversed the sale after the money arrived: a refund.
	adv := &partners.Advice{ID: wire.NewID(), TranID: o.TranID, Kind: partners.KindRefund, Paid: paid}
	for range 2 { // and again: the same refund
		if a := e.rail.(partners.Refunder).Refund(t.Context(), adv); a.Outcome != outcome.Successful {
			t.Fatalf("Refund = %s %v, want successful", a.Outcome, a.Err)
		}
	}
	if got := e.balance("dfsp1"); got != "1000.00" {
		t.Fatalf("dfsp1 balance after the refund = %s, want 1000.00 (a reversal undoes the payment, fee included)", got)
	}
	if a := e.rail.Confirm(t.Context(), &partners.Advice{ID: wire.NewID(), TranID: o.TranID, Kind: partners.KindConfirmation}); a.Outcome != outcome.Successful {
		t.Fatalf("Confirm = %s %v", a.Outcome, a.Err)
	}
}

// TestDFSPFaults plays every way a DFSP can misbehave and shows the ledger
// refusing each, the funds held only while a transfer is prepared, and
// nothing reported paid.
func TestDFSPFaults(t *testing.T) {
	e := newLedgerEnv(t, "")
	cases := []struct {
		fault       string
		dfsp        string
		amount      int64
		prepare     int
		fulfil      int
		errID       string
		state       string
		paid        bool
		balanceAt   string
		balanceWant string
	}{
		{fault: dfspsim.FaultWrongFulfillment, amount: 1000, prepare: 201, fulfil: 422, errID: "UnmetConditionError", state: "prepared", balanceAt: "dfsp1", balanceWant: "990.00"},
		{fault: dfspsim.FaultShort, amount: 1000, prepare: 422, errID: "InvoiceNotPayableError", state: "refused", balanceAt: "dfsp1", balanceWant: "990.00"},
		{fault: dfspsim.FaultLate, amount: 1000, prepare: 201, fulfil: 422, errID: "TransferStateError", state: "rejected", balanceAt: "dfsp1", balanceWant: "990.00"},
		{fault: dfspsim.FaultNone, dfsp: "dfsp2", amount: 600, prepare: 422, errID: "InsufficientFundsError", state: "refused", balanceAt: "dfsp2", balanceWant: "5.00"},
		{fault: dfspsim.FaultDuplicate, amount: 1000, prepare: 200, fulfil: 200, state: "executed", paid: true, balanceAt: "dfsp1", balanceWant: "980.00"},
	}
	for _, c := range cases {
		t.Run(c.fault+c.dfsp, func(t *testing.T) {
			before := len(e.host.PaidReports())
			_, of := e.offer(c.amount, "")
			tr := e.pay(of, dfspsim.PayRequest{Fault: c.fault, DFSP: c.dfsp})
			if tr.Prepare.Status != c.prepare || status(tr.Fulfil) != c.fulfil || tr.State != c.state {
				t.Fatalf("%s: prepare %d, fulfil %d, state %s (%s / %v), want %d, %d, %s", c.fault, tr.Prepare.Status, status(tr.Fulfil), tr.State, tr.Prepare.Body, tr.Fulfil, c.prepare, c.fulfil, c.state)
			}
			step := tr.Prepare
			if tr.Fulfil != nil {
				step = *tr.Fulfil
			}
			if c.errID != "" && errorID(step) != c.errID {
				t.Fatalf("%s: error %s, want %s", c.fault, step.Body, c.errID)
			}
			if n := len(e.host.PaidReports()) - before; n != map[bool]int{true: 1, false: 0}[c.paid] {
				t.Fatalf("%s: %d payments reported, want paid=%v", c.fault, n, c.paid)
			}
			if c.state == "prepared" {
				// Held until the sweep rejects it at its expiry.
				return
			}
			if got := e.balance(c.balanceAt); got != c.balanceWant {
				t.Fatalf("%s: %s balance %s, want %s", c.fault, c.balanceAt, got, c.balanceWant)
			}
		})
	}
}

// TestNeverFulfilledReleasedAcrossRestart prepares a transfer that is
// never fulfilled, stops the rail and its store, and shows the restarted
// rail rejecting it at its expiry and giving the funds back.
func TestNeverFulfilledReleasedAcrossRestart(t *testing.T) {
	e := newLedgerEnv(t, "")
	e.sim = dfspsim.New(dfspsim.Config{
		LedgerURL: e.srv.URL + "/ilpinvoice/" + partnerID, SwitchTLS: e.client.Transport.(*http.Transport).TLSClientConfig,
		DFSPs: []dfspsim.DFSP{{ID: "dfsp1", Username: "dfsp1", Password: "dfsp1-secret", Account: "dfsp1"}}, TransferLife: 2 * time.Second,
	})
	_, of := e.offer(2500, "")
	tr := e.pay(of, dfspsim.PayRequest{Fault: dfspsim.FaultNeverFulfil})
	if tr.State != "prepared" {
		t.Fatalf("state = %s, want prepared", tr.State)
	}
	if got := e.balance("dfsp1"); got != "975.00" {
		t.Fatalf("balance while prepared = %s, want 975.00 (held)", got)
	}
	e.close()
	e.open() // a new process on the same store
	for {
		st, v := e.do(http.MethodGet, "/ledger/transfers/"+tr.ID, "dfsp1", "dfsp1-secret", nil)
		if st == 200 && v["state"] == "rejected" {
			if v["rejection_reason"] != "expired" {
				t.Fatalf("rejection_reason = %v, want expired", v["rejection_reason"])
			}
			break
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("transfer = %d %v, never rejected", st, v)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if got := e.balance("dfsp1"); got != "1000.00" {
		t.Fatalf("balance after the expiry = %s, want 1000.00", got)
	}
	if v := e.invoice(of); v["status"] != "unpaid" {
		t.Fatalf("invoice = %v, want unpaid: the customer may still pay", v["status"])
	}
	if n := len(e.host.PaidReports()); n != 0 {
		t.Fatalf("%d payments reported, want none", n)
	}
}

// TestConcurrentPrepares races prepares on one DFSP account that can fund
// only some of them: exactly those succeed and the account never goes
// below zero.
func TestConcurrentPrepares(t *testing.T) {
	e := newLedgerEnv(t, "")
	const n = 8 // dfsp2 holds 5.00; each invoice asks 1.00
	var offers []*partners.Offer
	for range n {
		_, of := e.offer(100, "")
		offers = append(offers, of)
	}
	results := make([]*dfspsim.Transfer, n)
	var wg sync.WaitGroup
	for i, of := range offers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr, err := e.sim.Pay(context.Background(), dfspsim.PayRequest{InvoiceURL: of.Reference, DFSP: "dfsp2", Fault: dfspsim.FaultNeverFulfil})
			if err != nil {
				t.Errorf("Pay = %v", err)
				return
			}
			results[i] = tr
		}()
	}
	wg.Wait()
	ok, broke := 0, 0
	for _, tr := range results {
		switch {
		case tr == nil:
		case tr.Prepare.Status == http.StatusCreated:
			ok++
		case errorID(tr.Prepare) == "InsufficientFundsError":
			broke++
		default:
			t.Errorf("prepare = %d %s", tr.Prepare.Status, tr.Prepare.Body)
		}
	}
	if ok != 5 || broke != n-5 {
		t.Fatalf("%d prepared, %d refused for funds, want 5 and %d", ok, broke, n-5)
	}
	if got := e.balance("dfsp2"); got != "0.00" {
		t.Fatalf("balance = %s, want 0.00", got)
	}
}

// TestILPPacketNamesTheInvoice pays with only an ILPv4 packet in the
// credit's memo: the invoice is found by its address.
func TestILPPacketNamesTheInvoice(t *testing.T) {
	e := newLedgerEnv(t, "")
	o, of := e.offer(4200, "")
	tr := e.pay(of, dfspsim.PayRequest{ILPOnly: true})
	if tr.State != "executed" {
		t.Fatalf("transfer = %+v, want executed", tr)
	}
	if p := e.host.WaitPaid(t, 1, 30*time.Second)[0]; p.TranID != o.TranID {
		t.Fatalf("Paid for %s, want %s", p.TranID, o.TranID)
	}
}

// TestEngineRefusesMoney shows a fulfillment for a code whose payment
// ended rejected, the funds released and the invoice cancelled.
func TestEngineRefusesMoney(t *testing.T) {
	e := newLedgerEnv(t, "")
	e.host.PaidErr = fmt.Errorf("%w: the payment expired", partners.ErrNotWaiting)
	_, of := e.offer(700, "")
	tr := e.pay(of, dfspsim.PayRequest{})
	if status(tr.Fulfil) != http.StatusUnprocessableEntity || errorID(*tr.Fulfil) != "InvoiceNotPayableError" || tr.State != "rejected" {
		t.Fatalf("transfer = %+v, want the fulfillment refused and the transfer rejected", tr)
	}
	if got := e.balance("dfsp1"); got != "1000.00" {
		t.Fatalf("balance = %s, want 1000.00", got)
	}
	if v := e.invoice(of); v["status"] != "cancelled" {
		t.Fatalf("invoice = %v, want cancelled", v["status"])
	}
}

// TestBadRequests sends what a DFSP must not, and reads the ledger's
// error for each; nothing moves.
func TestBadRequests(t *testing.T) {
	e := newLedgerEnv(t, "")
	_, of := e.offer(1000, "")
	led := e.srv.URL + "/ilpinvoice/" + partnerID
	cond := "ni:///sha-256;47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU?fpt=preimage-sha-256&cost=0"
	good := func() map[string]any {
		return map[string]any{
			"debits":              []map[string]any{{"account": led + "/ledger/accounts/dfsp1", "amount": "10.00", "authorized": true}},
			"credits":             []map[string]any{{"account": led + "/ledger/accounts/shop-1", "amount": "10.00", "memo": map[string]string{"invoice": of.Reference}}},
			"execution_condition": cond,
			"expires_at":          time.Now().Add(30 * time.Second).UTC().Format(time.RFC3339Nano),
		}
	}
	with := func(k string, v any) map[string]any { b := good(); b[k] = v; return b }
	cases := []struct {
		name       string
		user, pass string
		body       any
		status     int
		id         string
	}{
		{"no credentials", "", "", good(), 401, "UnauthorizedError"},
		{"wrong password", "dfsp1", "nope", good(), 401, "UnauthorizedError"},
		{"unknown user", "who", "dfsp1-secret", good(), 401, "UnauthorizedError"},
		{"not JSON", "dfsp1", "dfsp1-secret", "{", 400, "InvalidBodyError"},
		{"another DFSP's account", "dfsp2", "dfsp2-secret", good(), 400, "InvalidBodyError"},
		{"unbalanced", "dfsp1", "dfsp1-secret", with("debits", []map[string]any{{"account": "dfsp1", "amount": "11.00", "authorized": true}}), 400, "InvalidBodyError"},
		{"not authorized", "dfsp1", "dfsp1-secret", with("debits", []map[string]any{{"account": "dfsp1", "amount": "10.00"}}), 400, "InvalidBodyError"},
		{"finer than cents", "dfsp1", "dfsp1-secret", with("debits", []map[string]any{{"account": "dfsp1", "amount": "10.001", "authorized": true}}), 400, "InvalidBodyError"},
		{"bad condition", "dfsp1", "dfsp1-secret", with("execution_condition", "ni:///sha-256;abc?fpt=preimage-sha-256&cost=32"), 400, "InvalidBodyError"},
		{"expiry past", "dfsp1", "dfsp1-secret", with("expires_at", "2020-01-01T00:00:00Z"), 400, "InvalidBodyError"},
		{"expiry too far", "dfsp1", "dfsp1-secret", with("expires_at", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)), 400, "InvalidBodyError"},
		{"no invoice named", "dfsp1", "dfsp1-secret", with("credits", []map[string]any{{"account": "shop-1", "amount": "10.00"}}), 400, "InvalidBodyError"},
		{"unknown invoice", "dfsp1", "dfsp1-secret", with("credits", []map[string]any{{"account": "shop-1", "amount": "10.00", "memo": map[string]string{"invoice": "nosuchinvoice"}}}), 422, "UnprocessableEntityError"},
		{"another account", "dfsp1", "dfsp1-secret", with("credits", []map[string]any{{"account": "shop-2", "amount": "10.00", "memo": map[string]string{"invoice": of.Reference}}}), 422, "InvoiceNotPayableError"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, body := e.do(http.MethodPut, "/ledger/transfers/"+wire.NewID(), c.user, c.pass, c.body)
			if st != c.status || body["id"] != c.id || body["message"] == "" {
				t.Fatalf("PUT transfer = %d %v, want %d %s with a message", st, body, c.status, c.id)
			}
		})
	}
	// A prepare that changes an existing transfer is refused.
	id := wire.NewID()
	if st, b := e.do(http.MethodPut, "/ledger/transfers/"+id, "dfsp1", "dfsp1-secret", good()); st != 201 {
		t.Fatalf("prepare = %d %v", st, b)
	}
	if st, b := e.do(http.MethodPut, "/ledger/transfers/"+id, "dfsp1", "dfsp1-secret", with("expires_at", time.Now().Add(40*time.Second).UTC().Format(time.RFC3339Nano))); st != 422 || b["id"] != "AlreadyExistsError" {
		t.Fatalf("changed prepare = %d %v, want 422 AlreadyExistsError", st, b)
	}
	// Another DFSP sees no such transfer; a fulfillment must parse.
	if st, b := e.do(http.MethodGet, "/ledger/transfers/"+id, "dfsp2", "dfsp2-secret", nil); st != 404 || b["id"] != "NotFoundError" {
		t.Fatalf("another DFSP's GET = %d %v, want 404", st, b)
	}
	if st, b := e.do(http.MethodPut, "/ledger/transfers/"+id+"/fulfillment", "dfsp1", "dfsp1-secret", map[string]string{"fulfillment": "not base64!"}); st != 400 || b["id"] != "InvalidBodyError" {
		t.Fatalf("bad fulfillment = %d %v, want 400", st, b)
	}
	if st, b := e.do(http.MethodGet, "/ledger/transfers/"+id+"/fulfillment", "dfsp1", "dfsp1-secret", nil); st != 404 || b["id"] != "MissingFulfillmentError" {
		t.Fatalf("fulfillment of a prepared transfer = %d %v, want 404 MissingFulfillmentError", st, b)
	}
	if st, b := e.do(http.MethodGet, "/invoice/nosuch", "", "", nil); st != 404 || b["id"] != "NotFoundError" {
		t.Fatalf("unknown invoice = %d %v", st, b)
	}
	if st, b := e.do(http.MethodGet, "/quoteDestinationAmount?destinationAmount=-1", "", "", nil); st != 400 || b["id"] != "InvalidQueryParameterError" {
		t.Fatalf("bad quote = %d %v", st, b)
	}
	if st, b := e.do(http.MethodGet, "/ledger/accounts/dfsp2", "dfsp1", "dfsp1-secret", nil); st != 404 {
		t.Fatalf("another DFSP's account = %d %v, want 404", st, b)
	}
}

// TestNotificationDelivered delivers an invoice's notification to the
// customer's DFSP found in the directory: unknown while the DFSP is down,
// successful once it is up, failed for a customer nobody knows.
func TestNotificationDelivered(t *testing.T) {
	e := newLedgerEnv(t, "")
	_, of := e.offer(1500, "26547070")
	if len(of.Advices) != 1 || of.Advices[0].Kind != partners.KindNotification {
		t.Fatalf("offer advices = %+v, want one notification", of.Advices)
	}
	adv := &partners.Advice{ID: wire.NewID(), Kind: partners.KindNotification, Payload: of.Advices[0].Payload}
	deliver := e.rail.(partners.Deliverer).Deliver
	e.sim.SetNotificationsDown(true)
	if a := deliver(t.Context(), adv); a.Outcome != outcome.Unknown || a.Code != "HTTP 503" {
		t.Fatalf("Deliver to a DFSP that is down = %s %s %v, want unknown (repeated)", a.Outcome, a.Code, a.Err)
	}
	e.sim.SetNotificationsDown(false)
	if a := deliver(t.Context(), adv); a.Outcome != outcome.Successful {
		t.Fatalf("Deliver = %s %s %v, want successful", a.Outcome, a.Code, a.Err)
	}
	got := e.sim.Notifications("dfsp1")
	if len(got) != 1 || got[0].InvoiceURL != of.Reference || got[0].SenderIdentifier != "26547070" || !strings.Contains(got[0].Memo, "15.00 USD") {
		t.Fatalf("notifications = %+v, want the invoice for 26547070", got)
	}
	// The customer pays the invoice the notification named.
	if tr := e.pay(&partners.Offer{Reference: got[0].InvoiceURL}, dfspsim.PayRequest{}); tr.State != "executed" {
		t.Fatalf("paying the notified invoice = %+v", tr)
	}

	_, of = e.offer(1500, "11112222")
	adv = &partners.Advice{ID: wire.NewID(), Kind: partners.KindNotification, Payload: of.Advices[0].Payload}
	if a := deliver(t.Context(), adv); a.Outcome != outcome.Failed || a.Code != "DIRECTORY 404" {
		t.Fatalf("Deliver for an unknown customer = %s %s %v, want failed", a.Outcome, a.Code, a.Err)
	}
}

// TestOptionsRefused names each bad option.
func TestOptionsRefused(t *testing.T) {
	cases := []struct{ name, opts, want string }{
		{"no currency", `dfsps: []`, "options.currency"},
		{"unknown key", "currency: \"840\"\nledger: x", "ledger"},
		{"bad prefix", "currency: \"840\"\nledger_prefix: \"g.qrswitch\"", "options.ledger_prefix"},
		{"bad directory", "currency: \"840\"\ndirectory_url: \"ftp://x\"", "options.directory_url"},
		{"bad fee", "currency: \"840\"\nfee_fixed: \"0.001\"", "options.fee_fixed"},
		{"plaintext in production", "currency: \"840\"\ndfsps: [{id: a, username: a, password: p}]", "password_hash"},
		{"duplicate username", "currency: \"840\"\ndfsps: [{id: a, username: a, password_hash: x}, {id: b, username: a, password_hash: y}]", "used twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var node yaml.Node
			if err := yaml.Unmarshal([]byte(c.opts), &node); err != nil {
				t.Fatal(err)
			}
			_, err := ilpinvoice.New(partners.Config{PartnerID: "ilp", Options: node.Content[0], PublicURL: "https://switch.example"})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New(%s) = %v, want an error naming %s", c.opts, err, c.want)
			}
		})
	}
	t.Run("public URL too long for the template", func(t *testing.T) {
		var node yaml.Node
		if err := yaml.Unmarshal([]byte(`currency: "840"`), &node); err != nil {
			t.Fatal(err)
		}
		_, err := ilpinvoice.New(partners.Config{PartnerID: "ilp", Options: node.Content[0], PublicURL: "https://payments.switch-operator.example.com:8443"})
		if err == nil || !strings.Contains(err.Error(), "shorten public_url") {
			t.Fatalf("New with a long public URL = %v, want it refused", err)
		}
	})
}

// TestReferenceDFSP pays invoices with a DFSP written on the reference
// implementations (five-bells-condition for the condition and
// fulfillment, ilp-packet for the ILPv4 packet naming the invoice): the
// ledger executes the right fulfillment, which five-bells-condition then
// validates as the ledger stored it, and refuses a wrong one.
func TestReferenceDFSP(t *testing.T) {
	e := newLedgerEnv(t, "")
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(of *partners.Offer, mode string) map[string]any {
		cmd := jstest.Command(t.Context(), t, "testdata/dfsp.js", e.srv.URL+"/ilpinvoice/"+partnerID, of.Reference, "dfsp1", "dfsp1-secret", mode)
		cmd.Env = append(cmd.Env, "NODE_EXTRA_CA_CERTS="+caFile)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("dfsp.js: %v\n%s", err, stderr.String())
		}
		var res map[string]any
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("dfsp.js printed %s: %v", out, err)
		}
		return res
	}
	stat := func(res map[string]any, step string) float64 { return res[step].(map[string]any)["status"].(float64) }

	o, of := e.offer(3150, "")
	res := run(of, "pay")
	if stat(res, "prepare") != 201 || stat(res, "fulfil") != 200 || res["valid"] != true || res["storedFulfillment"] != res["fulfillment"] {
		t.Fatalf("reference DFSP = %v, want prepared, fulfilled, and the stored fulfillment valid", res)
	}
	if p := e.host.WaitPaid(t, 1, 30*time.Second)[0]; p.TranID != o.TranID || p.Amount.Amount != 3150 || p.Reference != res["transferId"] {
		t.Fatalf("Paid = %+v, want %s for 3150 by transfer %v", p, o.TranID, res["transferId"])
	}

	_, of = e.offer(3150, "")
	res = run(of, "wrong")
	if stat(res, "fulfil") != 422 || res["transfer"].(map[string]any)["body"].(map[string]any)["state"] != "prepared" {
		t.Fatalf("reference DFSP with a wrong fulfillment = %v, want 422 and the transfer still prepared", res)
	}
}
