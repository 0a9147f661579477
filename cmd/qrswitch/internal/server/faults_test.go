package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners/electrum/electrumsim"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// The partner fault matrix: every operation the switch sends upstream (pay,
// confirm, reverse) against every fault a partner or the network between
// can produce. Each row asserts the outcome, what the retailer is told,
// the trace, and what store-and-forward does. Answers come from a scripted
// partner in front of the simulator (statuses, bodies, delays, resets
// after the partner acted) and network faults from real TCP proxies
// (toxiproxy) on their own lanes. docs/reliability.md has the table.

// errorBody is an ErrorDetail as a partner sends it.
func errorBody(errorType, message string) string {
	b, _ := json.Marshal(wire.NewErrorDetail(errorType, message, "", ""))
	return string(b)
}

// netFault names a network fault applied to a lane.
type netFault int

const (
	noNetFault   netFault = iota
	netRefused            // nothing listens: connection refused
	netResetSoon          // the connection is reset as its first bytes pass (before the request)
	netBadTLS             // the lane leads to a server with a certificate the switch does not trust
	netStall              // no byte passes, the connection stays open
	netSlow               // every chunk is delayed 100 ms, within the timeout
)

func (f netFault) apply(t *testing.T, fh *faultHarness, l *lane) {
	t.Helper()
	switch f {
	case netRefused:
		l.stop()
	case netResetSoon:
		l.poison(t, `{"name":"reset","type":"reset_peer","stream":"upstream","attributes":{"timeout":0}}`)
	case netBadTLS:
		l.setUpstream(t, fh.untrusted)
	case netStall:
		l.poison(t, `{"name":"stall","type":"timeout","stream":"upstream","attributes":{"timeout":0}}`)
	case netSlow:
		l.poison(t, `{"name":"slow","type":"latency","stream":"downstream","attributes":{"latency":100}}`)
	}
}

// Outcome names as traces show them.
const (
	unknown    = "unknown"
	failed     = "failed"
	successful = "successful"
)

// payRow is one fault of the payment matrix.
type payRow struct {
	name   string
	script *script
	net    netFault
	// What the retailer is told.
	status    int
	errorType string
	// The payment leg's outcome in the trace, and the state the payment ends in.
	outcome string
	state   string
	// Whether the partner's ledger has the payment, and its final state there.
	partnerSaw   bool
	partnerState electrumsim.State
	// Whether a late answer is traced.
	late bool
}

func TestFaultMatrixPay(t *testing.T) {
	t.Parallel()
	fh := newFaultHarness(t, 6)
	rows := []payRow{
		{name: "500 with ErrorDetail", script: &script{status: 500, body: errorBody(wire.GeneralError, "Boom")},
			status: 504, errorType: wire.UpstreamUnavailable, outcome: unknown, state: "REVERSED"},
		{name: "500 without body", script: &script{status: 500},
			status: 504, errorType: wire.UpstreamUnavailable, outcome: unknown, state: "REVERSED"},
		{name: "501 without body", script: &script{status: 501},
			status: 400, errorType: wire.FunctionNotSupported, outcome: failed, state: "DECLINED"},
		{name: "501 with ErrorDetail", script: &script{status: 501, body: errorBody(wire.FunctionNotSupported, "No QR here")},
			status: 400, errorType: wire.FunctionNotSupported, outcome: failed, state: "DECLINED"},
		{name: "503 with ErrorDetail", script: &script{status: 503, body: errorBody(wire.UpstreamUnavailable, "Down")},
			status: 503, errorType: wire.UpstreamUnavailable, outcome: failed, state: "DECLINED"},
		{name: "503 without body", script: &script{status: 503},
			status: 503, errorType: wire.UpstreamUnavailable, outcome: failed, state: "DECLINED"},
		{name: "504 with ErrorDetail", script: &script{status: 504, body: errorBody(wire.UpstreamUnavailable, "Bank timeout")},
			status: 504, errorType: wire.UpstreamUnavailable, outcome: unknown, state: "REVERSED"},
		{name: "504 without body", script: &script{status: 504},
			status: 504, errorType: wire.UpstreamUnavailable, outcome: unknown, state: "REVERSED"},
		{name: "404 with ErrorDetail", script: &script{status: 404, body: errorBody(wire.InvalidAccount, "No such wallet")},
			status: 400, errorType: wire.InvalidAccount, outcome: failed, state: "DECLINED"},
		{name: "404 without body", script: &script{status: 404},
			status: 400, errorType: wire.UnableToLocateRecord, outcome: failed, state: "DECLINED"},
		{name: "400 with ErrorDetail", script: &script{status: 400, body: errorBody(wire.InsufficientFunds, "Insufficient funds")},
			status: 400, errorType: wire.InsufficientFunds, outcome: failed, state: "DECLINED"},
		{name: "400 with an overlong errorMessage", script: &script{status: 400,
			body: `{"id":"e","errorType":"DO_NOT_HONOR","errorMessage":"` + strings.Repeat("Refused ", 12) + `"}`},
			status: 400, errorType: wire.DoNotHonor, outcome: failed, state: "DECLINED"},
		{name: "400 with an unknown errorType", script: &script{status: 400, body: `{"id":"e","errorType":"BANANA","errorMessage":"No"}`},
			status: 400, errorType: wire.DeclinedByPartner, outcome: failed, state: "DECLINED"},
		{name: "400 without body", script: &script{status: 400},
			status: 400, errorType: wire.DeclinedByPartner, outcome: failed, state: "DECLINED"},
		{name: "400 with a malformed body", script: &script{status: 400, body: `<html>bad gateway`},
			status: 400, errorType: wire.DeclinedByPartner, outcome: failed, state: "DECLINED"},
		{name: "429 with ErrorDetail", script: &script{status: 429, body: errorBody(wire.GeneralError, "Slow down")},
			status: 400, errorType: wire.GeneralError, outcome: failed, state: "DECLINED"},
		{name: "302 redirect", script: &script{status: 302},
			status: 503, errorType: wire.UpstreamUnavailable, outcome: failed, state: "DECLINED"},
		{name: "204 (a 2xx outside the table: the partner may have approved)", script: &script{forward: true, status: 204},
			status: 504, errorType: wire.UpstreamUnavailable, outcome: unknown, state: "REVERSED",
			partnerSaw: true, partnerState: electrumsim.StateReleased},
		{name: "201 approval with an empty body", script: &script{forward: true, status: 201},
			status: 504, errorType: wire.UpstreamUnavailable, outcome: unknown, state: "REVERSED",
			partnerSaw: true, partnerState: electrumsim.StateReleased},
		{name: "201 approval with a malformed body", script: &script{forward: true, status: 201, body: `{"id":"x","amounts":{`},
			status: 504, errorType: wire.UpstreamUnavailable, outcome: unknown, state: "REVERSED",
			partnerSaw: true, partnerState: electrumsim.StateReleased},
		{name: "200 with an ErrorDetail for a body", script: &script{forward: true, status: 200, body: errorBody(wire.GeneralError, "?")},
			status: 504, errorType: wire.UpstreamUnavailable, outcome: unknown, state: "REVERSED",
			partnerSaw: true, partnerState: electrumsim.StateReleased},
		{name: "approval after the timeout", script: &script{forward: true, held: heldAnswer},
			status: 504, errorType: wire.UpstreamUnavailable, outcome: unknown, state: "REVERSED",
			partnerSaw: true, partnerState: electrumsim.StateReleased, late: true},
		{name: "no answer within the timeout", script: &script{held: heldAnswer, reset: true},
			status: 504, errorType: wire.UpstreamUnavailable, outcome: unknown, state: "REVERSED"},
		{name: "request still in transit at the timeout", script: &script{held: heldRead, forward: true, reset: true},
			status: 504, errorType: wire.UpstreamUnavailable, outcome: unknown, state: "REVERSED",
			partnerSaw: true, partnerState: electrumsim.StateReleased},
		{name: "reset after the partner approved", script: &script{forward: true, reset: true},
			status: 504, errorType: wire.UpstreamUnavailable, outcome: unknown, state: "REVERSED",
			partnerSaw: true, partnerState: electrumsim.StateReleased},
		{name: "reset after the request was read", script: &script{reset: true},
			status: 504, errorType: wire.UpstreamUnavailable, outcome: unknown, state: "REVERSED"},
		{name: "body trickled within the timeout", script: &script{forward: true, trickle: withinTimeout},
			status: 201, outcome: successful, state: "APPROVED", partnerSaw: true, partnerState: electrumsim.StateReserved},
		{name: "body trickled past the timeout", script: &script{forward: true, trickle: withinTimeout, held: heldAnswer},
			status: 504, errorType: wire.UpstreamUnavailable, outcome: unknown, state: "REVERSED",
			partnerSaw: true, partnerState: electrumsim.StateReleased, late: true},
		{name: "connection refused", net: netRefused,
			status: 503, errorType: wire.UpstreamUnavailable, outcome: failed, state: "DECLINED"},
		{name: "connection reset before the request was sent", net: netResetSoon,
			status: 503, errorType: wire.UpstreamUnavailable, outcome: failed, state: "DECLINED"},
		{name: "TLS handshake failure", net: netBadTLS,
			status: 503, errorType: wire.UpstreamUnavailable, outcome: failed, state: "DECLINED"},
		// No byte passes, so the TLS handshake never completes: the
		// transport's handshake bound (10 s, inside the 15 s partner timeout)
		// ends it with the request provably unsent — a decline, no reversal.
		{name: "network stalls", net: netStall,
			status: 503, errorType: wire.UpstreamUnavailable, outcome: failed, state: "DECLINED"},
		{name: "slow network within the timeout", net: netSlow,
			status: 201, outcome: successful, state: "APPROVED", partnerSaw: true, partnerState: electrumsim.StateReserved},
	}
	concurrently(t, matrixConcurrency, rows, func(r payRow) string { return r.name }, func(t *testing.T, tt payRow) {
		testPayFault(t, fh, tt)
	})
}

func testPayFault(t *testing.T, fh *faultHarness, tt payRow) {
	var l *lane
	if tt.net != noNetFault {
		l = fh.lane(t)
	}
	release := func() {}
	req, answer := fh.startPay(t, l, 1001, func(req *wire.PaymentRequest) {
		if tt.script != nil {
			var s script
			s, release = withRelease(t, *tt.script)
			fh.partner.set(opPay, req.ID, s)
		}
		tt.net.apply(t, fh, l)
	})
	r := <-answer
	release() // the switch has given up: a held answer is late now
	if l != nil {
		l.heal(t) // let the timeout reversal through
	}
	if r.status != tt.status {
		t.Fatalf("pay = %d %s, want %d", r.status, r.body, tt.status)
	}
	if tt.errorType != "" {
		if d := r.detail(t); d.ErrorType != tt.errorType || d.OriginalID != req.ID || d.TranID != req.TranID {
			t.Errorf("ErrorDetail = %+v, want errorType %s for request %s", d, tt.errorType, req.ID)
		}
	}
	key := qrswitch.PaymentKey("shop-1", req.ID)
	p := fh.waitState(t, key, tt.state)
	st := fh.story(t, req.ID)
	if got := answers(st, "pay", req.ID); len(got) != 1 || got[0].Outcome != tt.outcome {
		t.Errorf("trace has pay answers %+v, want one %s", got, tt.outcome)
	}
	if tt.late {
		eventually(t, "late answer traced", func() bool {
			return len(lateAnswers(fh.story(t, req.ID), "pay", req.ID)) == 1
		})
	}
	// Store and forward: an unknown outcome, and only that, leads
	// to one timeout reversal, sent until final.
	advices, err := fh.Srv.Store().PaymentAdvices(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if tt.outcome != unknown {
		if len(advices) != 0 {
			t.Fatalf("advices = %+v, want none", advices)
		}
	} else {
		if len(advices) != 1 || advices[0].Sender != qrswitch.SwitchSender || advices[0].Reversal.ReversalReason != wire.ReasonTimeout ||
			advices[0].State != qrswitch.AdviceDone || advices[0].Outcome.String() != successful || p.AdviceKey != advices[0].Key() {
			t.Fatalf("advices = %+v, want one TIMEOUT reversal by the switch, done", advices)
		}
		// The trace tells it: the decision, the deferral when the
		// partner's timeout passed (the request may still be on its
		// way), and the reversal's exchange with its outcome.
		events := map[string]bool{}
		for _, e := range st.Trace {
			events[e.Operation] = events[e.Operation] || e.Kind == qrswitch.KindEvent
		}
		timedOut := strings.Contains(notes(answers(st, "pay", req.ID)), "no answer within")
		if !events["timeoutReversal"] || events["reversalDeferred"] != timedOut {
			t.Errorf("trace events %v: want timeoutReversal, and reversalDeferred exactly when the timeout passed (%v)", events, timedOut)
		}
		if rev := answers(st, "reversePayment", advices[0].ID); len(rev) == 0 || rev[len(rev)-1].Outcome != successful {
			t.Errorf("trace has reversal answers %+v, want the last successful", rev)
		}
	}
	// The partner's funds end as the switch's record says: a payment
	// the switch reversed is released (or never arrived), one it
	// approved is reserved for the advice to come.
	if tt.partnerSaw {
		eventually(t, "partner's payment "+string(tt.partnerState), func() bool {
			pe, saw := fh.ledgerPayment(req.ID)
			return saw && pe.State == tt.partnerState
		})
	} else if pe, saw := fh.ledgerPayment(req.ID); saw {
		t.Fatalf("partner ledger has the payment (%+v), want it never to have arrived", pe)
	}
}

// matrixConcurrency bounds the rows of a fault matrix run at once: enough
// that the suite stays fast (rows mostly wait for timeouts), few enough
// that the switch and its partner are not swamped.
const matrixConcurrency = 12

// notes joins the notes of trace entries.
func notes(entries []qrswitch.TraceEntry) string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Note)
	}
	return strings.Join(out, "; ")
}

// adviceRow is one fault of the advice matrix, the same for confirmations
// and reversals except where final says otherwise.
type adviceRow struct {
	name   string
	script *script
	net    netFault
	// final is the advice's final outcome, for a confirmation and a reversal.
	final [2]string
	// retried: the first attempt is unknown and the advice is sent again;
	// otherwise exactly one attempt ends it.
	retried bool
	// effect: the partner applied the advice (captured or released), once.
	effect bool
	late   bool
}

func TestFaultMatrixAdvice(t *testing.T) {
	t.Parallel()
	fh := newFaultHarness(t, 8)
	ok, no := successful, failed
	both := func(s string) [2]string { return [2]string{s, s} }
	rows := []adviceRow{
		{name: "500 with ErrorDetail", script: &script{status: 500, body: errorBody(wire.GeneralError, "Boom"), times: 1},
			final: both(ok), retried: true, effect: true},
		{name: "500 without body", script: &script{status: 500, times: 1}, final: both(ok), retried: true, effect: true},
		{name: "504 without body", script: &script{status: 504, times: 1}, final: both(ok), retried: true, effect: true},
		{name: "501 without body", script: &script{status: 501}, final: both(no)},
		{name: "503 with ErrorDetail", script: &script{status: 503, body: errorBody(wire.UpstreamUnavailable, "Down")}, final: both(no)},
		{name: "404 without body", script: &script{status: 404}, final: [2]string{no, ok}},
		{name: "400 with ErrorDetail", script: &script{status: 400, body: errorBody(wire.TransactionNotSupported, "No")}, final: both(no)},
		{name: "400 without body", script: &script{status: 400}, final: both(no)},
		{name: "400 with a malformed body", script: &script{status: 400, body: `{"errorType":`}, final: both(no)},
		{name: "429 with ErrorDetail (rate limited: sent again)", script: &script{status: 429, body: errorBody(wire.GeneralError, "Slow down"), times: 1},
			final: both(ok), retried: true, effect: true},
		{name: "302 redirect", script: &script{status: 302}, final: both(no)},
		{name: "202 with a malformed body", script: &script{forward: true, status: 202, body: `{"id":`}, final: both(ok), effect: true},
		{name: "202 without body", script: &script{forward: true, status: 202}, final: both(ok), effect: true},
		{name: "200", script: &script{forward: true, status: 200}, final: both(ok), effect: true},
		{name: "no answer within the timeout", script: &script{held: heldAnswer, reset: true, times: 1},
			final: both(ok), retried: true, effect: true},
		{name: "answer after the timeout", script: &script{forward: true, held: heldAnswer, times: 1},
			final: both(ok), retried: true, effect: true, late: true},
		{name: "reset after the partner applied it", script: &script{forward: true, reset: true, times: 1},
			final: both(ok), retried: true, effect: true},
		{name: "body trickled past the timeout", script: &script{forward: true, trickle: withinTimeout, held: heldAnswer, times: 1},
			final: both(ok), retried: true, effect: true, late: true},
		{name: "connection refused", net: netRefused, final: both(ok), retried: true, effect: true},
		{name: "connection reset before the request was sent", net: netResetSoon, final: both(ok), retried: true, effect: true},
		{name: "TLS handshake failure", net: netBadTLS, final: both(ok), retried: true, effect: true},
		{name: "network stalls", net: netStall, final: both(ok), retried: true, effect: true},
	}
	type kindRow struct {
		kind qrswitch.AdviceKind
		row  adviceRow
		i    int
	}
	var all []kindRow
	for i, kind := range []qrswitch.AdviceKind{qrswitch.Confirmation, qrswitch.Reversal} {
		for _, tt := range rows {
			all = append(all, kindRow{kind, tt, i})
		}
	}
	concurrently(t, matrixConcurrency, all, func(r kindRow) string { return string(r.kind) + "/" + r.row.name }, func(t *testing.T, r kindRow) {
		testAdviceFault(t, fh, r.kind, r.row, r.row.final[r.i])
	})
}

func testAdviceFault(t *testing.T, fh *faultHarness, kind qrswitch.AdviceKind, tt adviceRow, final string) {
	var l *lane
	if tt.net != noNetFault {
		l = fh.lane(t)
	}
	req := fh.approved(t, l, 1002)
	op, path, traceOp, doneState, failState := opConfirm, "/qr/v1/payments/confirmations", "confirmPayment", "CONFIRMED", "CONFIRM_FAILED"
	var msg any
	var adviceID string
	if kind == qrswitch.Confirmation {
		c := confirmation(req.ID)
		msg, adviceID = c, c.ID
	} else {
		r := reversal(req.ID, wire.ReasonCancelled)
		msg, adviceID = r, r.ID
		op, path, traceOp, doneState, failState = opReverse, "/qr/v1/payments/reversals", "reversePayment", "REVERSED", "REVERSAL_FAILED"
	}
	release := func() {}
	if tt.script != nil {
		var s script
		s, release = withRelease(t, *tt.script)
		fh.partner.set(op, req.ID, s)
	}
	tt.net.apply(t, fh, l)

	// The retailer is told 202 as soon as the advice is stored, whatever
	// the partner does later, and the same answer for every repeat.
	first := fh.Post(t, path, ShopUser, ShopPass, msg)
	if first.status != http.StatusAccepted {
		t.Fatalf("advice = %d %s, want 202", first.status, first.body)
	}
	akey := qrswitch.AdviceKey("shop-1", adviceID)
	t.Cleanup(func() {
		if t.Failed() {
			a, err := fh.Srv.Store().Advice(t.Context(), akey)
			b, _ := json.MarshalIndent(struct {
				Advice *qrswitch.Advice
				Err    error
				Story  qrswitch.Story
			}{a, err, fh.story(t, req.ID)}, "", "  ")
			t.Logf("advice and story at the failure:\n%s", b)
		}
	})
	if tt.script != nil && tt.script.held != notHeld {
		// A held answer is released once the switch has traced the
		// attempt as unknown (its timeout passed).
		eventually(t, "first attempt timed out", func() bool {
			got := answers(fh.story(t, req.ID), traceOp, adviceID)
			return len(got) > 0 && got[0].Outcome == unknown
		})
		release()
	}
	if l != nil {
		eventually(t, "two attempts through the fault", func() bool {
			a, err := fh.Srv.Store().Advice(t.Context(), akey)
			return err == nil && a.Attempts >= 2
		})
		if a, _ := fh.Srv.Store().Advice(t.Context(), akey); a.State != qrswitch.AdvicePending || a.LastError == "" {
			t.Errorf("advice during the fault = %s (last error %q), want PENDING with the error recorded", a.State, a.LastError)
		}
		l.heal(t)
	}
	want := doneState
	if final == failed {
		want = failState
	}
	fh.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), want)
	a, err := fh.Srv.Store().Advice(t.Context(), akey)
	if err != nil {
		t.Fatal(err)
	}
	if a.State != qrswitch.AdviceDone || a.Outcome.String() != final || a.LeaseOwner != "" {
		t.Fatalf("advice = %s %s (lease %q), want DONE %s, no lease", a.State, a.Outcome, a.LeaseOwner, final)
	}
	switch {
	case tt.retried && a.Attempts < 2:
		t.Errorf("advice ended after %d attempt(s), want it sent again after the unknown", a.Attempts)
	case !tt.retried && a.Attempts != 1:
		t.Errorf("advice took %d attempts, want exactly 1", a.Attempts)
	}
	if tt.script != nil && !tt.retried {
		if n := fh.partner.deliveries(op, req.ID); n != 1 {
			t.Errorf("partner received the advice %d times, want once", n)
		}
	}

	// The trace shows every attempt with its outcome, and the end.
	st := fh.story(t, req.ID)
	got := answers(st, traceOp, adviceID)
	if len(got) != a.Attempts {
		t.Errorf("trace has %d partner answers to the advice, want one per attempt (%d)", len(got), a.Attempts)
	}
	if len(got) > 0 {
		firstOutcome := final
		if tt.retried {
			firstOutcome = unknown
		}
		if got[0].Outcome != firstOutcome || got[len(got)-1].Outcome != final {
			t.Errorf("trace outcomes %s … %s, want %s … %s", got[0].Outcome, got[len(got)-1].Outcome, firstOutcome, final)
		}
	}
	finalEvent := false
	for _, e := range st.Trace {
		finalEvent = finalEvent || e.Operation == "adviceFinal" && strings.Contains(e.Note, adviceID)
	}
	if !finalEvent {
		t.Error("trace has no adviceFinal event for the advice")
	}
	if tt.late {
		eventually(t, "late answer traced", func() bool {
			return len(lateAnswers(fh.story(t, req.ID), traceOp, adviceID)) == 1
		})
	}

	// The partner applied it exactly once, or not at all.
	le, seen := fh.ledgerAdvice(adviceID)
	if tt.effect {
		wantEffect := electrumsim.StateCaptured
		if kind == qrswitch.Reversal {
			wantEffect = electrumsim.StateReleased
		}
		if !seen || !le.EffectApplied || le.Effect != wantEffect {
			t.Errorf("partner ledger = %+v, want the advice applied (%s)", le, wantEffect)
		}
		if pe, _ := fh.ledgerPayment(req.ID); pe.State != wantEffect {
			t.Errorf("partner's payment is %s, want %s", pe.State, wantEffect)
		}
	} else if seen && le.EffectApplied {
		t.Errorf("partner ledger = %+v, want no effect", le)
	}

	again := fh.Post(t, path, ShopUser, ShopPass, msg)
	if again.status != first.status || string(again.body) != string(first.body) {
		t.Errorf("repeated advice = %d %s, want the first answer %d %s again", again.status, again.body, first.status, first.body)
	}
}
