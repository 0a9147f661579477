package conform

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
)

// FuzzScanNotification sends any body to the kit's notifyScan while a code
// waits: the kit answers 202, 400 or 401, never panics, and accepts only
// what both the switch's checks and the interface's schema accept.
func FuzzScanNotification(f *testing.F) {
	const tran = "f82d7f64feea4f2ab24da94aaf5c2941"
	f.Add([]byte(`{"id":"4f1c3a6e-2b1d-4c8e-9a7f-0e5d6c7b8a91","time":"2026-03-02T09:00:00.000Z","partner":{"id":"wallet-a","name":"Wallet A"},"tranId":"` + tran + `"}`))
	f.Add([]byte(`{"id":"4f1c3a6e-2b1d-4c8e-9a7f-0e5d6c7b8a91","time":"2026-03-02T09:00:00Z","partner":{"id":"wallet-a","name":"W"},"tranId":"` + tran + `","partnerPaymentToken":"tok","amounts":{"requestAmount":{"amount":5,"currency":"710"}}}`))
	f.Add([]byte(`{"id":`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"id":"x","tranId":5}`))
	f.Add([]byte(``))
	doc := load(f)
	d := newDesk(doc, Options{ScanURL: "https://kit.test", PartnerID: "wallet-a", Now: time.Now})
	f.Fuzz(func(t *testing.T, body []byte) {
		got := d.expect(tran)
		defer d.done()
		req := httptest.NewRequest(http.MethodPost, "/qr/v1/scans", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("wallet-a", "secret")
		w := httptest.NewRecorder()
		d.ServeHTTP(w, req)
		s := <-got
		switch w.Code {
		case http.StatusAccepted:
			var n wire.ScanNotification
			if err := wire.Decode(body, &n); err != nil || n.Validate() != nil || n.TranID != tran {
				t.Fatalf("accepted %q, which the switch refuses", body)
			}
			if err := doc.CheckValue("ScanNotification", body); err != nil {
				t.Fatalf("accepted %q, which the interface refuses: %v", body, err)
			}
			if len(s.problems) != 0 {
				t.Fatalf("accepted %q with problems %v", body, s.problems)
			}
		case http.StatusBadRequest:
			if len(s.problems) == 0 {
				t.Fatalf("refused %q without saying why", body)
			}
			if err := doc.CheckValue("ErrorDetail", w.Body.Bytes()); err != nil {
				t.Fatalf("the kit's own refusal is not an ErrorDetail: %v", err)
			}
		default:
			t.Fatalf("answered %d to %q, want 202 or 400", w.Code, body)
		}
	})
}

// FuzzPartnerAnswer reads any answer as a partner's approval, advice
// answer and ErrorDetail: the checks never panic, and an approval they
// pass is one the switch's electrum rail takes too.
func FuzzPartnerAnswer(f *testing.F) {
	k := &kit{o: Options{Amount: 1000, Currency: "710", Now: time.Now}, doc: load(f)}
	req := k.paymentRequest(nil, nil)
	approval := mustJSON(&wire.PaymentResponse{
		Transaction: req.Transaction, Partner: &wire.Institution{ID: "wallet-a", Name: "W"}, Amounts: req.Amounts, TranID: req.TranID,
	})
	f.Add(approval)
	f.Add([]byte(`{"id":"0123456789abcdef0123","errorType":"FORMAT_ERROR","errorMessage":"m","detailMessage":{"message":"x"}}`))
	f.Add([]byte(`{"id":"x","errorType":"GENERAL_ERROR","errorMessage":"m","detailMessage":"a string"}`))
	f.Add(mustJSON(k.confirmation(req)))
	f.Add([]byte(`{"id":"` + req.ID + `","amounts":{"requestAmount":{"amount":-1}}}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, answer []byte) {
		c := &Case{}
		x := &Exchange{Status: 201, answer: answer}
		if k.approval(c, req, x) {
			var resp wire.PaymentResponse
			if err := wire.Decode(answer, &resp); err != nil || resp.Validate() != nil || resp.ID != req.ID {
				t.Fatalf("approval %q passed the kit, which the rail refuses", answer)
			}
		}
		k.adviceBody(&Case{}, opConfirm, &Exchange{Status: 202, answer: answer})
		k.errorDetail(&Case{}, &Exchange{Status: 400, answer: answer}, true)
	})
}
