package electrumsim

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
)

// setFault sets a fault through the control endpoint.
func (e *env) setFault(f Fault) []Fault {
	e.t.Helper()
	r := e.do(http.MethodPost, "/sim/v1/faults", f)
	if r.err != nil || r.status != http.StatusOK {
		e.t.Fatalf("POST /sim/v1/faults %+v = %d %v %s, want 200", f, r.status, r.err, r.body)
	}
	var got []Fault
	if err := json.Unmarshal(r.body, &got); err != nil {
		e.t.Fatalf("POST /sim/v1/faults answered %s: %v", r.body, err)
	}
	return got
}

func (e *env) faults() []Fault {
	e.t.Helper()
	r := e.do(http.MethodGet, "/sim/v1/faults", nil)
	var got []Fault
	if err := json.Unmarshal(r.body, &got); r.status != http.StatusOK || err != nil {
		e.t.Fatalf("GET /sim/v1/faults = %d %s (%v), want 200 and a list", r.status, r.body, err)
	}
	return got
}

func TestPayFaults(t *testing.T) {
	const hang = 150 * time.Millisecond
	for _, tc := range []struct {
		fault     FaultType
		status    int    // 0: connection closed unanswered
		errorType string // empty: no body
		recorded  bool
		minTime   time.Duration
	}{
		{Fault500, 500, wire.GeneralError, true, 0},
		{Fault503, 503, wire.UpstreamUnavailable, true, 0},
		{Fault504, 504, "", true, 0},
		{FaultHang, 0, "", true, hang},
		{FaultDrop, 0, "", true, 0},
		{FaultRefuse, 0, "", false, 0},
	} {
		t.Run(string(tc.fault), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Config{LateAfter: hang})
			if got := e.setFault(Fault{Operation: OpPay, Fault: tc.fault, Count: 1}); len(got) != 1 {
				t.Fatalf("faults after setting one = %+v", got)
			}
			req := paymentRequest(1000)
			start := time.Now()
			r := e.pay(req)
			switch {
			case tc.status == 0:
				if r.err == nil {
					t.Fatalf("pay = %d %s, want the connection closed unanswered", r.status, r.body)
				}
				if d := time.Since(start); d < tc.minTime {
					t.Errorf("connection closed after %v, want at least %v", d, tc.minTime)
				}
			case tc.errorType == "":
				if r.status != tc.status || len(r.body) != 0 {
					t.Fatalf("pay = %d %q %v, want %d without a body", r.status, r.body, r.err, tc.status)
				}
			default:
				wantError(t, "pay", r, tc.status, tc.errorType)
			}
			l := e.sim.Ledger()
			switch {
			case !tc.recorded && len(l.Payments) != 0:
				t.Errorf("ledger holds %+v, want nothing for a refused connection", l.Payments)
			case tc.recorded:
				p := e.payment(req.ID)
				if p.Fault != string(tc.fault) || p.State != StateDeclined || p.Status != tc.status {
					t.Errorf("ledger payment = fault %q %s status %d, want fault %s declined status %d", p.Fault, p.State, p.Status, tc.fault, tc.status)
				}
			}
			if got := e.faults(); len(got) != 0 {
				t.Errorf("faults after count ran out = %+v, want none", got)
			}
			if r := e.pay(paymentRequest(1000)); r.status != http.StatusCreated {
				t.Errorf("pay after the fault = %d %v, want 201", r.status, r.err)
			}
		})
	}
}

func TestFaultCountThenNormal(t *testing.T) {
	e := newEnv(t, Config{})
	e.setFault(Fault{Operation: OpPay, Fault: Fault500, Count: 2})
	wantError(t, "pay 1", e.pay(paymentRequest(1000)), 500, wire.GeneralError)
	if got, want := e.faults(), []Fault{{Operation: OpPay, Fault: Fault500, Count: 1}}; !reflect.DeepEqual(got, want) {
		t.Errorf("faults after one = %+v, want %+v", got, want)
	}
	wantError(t, "pay 2", e.pay(paymentRequest(1000)), 500, wire.GeneralError)
	e.approved(1000)
	if tot := e.sim.Ledger().Totals; tot.Payments != 3 || tot.Declined != 2 || tot.Approved != 1 {
		t.Errorf("totals = %+v, want 3 payments, 2 declined, 1 approved", tot)
	}
}

func TestAdviceFaultUntilCleared(t *testing.T) {
	e := newEnv(t, Config{})
	req := e.approved(1000)
	e.setFault(Fault{Operation: OpAdvice, Fault: Fault503})
	c := confirmation(req.ID)
	for range 2 {
		wantError(t, "confirm under fault", e.confirm(c), 503, wire.UpstreamUnavailable)
	}
	wantError(t, "reverse under fault", e.reverse(reversal(req.ID)), 503, wire.UpstreamUnavailable)
	if r := e.pay(paymentRequest(1000)); r.status != http.StatusCreated {
		t.Errorf("pay under an advice fault = %d, want 201", r.status)
	}
	if p := e.payment(req.ID); p.State != StateReserved {
		t.Fatalf("payment state under fault = %s, want reserved", p.State)
	}
	if r := e.do(http.MethodDelete, "/sim/v1/faults", nil); r.status != http.StatusNoContent {
		t.Fatalf("DELETE /sim/v1/faults = %d, want 204", r.status)
	}
	if r := e.confirm(c); r.status != http.StatusAccepted {
		t.Fatalf("confirm after clearing = %d %s, want 202", r.status, r.body)
	}
	a := e.advice(c.ID)
	if a.Deliveries != 3 || a.FailedDeliveries != 2 || !a.EffectApplied || a.Status != http.StatusAccepted {
		t.Errorf("ledger advice = %+v, want 3 deliveries, 2 failed, applied, 202", a)
	}
}

func TestFaultPrecedence(t *testing.T) {
	e := newEnv(t, Config{})
	req := e.approved(1000)
	if err := e.sim.SetFault(Fault{Operation: OpAll, Fault: Fault503}); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.SetFault(Fault{Operation: OpConfirm, Fault: Fault500}); err != nil {
		t.Fatal(err)
	}
	wantError(t, "confirm", e.confirm(confirmation(req.ID)), 500, wire.GeneralError)
	wantError(t, "reverse", e.reverse(reversal(req.ID)), 503, wire.UpstreamUnavailable)
	wantError(t, "pay", e.pay(paymentRequest(1000)), 503, wire.UpstreamUnavailable)
	if err := e.sim.SetFault(Fault{Operation: OpConfirm, Fault: FaultNone}); err != nil {
		t.Fatal(err)
	}
	want := []Fault{{Operation: OpAll, Fault: Fault503}}
	if got := e.sim.Faults(); !reflect.DeepEqual(got, want) {
		t.Errorf("faults = %+v, want %+v", got, want)
	}
	e.sim.ClearFaults()
	if got := e.sim.Faults(); len(got) != 0 {
		t.Errorf("faults after ClearFaults = %+v, want none", got)
	}
}

func TestFaultInvalid(t *testing.T) {
	e := newEnv(t, Config{})
	for _, tc := range []struct {
		body  string
		field string
	}{
		{`{"operation":"pay","fault":"418"}`, "fault"},
		{`{"operation":"everything","fault":"500"}`, "operation"},
		{`{"fault":"500"}`, "operation"},
		{`{"operation":"pay","fault":"500","count":-1}`, "count"},
		{`{"operation":"pay","fault":"500","count":"two"}`, "count"},
	} {
		t.Run(tc.body, func(t *testing.T) {
			d := wantError(t, "POST /sim/v1/faults", e.do(http.MethodPost, "/sim/v1/faults", []byte(tc.body)), 400, wire.FormatError)
			if d.ErrorMessage != "Invalid "+tc.field {
				t.Errorf("errorMessage = %q, want it to name %s", d.ErrorMessage, tc.field)
			}
		})
	}
	var fe *wire.FieldError
	if err := e.sim.SetFault(Fault{Operation: OpPay, Fault: "slow"}); !errors.As(err, &fe) || fe.Field != "fault" {
		t.Errorf("SetFault(slow) = %v, want a FieldError on fault", err)
	}
	if got := e.sim.Faults(); len(got) != 0 {
		t.Errorf("faults after invalid ones = %+v, want none", got)
	}
}
