package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners/ilpinvoice"
	"github.com/qrswitch/qrswitch/qr"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// devHarness starts the development setup — what `qrswitch serve` runs with
// no config, every rail's simulator included — on free ports, and returns
// it with what var/dev.json says of it.
func devHarness(t testing.TB, env ...string) (*Harness, *DevInfo) {
	t.Helper()
	return devHarnessWith(t, nil, env...)
}

// devHarnessWith is devHarness with edit applied to the configuration
// before the switch starts.
func devHarnessWith(t testing.TB, edit func(*config.Config), env ...string) (*Harness, *DevInfo) {
	t.Helper()
	var h *Harness
	var dir string
	for attempt := 1; ; attempt++ {
		dir = t.TempDir()
		cfg, err := config.Load("", append(append(devListeners(t, dir),
			"QRSWITCH_SAF_INITIAL_INTERVAL=100ms", "QRSWITCH_SAF_MAX_INTERVAL=300ms",
		), env...))
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(cfg)
		}
		h = &Harness{T: t, Cfg: cfg, Logs: newSyncBuffer()}
		err = h.tryStart(Options{DrainTimeout: 5 * time.Second, SAFPoll: 50 * time.Millisecond})
		if err != nil && attempt < 5 && strings.Contains(err.Error(), "address already in use") {
			// A simulator's port, found free by devListeners, was taken
			// since by another test's process (a Redis node, say): the
			// switch opened nothing (TestNewFailsCleanly); pick again.
			continue
		}
		if err != nil {
			t.Fatalf("server.New: %v", err)
		}
		break
	}
	b, err := os.ReadFile(filepath.Join(dir, DevFileName))
	if err != nil {
		t.Fatalf("var/dev.json: %v", err)
	}
	var d DevInfo
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("var/dev.json: %v\n%s", err, b)
	}
	return h, &d
}

// devListeners is the environment that moves the development setup to
// free ports: its listeners and every simulated partner's base_url, so
// that tests run side by side with each other and with a `qrswitch serve`.
func devListeners(t testing.TB, dir string) []string {
	t.Helper()
	env := []string{"QRSWITCH_DATA_DIR=" + dir, "QRSWITCH_LISTEN=127.0.0.1:0", "QRSWITCH_ADMIN_LISTEN=127.0.0.1:0", "QRSWITCH_CHECKOUT_LISTEN=127.0.0.1:0"}
	for i := range config.Development().Partners {
		env = append(env, fmt.Sprintf("QRSWITCH_PARTNERS_%d_BASE_URL=https://%s", i, freePort(t)))
	}
	return env
}

// simulatorOf returns what dev.json says of the simulator of a rail.
func simulatorOf(t testing.TB, d *DevInfo, rail string) map[string]string {
	t.Helper()
	for _, p := range d.Partners {
		if p.Rail == rail {
			out := map[string]string{}
			for k, v := range p.Simulator {
				s, _ := v.(string)
				out[k] = s
			}
			return out
		}
	}
	t.Fatalf("dev.json names no partner on rail %s: %+v", rail, d.Partners)
	return nil
}

// until polls check until it holds, failing after a generous backstop: the
// verdict is the event check waits for, never the time it takes.
func until(t *testing.T, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// getJSON GETs url on the switch's client and decodes the answer.
func (h *Harness) getJSON(t testing.TB, url, user, pass string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := h.Client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if v != nil {
		json.NewDecoder(resp.Body).Decode(v)
	}
	return resp.StatusCode
}

// TestILPInvoiceThroughTheSwitch pays the development setup's retailer over
// the ILP invoice rail, exactly as a person would with `qrswitch serve`: the
// POS names its customer when it asks for the code, the customer's DFSP is
// notified through the directory (down at first: the notification waits
// on the store-and-forward queue and arrives once it is up), the DFSP pays
// the invoice on the switch's ledger and the held payment request answers
// 201 naming that DFSP; a DFSP that pays before the POS has sent its
// request is told to retry and succeeds once it has; a reversal refunds
// the DFSP's account.
func TestILPInvoiceThroughTheSwitch(t *testing.T) {
	testILPInvoiceThroughTheSwitch(t, devHarness)
}

// TestILPInvoiceThroughTheSwitchSharded is the same on a store spread over
// eight shards (see TestOpenPaymentsThroughTheSwitchSharded): the invoice
// lives with the retailer's payment and is committed with its approval;
// the ledger's accounts and transfers live in the home slot and move in
// commits of their own (the three steps of an execution, and the refund).
func TestILPInvoiceThroughTheSwitchSharded(t *testing.T) {
	testILPInvoiceThroughTheSwitch(t, shardedDevHarness(t))
}

func testILPInvoiceThroughTheSwitch(t *testing.T, devHarness func(testing.TB, ...string) (*Harness, *DevInfo)) {
	h, d := devHarness(t)
	sim := simulatorOf(t, d, ilpinvoice.Name)
	const retailer, pass = config.DevRetailerUsername, config.DevRetailerPassword
	const dfsp, dfspPass = config.DevILPDFSPUsername, config.DevILPDFSPPassword
	account := h.Base + "/ilpinvoice/" + config.DevILPPartnerID + "/ledger/accounts/" + config.DevILPDFSPID
	balance := func() string {
		var a struct{ Balance string }
		if st := h.getJSON(t, account, dfsp, dfspPass, &a); st != http.StatusOK {
			t.Fatalf("GET %s = %d", account, st)
		}
		return a.Balance
	}
	startBalance := balance()

	if r := h.Post(t, sim["faults"], "", "", map[string]string{"notifications": "down"}); r.status != http.StatusOK {
		t.Fatalf("setting the notifications fault = %d %s", r.status, r.body)
	}
	newCode := func(customer string) (string, string) { return invoiceCode(t, h, customer) }

	// The POS names its customer: the notification waits for the DFSP.
	tranID, invoiceURL := newCode("26547070")
	var inv struct{ Amount, Status, CurrencyCode string }
	if st := h.getJSON(t, invoiceURL, "", "", &inv); st != http.StatusOK || inv.Amount != "15.00" || inv.Status != "unpaid" || inv.CurrencyCode != "ZAR" {
		t.Fatalf("GET %s = %d %+v, want an unpaid invoice of 15.00 ZAR", invoiceURL, st, inv)
	}
	advices := func(state string) []qrswitch.Advice {
		var out struct{ Advices []qrswitch.Advice }
		if st := h.getJSON(t, h.Base+"/support/v1/saf/"+config.DevILPPartnerID+"/advices?state="+state, config.DevSupportUsername, config.DevSupportPassword, &out); st != http.StatusOK {
			t.Fatalf("support advices = %d", st)
		}
		return out.Advices
	}
	until(t, "the notification to be refused twice", func() bool {
		as := advices("PENDING")
		return len(as) == 1 && as[0].Attempts >= 2
	})
	if r := h.Post(t, sim["faults"], "", "", map[string]string{"notifications": ""}); r.status != http.StatusOK {
		t.Fatalf("clearing the fault = %d %s", r.status, r.body)
	}
	var notes struct {
		Invoices []struct {
			InvoiceURL       string
			SenderIdentifier string
			Count            int
		}
	}
	until(t, "the DFSP to hold the notification", func() bool {
		h.getJSON(t, sim["invoices"], "", "", &notes)
		return len(notes.Invoices) == 1
	})
	if n := notes.Invoices[0]; n.InvoiceURL != invoiceURL || n.SenderIdentifier != "26547070" || n.Count != 1 {
		t.Fatalf("the DFSP's notifications = %+v, want invoice %s once for 26547070", notes.Invoices, invoiceURL)
	}
	until(t, "the notification advice to be done", func() bool { return len(advices("DONE")) == 1 })

	// The POS waits; the DFSP pays the invoice it was told of.
	req := payRequest(config.DevRetailerInstitutionID, tranID, 1500)
	answer := h.payAsyncAs(req, retailer, pass)
	h.waitState(t, qrswitch.PaymentKey(config.DevRetailerID, req.ID), "AWAITING_SCAN")
	if r := h.Post(t, sim["pay"], "", "", map[string]string{"invoiceUrl": invoiceURL}); r.status != http.StatusOK || !strings.Contains(string(r.body), `"state":"executed"`) {
		t.Fatalf("the DFSP paying = %d %s, want an executed transfer", r.status, r.body)
	}
	a := <-answer
	var resp wire.PaymentResponse
	if a.status != http.StatusCreated || json.Unmarshal(a.body, &resp) != nil || resp.Partner == nil || resp.Partner.ID != config.DevILPDFSPID {
		t.Fatalf("pay = %d %s, want 201 naming DFSP %s", a.status, a.body, config.DevILPDFSPID)
	}
	if st := h.getJSON(t, invoiceURL, "", "", &inv); st != http.StatusOK || inv.Status != "paid" {
		t.Fatalf("GET %s after payment = %d %+v, want paid", invoiceURL, st, inv)
	}
	if r := h.Post(t, "/qr/v1/payments/confirmations", retailer, pass, confirmation(req.ID)); r.status != http.StatusAccepted {
		t.Fatalf("confirmation = %d %s", r.status, r.body)
	}
	h.waitState(t, qrswitch.PaymentKey(config.DevRetailerID, req.ID), "CONFIRMED")
	paidOnce := balance()
	if paidOnce == startBalance {
		t.Fatalf("the DFSP's balance is still %s after paying", paidOnce)
	}

	// A DFSP that pays before the POS asks: the ledger holds the prepared
	// transfer and tells it to retry the fulfillment; the POS's request
	// then takes the money.
	tranID, invoiceURL = newCode("")
	paid := make(chan Response, 1)
	go func() {
		resp, err := h.Client.Post(sim["pay"], "application/json", strings.NewReader(`{"invoiceUrl":"`+invoiceURL+`"}`))
		if err != nil {
			paid <- Response{status: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		paid <- Response{status: resp.StatusCode, body: b}
	}()
	until(t, "the early transfer to be prepared", func() bool { return balance() != paidOnce })
	req = payRequest(config.DevRetailerInstitutionID, tranID, 1500)
	if a := <-h.payAsyncAs(req, retailer, pass); a.status != http.StatusCreated {
		t.Fatalf("pay after an early transfer = %d %s, want 201", a.status, a.body)
	}
	if r := <-paid; r.status != http.StatusOK || !strings.Contains(string(r.body), `"state":"executed"`) {
		t.Fatalf("the early DFSP = %d %s, want its transfer executed once the POS asked", r.status, r.body)
	}

	// The retailer reverses it: the DFSP gets its money back, fee included.
	if r := h.Post(t, "/qr/v1/payments/reversals", retailer, pass, reversal(req.ID, wire.ReasonCancelled)); r.status != http.StatusAccepted {
		t.Fatalf("reversal = %d %s", r.status, r.body)
	}
	h.waitState(t, qrswitch.PaymentKey(config.DevRetailerID, req.ID), "REVERSED")
	if got := balance(); got != paidOnce {
		t.Fatalf("the DFSP's balance after the refund = %s, want %s (as before the reversed payment)", got, paidOnce)
	}
}

// railCode asks the development setup's demo retailer for a QR code of
// amount ZAR cents (with a customer when given) and returns its tranId and
// the template of the rail whose GUID is given.
func railCode(t testing.TB, h *Harness, amount int64, customer, guid string) (string, qr.MerchantAccount) {
	t.Helper()
	req := qrRequest(config.DevRetailerInstitutionID)
	req.Amounts = &wire.Amounts{RequestAmount: &wire.LedgerAmount{Amount: amount, Currency: "710"}}
	if customer != "" {
		req.Customer = json.RawMessage(`{"msisdn":"` + customer + `"}`)
	}
	r := h.Post(t, "/qr/v1/qrCodes", config.DevRetailerUsername, config.DevRetailerPassword, req)
	var resp wire.CreateQrCodeResponse
	if r.status != http.StatusCreated || json.Unmarshal(r.body, &resp) != nil {
		t.Fatalf("createQrCode = %d %s, want 201", r.status, r.body)
	}
	return resp.TranID, templateOf(t, resp.QrCode, guid)
}

// templateOf returns the template of the rail whose GUID is given in an
// EMVCo payload.
func templateOf(t testing.TB, payload, guid string) qr.MerchantAccount {
	t.Helper()
	p, err := qr.Decode(payload)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := p.Account(guid)
	if !ok {
		t.Fatalf("QR code %s has no %s template", payload, guid)
	}
	return a
}

// invoiceCode asks the development setup for a QR code of 15.00 ZAR, with
// the customer named when given, and returns its tranId and the invoice
// URL its ILP invoice template carries.
func invoiceCode(t *testing.T, h *Harness, customer string) (tranID, invoiceURL string) {
	t.Helper()
	tranID, a := railCode(t, h, 1500, customer, ilpinvoice.GUID)
	invoiceURL, _ = a.Field("01")
	if !strings.HasPrefix(invoiceURL, h.Base+"/ilpinvoice/"+config.DevILPPartnerID+"/invoice/") {
		t.Fatalf("invoice URL %q, want one on the switch", invoiceURL)
	}
	return tranID, invoiceURL
}

// TestILPInvoicePaidTooLate: the POS's wait ends with NO_SCAN_RECEIVED
// when nothing was paid in time; a DFSP that pays the invoice afterwards
// has its fulfillment refused, its transfer rejected and its funds back,
// and the invoice is cancelled.
func TestILPInvoicePaidTooLate(t *testing.T) {
	h, d := devHarness(t, "QRSWITCH_SCAN_WAIT=1s")
	sim := simulatorOf(t, d, ilpinvoice.Name)
	const retailer, pass = config.DevRetailerUsername, config.DevRetailerPassword
	account := h.Base + "/ilpinvoice/" + config.DevILPPartnerID + "/ledger/accounts/" + config.DevILPDFSPID
	var before, after struct{ Balance string }
	h.getJSON(t, account, config.DevILPDFSPUsername, config.DevILPDFSPPassword, &before)

	tranID, invoiceURL := invoiceCode(t, h, "")
	a := <-h.payAsyncAs(payRequest(config.DevRetailerInstitutionID, tranID, 1500), retailer, pass)
	if a.status != http.StatusBadRequest || a.detail(t).ErrorType != wire.NoScanReceived {
		t.Fatalf("pay with nothing paid = %d %s, want 400 NO_SCAN_RECEIVED", a.status, a.body)
	}
	r := h.Post(t, sim["pay"], "", "", map[string]string{"invoiceUrl": invoiceURL})
	var tr struct {
		State  string
		Fulfil struct {
			Status int
			Body   struct{ ID string }
		}
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &tr) != nil || tr.State != "rejected" ||
		tr.Fulfil.Status != http.StatusUnprocessableEntity || tr.Fulfil.Body.ID != "InvoiceNotPayableError" {
		t.Fatalf("paying after the wait = %d %s, want the fulfillment refused (422 InvoiceNotPayableError) and the transfer rejected", r.status, r.body)
	}
	h.getJSON(t, account, config.DevILPDFSPUsername, config.DevILPDFSPPassword, &after)
	if after.Balance != before.Balance {
		t.Fatalf("the DFSP's balance = %s, want %s back", after.Balance, before.Balance)
	}
	var inv struct{ Status string }
	if h.getJSON(t, invoiceURL, "", "", &inv); inv.Status != "cancelled" {
		t.Fatalf("the invoice = %+v, want cancelled", inv)
	}
}
