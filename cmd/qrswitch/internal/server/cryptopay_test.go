package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners/cryptopay"
	"github.com/qrswitch/qrswitch/retailers/checkout"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// chainTransfer sends amount tokens from the simulated customer to an
// address on the development chain, and returns the transaction hash.
func chainTransfer(t *testing.T, h *Harness, sim map[string]string, to, amount string) string {
	t.Helper()
	r := h.Post(t, sim["transfer"], "", "", map[string]string{"to": to, "amount": amount})
	var receipt struct{ TxHash string }
	if r.status != http.StatusOK || json.Unmarshal(r.body, &receipt) != nil || receipt.TxHash == "" {
		t.Fatalf("the customer's transfer = %d %s", r.status, r.body)
	}
	return receipt.TxHash
}

// checkoutStatus reads a checkout's public status.json.
func checkoutStatus(t *testing.T, base, id string) *checkout.Status {
	t.Helper()
	resp, err := http.Get(base + "/" + id + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st checkout.Status
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &st) != nil {
		t.Fatalf("status.json = %d %s", resp.StatusCode, b)
	}
	return &st
}

// TestCryptopayCheckoutThroughTheSwitch is the development setup's web
// shop, started as a 0xbtcpay shop starts a payment and paid in two
// transfers on the simulated chain: partially paid, then paid with the
// completing transaction's hash, the signed postback delivered, the
// payment confirmed by the switch itself, and support sees the address.
func TestCryptopayCheckoutThroughTheSwitch(t *testing.T) {
	h, d := devHarness(t)
	sim := simulatorOf(t, d, cryptopay.Name)
	rcv := newPostbackReceiver(t, 0)
	base := "http://" + h.Srv.CheckoutAddr()
	resp, err := http.Post(base+"/", "application/json", strings.NewReader(
		`{"jsonrpc":"2.0","id":7,"method":"start_payment","params":{"amount":"12.5","data":{"order_id":"9"},"postback_url":"`+rcv.srv.URL+`/paid"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var started struct {
		Result struct{ ID, Amount, Address string }
	}
	json.NewDecoder(resp.Body).Decode(&started)
	resp.Body.Close()
	id, addr := started.Result.ID, started.Result.Address
	if !strings.HasPrefix(addr, "0x") || len(addr) != 42 || started.Result.Amount != "12.5" {
		t.Fatalf("start_payment = %+v, want a fresh address", started.Result)
	}
	st := checkoutStatus(t, base, id)
	offer := st.Offers[config.DevChainPartnerID]
	if st.State != "new" || st.Address != addr || offer["address"] != addr ||
		offer["uri"] != fmt.Sprintf("ethereum:%s@%d/transfer?address=%s&uint256=12500000", config.DevChainToken, config.DevChainID, addr) {
		t.Fatalf("status of a new checkout = %+v", st)
	}

	chainTransfer(t, h, sim, addr, "5")
	until(t, "the partial payment to show", func() bool { return checkoutStatus(t, base, id).State == "partially_paid" })
	if st = checkoutStatus(t, base, id); st.SeenAt == nil || st.PaidAt != nil || st.TxHash != nil || st.Received != "5.0" {
		t.Fatalf("status partly paid = %+v", st)
	}
	tx := chainTransfer(t, h, sim, addr, "7.5")
	until(t, "the checkout paid", func() bool { return checkoutStatus(t, base, id).State == "paid" })
	if st = checkoutStatus(t, base, id); st.PaidAt == nil || st.TxHash == nil || *st.TxHash != tx || st.Received != "12.5" {
		t.Fatalf("status paid = %+v, want paid by %s", st, tx)
	}
	select {
	case <-rcv.done:
	case <-time.After(45 * time.Second):
		t.Fatal("postback not delivered")
	}
	got := rcv.received()
	var body struct {
		ID     string  `json:"id"`
		TxHash *string `json:"tx_hash"`
	}
	if err := checkout.Verify([]byte(config.DevCheckoutPostbackSecret), got[0].body, got[0].signature, time.Now(), 5*time.Minute); err != nil ||
		json.Unmarshal(got[0].body, &body) != nil || body.ID != id || body.TxHash == nil || *body.TxHash != tx {
		t.Fatalf("postback %s (signature %v), want id %s and tx %s, signed", got[0].body, err, id, tx)
	}
	p := h.waitState(t, qrswitch.PaymentKey(config.DevShopID, id), "CONFIRMED")
	if p.PartnerID() != config.DevChainPartnerID || p.Paid == nil || p.Paid.Reference != tx {
		t.Fatalf("payment %+v, want paid on %s by %s", p, config.DevChainPartnerID, tx)
	}

	var recs struct {
		Records []struct {
			Key  string
			View map[string]any
		}
	}
	url := h.Base + "/support/v1/rails/" + config.DevChainPartnerID + "/records/payment"
	if code := h.getJSON(t, url, config.DevSupportUsername, config.DevSupportPassword, &recs); code != http.StatusOK || len(recs.Records) != 1 {
		t.Fatalf("GET %s = %d %+v, want the checkout's address", url, code, recs)
	}
	if v := recs.Records[0].View; v["address"] != addr || v["state"] != "paid" || v["received"] != "12.5 QTT" {
		t.Fatalf("support's view of the address = %v", v)
	}
}

// TestCryptopayPOSThroughTheSwitch: a till's code (in rand: the
// development token is priced at one per rand) carries the rail's
// template; the POS's payment request waits until the transfer is
// confirmed, then is approved naming the chain, for the rand amount.
func TestCryptopayPOSThroughTheSwitch(t *testing.T) {
	h, d := devHarness(t)
	sim := simulatorOf(t, d, cryptopay.Name)
	const retailer, pass = config.DevRetailerUsername, config.DevRetailerPassword
	amount := &wire.LedgerAmount{Amount: 250, Currency: "710"}
	req := qrRequest(config.DevRetailerInstitutionID)
	req.Amounts = &wire.Amounts{RequestAmount: amount}
	r := h.Post(t, "/qr/v1/qrCodes", retailer, pass, req)
	var code wire.CreateQrCodeResponse
	if r.status != http.StatusCreated || json.Unmarshal(r.body, &code) != nil {
		t.Fatalf("createQrCode in the token = %d %s", r.status, r.body)
	}
	tmpl := templateOf(t, code.QrCode, cryptopay.GUID)
	addr, _ := tmpl.Field("01")
	chainID, _ := tmpl.Field("02")
	due, _ := tmpl.Field("03")
	if chainID != fmt.Sprint(config.DevChainID) || due != "2500000" {
		t.Fatalf("template %+v, want chain %d and 2500000 base units", tmpl, config.DevChainID)
	}

	pay := payRequest(config.DevRetailerInstitutionID, code.TranID, 0)
	pay.Amounts.RequestAmount = amount
	answer := h.payAsyncAs(pay, retailer, pass)
	h.waitState(t, qrswitch.PaymentKey(config.DevRetailerID, pay.ID), "AWAITING_SCAN")
	tx := chainTransfer(t, h, sim, addr, "2.5")
	a := <-answer
	var resp wire.PaymentResponse
	if a.status != http.StatusCreated || json.Unmarshal(a.body, &resp) != nil || resp.Partner == nil || resp.Partner.ID != config.DevChainPartnerID {
		t.Fatalf("pay = %d %s, want 201 naming %s", a.status, a.body, config.DevChainPartnerID)
	}
	p := h.waitState(t, qrswitch.PaymentKey(config.DevRetailerID, pay.ID), "APPROVED")
	if p.Paid == nil || p.Paid.Reference != tx || p.Paid.Amount.Amount != 250 || p.Paid.Amount.Currency != "710" {
		t.Fatalf("payment paid %+v, want 250 rand cents by %s", p.Paid, tx)
	}
}
