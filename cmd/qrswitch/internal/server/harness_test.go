package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners/electrum/electrumsim"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// --- messages --------------------------------------------------------------

func now() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000Z") }

func originator(institution string) *wire.Originator {
	return &wire.Originator{
		Institution: wire.Institution{ID: institution, Name: "Shop"},
		TerminalID:  "T0000001",
		Merchant: wire.Merchant{
			MerchantType: "5411", MerchantID: "M00000000000001",
			MerchantName: wire.MerchantName{Name: "Corner Shop", City: "Cape Town", Region: "WC", Country: "ZA"},
		},
	}
}

func qrRequest(institution string) *wire.CreateQrCodeRequest {
	return &wire.CreateQrCodeRequest{
		ID: wire.NewID(), Time: now(), Originator: originator(institution),
		Client: &wire.Institution{ID: "pos-vendor", Name: "POS Vendor"},
	}
}

func payRequest(institution, tranID string, amount int64) *wire.PaymentRequest {
	return &wire.PaymentRequest{
		Transaction: wire.Transaction{
			ID: wire.NewID(), Time: now(), Originator: originator(institution),
			Client: &wire.Institution{ID: "pos-vendor", Name: "POS Vendor"},
			Rrn:    fmt.Sprintf("%012d", time.Now().UnixNano()%1e12),
		},
		Amounts: &wire.Amounts{RequestAmount: &wire.LedgerAmount{Amount: amount, Currency: "710"}},
		TranID:  tranID,
	}
}

func confirmation(requestID string) *wire.PaymentConfirmation {
	return &wire.PaymentConfirmation{BasicAdvice: wire.BasicAdvice{ID: wire.NewID(), RequestID: requestID, Time: now()}}
}

func reversal(requestID, reason string) *wire.PaymentReversal {
	return &wire.PaymentReversal{BasicAdvice: wire.BasicAdvice{ID: wire.NewID(), RequestID: requestID, Time: now()}, ReversalReason: reason}
}

// --- flows -------------------------------------------------------------------

// createQR issues a QR code for shop-1 and returns its tranId and payload.
func (h *Harness) createQR(t testing.TB) (tranID, payload string) {
	t.Helper()
	r := h.Post(t, "/qr/v1/qrCodes", ShopUser, ShopPass, qrRequest("1234"))
	if r.status != 201 {
		t.Fatalf("createQrCode = %d %s, want 201", r.status, r.body)
	}
	var resp wire.CreateQrCodeResponse
	if err := json.Unmarshal(r.body, &resp); err != nil {
		t.Fatal(err)
	}
	return resp.TranID, resp.QrCode
}

// payAsync sends a payment request of shop-1 and delivers its answer on the channel.
func (h *Harness) payAsync(req *wire.PaymentRequest) <-chan Response {
	return h.payAsyncAs(req, ShopUser, ShopPass)
}

// payAsyncAs sends a payment request as a retailer and delivers its answer
// on the channel.
func (h *Harness) payAsyncAs(req *wire.PaymentRequest, user, pass string) <-chan Response {
	ch := make(chan Response, 1)
	go func() {
		enc, _ := json.Marshal(req)
		hreq, _ := http.NewRequest(http.MethodPost, h.Base+"/qr/v1/payments", bytes.NewReader(enc))
		hreq.Header.Set("Content-Type", "application/json")
		hreq.SetBasicAuth(user, pass)
		resp, err := h.client(h.T).Do(hreq)
		if err != nil {
			ch <- Response{status: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		ch <- Response{status: resp.StatusCode, header: resp.Header, body: b}
	}()
	return ch
}

// waitState waits until the payment with the key is in one of the states.
func (h *Harness) waitState(t testing.TB, key string, want ...string) *qrswitch.Payment {
	t.Helper()
	deadline := time.Now().Add(settle)
	var last string
	for time.Now().Before(deadline) {
		if p := h.payment(t, key); p != nil {
			last = string(p.State)
			for _, w := range want {
				if last == w {
					return p
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("payment %s is %q after %v, want one of %v", key, last, settle, want)
	return nil
}

// payment reads a payment from the store, or through the support API when
// the switch runs in another process; nil when there is none yet.
func (h *Harness) payment(t testing.TB, key string) *qrswitch.Payment {
	if h.Srv != nil {
		p, err := h.Srv.Store().Payment(context.Background(), key)
		if err != nil {
			return nil
		}
		return p
	}
	_, id, _ := strings.Cut(key, "/")
	r := h.Do(t, http.MethodGet, "/support/v1/transactions/"+id, SupUser, SupPass, nil)
	var out struct{ Results []qrswitch.Story }
	if r.status != 200 || json.Unmarshal(r.body, &out) != nil || len(out.Results) == 0 {
		return nil
	}
	return out.Results[0].Payment
}

// scan has the simulator's customer app scan payload.
func (h *Harness) scan(t testing.TB, payload string) *electrumsim.ScanResult {
	t.Helper()
	res, err := h.Sim.Scan(context.Background(), electrumsim.ScanRequest{QrCode: payload, PartnerPaymentToken: "tok-secret-123456"})
	if err != nil {
		t.Fatalf("sim scan: %v", err)
	}
	if res.Err != nil {
		t.Fatalf("sim scan: %v", res.Err)
	}
	checkScan(t, h, res)
	return res
}

// approvedPayment runs a payment to approval and returns its request.
func (h *Harness) approvedPayment(t testing.TB, amount int64) *wire.PaymentRequest {
	t.Helper()
	tranID, payload := h.createQR(t)
	req := payRequest("1234", tranID, amount)
	answer := h.payAsync(req)
	h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "AWAITING_SCAN")
	if res := h.scan(t, payload); res.Status != 202 {
		t.Fatalf("scan = %d %s, want 202", res.Status, res.Body)
	}
	if r := <-answer; r.status != 201 {
		t.Fatalf("pay = %d %s, want 201", r.status, r.body)
	}
	return req
}

// scanAsync has the customer app scan payload in the background; the
// channel gets nil when the scan could not be sent.
func (h *Harness) scanAsync(payload string) <-chan *electrumsim.ScanResult {
	ch := make(chan *electrumsim.ScanResult, 1)
	go func() {
		res, err := h.Sim.Scan(context.Background(), electrumsim.ScanRequest{QrCode: payload})
		if err != nil || res.Err != nil {
			res = nil
		} else if h.T != nil {
			checkScan(h.T, h, res)
		}
		ch <- res
	}()
	return ch
}

// ledgerAdvice returns the simulator's ledger entry of an advice id.
func (h *Harness) ledgerAdvice(id string) (electrumsim.AdviceEntry, bool) {
	for _, a := range h.Sim.Ledger().Advices {
		if a.ID == id {
			return a, true
		}
	}
	return electrumsim.AdviceEntry{}, false
}

func (h *Harness) ledgerPayment(id string) (electrumsim.PaymentEntry, bool) {
	for _, p := range h.Sim.Ledger().Payments {
		if p.ID == id {
			return p, true
		}
	}
	return electrumsim.PaymentEntry{}, false
}

// noScanWait gives the switch a short scan wait, for tests of a payment
// request whose scan never comes (they wait it out; the others get a long
// one so that their scans arrive in time on any machine).
func noScanWait(c *config.Config, _ *Options) {
	c.ScanWait = config.Duration(2 * time.Second)
}

// settle is how long a test waits for an event it expects (a state, a
// delivery, a gauge) before it fails: a bound for a switch that is broken,
// never a measure of speed, so it is long enough that a machine loaded by
// other work only makes the wait longer, not the verdict different.
const settle = 2 * time.Minute

// eventually polls cond until it holds, or fails the test after settle.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(settle)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v", what, settle)
}

func (h *Harness) story(t testing.TB, key string) qrswitch.Story {
	t.Helper()
	r := h.Do(t, http.MethodGet, "/support/v1/transactions/"+key, SupUser, SupPass, nil)
	if r.status != 200 {
		t.Fatalf("support lookup %s = %d %s", key, r.status, r.body)
	}
	var out struct{ Results []qrswitch.Story }
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Results) != 1 {
		t.Fatalf("support lookup %s gave %d stories, want 1", key, len(out.Results))
	}
	return out.Results[0]
}
