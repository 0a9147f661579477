package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners/ipp"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// ippCode asks the development setup for a QR code of 15.00 ZAR and
// returns its tranId and the brand and relay its IPP template carries.
func ippCode(t *testing.T, h *Harness) (tranID, brand, relay string) {
	t.Helper()
	tranID, a := railCode(t, h, 1500, "", ipp.GUID)
	brand, _ = a.Field("01")
	relay, _ = a.Field("02")
	if !strings.HasSuffix(brand, "/ipp/"+config.DevIPPPartnerID+"/b/"+config.DevRetailerID) || relay == "" {
		t.Fatalf("IPP template brand %q relay %q, want the retailer's brand on the switch and a relay", brand, relay)
	}
	return tranID, brand, relay
}

// simPay has the development setup's counterpart accountant offer amount
// for a code, and returns its reply.
func simPay(t *testing.T, h *Harness, sim map[string]string, brand, relay, amount, memo string) (code int, verified bool) {
	t.Helper()
	r := h.Post(t, sim["pay"], "", "", map[string]string{"to": brand, "relay": relay, "amount": amount, "memo": memo})
	var res struct {
		Reply            struct{ Code int }
		DecisionVerified bool
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &res) != nil {
		t.Fatalf("the counterpart paying = %d %s", r.status, r.body)
	}
	return res.Reply.Code, res.DecisionVerified
}

// TestIPPThroughTheSwitch pays the development setup's retailer over IPP
// as a person would with `qrswitch serve`: the code carries the retailer's
// brand and a relay; the counterpart accountant named in var/dev.json
// discovers the brand's manifest, offers the amount for the relay; the
// switch verifies the offer at the payer's accountant, approves the held
// payment (201 naming the payer's brand) and answers 620, which the payer
// verifies in turn. A reversal becomes a reversal offer the payer approves,
// and the auditors' report holds both records.
func TestIPPThroughTheSwitch(t *testing.T) {
	testIPPThroughTheSwitch(t, devHarness)
}

// TestIPPThroughTheSwitchSharded is the same on a store spread over eight
// shards (see TestOpenPaymentsThroughTheSwitchSharded): the relay, the
// payment records, the reversal offer and the switch's own records of its
// decisions live with the retailer's payment.
func TestIPPThroughTheSwitchSharded(t *testing.T) {
	testIPPThroughTheSwitch(t, shardedDevHarness(t))
}

func testIPPThroughTheSwitch(t *testing.T, devHarness func(testing.TB, ...string) (*Harness, *DevInfo)) {
	h, d := devHarness(t)
	sim := simulatorOf(t, d, ipp.Name)
	const retailer, pass = config.DevRetailerUsername, config.DevRetailerPassword
	tranID, brand, relay := ippCode(t, h)
	req := payRequest(config.DevRetailerInstitutionID, tranID, 1500)
	answer := h.payAsyncAs(req, retailer, pass)
	h.waitState(t, qrswitch.PaymentKey(config.DevRetailerID, req.ID), "AWAITING_SCAN")
	if code, verified := simPay(t, h, sim, brand, relay, "15.00", "groceries"); code != 620 || !verified {
		t.Fatalf("the offer = %d (decision verified %v), want 620 verified", code, verified)
	}
	a := <-answer
	var resp wire.PaymentResponse
	if a.status != http.StatusCreated || json.Unmarshal(a.body, &resp) != nil || resp.Partner == nil || resp.Partner.ID != sim["brand"] {
		t.Fatalf("pay = %d %s, want 201 naming the payer's brand %s", a.status, a.body, sim["brand"])
	}
	if code, _ := simPay(t, h, sim, brand, relay, "15.00", "again"); code != 663 {
		t.Fatalf("a second offer for the one-time relay = %d, want 663", code)
	}

	if r := h.Post(t, "/qr/v1/payments/reversals", retailer, pass, reversal(req.ID, wire.ReasonCancelled)); r.status != http.StatusAccepted {
		t.Fatalf("reversal = %d %s", r.status, r.body)
	}
	h.waitState(t, qrswitch.PaymentKey(config.DevRetailerID, req.ID), "REVERSED")
	var received []struct {
		Body  string
		Reply struct{ Code int }
	}
	h.getJSON(t, sim["received"], "", "", &received)
	if len(received) != 1 || !strings.Contains(received[0].Body, "amount=-15.00") || !strings.Contains(received[0].Body, "ref_amount=15.00") || received[0].Reply.Code != 620 {
		t.Fatalf("the payer received %+v, want one reversal offer of -15.00 it approved", received)
	}
	var rep struct{ Records []ipp.ReportEntry }
	hreq, _ := http.NewRequest(http.MethodGet, sim["switchReports"], nil)
	hreq.Header.Set("Authorization", "Bearer "+config.DevIPPAuditorToken)
	hresp, err := h.Client.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	defer hresp.Body.Close()
	if json.NewDecoder(hresp.Body).Decode(&rep); hresp.StatusCode != http.StatusOK || len(rep.Records) != 2 {
		t.Fatalf("reports = %d, %d records; want the payment and its reversal", hresp.StatusCode, len(rep.Records))
	}
}

// TestIPPPaidTooLate: the POS's wait ends with NO_SCAN_RECEIVED when no
// offer came in time; an offer afterwards is voided as unexpected (663).
func TestIPPPaidTooLate(t *testing.T) {
	h, d := devHarness(t, "QRSWITCH_SCAN_WAIT=1s")
	sim := simulatorOf(t, d, ipp.Name)
	tranID, brand, relay := ippCode(t, h)
	a := <-h.payAsyncAs(payRequest(config.DevRetailerInstitutionID, tranID, 1500), config.DevRetailerUsername, config.DevRetailerPassword)
	if a.status != http.StatusBadRequest || a.detail(t).ErrorType != wire.NoScanReceived {
		t.Fatalf("pay with nothing paid = %d %s, want 400 NO_SCAN_RECEIVED", a.status, a.body)
	}
	if code, verified := simPay(t, h, sim, brand, relay, "15.00", ""); code != 663 || !verified {
		t.Fatalf("an offer after the wait = %d (verified %v), want a verified 663", code, verified)
	}
}
