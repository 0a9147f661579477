package electrumsim

import (
	"encoding/json"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
)

func TestLedgerTotals(t *testing.T) {
	e := newEnv(t, Config{})
	p1, p2, p3 := e.approved(1000), e.approved(1001), e.approved(1002)
	wantError(t, "pay ..51", e.pay(paymentRequest(1051)), 400, wire.DeclinedByPartner)
	e.pay(p3) // duplicate id
	c := confirmation(p1.ID)
	e.confirm(c)
	e.confirm(c) // repeat
	e.reverse(reversal(p2.ID))
	e.reverse(reversal(wire.NewID())) // unknown payment

	want := Totals{
		Payments: 4, Approved: 3, Declined: 1, Reserved: 1, Captured: 1, Released: 1,
		Confirmations: 1, Reversals: 2, AdviceDeliveries: 4, EffectsApplied: 2,
		DuplicateDeliveries: 2,
	}
	l := e.sim.Ledger()
	if l.Totals != want {
		t.Errorf("totals = %+v, want %+v", l.Totals, want)
	}
	if len(l.Payments) != 4 || l.Payments[0].ID != p1.ID || len(l.Advices) != 3 || l.Advices[0].ID != c.ID {
		t.Errorf("ledger = %d payments (first %s), %d advices (first %s); want 4 from %s, 3 from %s",
			len(l.Payments), l.Payments[0].ID, len(l.Advices), l.Advices[0].ID, p1.ID, c.ID)
	}

	r := e.do(http.MethodGet, "/sim/v1/ledger", nil)
	var got Ledger
	if err := json.Unmarshal(r.body, &got); r.status != http.StatusOK || err != nil {
		t.Fatalf("GET /sim/v1/ledger = %d %s (%v), want 200 and a ledger", r.status, r.body, err)
	}
	if got.Totals != want || len(got.Payments) != 4 || got.Payments[2].PartnerPaymentToken != "****7890" {
		t.Errorf("GET /sim/v1/ledger = %+v, want the same ledger", got)
	}
	if tot := e.sim.Totals(); tot != want {
		t.Errorf("Totals() = %+v, want %+v", tot, want)
	}
	r = e.do(http.MethodGet, "/sim/v1/ledger?view=totals", nil)
	var only struct{ Totals Totals }
	if err := json.Unmarshal(r.body, &only); r.status != http.StatusOK || err != nil || only.Totals != want || strings.Contains(string(r.body), "payments\":[") {
		t.Errorf("GET /sim/v1/ledger?view=totals = %d %s, want the totals alone", r.status, r.body)
	}

	if r := e.do(http.MethodPost, "/sim/v1/reset", nil); r.status != http.StatusNoContent {
		t.Fatalf("POST /sim/v1/reset = %d, want 204", r.status)
	}
	l = e.sim.Ledger()
	if l.Totals != (Totals{}) || len(l.Payments) != 0 || len(l.Advices) != 0 || len(l.Scans) != 0 {
		t.Errorf("ledger after reset = %+v, want empty", l)
	}
	if b, _ := json.Marshal(l); string(b) != `{"payments":[],"advices":[],"scans":[],"totals":{"payments":0,"approved":0,"declined":0,"reserved":0,"captured":0,"released":0,"confirmations":0,"reversals":0,"adviceDeliveries":0,"effectsApplied":0,"duplicateDeliveries":0,"scans":0}}` {
		t.Errorf("empty ledger encodes as %s", b)
	}
	// After a reset the sim no longer knows the payments: a new request
	// with an old id is a new payment.
	if r := e.pay(p1); r.status != http.StatusCreated {
		t.Errorf("pay with an id from before the reset = %d, want 201", r.status)
	}
}

func TestMaskToken(t *testing.T) {
	for in, want := range map[string]string{
		"":               "",
		"abc":            "****",
		"abcd":           "****",
		"abcde":          "****bcde",
		"tok-1234567890": "****7890",
		"jeton-éèêë":     "****éèêë",
	} {
		if got := maskToken(in); got != want {
			t.Errorf("maskToken(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCloseEndsHeldAnswers(t *testing.T) {
	e := newEnv(t, Config{LateAfter: time.Minute, SlowAfter: time.Minute})
	e.client.Timeout = 30 * time.Second
	base := runtime.NumGoroutine()

	if err := e.sim.SetFault(Fault{Operation: OpReverse, Fault: FaultHang}); err != nil {
		t.Fatal(err)
	}
	held := []func() response{
		func() response { return e.pay(paymentRequest(1070)) },
		func() response { return e.pay(paymentRequest(1070)) },
		func() response { return e.pay(paymentRequest(1072)) },
		func() response { return e.reverse(reversal(wire.NewID())) },
	}
	results := make([]response, len(held))
	var wg sync.WaitGroup
	for i, send := range held {
		wg.Go(func() { results[i] = send() })
	}
	eventually(t, "every answer to be held", func() bool { return e.sim.held.Load() == int64(len(held)) })

	start := time.Now()
	e.sim.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v, want it to end held answers at once", d)
	}
	if n := e.sim.held.Load(); n != 0 {
		t.Errorf("%d answers still held after Close, want 0", n)
	}
	wg.Wait()
	for i, r := range results {
		if r.err == nil {
			t.Errorf("held request %d = %d %s, want its connection closed unanswered", i, r.status, r.body)
		}
	}
	for _, p := range e.sim.Ledger().Payments {
		if p.Status != 0 || p.State != StateReserved || p.Note != "sim closed before the answer" {
			t.Errorf("ledger payment after Close = status %d %s %q, want unanswered, reserved, closed", p.Status, p.State, p.Note)
		}
	}

	// A held answer asked for after Close ends at once.
	start = time.Now()
	if r := e.pay(paymentRequest(1070)); r.err == nil || time.Since(start) > time.Second {
		t.Errorf("late pay after Close = %d %v after %v, want a prompt drop", r.status, r.err, time.Since(start))
	}
	// Other answers are still served.
	e.approved(1000)

	e.client.CloseIdleConnections()
	eventually(t, "goroutines to settle", func() bool { return runtime.NumGoroutine() <= base })
}
