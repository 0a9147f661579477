package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners/electrum/electrumsim"
	"github.com/qrswitch/qrswitch/qr"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// These tests run every flow and failure scenario of the Electrum QR
// interface through a whole switch over TLS, against the partner simulator.

func TestHappyPathConfirmed(t *testing.T) {
	h := NewHarness(t)
	tranID, payload := h.createQR(t)
	req := payRequest("1234", tranID, 10000)
	answer := h.payAsync(req)
	key := qrswitch.PaymentKey("shop-1", req.ID)
	h.waitState(t, key, "AWAITING_SCAN")
	if res := h.scan(t, payload); res.Status != http.StatusAccepted {
		t.Fatalf("scan = %d %s, want 202", res.Status, res.Body)
	}
	r := <-answer
	if r.status != http.StatusCreated {
		t.Fatalf("pay = %d %s, want 201", r.status, r.body)
	}
	var resp wire.PaymentResponse
	if err := json.Unmarshal(r.body, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.ID != req.ID || resp.TranID != tranID {
		t.Errorf("response id/tranId = %s/%s, want %s/%s", resp.ID, resp.TranID, req.ID, tranID)
	}
	if resp.Partner == nil || resp.Partner.ID != "wallet-a" {
		t.Errorf("response partner = %+v, want wallet-a", resp.Partner)
	}
	if resp.PartnerPaymentToken != "" {
		t.Errorf("the retailer was given the partner payment token %q", resp.PartnerPaymentToken)
	}
	if resp.Amounts == nil || resp.Amounts.ApprovedAmount == nil || resp.Amounts.ApprovedAmount.Amount != 10000 {
		t.Errorf("approved amount = %+v, want 10000", resp.Amounts)
	}
	pe, ok := h.ledgerPayment(req.ID)
	if !ok || pe.State != electrumsim.StateReserved && pe.State != electrumsim.StateCaptured {
		t.Fatalf("partner ledger payment = %+v, want reserved", pe)
	}
	if !strings.HasSuffix(pe.PartnerPaymentToken, "3456") {
		t.Errorf("partner saw token %q, want the scan's token forwarded", pe.PartnerPaymentToken)
	}

	conf := confirmation(req.ID)
	if r := h.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, conf); r.status != http.StatusAccepted {
		t.Fatalf("confirm = %d %s, want 202", r.status, r.body)
	}
	h.waitState(t, key, "CONFIRMED")
	a, ok := h.ledgerAdvice(conf.ID)
	if !ok || a.Effect != electrumsim.StateCaptured || a.Deliveries != 1 {
		t.Fatalf("partner ledger advice = %+v, want captured once", a)
	}

	st := h.story(t, tranID)
	if st.Payment == nil || st.Payment.State != "CONFIRMED" {
		t.Fatalf("support story state = %+v", st.Payment)
	}
	ops := map[string]int{}
	for _, e := range st.Trace {
		ops[e.Operation+"/"+string(e.Direction)+"/"+e.Kind]++
		if strings.Contains(e.Body, "tok-secret-123456") {
			t.Errorf("trace entry %s %s shows the payment token in clear: %s", e.Operation, e.Kind, e.Body)
		}
	}
	for _, want := range []string{
		"createQrCode/in/request", "pay/in/request", "notifyScan/in/request", "notifyScan/out/answer",
		"pay/out/request", "pay/in/answer", "pay/out/answer", "confirmPayment/in/request",
		"confirmPayment/out/request", "confirmPayment/in/answer",
	} {
		if ops[want] == 0 {
			t.Errorf("trace has no %s entry; has %v", want, ops)
		}
	}
	if st.Payment.Scan == nil || st.Payment.Scan.PaymentToken == "tok-secret-123456" {
		t.Errorf("support story shows the payment token in clear: %+v", st.Payment.Scan)
	}
	for _, id := range []string{req.ID, conf.ID, req.Rrn} {
		if got := h.story(t, id); got.Payment == nil || got.Payment.RequestID != req.ID {
			t.Errorf("support lookup by %s found %+v, want the payment", id, got.Payment)
		}
	}
}

// TestPartnerAnswers drives one payment per behaviour of the simulator and
// checks the retailer's answer, the payment's state, and whether a timeout
// reversal was sent.
func TestPartnerAnswers(t *testing.T) {
	h := NewHarness(t)
	tests := []struct {
		name      string
		amount    int64
		status    int
		errorType string
		state     string
		reversal  bool // a timeout reversal must reach the partner
	}{
		{"approve", 1001, 201, "", "APPROVED", false},
		{"declined by partner", 1051, 400, wire.DeclinedByPartner, "DECLINED", false},
		{"insufficient funds", 1052, 400, wire.InsufficientFunds, "DECLINED", false},
		{"404 on payment is failed", 1055, 400, wire.UnableToLocateRecord, "DECLINED", false},
		{"400 without ErrorDetail", 1056, 400, wire.DeclinedByPartner, "DECLINED", false},
		{"500 is unknown", 1060, 504, wire.UpstreamUnavailable, "REVERSED", true},
		{"501 is failed", 1061, 400, wire.FunctionNotSupported, "DECLINED", false},
		{"503 is failed", 1063, 503, wire.UpstreamUnavailable, "DECLINED", false},
		{"504 is unknown", 1064, 504, wire.UpstreamUnavailable, "REVERSED", true},
		{"timeout with a late answer", 1070, 504, wire.UpstreamUnavailable, "REVERSED", true},
		{"connection dropped after sending", 1071, 504, wire.UpstreamUnavailable, "REVERSED", true},
		{"slow but in time", 1072, 201, "", "APPROVED", false},
		{"malformed approval is unknown", 1073, 504, wire.UpstreamUnavailable, "REVERSED", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tranID, payload := h.createQR(t)
			req := payRequest("1234", tranID, tt.amount)
			answer := h.payAsync(req)
			key := qrswitch.PaymentKey("shop-1", req.ID)
			h.waitState(t, key, "AWAITING_SCAN")
			if res := h.scan(t, payload); res.Status != 202 {
				t.Fatalf("scan = %d %s, want 202", res.Status, res.Body)
			}
			r := <-answer
			if r.status != tt.status {
				t.Fatalf("pay(amount %d) = %d %s, want %d", tt.amount, r.status, r.body, tt.status)
			}
			if tt.errorType != "" {
				if d := r.detail(t); d.ErrorType != tt.errorType || d.TranID != tranID || d.OriginalID != req.ID {
					t.Errorf("ErrorDetail = %+v, want errorType %s, tranId %s, originalId %s", d, tt.errorType, tranID, req.ID)
				}
			}
			p := h.waitState(t, key, tt.state)
			var reversals []electrumsim.AdviceEntry
			for _, a := range h.Sim.Ledger().Advices {
				if a.RequestID == req.ID && a.Kind == electrumsim.KindReversal {
					reversals = append(reversals, a)
				}
			}
			if tt.reversal {
				if len(reversals) != 1 || reversals[0].ReversalReason != wire.ReasonTimeout {
					t.Fatalf("partner received reversals %+v, want one TIMEOUT reversal", reversals)
				}
				if p.AdviceKey == "" {
					t.Error("payment has no advice key for its timeout reversal")
				}
			} else if len(reversals) != 0 {
				t.Fatalf("partner received reversals %+v, want none", reversals)
			}
		})
	}
	// The late answer (behaviour 70) arrives after the partner's 1 s
	// timeout, within the late window: the trace says it was ignored.
	var late *qrswitch.Payment
	for _, pe := range h.Sim.Ledger().Payments {
		if pe.Amount == 1070 {
			late = h.waitState(t, qrswitch.PaymentKey("shop-1", pe.ID), "REVERSED")
		}
	}
	if late == nil {
		t.Fatal("the late payment is not in the partner's ledger")
	}
	eventually(t, "late answer traced", func() bool {
		for _, e := range h.story(t, late.RequestID).Trace {
			if strings.Contains(e.Note, "late response ignored") && e.Code == "HTTP 201" {
				return true
			}
		}
		return false
	})
}

func TestNoScanAndLateScan(t *testing.T) {
	h := NewHarness(t, noScanWait)
	tranID, payload := h.createQR(t)
	req := payRequest("1234", tranID, 2000)
	r := <-h.payAsync(req)
	if r.status != 400 {
		t.Fatalf("pay without scan = %d %s, want 400", r.status, r.body)
	}
	if d := r.detail(t); d.ErrorType != wire.NoScanReceived {
		t.Fatalf("errorType = %s, want NO_SCAN_RECEIVED", d.ErrorType)
	}
	h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "NO_SCAN")
	if _, sent := h.ledgerPayment(req.ID); sent {
		t.Fatal("a payment without a scan reached the partner")
	}
	res := h.scan(t, payload)
	if res.Status != 400 {
		t.Fatalf("late scan = %d %s, want 400", res.Status, res.Body)
	}
	var d wire.ErrorDetail
	json.Unmarshal(res.Body, &d)
	if d.ErrorType != wire.UnableToLocateRecord {
		t.Fatalf("late scan errorType = %s, want UNABLE_TO_LOCATE_RECORD", d.ErrorType)
	}
	// A reversal of the failed payment completes locally.
	if r := h.Post(t, "/qr/v1/payments/reversals", ShopUser, ShopPass, reversal(req.ID, wire.ReasonCancelled)); r.status != 202 {
		t.Fatalf("reversal of NO_SCAN payment = %d %s, want 202", r.status, r.body)
	}
	if n := len(h.Sim.Ledger().Advices); n != 0 {
		t.Fatalf("partner received %d advices, want none", n)
	}
}

func TestScanDeclines(t *testing.T) {
	h := NewHarness(t)
	post := func(user, pass string, n *wire.ScanNotification) Response {
		return h.Post(t, "/qr/v1/scans", user, pass, n)
	}
	scanMsg := func(tranID, partner string) *wire.ScanNotification {
		return &wire.ScanNotification{ID: wire.NewID(), Time: now(), Partner: &wire.Institution{ID: partner, Name: "W"}, TranID: tranID}
	}
	t.Run("unknown tranId", func(t *testing.T) {
		r := post(ScanUser, ScanPass, scanMsg("00000000000000000000000000000000", "wallet-a"))
		if r.status != 400 || r.detail(t).ErrorType != wire.InvalidTranID {
			t.Fatalf("scan of unknown QR = %d %s, want 400 INVALID_TRAN_ID", r.status, r.body)
		}
	})
	t.Run("partner id of another partner", func(t *testing.T) {
		tranID, _ := h.createQR(t)
		r := post(ScanUser, ScanPass, scanMsg(tranID, "wallet-b"))
		if r.status != 400 || r.detail(t).ErrorType != wire.FormatError || !strings.Contains(string(r.body), "partner.id") {
			t.Fatalf("scan as another partner = %d %s, want 400 FORMAT_ERROR naming partner.id", r.status, r.body)
		}
	})
	t.Run("bad credentials", func(t *testing.T) {
		tranID, _ := h.createQR(t)
		r := post(ScanUser, "wrong", scanMsg(tranID, "wallet-a"))
		if r.status != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
			t.Fatalf("scan with a wrong password = %d (WWW-Authenticate %q), want 401 with a Basic challenge", r.status, r.header.Get("WWW-Authenticate"))
		}
		r = post(ShopUser, ShopPass, scanMsg(tranID, "wallet-a"))
		if r.status != 401 {
			t.Fatalf("scan with retailer credentials = %d, want 401", r.status)
		}
	})
	t.Run("scanned by another partner", func(t *testing.T) {
		tranID, payload := h.createQR(t)
		req := payRequest("1234", tranID, 3000)
		answer := h.payAsync(req)
		h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "AWAITING_SCAN")
		if res := h.scan(t, payload); res.Status != 202 {
			t.Fatalf("first scan = %d %s", res.Status, res.Body)
		}
		r := post(Scan2User, Scan2Pass, scanMsg(tranID, "wallet-b"))
		if r.status != 400 || r.detail(t).ErrorType != wire.InvalidTranID {
			t.Fatalf("second partner's scan = %d %s, want 400 INVALID_TRAN_ID", r.status, r.body)
		}
		if r := <-answer; r.status != 201 {
			t.Fatalf("pay = %d %s", r.status, r.body)
		}
	})
	t.Run("repeated scan notification", func(t *testing.T) {
		tranID, _ := h.createQR(t)
		req := payRequest("1234", tranID, 3100)
		answer := h.payAsync(req)
		h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "AWAITING_SCAN")
		n := scanMsg(tranID, "wallet-a")
		for i := 0; i < 2; i++ {
			if r := post(ScanUser, ScanPass, n); r.status != 202 {
				t.Fatalf("scan delivery %d = %d %s, want 202", i+1, r.status, r.body)
			}
		}
		<-answer
	})
	t.Run("malformed", func(t *testing.T) {
		for _, body := range []string{`{`, `[]`, `{"id":"x"}`, ``} {
			r := h.Post(t, "/qr/v1/scans", ScanUser, ScanPass, body)
			if r.status != 400 || r.detail(t).ErrorType != wire.FormatError {
				t.Errorf("scan %q = %d %s, want 400 FORMAT_ERROR", body, r.status, r.body)
			}
		}
	})
}

func TestEarlyScan(t *testing.T) {
	h := NewHarness(t)
	t.Run("linked when the request follows in time", func(t *testing.T) {
		tranID, payload := h.createQR(t)
		scanned := h.scanAsync(payload)
		eventually(t, "scan held", func() bool {
			q, err := h.Srv.Store().QR(t.Context(), tranID)
			return err == nil && q.HeldScan != nil
		})
		req := payRequest("1234", tranID, 4000)
		if r := <-h.payAsync(req); r.status != 201 {
			t.Fatalf("pay after an early scan = %d %s, want 201", r.status, r.body)
		}
		if res := <-scanned; res == nil || res.Status != 202 {
			t.Fatalf("early scan = %+v, want 202", res)
		}
		// The scan's 202 is traced once, in the commit that linked it,
		// right after the link.
		trace, err := h.Srv.Store().Trace(t.Context(), qrswitch.PaymentKey("shop-1", req.ID))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		var at []time.Time
		for _, e := range trace {
			if e.Operation == "scanLinked" || e.Operation == "notifyScan" {
				got = append(got, fmt.Sprintf("%s %s %d", e.Operation, e.Kind, e.Status))
				at = append(at, e.At)
			}
		}
		if want := []string{"scanLinked event 0", "notifyScan answer 202"}; !slices.Equal(got, want) {
			t.Fatalf("the payment's trace of its scan = %q, want %q", got, want)
		}
		if !at[0].Equal(at[1]) {
			t.Errorf("the scan's 202 traced at %s, the link at %s: want one commit", at[1], at[0])
		}
	})
	t.Run("declined when no request comes", func(t *testing.T) {
		_, payload := h.createQR(t)
		start := time.Now()
		res := h.scan(t, payload)
		if res.Status != 400 {
			t.Fatalf("early scan without request = %d %s, want 400", res.Status, res.Body)
		}
		if took := time.Since(start); took < 900*time.Millisecond {
			t.Errorf("scan declined after %s, want it held for early_scan_grace (1s)", took)
		}
	})
}

func TestVoidAndTimeoutReversal(t *testing.T) {
	h := NewHarness(t)
	t.Run("void after approval", func(t *testing.T) {
		req := h.approvedPayment(t, 5000)
		rev := reversal(req.ID, wire.ReasonCancelled)
		if r := h.Post(t, "/qr/v1/payments/reversals", ShopUser, ShopPass, rev); r.status != 202 {
			t.Fatalf("reverse = %d %s", r.status, r.body)
		}
		h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "REVERSED")
		if a, _ := h.ledgerAdvice(rev.ID); a.Effect != electrumsim.StateReleased {
			t.Fatalf("partner ledger = %+v, want released", a)
		}
		// Now a confirmation is refused, and traced.
		r := h.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, confirmation(req.ID))
		if r.status != 400 || !strings.Contains(r.detail(t).ErrorMessage, "reversed") {
			t.Fatalf("confirm after reversal = %d %s, want 400 saying reversed", r.status, r.body)
		}
	})
	t.Run("retailer reversal while the payment is with the partner", func(t *testing.T) {
		tranID, payload := h.createQR(t)
		req := payRequest("1234", tranID, 5072) // slow approval
		answer := h.payAsync(req)
		key := qrswitch.PaymentKey("shop-1", req.ID)
		h.waitState(t, key, "AWAITING_SCAN")
		h.scanAsync(payload)
		h.waitState(t, key, "FORWARDED")
		rev := reversal(req.ID, wire.ReasonTimeout)
		if r := h.Post(t, "/qr/v1/payments/reversals", ShopUser, ShopPass, rev); r.status != 202 {
			t.Fatalf("reverse while forwarded = %d %s", r.status, r.body)
		}
		<-answer
		h.waitState(t, key, "REVERSED")
		a, _ := h.ledgerAdvice(rev.ID)
		if a.Effect != electrumsim.StateReleased || a.Deliveries != 1 {
			t.Fatalf("partner ledger = %+v, want the retailer's reversal released once", a)
		}
	})
	t.Run("timeout reversal and retailer reversal send one reversal", func(t *testing.T) {
		tranID, payload := h.createQR(t)
		req := payRequest("1234", tranID, 5064) // 504: unknown
		answer := h.payAsync(req)
		key := qrswitch.PaymentKey("shop-1", req.ID)
		h.waitState(t, key, "AWAITING_SCAN")
		h.scan(t, payload)
		if r := <-answer; r.status != 504 {
			t.Fatalf("pay = %d, want 504", r.status)
		}
		// The POS, told 504, reverses too.
		if r := h.Post(t, "/qr/v1/payments/reversals", ShopUser, ShopPass, reversal(req.ID, wire.ReasonTimeout)); r.status != 202 {
			t.Fatalf("retailer reversal = %d %s", r.status, r.body)
		}
		h.waitState(t, key, "REVERSED")
		time.Sleep(200 * time.Millisecond)
		n := 0
		for _, a := range h.Sim.Ledger().Advices {
			if a.RequestID == req.ID {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("partner received %d reversals for one payment, want 1", n)
		}
	})
	t.Run("reversal before the scan completes locally", func(t *testing.T) {
		tranID, _ := h.createQR(t)
		req := payRequest("1234", tranID, 5100)
		answer := h.payAsync(req)
		key := qrswitch.PaymentKey("shop-1", req.ID)
		h.waitState(t, key, "AWAITING_SCAN")
		if r := h.Post(t, "/qr/v1/payments/reversals", ShopUser, ShopPass, reversal(req.ID, wire.ReasonCancelled)); r.status != 202 {
			t.Fatalf("reverse = %d %s", r.status, r.body)
		}
		if r := <-answer; r.status != 400 {
			t.Fatalf("held pay after its reversal = %d %s, want 400", r.status, r.body)
		}
		h.waitState(t, key, "REVERSED")
		if _, sent := h.ledgerPayment(req.ID); sent {
			t.Fatal("payment reached the partner")
		}
	})
}

func TestIdsAndAdviceRules(t *testing.T) {
	h := NewHarness(t)
	t.Run("duplicate payment id", func(t *testing.T) {
		req := h.approvedPayment(t, 6000)
		tranID, _ := h.createQR(t)
		again := *req
		again.TranID = tranID
		r := h.Post(t, "/qr/v1/payments", ShopUser, ShopPass, &again)
		if r.status != 400 || r.detail(t).ErrorType != wire.DuplicateRecord {
			t.Fatalf("pay with a used id = %d %s, want 400 DUPLICATE_RECORD", r.status, r.body)
		}
	})
	t.Run("duplicate QR request id", func(t *testing.T) {
		q := qrRequest("1234")
		h.Post(t, "/qr/v1/qrCodes", ShopUser, ShopPass, q)
		r := h.Post(t, "/qr/v1/qrCodes", ShopUser, ShopPass, q)
		if r.status != 400 || r.detail(t).ErrorType != wire.DuplicateRecord {
			t.Fatalf("createQrCode with a used id = %d %s, want 400 DUPLICATE_RECORD", r.status, r.body)
		}
	})
	t.Run("repeated advice gets the same answer", func(t *testing.T) {
		req := h.approvedPayment(t, 6100)
		conf := confirmation(req.ID)
		first := h.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, conf)
		second := h.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, conf)
		if first.status != 202 || second.status != 202 || string(first.body) != string(second.body) {
			t.Fatalf("repeat = %d %s then %d %s, want the same 202", first.status, first.body, second.status, second.body)
		}
		h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "CONFIRMED")
		if a, _ := h.ledgerAdvice(conf.ID); a.Deliveries != 1 {
			t.Fatalf("partner got the confirmation %d times, want once", a.Deliveries)
		}
		// A second confirmation with another id is accepted, not resent.
		other := confirmation(req.ID)
		if r := h.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, other); r.status != 202 {
			t.Fatalf("second confirmation = %d %s", r.status, r.body)
		}
		if _, sent := h.ledgerAdvice(other.ID); sent {
			t.Fatal("a second confirmation of one payment reached the partner")
		}
		// Reversal after confirmation is refused.
		r := h.Post(t, "/qr/v1/payments/reversals", ShopUser, ShopPass, reversal(req.ID, wire.ReasonCancelled))
		if r.status != 400 || !strings.Contains(r.detail(t).ErrorMessage, "confirmed") {
			t.Fatalf("reversal after confirmation = %d %s, want 400 saying confirmed", r.status, r.body)
		}
		// An advice id reused for another payment is a duplicate.
		req2 := h.approvedPayment(t, 6101)
		reuse := confirmation(req2.ID)
		reuse.ID = conf.ID
		if r := h.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, reuse); r.status != 400 || r.detail(t).ErrorType != wire.DuplicateRecord {
			t.Fatalf("advice id reused = %d %s, want 400 DUPLICATE_RECORD", r.status, r.body)
		}
	})
	t.Run("reversal of an unknown request", func(t *testing.T) {
		id := wire.NewID()
		r := h.Post(t, "/qr/v1/payments/reversals", ShopUser, ShopPass, reversal(id, wire.ReasonTimeout))
		if r.status != 404 || r.detail(t).ErrorType != wire.UnableToLocateRecord {
			t.Fatalf("reversal of unknown id = %d %s, want 404 UNABLE_TO_LOCATE_RECORD", r.status, r.body)
		}
		// The request arriving late is refused: its sale was voided.
		tranID, _ := h.createQR(t)
		late := payRequest("1234", tranID, 6200)
		late.ID = id
		if r := h.Post(t, "/qr/v1/payments", ShopUser, ShopPass, late); r.status != 400 || r.detail(t).ErrorType != wire.DuplicateRecord {
			t.Fatalf("request after its reversal = %d %s, want 400 DUPLICATE_RECORD", r.status, r.body)
		}
	})
	t.Run("confirmation of an unknown request", func(t *testing.T) {
		r := h.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, confirmation(wire.NewID()))
		if r.status != 404 || r.detail(t).ErrorType != wire.UnableToLocateRecord {
			t.Fatalf("confirm unknown = %d %s, want 404", r.status, r.body)
		}
	})
	t.Run("another retailer's payment", func(t *testing.T) {
		req := h.approvedPayment(t, 6300)
		r := h.Post(t, "/qr/v1/payments/confirmations", Shop2User, Shop2Pass, confirmation(req.ID))
		if r.status != 404 {
			t.Fatalf("shop-2 confirming shop-1's payment = %d %s, want 404", r.status, r.body)
		}
		r = h.Post(t, "/qr/v1/payments/reversals", Shop2User, Shop2Pass, reversal(req.ID, wire.ReasonCancelled))
		if r.status != 404 {
			t.Fatalf("shop-2 reversing shop-1's payment = %d %s, want 404 (nothing of shop-2's to reverse)", r.status, r.body)
		}
		if st := h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "APPROVED"); st.State != "APPROVED" {
			t.Fatalf("shop-1's payment is %s", st.State)
		}
		tranID, _ := h.createQR(t)
		r = h.Post(t, "/qr/v1/payments", Shop2User, Shop2Pass, payRequest("5678", tranID, 100))
		if r.status != 400 || r.detail(t).ErrorType != wire.InvalidTranID {
			t.Fatalf("shop-2 paying shop-1's QR = %d %s, want 400 INVALID_TRAN_ID", r.status, r.body)
		}
	})
}

func TestRequestValidation(t *testing.T) {
	h := NewHarness(t)
	tranID, _ := h.createQR(t)
	mut := func(f func(*wire.PaymentRequest)) *wire.PaymentRequest {
		r := payRequest("1234", tranID, 100)
		f(r)
		return r
	}
	tests := []struct {
		name  string
		body  any
		field string
	}{
		{"malformed JSON", `{"id":`, ""},
		{"wrong type", `{"id": 5}`, "id"},
		{"not a UUID", mut(func(r *wire.PaymentRequest) { r.ID = "123" }), "id"},
		{"terminal id length", mut(func(r *wire.PaymentRequest) { r.Originator.TerminalID = "T1" }), "originator.terminalId"},
		{"merchant id length", mut(func(r *wire.PaymentRequest) { r.Originator.Merchant.MerchantID = "M1" }), "originator.merchant.merchantId"},
		{"currency", mut(func(r *wire.PaymentRequest) { r.Amounts.RequestAmount.Currency = "ZAR" }), "amounts.requestAmount.currency"},
		{"missing amounts", mut(func(r *wire.PaymentRequest) { r.Amounts = nil }), "amounts"},
		{"missing tranId", mut(func(r *wire.PaymentRequest) { r.TranID = "" }), "tranId"},
		{"time", mut(func(r *wire.PaymentRequest) { r.Time = "yesterday" }), "time"},
		{"oversized body", `{"id":"` + strings.Repeat("x", 70<<10) + `"}`, ""},
		{"institution of another retailer", mut(func(r *wire.PaymentRequest) { r.Originator.Institution.ID = "9999" }), "originator.institution.id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.Post(t, "/qr/v1/payments", ShopUser, ShopPass, tt.body)
			if r.status != 400 {
				t.Fatalf("status = %d %s, want 400", r.status, r.body)
			}
			d := r.detail(t)
			if d.ErrorType != wire.FormatError {
				t.Fatalf("errorType = %s, want FORMAT_ERROR", d.ErrorType)
			}
			if tt.field != "" && !strings.Contains(d.ErrorMessage+" "+toString(d.DetailMessage), tt.field) {
				t.Fatalf("ErrorDetail %+v does not name the field %s", d, tt.field)
			}
		})
	}
	// Nothing was left behind: the QR code is still free.
	q, err := h.Srv.Store().QR(t.Context(), tranID)
	if err != nil || q.PaymentKey != "" {
		t.Fatalf("QR code after rejected requests: %+v, %v; want no payment", q, err)
	}
	if r := h.Post(t, "/qr/v1/payments", "", "", payRequest("1234", tranID, 100)); r.status != 401 {
		t.Fatalf("pay without credentials = %d, want 401", r.status)
	}
	if r := h.Do(t, http.MethodGet, "/qr/v1/nothing", ShopUser, ShopPass, nil); r.status != 404 || r.detail(t).ErrorType != wire.FunctionNotSupported {
		t.Fatalf("unknown route = %d %s, want 404 ErrorDetail", r.status, r.body)
	}
}

func toString(d wire.Details) string { return d.Message() }

func TestStoreAndForwardUntilFinal(t *testing.T) {
	h := NewHarness(t)
	t.Run("partner answers 500 three times, then takes it", func(t *testing.T) {
		req := h.approvedPayment(t, 7050) // sim: first 3 advice deliveries answer 500
		conf := confirmation(req.ID)
		if r := h.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, conf); r.status != 202 {
			t.Fatalf("confirm = %d", r.status)
		}
		h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "CONFIRMED")
		a, _ := h.ledgerAdvice(conf.ID)
		if a.Deliveries != 4 || a.Effect != electrumsim.StateCaptured {
			t.Fatalf("partner ledger = %+v, want 4 deliveries and one capture", a)
		}
		adv, err := h.Srv.Store().Advice(t.Context(), qrswitch.AdviceKey("shop-1", conf.ID))
		if err != nil || adv.Attempts != 4 || adv.State != qrswitch.AdviceDone {
			t.Fatalf("advice = %+v, %v; want DONE after 4 attempts", adv, err)
		}
	})
	t.Run("partner down, then up", func(t *testing.T) {
		req := h.approvedPayment(t, 7001)
		if err := h.Sim.SetFault(electrumsim.Fault{Operation: electrumsim.OpAdvice, Fault: electrumsim.Fault500}); err != nil {
			t.Fatal(err)
		}
		conf := confirmation(req.ID)
		h.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, conf)
		key := qrswitch.AdviceKey("shop-1", conf.ID)
		eventually(t, "several failed attempts", func() bool {
			a, err := h.Srv.Store().Advice(t.Context(), key)
			return err == nil && a.Attempts >= 3
		})
		h.Sim.ClearFaults()
		h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "CONFIRMED")
		if a, _ := h.ledgerAdvice(conf.ID); !a.EffectApplied || a.Effect != electrumsim.StateCaptured {
			t.Fatalf("partner ledger = %+v, want captured", a)
		}
	})
	t.Run("final failure ends the advice", func(t *testing.T) {
		req := h.approvedPayment(t, 7074) // sim: every advice of this payment answers 503
		conf := confirmation(req.ID)
		h.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, conf)
		h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "CONFIRM_FAILED")
		a, _ := h.Srv.Store().Advice(t.Context(), qrswitch.AdviceKey("shop-1", conf.ID))
		if a.State != qrswitch.AdviceDone || a.Outcome.String() != "failed" || a.Attempts != 1 {
			t.Fatalf("advice = %+v, want DONE failed after one attempt", a)
		}
	})
}

func TestDeadLetter(t *testing.T) {
	h := NewHarness(t, func(c *config.Config, _ *Options) { c.SAF.GiveUpAfter = config.Duration(600 * time.Millisecond) })
	req := h.approvedPayment(t, 8001)
	h.Sim.SetFault(electrumsim.Fault{Operation: electrumsim.OpAdvice, Fault: electrumsim.Fault500})
	conf := confirmation(req.ID)
	h.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, conf)
	key := qrswitch.AdviceKey("shop-1", conf.ID)
	eventually(t, "dead letter", func() bool {
		a, err := h.Srv.Store().Advice(t.Context(), key)
		return err == nil && a.State == qrswitch.AdviceDead
	})
	dead, err := h.Srv.Store().ListAdvices(t.Context(), qrswitch.AdviceQuery{State: qrswitch.AdviceDead})
	if err != nil || len(dead) != 1 || dead[0].ID != conf.ID {
		t.Fatalf("dead letters = %+v, %v; want the confirmation", dead, err)
	}
	st := h.story(t, req.ID)
	found := false
	for _, e := range st.Trace {
		found = found || e.Operation == "deadLetter"
	}
	if !found || st.Payment.State != "CONFIRMING" {
		t.Fatalf("story: state %s, dead letter traced %v; want CONFIRMING and a deadLetter event", st.Payment.State, found)
	}
}

func TestQRCodes(t *testing.T) {
	h := NewHarness(t)
	issue := func(t *testing.T, mutate func(*wire.CreateQrCodeRequest)) (Response, wire.CreateQrCodeResponse) {
		t.Helper()
		req := qrRequest("1234")
		mutate(req)
		r := h.Post(t, "/qr/v1/qrCodes", ShopUser, ShopPass, req)
		var resp wire.CreateQrCodeResponse
		if r.status == 201 {
			if err := json.Unmarshal(r.body, &resp); err != nil {
				t.Fatal(err)
			}
			if resp.ID != req.ID || resp.Originator == nil {
				t.Fatalf("createQrCode did not echo the request: %s", r.body)
			}
		}
		return r, resp
	}
	t.Run("full EMVCo code with a fixed value", func(t *testing.T) {
		r, resp := issue(t, func(q *wire.CreateQrCodeRequest) {
			q.QrProperties = &wire.QrProperties{Value: &wire.LedgerAmount{Amount: 12345, Currency: "710"}}
		})
		if r.status != 201 {
			t.Fatalf("createQrCode = %d %s", r.status, r.body)
		}
		doc, err := qr.Decode(resp.QrCode)
		if err != nil {
			t.Fatalf("issued payload does not decode: %v", err)
		}
		p, err := doc.Payload()
		if err != nil || p.Scheme != qr.SchemeEMVCo || p.Amount != 12345 || p.Currency != "710" || p.MCC != "5411" || p.City != "Cape Town" || p.TerminalLabel != "T0000001" {
			t.Fatalf("payload = %+v, %v", p, err)
		}
		if id, err := qr.TranID(resp.QrCode); err != nil || id != resp.TranID {
			t.Fatalf("TranID(payload) = %s, %v; want %s", id, err, resp.TranID)
		}
		// A payment must match the code's value.
		pay := payRequest("1234", resp.TranID, 12000)
		if r := h.Post(t, "/qr/v1/payments", ShopUser, ShopPass, pay); r.status != 400 || r.detail(t).ErrorType != wire.InvalidAmount {
			t.Fatalf("pay of another amount = %d %s, want 400 INVALID_AMOUNT", r.status, r.body)
		}
	})
	t.Run("Electrum minimal", func(t *testing.T) {
		r, resp := issue(t, func(q *wire.CreateQrCodeRequest) {
			q.QrProperties = &wire.QrProperties{Scheme: wire.SchemeElectrumMinimal}
		})
		want := "00020126500010za.co.elec0132" + resp.TranID
		if r.status != 201 || resp.QrCode != want {
			t.Fatalf("minimal code = %d %q, want %q", r.status, resp.QrCode, want)
		}
	})
	t.Run("invalid requests", func(t *testing.T) {
		for _, tt := range []struct {
			name, field string
			mutate      func(*wire.CreateQrCodeRequest)
		}{
			{"expiry in the past", "qrProperties.expiryDate", func(q *wire.CreateQrCodeRequest) {
				q.QrProperties = &wire.QrProperties{ExpiryDate: "2020-01-01T00:00:00Z"}
			}},
			{"unknown scheme", "qrProperties.scheme", func(q *wire.CreateQrCodeRequest) { q.QrProperties = &wire.QrProperties{Scheme: "BARCODE"} }},
			{"currency without minor unit", "qrProperties.value.currency", func(q *wire.CreateQrCodeRequest) {
				q.QrProperties = &wire.QrProperties{Value: &wire.LedgerAmount{Amount: 100, Currency: "999"}}
			}},
			{"missing originator", "originator", func(q *wire.CreateQrCodeRequest) { q.Originator = nil }},
		} {
			t.Run(tt.name, func(t *testing.T) {
				r, _ := issue(t, tt.mutate)
				if r.status != 400 {
					t.Fatalf("createQrCode = %d %s, want 400", r.status, r.body)
				}
				if d := r.detail(t); d.ErrorType != wire.FormatError || !strings.Contains(d.ErrorMessage+toString(d.DetailMessage), tt.field) {
					t.Fatalf("ErrorDetail %+v does not name %s", d, tt.field)
				}
			})
		}
	})
	t.Run("image", func(t *testing.T) {
		tranID, payload := h.createQR(t)
		r := h.Do(t, http.MethodGet, "/qr/v1/qrCodes/"+tranID+"/image.png?size=300", ShopUser, ShopPass, nil)
		if r.status != 200 || r.header.Get("Content-Type") != "image/png" {
			t.Fatalf("image = %d %s", r.status, r.header.Get("Content-Type"))
		}
		img, err := png.Decode(bytes.NewReader(r.body))
		if err != nil || img.Bounds().Dx() != 300 || img.Bounds().Dy() != 300 {
			t.Fatalf("image is not a 300×300 PNG: %v", err)
		}
		want, _ := qr.PNG(payload, 300)
		if !bytes.Equal(r.body, want) {
			t.Fatal("image is not the rendering of the issued payload")
		}
		for _, tt := range []struct {
			path, user, pass string
			status           int
		}{
			{"/qr/v1/qrCodes/" + tranID + "/image.png?size=10", ShopUser, ShopPass, 400},
			{"/qr/v1/qrCodes/" + tranID + "/image.png?size=big", ShopUser, ShopPass, 400},
			{"/qr/v1/qrCodes/" + tranID + "/image.png", Shop2User, Shop2Pass, 404},
			{"/qr/v1/qrCodes/nope/image.png", ShopUser, ShopPass, 404},
		} {
			if r := h.Do(t, http.MethodGet, tt.path, tt.user, tt.pass, nil); r.status != tt.status {
				t.Errorf("GET %s as %s = %d %s, want %d", tt.path, tt.user, r.status, r.body, tt.status)
			} else {
				r.detail(t)
			}
		}
	})
	t.Run("expired code", func(t *testing.T) {
		r, resp := issue(t, func(q *wire.CreateQrCodeRequest) {
			q.QrProperties = &wire.QrProperties{ExpiryDate: time.Now().Add(300 * time.Millisecond).UTC().Format(time.RFC3339Nano)}
		})
		if r.status != 201 {
			t.Fatalf("createQrCode = %d %s", r.status, r.body)
		}
		time.Sleep(400 * time.Millisecond)
		if r := h.Post(t, "/qr/v1/payments", ShopUser, ShopPass, payRequest("1234", resp.TranID, 100)); r.status != 400 || r.detail(t).ErrorType != wire.InvalidTranID {
			t.Fatalf("pay of an expired code = %d %s, want 400 INVALID_TRAN_ID", r.status, r.body)
		}
		if res := h.scan(t, resp.QrCode); res.Status != 400 {
			t.Fatalf("scan of an expired code = %d %s, want 400", res.Status, res.Body)
		}
		if r := h.Do(t, http.MethodGet, "/qr/v1/qrCodes/"+resp.TranID+"/image.png", ShopUser, ShopPass, nil); r.status != 404 {
			t.Fatalf("image of an expired code = %d, want 404", r.status)
		}
	})
}

func TestGracefulShutdownFinishesHeldPayments(t *testing.T) {
	h := NewHarness(t)
	tranID, payload := h.createQR(t)
	req := payRequest("1234", tranID, 1200)
	answer := h.payAsync(req)
	h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "AWAITING_SCAN")
	h.cancel() // SIGTERM
	stopped := h.done
	h.cancel = nil
	admin := "http://" + h.Srv.AdminAddr()
	eventually(t, "readyz reports the drain", func() bool {
		resp, err := http.Get(admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 503
	})
	if r := h.Post(t, "/qr/v1/qrCodes", ShopUser, ShopPass, qrRequest("1234")); r.status != 503 || r.detail(t).ErrorType != wire.UpstreamUnavailable {
		t.Fatalf("createQrCode while draining = %d %s, want 503", r.status, r.body)
	}
	// The held request still gets its scan, and its answer.
	if res := h.scan(t, payload); res.Status != 202 {
		t.Fatalf("scan while draining = %d %s, want 202", res.Status, res.Body)
	}
	if r := <-answer; r.status != 201 {
		t.Fatalf("held pay while draining = %d %s, want 201", r.status, r.body)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(settle):
		t.Fatal("the server did not stop once nothing was held")
	}
	if _, err := http.Get(admin + "/healthz"); err == nil {
		t.Fatal("admin listener still answers after the stop")
	}
}

// TestBacklogDrainsWhenPartnerReturns: advices that backed off while the
// partner was down are all sent as soon as one gets a final answer, instead
// of each waiting out its own backoff.
func TestBacklogDrainsWhenPartnerReturns(t *testing.T) {
	h := NewHarness(t, func(c *config.Config, _ *Options) {
		// Long backoffs: after one failure an advice waits 60 s ± 50 %,
		// so an advice done before its NextAt was sent by the drain, even
		// on a machine slow enough to take seconds per request.
		c.SAF.InitialInterval = config.Duration(time.Minute)
		c.SAF.MaxInterval = config.Duration(5 * time.Minute)
	})
	var reqs []*wire.PaymentRequest
	for i := range 8 {
		reqs = append(reqs, h.approvedPayment(t, int64(8100+i)))
	}
	if err := h.Sim.SetFault(electrumsim.Fault{Operation: electrumsim.OpAdvice, Fault: electrumsim.Fault500}); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, req := range reqs {
		c := confirmation(req.ID)
		keys = append(keys, qrswitch.AdviceKey("shop-1", c.ID))
		h.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, c)
	}
	backoff := map[string]time.Time{}
	eventually(t, "every advice backing off", func() bool {
		for _, k := range keys {
			a, err := h.Srv.Store().Advice(t.Context(), k)
			if err != nil || a.Attempts < 1 || a.LeaseOwner != "" {
				return false
			}
			backoff[k] = a.NextAt
		}
		return true
	})
	h.Sim.ClearFaults()
	// One advice meets the partner's final answer (a retry sent now):
	// the rest of the backlog must follow at once, not at its NextAt.
	op := qrswitch.Operator{Name: "test", Reason: "the partner is back"}
	if _, f := h.Srv.Engine().RetryAdvice(t.Context(), op, keys[0]); f != nil {
		t.Fatal(f)
	}
	eventually(t, "every advice final", func() bool {
		for _, k := range keys {
			if a, err := h.Srv.Store().Advice(t.Context(), k); err != nil || a.State != qrswitch.AdviceDone {
				return false
			}
		}
		return true
	})
	for _, k := range keys[1:] {
		a, _ := h.Srv.Store().Advice(t.Context(), k)
		if !a.DoneAt.Before(backoff[k]) {
			t.Errorf("advice %s done at %s, not before its backoff ended (%s): it waited instead of draining with the backlog", k, a.DoneAt, backoff[k])
		}
	}
}

// TestDeferredReversalWaitsForTheCallOnly: a timeout reversal waits for
// the timed-out call of its payment to end — even when a returning partner
// makes the queue claim its whole backlog at once — and goes as soon as
// that call ends, not when the whole late window is over.
func TestDeferredReversalWaitsForTheCallOnly(t *testing.T) {
	const lateWindow = 30 * time.Second
	h := NewHarness(t, func(c *config.Config, o *Options) {
		c.SAF.InitialInterval = config.Duration(200 * time.Millisecond)
		c.SAF.MaxInterval = config.Duration(2 * time.Second)
		// Far longer than the partner takes to answer late (0.5 s after
		// its 1 s timeout), so the end of the call, not the end of the
		// window, is what releases the reversal, however loaded the
		// machine.
		o.LateWindow = lateWindow
	})
	var confs []string
	for i := range 3 {
		confs = append(confs, h.approvedPayment(t, int64(8200+i)).ID)
	}
	if err := h.Sim.SetFault(electrumsim.Fault{Operation: electrumsim.OpAdvice, Fault: electrumsim.Fault500}); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, id := range confs {
		c := confirmation(id)
		keys = append(keys, qrswitch.AdviceKey("shop-1", c.ID))
		h.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, c)
	}
	eventually(t, "confirmations failing", func() bool {
		a, err := h.Srv.Store().Advice(t.Context(), keys[0])
		return err == nil && a.Attempts >= 2
	})
	// A payment whose answer comes after the partner's timeout: its
	// timeout reversal is deferred by the late window.
	tranID, payload := h.createQR(t)
	req := payRequest("1234", tranID, 8270)
	answer := h.payAsync(req)
	h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "AWAITING_SCAN")
	h.scan(t, payload)
	if r := <-answer; r.status != 504 {
		t.Fatalf("pay = %d, want 504", r.status)
	}
	p := h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "REVERSING")
	rev, err := h.Srv.Store().Advice(t.Context(), p.AdviceKey)
	if err != nil {
		t.Fatal(err)
	}
	deferred := false
	for _, e := range h.story(t, req.ID).Trace {
		deferred = deferred || e.Operation == "reversalDeferred"
	}
	if !deferred {
		t.Fatalf("the trace of %s shows no reversalDeferred event: want the timeout reversal deferred", req.ID)
	}
	h.Sim.ClearFaults() // the partner is back: the backlog drains at once
	eventually(t, "confirmations final", func() bool {
		for _, k := range keys {
			if a, err := h.Srv.Store().Advice(t.Context(), k); err != nil || a.State != qrswitch.AdviceDone {
				return false
			}
		}
		return true
	})
	h.waitState(t, p.Key(), "REVERSED")
	entry, ok := h.ledgerAdvice(rev.ID)
	if !ok {
		t.Fatal("the timeout reversal never reached the partner")
	}
	// The reversal waits for the timed-out call to end — here the late
	// answer — and no longer: the drain of the backlog did not send it
	// before, and the end of the call released it before its deferral
	// ran out (issue 15: funds are not held longer than needed).
	var answered time.Time
	for _, pe := range h.Sim.Ledger().Payments {
		if pe.ID == req.ID {
			answered = pe.AnsweredAt
		}
	}
	if answered.IsZero() {
		t.Fatal("the partner's ledger has no late answer to the payment")
	}
	if entry.FirstReceived.Before(answered) {
		t.Fatalf("the reversal reached the partner at %s, before the payment's late answer at %s", entry.FirstReceived, answered)
	}
	if end := rev.QueuedAt.Add(lateWindow); !entry.FirstReceived.Before(end) {
		t.Fatalf("the reversal was sent at %s, only when its deferral ended (%s): the end of the call should have released it", entry.FirstReceived, end)
	}
}
