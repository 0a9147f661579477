package electrumsim

import (
	"bytes"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
)

func TestAdviceRepeated(t *testing.T) {
	for _, tc := range []struct {
		name   string
		send   func(e *env, requestID string) (id string, r1, r2 response)
		effect State
	}{
		{"confirmation", func(e *env, requestID string) (string, response, response) {
			c := confirmation(requestID)
			return c.ID, e.confirm(c), e.confirm(c)
		}, StateCaptured},
		{"reversal", func(e *env, requestID string) (string, response, response) {
			r := reversal(requestID)
			return r.ID, e.reverse(r), e.reverse(r)
		}, StateReleased},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			req := e.approved(2500)
			id, r1, r2 := tc.send(e, req.ID)
			if r1.err != nil || r1.status != http.StatusAccepted || r2.err != nil || r2.status != http.StatusAccepted {
				t.Fatalf("%s twice = %d %v, %d %v, want 202 twice", tc.name, r1.status, r1.err, r2.status, r2.err)
			}
			if !bytes.Equal(r1.body, r2.body) || len(r1.body) == 0 {
				t.Errorf("repeat answered %s, want the first answer %s again", r2.body, r1.body)
			}
			a := e.advice(id)
			if a.Deliveries != 2 || !a.EffectApplied || a.Effect != tc.effect || a.Status != http.StatusAccepted {
				t.Errorf("ledger advice = %+v, want 2 deliveries, effect %s applied, status 202", a, tc.effect)
			}
			if a.RequestID != req.ID || a.TranID != testTran || a.FirstReceived.After(a.LastReceived) {
				t.Errorf("ledger advice = %+v, want requestId %s, tranId %s, first ≤ last", a, req.ID, testTran)
			}
			if p := e.payment(req.ID); p.State != tc.effect || p.AdviceDeliveries != 2 {
				t.Errorf("ledger payment = %s with %d advice deliveries, want %s with 2", p.State, p.AdviceDeliveries, tc.effect)
			}
			tot := e.sim.Ledger().Totals
			if tot.EffectsApplied != 1 || tot.AdviceDeliveries != 2 || tot.DuplicateDeliveries != 1 {
				t.Errorf("totals = %+v, want 1 effect, 2 advice deliveries, 1 duplicate", tot)
			}
		})
	}
}

func TestAdviceConcurrentDeliveries(t *testing.T) {
	e := newEnv(t, Config{})
	req := e.approved(3000)
	rev := reversal(req.ID)
	const n = 16
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { statuses[i] = e.reverse(rev).status })
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusAccepted {
			t.Errorf("delivery %d = %d, want 202", i, s)
		}
	}
	a := e.advice(rev.ID)
	if a.Deliveries != n || !a.EffectApplied {
		t.Errorf("ledger advice = %d deliveries, effect %v; want %d, applied", a.Deliveries, a.EffectApplied, n)
	}
	if tot := e.sim.Ledger().Totals; tot.EffectsApplied != 1 || tot.Released != 1 {
		t.Errorf("totals = %+v, want exactly one effect, one release", tot)
	}
}

func TestAdviceUnknownPayment(t *testing.T) {
	e := newEnv(t, Config{})
	c, r := confirmation(wire.NewID()), reversal(wire.NewID())
	for _, tc := range []struct {
		name string
		id   string
		send func() response
	}{
		{"confirmation", c.ID, func() response { return e.confirm(c) }},
		{"reversal", r.ID, func() response { return e.reverse(r) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := wantError(t, tc.name, tc.send(), http.StatusNotFound, wire.UnableToLocateRecord)
			again := wantError(t, tc.name+" again", tc.send(), http.StatusNotFound, wire.UnableToLocateRecord)
			if first.ID != again.ID {
				t.Errorf("repeat got ErrorDetail %s, want the first answer %s again", again.ID, first.ID)
			}
			if a := e.advice(tc.id); a.Deliveries != 2 || a.EffectApplied || a.Status != http.StatusNotFound {
				t.Errorf("ledger advice = %+v, want 2 deliveries, no effect, 404", a)
			}
		})
	}
}

func TestAdviceConflicts(t *testing.T) {
	for _, tc := range []struct {
		name      string
		amount    int64
		first     func(e *env, requestID string) response // nil: none
		then      func(e *env, requestID string) response
		status    int
		errorType string // empty for 202
		state     State
	}{
		{"confirm after reverse", 4000,
			func(e *env, id string) response { return e.reverse(reversal(id)) },
			func(e *env, id string) response { return e.confirm(confirmation(id)) },
			http.StatusBadRequest, wire.TransactionNotSupported, StateReleased},
		{"reverse after confirm", 4000,
			func(e *env, id string) response { return e.confirm(confirmation(id)) },
			func(e *env, id string) response { return e.reverse(reversal(id)) },
			http.StatusBadRequest, wire.TransactionNotSupported, StateCaptured},
		{"second confirmation", 4000,
			func(e *env, id string) response { return e.confirm(confirmation(id)) },
			func(e *env, id string) response { return e.confirm(confirmation(id)) },
			http.StatusAccepted, "", StateCaptured},
		{"second reversal", 4000,
			func(e *env, id string) response { return e.reverse(reversal(id)) },
			func(e *env, id string) response { return e.reverse(reversal(id)) },
			http.StatusAccepted, "", StateReleased},
		{"confirm declined", 4051, nil,
			func(e *env, id string) response { return e.confirm(confirmation(id)) },
			http.StatusBadRequest, wire.TransactionNotSupported, StateDeclined},
		{"reverse declined", 4051, nil,
			func(e *env, id string) response { return e.reverse(reversal(id)) },
			http.StatusAccepted, "", StateDeclined},
		{"reverse overtakes late answer", 4070, nil,
			func(e *env, id string) response { return e.reverse(reversal(id)) },
			http.StatusAccepted, "", StateReleased},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{LateAfter: 250 * time.Millisecond})
			req := paymentRequest(tc.amount)
			var late chan response
			if BehaviourFor(tc.amount).kind == kindLate {
				late = make(chan response, 1)
				go func() { late <- e.pay(req) }()
				eventually(t, "the payment to arrive", func() bool { return e.sim.held.Load() == 1 })
			} else {
				e.pay(req)
			}
			effects := 0
			if tc.first != nil {
				if r := tc.first(e, req.ID); r.status != http.StatusAccepted {
					t.Fatalf("first advice = %d %s, want 202", r.status, r.body)
				}
				effects = 1
			}
			r := tc.then(e, req.ID)
			if tc.errorType != "" {
				d := wantError(t, "second advice", r, tc.status, tc.errorType)
				if d.ErrorMessage == "" || d.DetailMessage == nil {
					t.Errorf("ErrorDetail %+v, want a message and a detail saying why", d)
				}
			} else if r.status != tc.status {
				t.Fatalf("second advice = %d %s, want %d", r.status, r.body, tc.status)
			}
			if tc.state == StateReleased && tc.first == nil {
				effects = 1
			}
			if p := e.payment(req.ID); p.State != tc.state {
				t.Errorf("payment state = %s, want %s", p.State, tc.state)
			}
			if got := e.sim.Ledger().Totals.EffectsApplied; got != effects {
				t.Errorf("effects applied = %d, want %d", got, effects)
			}
			if late != nil {
				if r := <-late; r.status != http.StatusCreated {
					t.Errorf("late answer = %d %v, want 201 after the reversal", r.status, r.err)
				}
			}
		})
	}
}

func TestAdviceIDReused(t *testing.T) {
	e := newEnv(t, Config{})
	req := e.approved(1000)
	c := confirmation(req.ID)
	if r := e.confirm(c); r.status != http.StatusAccepted {
		t.Fatalf("confirm = %d, want 202", r.status)
	}
	r := reversal(req.ID)
	r.ID = c.ID
	wantError(t, "reversal under the confirmation's id", e.reverse(r), http.StatusBadRequest, wire.DuplicateRecord)
	if p := e.payment(req.ID); p.State != StateCaptured {
		t.Errorf("payment state = %s, want captured", p.State)
	}
}

func TestFlakyAdvice(t *testing.T) {
	e := newEnv(t, Config{})
	req := e.approved(5050)
	c := confirmation(req.ID)
	for i := range flakyAdviceFailures {
		d := wantError(t, "confirmation of a ..50 payment", e.confirm(c), http.StatusInternalServerError, wire.GeneralError)
		if d.OriginalID != c.ID {
			t.Errorf("delivery %d: originalId = %s, want %s", i+1, d.OriginalID, c.ID)
		}
	}
	if r := e.confirm(c); r.status != http.StatusAccepted {
		t.Fatalf("delivery %d = %d %s, want 202", flakyAdviceFailures+1, r.status, r.body)
	}
	if r := e.confirm(c); r.status != http.StatusAccepted {
		t.Fatalf("delivery after the final answer = %d %s, want 202 again", r.status, r.body)
	}
	a := e.advice(c.ID)
	if a.Deliveries != 5 || a.FailedDeliveries != flakyAdviceFailures || !a.EffectApplied || a.Status != http.StatusAccepted {
		t.Errorf("ledger advice = %+v, want 5 deliveries, %d failed, effect applied, 202", a, flakyAdviceFailures)
	}
	if p := e.payment(req.ID); p.State != StateCaptured {
		t.Errorf("payment state = %s, want captured", p.State)
	}
}

func TestFailedAdvice(t *testing.T) {
	e := newEnv(t, Config{})
	req := e.approved(5074)
	rev := reversal(req.ID)
	first := wantError(t, "reversal of a ..74 payment", e.reverse(rev), http.StatusServiceUnavailable, wire.UpstreamUnavailable)
	again := wantError(t, "reversal again", e.reverse(rev), http.StatusServiceUnavailable, wire.UpstreamUnavailable)
	if first.ID != again.ID {
		t.Errorf("repeat got ErrorDetail %s, want the first answer %s", again.ID, first.ID)
	}
	wantError(t, "confirmation of a ..74 payment", e.confirm(confirmation(req.ID)), http.StatusServiceUnavailable, wire.UpstreamUnavailable)
	if a := e.advice(rev.ID); a.EffectApplied || a.Status != http.StatusServiceUnavailable || a.Deliveries != 2 {
		t.Errorf("ledger advice = %+v, want 503, no effect, 2 deliveries", a)
	}
	if p := e.payment(req.ID); p.State != StateReserved {
		t.Errorf("payment state = %s, want reserved (no advice applies)", p.State)
	}
}
