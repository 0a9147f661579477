package qrswitch_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/railtest"
	"github.com/qrswitch/qrswitch/qr"
	"github.com/qrswitch/qrswitch/store/sqlite"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// The engine's behaviour, tested against scripted rails (railtest.Fake) on
// a real embedded store: what a rail's answers, late answers, reports of
// pull rails and operators' pauses do to payments and advices. Whole
// processes (HTTP, TLS, the Electrum simulator) are tested in
// cmd/qrswitch/internal/server.

// clock is a test's settable clock; zero offset runs with the wall clock.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().UTC().Add(c.off)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

type engineHarness struct {
	e     *qrswitch.Engine
	store qrswitch.Store
	push  *railtest.Fake // partner "push": scanned, then sent the payment
	pull  *railtest.Fake // partner "pull": offers on codes, paid on its own
	clock *clock
	r     qrswitch.Retailer
}

func newEngine(t *testing.T, opts func(*qrswitch.Options)) *engineHarness {
	t.Helper()
	st, err := sqlite.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "engine.db")+"?synchronous=normal", sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := &engineHarness{store: st, push: &railtest.Fake{}, pull: &railtest.Fake{Pull: true}, clock: &clock{},
		r: qrswitch.Retailer{ID: "shop-1", InstitutionID: "1234"}}
	var host lateHost
	pushRail, _ := h.push.New(partners.Config{PartnerID: "push", Name: "Push Wallet", Host: &host})
	pullRail, _ := h.pull.New(partners.Config{PartnerID: "pull", Name: "Pull Rail", Host: &host})
	o := qrswitch.Options{
		Store: st, Logger: zerolog.Nop(), SoleOwner: true, Now: h.clock.now,
		Partners: []*partners.Partner{
			{ID: "push", Name: "Push Wallet", Timeout: time.Second, Rail: pushRail},
			{ID: "pull", Name: "Pull Rail", Timeout: time.Second, Rail: pullRail},
		},
		ScanWait: 5 * time.Second, RetailerTimeout: 30 * time.Second, EarlyScanGrace: time.Second, LateWindow: 2 * time.Second,
		SAF: qrswitch.SAFOptions{InitialInterval: 20 * time.Millisecond, MaxInterval: 100 * time.Millisecond, GiveUpAfter: time.Hour, Poll: 20 * time.Millisecond},
	}
	if opts != nil {
		opts(&o)
	}
	h.e, err = qrswitch.New(o)
	if err != nil {
		t.Fatal(err)
	}
	host.e = h.e
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.e.Run(ctx); close(done) }()
	t.Cleanup(func() { stop(); <-done; st.Close() })
	return h
}

// lateHost hands rails built before the engine to it once it exists, as
// the wiring does.
type lateHost struct{ e *qrswitch.Engine }

func (h *lateHost) Scanned(ctx context.Context, p string, s *wire.ScanNotification, raw []byte) *wire.Failure {
	return h.e.Scanned(ctx, p, s, raw)
}
func (h *lateHost) Paid(ctx context.Context, p *partners.Paid) error { return h.e.Paid(ctx, p) }
func (h *lateHost) Seen(ctx context.Context, s *partners.Seen) error { return h.e.Seen(ctx, s) }
func (h *lateHost) OfferEnded(ctx context.Context, tranID, partnerID, reason string) error {
	return h.e.OfferEnded(ctx, tranID, partnerID, reason)
}

func originator() *wire.Originator {
	return &wire.Originator{Institution: wire.Institution{ID: "1234", Name: "Shop"}, TerminalID: "T0000001",
		Merchant: wire.Merchant{MerchantType: "5411", MerchantID: "M00000000000001",
			MerchantName: wire.MerchantName{Name: "Corner Shop", City: "Cape Town", Region: "WC", Country: "ZA"}}}
}

func stamp() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000Z") }

func (h *engineHarness) qrCode(t *testing.T, amount int64) *wire.CreateQrCodeResponse {
	t.Helper()
	req := &wire.CreateQrCodeRequest{ID: wire.NewID(), Time: stamp(), Originator: originator(), Client: &wire.Institution{ID: "pos", Name: "POS"},
		QrProperties: &wire.QrProperties{Value: &wire.LedgerAmount{Amount: amount, Currency: "710"}}}
	resp, f := h.e.CreateQR(t.Context(), h.r, req, nil)
	if f != nil {
		t.Fatalf("CreateQR = %v", f)
	}
	return resp
}

type payResult struct {
	resp *wire.PaymentResponse
	fail *wire.Failure
	at   time.Time
}

func paymentRequest(tranID string, amount int64) *wire.PaymentRequest {
	return &wire.PaymentRequest{
		Transaction: wire.Transaction{ID: wire.NewID(), Time: stamp(), Originator: originator(), Client: &wire.Institution{ID: "pos", Name: "POS"}},
		Amounts:     &wire.Amounts{RequestAmount: &wire.LedgerAmount{Amount: amount, Currency: "710"}}, TranID: tranID,
	}
}

func (h *engineHarness) payAsync(t *testing.T, tranID string, amount int64) (*wire.PaymentRequest, <-chan payResult) {
	req := paymentRequest(tranID, amount)
	ch := make(chan payResult, 1)
	go func() {
		resp, f := h.e.Pay(context.Background(), h.r, req, nil)
		ch <- payResult{resp, f, time.Now()}
	}()
	h.waitState(t, req.ID, outcome.AwaitingScan)
	return req, ch
}

func (h *engineHarness) scan(t *testing.T, tranID string) *wire.Failure {
	t.Helper()
	return h.e.Scanned(t.Context(), "push", &wire.ScanNotification{ID: wire.NewID(), Time: stamp(),
		Partner: &wire.Institution{ID: "push", Name: "Push Wallet"}, TranID: tranID}, nil)
}

// waitState waits until the payment reaches state (a backstop of 30 s:
// the verdict is the state itself).
func (h *engineHarness) waitState(t *testing.T, requestID string, state outcome.State) *qrswitch.Payment {
	t.Helper()
	key := qrswitch.PaymentKey(h.r.ID, requestID)
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := h.store.Payment(t.Context(), key)
		if err == nil && p.State == state {
			return p
		}
		if time.Now().After(deadline) {
			got := "none"
			if p != nil {
				got = string(p.State)
			}
			t.Fatalf("payment %s is %s (%v), want %s", requestID, got, err, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *engineHarness) trace(t *testing.T, requestID string) []qrswitch.TraceEntry {
	t.Helper()
	tr, err := h.store.Trace(t.Context(), qrswitch.PaymentKey(h.r.ID, requestID))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestPushPaymentOutcomes(t *testing.T) {
	h := newEngine(t, nil)
	for _, tt := range []struct {
		name   string
		step   railtest.Step
		status int
		state  outcome.State
	}{
		{"approved", railtest.Step{Outcome: outcome.Successful}, 201, outcome.Approved},
		{"declined with the rail's decline", railtest.Step{Outcome: outcome.Failed, Decline: wire.Fail(503, wire.UpstreamUnavailable, "Wallet down", "", "")}, 503, outcome.Declined},
		{"a rail's decline outside pay's failed statuses", railtest.Step{Outcome: outcome.Failed, Decline: wire.Fail(504, wire.InsufficientFunds, "No funds", "", "")}, 400, outcome.Declined},
		{"a rail that built no decline", railtest.Step{Outcome: outcome.Failed, NoDecline: true}, 400, outcome.Declined},
		{"unknown", railtest.Step{Outcome: outcome.Unknown}, 504, outcome.Reversing},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code := h.qrCode(t, 1000)
			h.push.Script("pay", tt.step)
			if tt.state == outcome.Reversing {
				// The reversal's answer waits until the test has seen
				// REVERSING: a loaded machine's poll could otherwise meet
				// the REVERSED that follows.
				release := make(chan struct{})
				h.push.Script("reverse", railtest.Step{Outcome: outcome.Successful, Release: release})
				defer close(release)
			}
			req, answer := h.payAsync(t, code.TranID, 1000)
			if f := h.scan(t, code.TranID); f != nil {
				t.Fatalf("scan = %v", f)
			}
			r := <-answer
			status := 201
			if r.fail != nil {
				status = r.fail.Status
				if len(r.fail.Detail.ID) > 20 || r.fail.Detail.OriginalID != req.ID || r.fail.Detail.TranID != code.TranID {
					t.Errorf("ErrorDetail %+v: want an id ≤ 20 naming the request and tranId", r.fail.Detail)
				}
			}
			if status != tt.status {
				t.Fatalf("pay = %d %+v, want %d", status, r.fail, tt.status)
			}
			h.waitState(t, req.ID, tt.state)
			if tt.state == outcome.Approved && (r.resp == nil || r.resp.Partner == nil || r.resp.Partner.ID != "push" || r.resp.ID != req.ID) {
				t.Fatalf("approval = %+v, want the retailer's id and the partner named", r.resp)
			}
		})
	}
}

// TestLateAnswerIsTracedAndIgnored: a partner that answers after its
// timeout leaves the payment unknown (504, a timeout reversal); its answer
// is traced as ignored; and the reversal, deferred while the call could
// still deliver the payment, goes as soon as the late answer is in — not
// when the whole late window is over.
func TestLateAnswerIsTracedAndIgnored(t *testing.T) {
	h := newEngine(t, func(o *qrswitch.Options) { o.LateWindow = time.Minute })
	release := make(chan struct{})
	h.push.Script("pay", railtest.Step{Outcome: outcome.Successful, Release: release})
	code := h.qrCode(t, 1000)
	req, answer := h.payAsync(t, code.TranID, 1000)
	h.scan(t, code.TranID)
	r := <-answer
	if r.fail == nil || r.fail.Status != 504 {
		t.Fatalf("pay with a partner past its timeout = %+v, want 504", r.fail)
	}
	p := h.waitState(t, req.ID, outcome.Reversing)
	if n := len(h.push.Calls("reverse")); n != 0 {
		t.Fatalf("%d reversals sent while the timed-out call may still deliver the payment, want 0", n)
	}
	close(release) // the late approval arrives
	h.waitState(t, req.ID, outcome.Reversed)
	rev := h.push.Calls("reverse")
	if len(rev) != 1 || rev[0].ID != p.AdviceKey[len("switch/"):] {
		t.Fatalf("reversals sent = %+v, want the one timeout reversal", rev)
	}
	adv, err := h.store.Advice(t.Context(), p.AdviceKey)
	if err != nil {
		t.Fatal(err)
	}
	if !rev[0].At.Before(adv.QueuedAt.Add(time.Minute)) {
		t.Fatalf("reversal sent at %s, after its whole deferral (%s): the late answer should have released it", rev[0].At, adv.QueuedAt.Add(time.Minute))
	}
	var late bool
	for _, e := range h.trace(t, req.ID) {
		if e.Kind == qrswitch.KindAnswer && e.Code == "FAKE ok" && e.Outcome == "" && len(e.Note) > 0 {
			late = true
		}
	}
	if !late {
		t.Fatal("the late approval is not traced as ignored")
	}
}

// TestRetailerTimeoutBoundsThePartner: a scan late in the scan wait gives
// the partner what is left of the retailer's timeout, not its own whole
// timeout, so the POS has its answer in time.
func TestRetailerTimeoutBoundsThePartner(t *testing.T) {
	h := newEngine(t, func(o *qrswitch.Options) {
		o.RetailerTimeout = 4 * time.Second
		o.ScanWait = 3 * time.Second
		o.Partners[0].Timeout = time.Minute
	})
	release := make(chan struct{})
	defer close(release)
	h.push.Script("pay", railtest.Step{Outcome: outcome.Successful, Release: release})
	code := h.qrCode(t, 1000)
	req, answer := h.payAsync(t, code.TranID, 1000)
	h.scan(t, code.TranID)
	r := <-answer
	if r.fail == nil || r.fail.Status != 504 {
		t.Fatalf("pay = %+v, want 504", r.fail)
	}
	p := h.waitState(t, req.ID, outcome.Reversing)
	for _, e := range h.trace(t, req.ID) {
		if e.Kind == qrswitch.KindAnswer && e.Peer == "partner:push" && e.Operation == "pay" {
			if budget := p.CreatedAt.Add(4*time.Second - 2*time.Second).Sub(e.At.Add(-time.Duration(e.LatencyMS * float64(time.Millisecond)))); time.Duration(e.LatencyMS*float64(time.Millisecond)) > budget+time.Millisecond {
				t.Fatalf("the partner was given %.0f ms, more than the %s left of the retailer's timeout", e.LatencyMS, budget)
			}
			return
		}
	}
	t.Fatal("no partner answer traced")
}

func TestPullRailPaysTheHeldRequest(t *testing.T) {
	h := newEngine(t, nil)
	code := h.qrCode(t, 2500)
	decoded, err := qr.Decode(code.QrCode)
	if err != nil {
		t.Fatal(err)
	}
	var offered bool
	for _, a := range decoded.Accounts() {
		if a.GUID == railtest.GUID {
			v, _ := a.Field("01")
			offered = v == code.TranID
		}
	}
	if !offered {
		t.Fatalf("QR code %s lacks the pull rail's template", code.QrCode)
	}
	ctx := t.Context()
	paid := &partners.Paid{PartnerID: "pull", TranID: code.TranID, Reference: "money-1", Amount: &wire.LedgerAmount{Amount: 2500, Currency: "710"}}
	if err := h.e.Paid(ctx, paid); !errors.Is(err, partners.ErrNoRequestYet) {
		t.Fatalf("Paid before the payment request = %v, want ErrNoRequestYet", err)
	}
	req, answer := h.payAsync(t, code.TranID, 2500)
	if err := h.e.Paid(ctx, &partners.Paid{PartnerID: "pull", TranID: code.TranID, Reference: "short", Amount: &wire.LedgerAmount{Amount: 2400, Currency: "710"}}); !errors.Is(err, partners.ErrAmount) {
		t.Fatalf("Paid short = %v, want ErrAmount", err)
	}
	if err := h.e.Paid(ctx, paid); err != nil {
		t.Fatal(err)
	}
	if err := h.e.Paid(ctx, paid); err != nil {
		t.Fatalf("Paid again (the same money) = %v, want nil", err)
	}
	r := <-answer
	if r.fail != nil || r.resp.Partner == nil || r.resp.Partner.ID != "pull" || r.resp.Amounts.ApprovedAmount.Amount != 2500 {
		t.Fatalf("pay = %+v %+v, want 201 naming the pull partner and the amount received", r.resp, r.fail)
	}
	p := h.waitState(t, req.ID, outcome.Approved)
	if p.Paid == nil || p.Paid.Reference != "money-1" || len(h.pull.Calls("pay")) != 0 {
		t.Fatalf("payment %+v (paid %+v), pays sent %d: want the money recorded and nothing sent", p, p.Paid, len(h.pull.Calls("pay")))
	}
	// A reversal of money that arrived is the rail's refund.
	if a := h.e.Reverse(ctx, h.r, &wire.PaymentReversal{BasicAdvice: wire.BasicAdvice{ID: wire.NewID(), RequestID: req.ID, Time: stamp()}, ReversalReason: wire.ReasonCancelled}, nil); a.Status != 202 {
		t.Fatalf("reverse = %d %s", a.Status, a.Body)
	}
	h.waitState(t, req.ID, outcome.Reversed)
	refunds := h.pull.Calls("refund")
	if len(refunds) != 1 || refunds[0].Advice.Paid == nil || refunds[0].Advice.Paid.Reference != "money-1" {
		t.Fatalf("refunds = %+v, want one carrying the money's reference", refunds)
	}
	// Money for a code whose payment ended is refused.
	if err := h.e.Paid(ctx, &partners.Paid{PartnerID: "pull", TranID: code.TranID, Reference: "money-2", Amount: paid.Amount}); !errors.Is(err, partners.ErrNotWaiting) {
		t.Fatalf("Paid after the payment ended = %v, want ErrNotWaiting", err)
	}
}

// TestPausedQueueDoesNotAge: while an operator holds a queue paused,
// give_up_after stops counting for its advices; resumed, they go on where
// they were instead of being dead-lettered for the time they waited.
func TestPausedQueueDoesNotAge(t *testing.T) {
	h := newEngine(t, func(o *qrswitch.Options) { o.SAF.GiveUpAfter = time.Hour })
	code := h.qrCode(t, 1000)
	req, answer := h.payAsync(t, code.TranID, 1000)
	h.scan(t, code.TranID)
	<-answer
	h.waitState(t, req.ID, outcome.Approved)
	op := qrswitch.Operator{Name: "alice", Reason: "partner maintenance"}
	if _, f := h.e.PausePartner(t.Context(), op, "push"); f != nil {
		t.Fatal(f)
	}
	h.push.Script("confirm", railtest.Step{Outcome: outcome.Unknown})
	if a := h.e.Confirm(t.Context(), h.r, &wire.PaymentConfirmation{BasicAdvice: wire.BasicAdvice{ID: wire.NewID(), RequestID: req.ID, Time: stamp()}}, nil); a.Status != 202 {
		t.Fatalf("confirm = %d %s", a.Status, a.Body)
	}
	h.clock.advance(3 * time.Hour) // paused three times give_up_after
	if _, f := h.e.ResumePartner(t.Context(), op, "push"); f != nil {
		t.Fatal(f)
	}
	p := h.waitState(t, req.ID, outcome.Confirmed) // one unknown, then the approval
	adv, err := h.store.Advice(t.Context(), p.AdviceKey)
	if err != nil || adv.State != qrswitch.AdviceDone || adv.Attempts != 2 {
		t.Fatalf("confirmation = %+v, %v; want done after 2 attempts, never dead", adv, err)
	}
}

// TestApprovedWithoutAdviceBecomesUnsettled: an approved payment the
// retailer never confirms nor reverses ends UNSETTLED after the advice
// deadline, and an advice after that is refused.
func TestApprovedWithoutAdviceBecomesUnsettled(t *testing.T) {
	h := newEngine(t, func(o *qrswitch.Options) { o.AdviceDeadline = 24 * time.Hour })
	code := h.qrCode(t, 1000)
	req, answer := h.payAsync(t, code.TranID, 1000)
	h.scan(t, code.TranID)
	<-answer
	h.waitState(t, req.ID, outcome.Approved)
	if err := h.e.SettleAbandoned(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.waitState(t, req.ID, outcome.Approved) // not yet
	h.clock.advance(25 * time.Hour)
	if err := h.e.SettleAbandoned(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.waitState(t, req.ID, outcome.Unsettled)
	a := h.e.Confirm(t.Context(), h.r, &wire.PaymentConfirmation{BasicAdvice: wire.BasicAdvice{ID: wire.NewID(), RequestID: req.ID, Time: stamp()}}, nil)
	if a.Status != http.StatusBadRequest {
		t.Fatalf("confirm of an UNSETTLED payment = %d %s, want 400", a.Status, a.Body)
	}
	if len(h.push.Calls("confirm")) != 0 {
		t.Fatal("a confirmation of an UNSETTLED payment was sent")
	}
}

// TestEarlyScansOff: with early_scan_grace 0 a scan before its payment
// request is declined at once, as the interface does.
func TestEarlyScansOff(t *testing.T) {
	h := newEngine(t, func(o *qrswitch.Options) { o.EarlyScanGrace = 0 })
	code := h.qrCode(t, 1000)
	start := time.Now()
	f := h.scan(t, code.TranID)
	if f == nil || f.Status != 400 || f.Detail.ErrorType != wire.UnableToLocateRecord {
		t.Fatalf("early scan = %+v, want 400 UNABLE_TO_LOCATE_RECORD", f)
	}
	if held := h.e.Held(); held != 0 {
		t.Fatalf("%d requests held after an early scan with the grace off, want 0 (declined at %s)", held, time.Since(start))
	}
}

func TestOfferedCodeEchoesQrProperties(t *testing.T) {
	h := newEngine(t, nil)
	req := &wire.CreateQrCodeRequest{ID: wire.NewID(), Time: stamp(), Originator: originator(), Client: &wire.Institution{ID: "pos", Name: "POS"}}
	resp, f := h.e.CreateQR(t.Context(), h.r, req, nil)
	if f != nil {
		t.Fatal(f)
	}
	qp := resp.QrProperties
	if qp == nil || qp.ExpiryDate == "" || qp.SingleUse == nil || !*qp.SingleUse || qp.Scheme == "" {
		t.Fatalf("qrProperties = %+v, want what the switch applied (expiry, single use, scheme)", qp)
	}
	if _, err := time.Parse(time.RFC3339, qp.ExpiryDate); err != nil {
		t.Fatalf("expiryDate %q: %v", qp.ExpiryDate, err)
	}
	if req.QrProperties != nil {
		t.Fatal("CreateQR changed the request")
	}
}

// TestPullMoneyWithoutRefundWaitsForAnOperator: the reversal of money that
// arrived on a rail that cannot refund is not sent nor pretended done: it
// waits, OPERATOR, until a person returns the money and marks it final.
func TestPullMoneyWithoutRefundWaitsForAnOperator(t *testing.T) {
	fake := &railtest.Fake{Pull: true, NoRefund: true}
	nr, _ := fake.New(partners.Config{PartnerID: "pull", Name: "Pull Rail"})
	h := newEngine(t, func(o *qrswitch.Options) { o.Partners[1].Rail = nr })
	code := h.qrCode(t, 700)
	req, answer := h.payAsync(t, code.TranID, 700)
	if err := h.e.Paid(t.Context(), &partners.Paid{PartnerID: "pull", TranID: code.TranID, Reference: "m-1", Amount: &wire.LedgerAmount{Amount: 700, Currency: "710"}}); err != nil {
		t.Fatal(err)
	}
	<-answer
	if a := h.e.Reverse(t.Context(), h.r, &wire.PaymentReversal{BasicAdvice: wire.BasicAdvice{ID: wire.NewID(), RequestID: req.ID, Time: stamp()}, ReversalReason: wire.ReasonCancelled}, nil); a.Status != 202 {
		t.Fatalf("reverse = %d %s", a.Status, a.Body)
	}
	p := h.waitState(t, req.ID, outcome.Reversing)
	adv, err := h.store.Advice(t.Context(), p.AdviceKey)
	if err != nil || adv.State != qrswitch.AdviceOperator {
		t.Fatalf("reversal = %+v, %v; want OPERATOR", adv, err)
	}
	st, err := h.store.QueueStats(t.Context(), "pull")
	if err != nil || st.Operator != 1 {
		t.Fatalf("queue stats = %+v, %v; want the advice counted as waiting for an operator", st, err)
	}
	if n := len(fake.Calls("reverse")) + len(fake.Calls("refund")); n != 0 {
		t.Fatalf("%d reversals or refunds sent to a rail that cannot refund", n)
	}
	op := qrswitch.Operator{Name: "alice", Reason: "refunded by bank transfer, ticket 77"}
	if _, f := h.e.FinalizeAdvice(t.Context(), op, p.AdviceKey, outcome.Successful); f != nil {
		t.Fatal(f)
	}
	h.waitState(t, req.ID, outcome.Reversed)
}

// panicOnQR is a real store whose QR panics, once, when asked for the
// tranId it was armed with.
type panicOnQR struct {
	qrswitch.Store
	mu     sync.Mutex
	tranID string
}

var errQRPanic = errors.New("store panicked reading a QR code")

func (s *panicOnQR) arm(tranID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tranID = tranID
}

func (s *panicOnQR) QR(ctx context.Context, tranID string) (*qrswitch.QRCode, error) {
	s.mu.Lock()
	armed := tranID == s.tranID
	if armed {
		s.tranID = ""
	}
	s.mu.Unlock()
	if armed {
		panic(errQRPanic)
	}
	return s.Store.QR(ctx, tranID)
}

// TestFailedAdmitHoldsNothing: a payment request that Admit refuses, or
// whose admission panics (the pay handler's httpapi.Apart raises the panic
// again, so the router answers 500), is never awaited, so it must leave
// nothing held: Held is what a draining process waits to reach 0. The
// engine then pays the next request as usual.
func TestFailedAdmitHoldsNothing(t *testing.T) {
	st := new(panicOnQR)
	h := newEngine(t, func(o *qrswitch.Options) { st.Store = o.Store; o.Store = st })
	for _, tt := range []struct {
		name      string
		tranID    func(t *testing.T) string
		wantPanic bool
	}{
		{"unknown tranId", func(*testing.T) string { return "unknown-tran-id" }, false},
		{"store panics", func(t *testing.T) string {
			code := h.qrCode(t, 1000)
			st.arm(code.TranID)
			return code.TranID
		}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := paymentRequest(tt.tranID(t), 1000)
			var (
				held *qrswitch.Held
				f    *wire.Failure
				p    any
			)
			func() {
				defer func() { p = recover() }()
				held, f = h.e.Admit(t.Context(), h.r, req, nil)
			}()
			switch {
			case tt.wantPanic && p != errQRPanic:
				t.Fatalf("Admit with a store that panics: recovered %v, want the store's panic raised", p)
			case !tt.wantPanic && p != nil:
				t.Fatalf("Admit panicked: %v", p)
			case !tt.wantPanic && (held != nil || f == nil || f.Status != 400 || f.Detail.ErrorType != wire.InvalidTranID):
				t.Fatalf("Admit = %v, %+v; want 400 %s", held, f, wire.InvalidTranID)
			}
			if n := h.e.Held(); n != 0 {
				t.Errorf("Held() = %d after a failed admission, want 0", n)
			}
			if _, err := h.store.Payment(t.Context(), qrswitch.PaymentKey(h.r.ID, req.ID)); !errors.Is(err, qrswitch.ErrNotFound) {
				t.Errorf("payment of the failed admission: %v, want ErrNotFound (nothing stored)", err)
			}
		})
	}

	code := h.qrCode(t, 1000)
	req, answer := h.payAsync(t, code.TranID, 1000)
	if f := h.scan(t, code.TranID); f != nil {
		t.Fatalf("scan = %v", f)
	}
	if r := <-answer; r.fail != nil || r.resp == nil || r.resp.ID != req.ID {
		t.Fatalf("pay after the failed admissions = %+v %+v, want 201", r.resp, r.fail)
	}
	h.waitState(t, req.ID, outcome.Approved)
	if n := h.e.Held(); n != 0 {
		t.Errorf("Held() = %d after the payment was answered, want 0", n)
	}
}
