package server

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// TestSecretsStayOut runs payments that carry a partner payment token and
// come back with a card number, plus failed logins, through a switch that
// logs every request, then reads every log line, every trace and record
// the support API shows, and every trace and record in the store: no
// password, token or card number may appear in clear.
func TestSecretsStayOut(t *testing.T) {
	t.Parallel()
	fh := newFaultHarness(t, 0, func(o *Options) { o.AccessLog = true })
	const (
		token      = "tok-SECRET-7f3a9c2e51d8b604"
		card       = "5500991234567890"
		cardMasked = "550099******7890"
		wrongPass  = "wr0ng-S3cret-guess"
	)
	secrets := map[string]string{
		"retailer password":              ShopPass,
		"partner scan password":          ScanPass,
		"support password":               SupPass,
		"the switch's password upstream": "switch-secret",
		"a wrong password":               wrongPass,
		"partner payment token":          token,
		"card number":                    card,
	}
	withCard := func(b []byte) []byte {
		var resp map[string]any
		if json.Unmarshal(b, &resp) != nil {
			return b
		}
		// A tender as the interface models it (the switch passes tenders
		// on unchecked, so an invalid one would reach the POS as sent).
		resp["tenders"] = []map[string]any{{"tenderType": "CREDIT_CARD", "cardNumber": card, "accountType": "CREDIT",
			"amount": map[string]any{"amount": 100, "currency": "710"}}}
		out, _ := json.Marshal(resp)
		return out
	}
	scanWithToken := func(t *testing.T, tranID string) Response {
		n := &wire.ScanNotification{ID: wire.NewID(), Time: now(), Partner: &wire.Institution{ID: "wallet-a", Name: "Wallet A"},
			TranID: tranID, PartnerPaymentToken: token}
		return fh.Post(t, "/qr/v1/scans", ScanUser, ScanPass, n)
	}
	pay := func(t *testing.T, amount int64, s *script) (*wire.PaymentRequest, Response) {
		tranID, _ := fh.createQR(t)
		req := payRequest("1234", tranID, amount)
		if s != nil {
			fh.partner.set(opPay, req.ID, *s)
		}
		answer := fh.payAsync(req)
		fh.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "AWAITING_SCAN")
		if r := scanWithToken(t, tranID); r.status != 202 {
			t.Fatalf("scan = %d %s", r.status, r.body)
		}
		return req, <-answer
	}

	var requests []string
	// Approved by card, confirmed.
	req, r := pay(t, 1201, &script{forward: true, rewrite: withCard})
	if r.status != 201 {
		t.Fatalf("pay = %d %s", r.status, r.body)
	}
	var resp wire.PaymentResponse
	json.Unmarshal(r.body, &resp)
	if len(resp.Tenders) != 1 || resp.Tenders[0].CardNumber != cardMasked || resp.PartnerPaymentToken != "" {
		t.Errorf("the retailer was given tenders %+v and token %q; want the card masked as %s and no token", resp.Tenders, resp.PartnerPaymentToken, cardMasked)
	}
	if pe, _ := fh.ledgerPayment(req.ID); !strings.HasSuffix(pe.PartnerPaymentToken, token[len(token)-4:]) {
		t.Errorf("the partner did not get the scan's token (ledger %q)", pe.PartnerPaymentToken)
	}
	fh.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, confirmation(req.ID))
	fh.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "CONFIRMED")
	requests = append(requests, req.ID)
	// Declined with the partner's ErrorDetail.
	req, r = pay(t, 1252, nil)
	if r.status != 400 {
		t.Fatalf("declined pay = %d", r.status)
	}
	requests = append(requests, req.ID)
	// Unknown (504), reversed by the switch and by the POS.
	req, r = pay(t, 1264, nil)
	if r.status != 504 {
		t.Fatalf("unknown pay = %d", r.status)
	}
	fh.Post(t, "/qr/v1/payments/reversals", ShopUser, ShopPass, reversal(req.ID, wire.ReasonTimeout))
	fh.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "REVERSED")
	requests = append(requests, req.ID)
	// A scan with its token that no payment request takes (held, then
	// declined).
	lonely, _ := fh.createQR(t)
	if r := scanWithToken(t, lonely); r.status != 400 {
		t.Fatalf("lonely scan = %d", r.status)
	}
	// Failed logins, as each kind of principal.
	for _, u := range []string{ShopUser, ScanUser, SupUser, "nobody"} {
		fh.Post(t, "/qr/v1/qrCodes", u, wrongPass, qrRequest("1234"))
		fh.Do(t, "GET", "/support/v1/transactions/"+lonely, u, wrongPass, nil)
	}
	time.Sleep(100 * time.Millisecond) // let the last log lines land

	places := map[string]string{"switch log": fh.Logs.String()}
	for _, id := range append(requests, lonely) {
		sr := fh.Do(t, "GET", "/support/v1/transactions/"+id, SupUser, SupPass, nil)
		if sr.status != 200 {
			t.Fatalf("support lookup %s = %d", id, sr.status)
		}
		places["support API story of "+id] = string(sr.body)
	}
	st := fh.Srv.Store()
	for _, id := range requests {
		key := qrswitch.PaymentKey("shop-1", id)
		p, err := st.Payment(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		trace, _ := st.Trace(t.Context(), key)
		advices, _ := st.PaymentAdvices(t.Context(), key)
		qr, _ := st.QR(t.Context(), p.TranID)
		qrTrace, _ := st.Trace(t.Context(), "qr/"+p.TranID)
		b, _ := json.Marshal([]any{p, trace, advices, qr, qrTrace})
		places["stored records of "+id] = string(b)
	}
	qr, _ := st.QR(t.Context(), lonely)
	b, _ := json.Marshal(qr)
	places["stored QR code "+lonely] = string(b)

	if !strings.Contains(places["switch log"], `"message":"request"`) || !strings.Contains(places["switch log"], "authentication failed") {
		t.Fatal("the access log is empty: nothing was checked")
	}
	for where, text := range places {
		for what, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("%s shows the %s in clear", where, what)
			}
		}
	}
	// What may show is there: masked values, so support can still match.
	all := strings.Join(func() []string {
		var v []string
		for _, s := range places {
			v = append(v, s)
		}
		return v
	}(), "\n")
	if !strings.Contains(all, cardMasked) || !strings.Contains(all, "****"+token[len(token)-4:]) {
		t.Errorf("masked card number %s or masked token ****%s not found anywhere: is the check looking in the right places?", cardMasked, token[len(token)-4:])
	}
}
