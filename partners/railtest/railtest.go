// Package railtest holds what every rail is held to — a conformance suite
// of the seam's promises, run by each rail's own tests against a real
// partner side speaking the rail's protocol — and Fake, a scripted rail for
// tests of the engine and the wiring.
//
// RunPush checks a push rail (one its partner's app scans for, then is sent
// the payment): the outcome of every kind of answer (approval, decline, the
// rail's own unknown, a malformed approval), the retailer's decline built
// within what the interface allows, a timeout honoured as unknown, nothing
// sent on a refused connection and an advice then left unknown (repeated),
// a payment never re-sent by the rail, duplicate advices, and concurrent
// use. RunPull checks a pull rail (one that offers its template on a code
// and is paid on its own protocol): the template fits an EMVCo code, the
// money is reported to the Host once with the code's amount, a repeat of
// the customer's side is not reported twice, money the Host refuses is not
// kept as paid, and Pay is declined as not supported. Late answers being
// recorded and ignored is the engine's promise, tested with Fake in
// package switch.
package railtest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/qr"
)

// Behaviour is how a partner under test answers.
type Behaviour int

// The behaviours a Partner must play.
const (
	// Approve: the operation succeeds.
	Approve Behaviour = iota
	// Decline: a final failure in the rail's protocol (Electrum: 400).
	Decline
	// Unknown: the rail's own unknown answer (Electrum: 500 or 504).
	Unknown
	// Hang: no answer until the caller gives up.
	Hang
	// Malformed: a success whose body cannot be read.
	Malformed
)

// The operations of a push rail.
const (
	OpPay     = "pay"
	OpConfirm = "confirm"
	OpReverse = "reverse"
)

// Partner is the partner side of a push rail under test: a real server
// speaking the rail's protocol, whose behaviour the suite sets.
type Partner interface {
	// Behave makes the partner answer every following exchange of op like b.
	Behave(op string, b Behaviour)
	// Received counts the exchanges of op that reached the partner.
	Received(op string) int
	// Stop takes the partner off the network: connections are refused.
	Stop()
}

// Push describes a push rail to RunPush.
type Push struct {
	// New builds a fresh partner side and the rail under test talking to
	// it; a test's Cleanup closes them.
	New func(t *testing.T) (partners.Rail, Partner)
	// Payment, Confirmation and Reversal return a new message of each
	// kind, with fresh ids.
	Payment      func() *partners.Payment
	Confirmation func() *partners.Advice
	Reversal     func() *partners.Advice
}

// RunPush runs the conformance suite on a push rail.
func RunPush(t *testing.T, h Push) {
	t.Run("approval", func(t *testing.T) {
		r, _ := h.New(t)
		p := h.Payment()
		a := r.Pay(t.Context(), p)
		if a.Outcome != outcome.Successful || a.Response == nil || a.Decline != nil {
			t.Fatalf("Pay(approved) = %s, response %v, decline %v; want successful with a response", a.Outcome, a.Response != nil, a.Decline)
		}
		if a.Code == "" || len(a.Sent) == 0 || a.Latency <= 0 {
			t.Errorf("Pay(approved): code %q, %d bytes sent, latency %s; want all three", a.Code, len(a.Sent), a.Latency)
		}
	})
	t.Run("decline", func(t *testing.T) {
		r, pt := h.New(t)
		pt.Behave(OpPay, Decline)
		p := h.Payment()
		a := r.Pay(t.Context(), p)
		if a.Outcome != outcome.Failed || a.Response != nil {
			t.Fatalf("Pay(declined) = %s, response %v; want failed", a.Outcome, a.Response)
		}
		CheckDecline(t, a.Decline)
	})
	t.Run("rail's unknown", func(t *testing.T) {
		r, pt := h.New(t)
		pt.Behave(OpPay, Unknown)
		a := r.Pay(t.Context(), h.Payment())
		if a.Outcome != outcome.Unknown || a.Decline != nil || a.Code == "" {
			t.Fatalf("Pay(unknown) = %s, decline %v, code %q; want unknown, no decline, the rail's code", a.Outcome, a.Decline, a.Code)
		}
		if n := pt.Received(OpPay); n != 1 {
			t.Fatalf("the partner received the payment %d times, want once: a rail never re-sends a payment", n)
		}
	})
	t.Run("malformed approval", func(t *testing.T) {
		r, pt := h.New(t)
		pt.Behave(OpPay, Malformed)
		if a := r.Pay(t.Context(), h.Payment()); a.Outcome != outcome.Unknown {
			t.Fatalf("Pay(malformed approval) = %s, want unknown: it cannot prove what was approved", a.Outcome)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		r, pt := h.New(t)
		pt.Behave(OpPay, Hang)
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		done := make(chan *partners.Answer, 1)
		go func() { done <- r.Pay(ctx, h.Payment()) }()
		select {
		case a := <-done:
			if a.Outcome != outcome.Unknown || errors.Is(a.Err, outcome.ErrNotSent) {
				t.Fatalf("Pay(no answer) = %s, %v; want unknown, and not 'not sent'", a.Outcome, a.Err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Pay did not return after its context ended")
		}
	})
	t.Run("refused connection", func(t *testing.T) {
		r, pt := h.New(t)
		pt.Stop()
		a := r.Pay(t.Context(), h.Payment())
		if a.Outcome != outcome.Failed || !errors.Is(a.Err, outcome.ErrNotSent) {
			t.Fatalf("Pay(refused) = %s, %v; want failed, not sent", a.Outcome, a.Err)
		}
		CheckDecline(t, a.Decline)
		for _, adv := range []struct {
			op   string
			send func() *partners.Answer
		}{
			{OpConfirm, func() *partners.Answer { return r.Confirm(t.Context(), h.Confirmation()) }},
			{OpReverse, func() *partners.Answer { return r.Reverse(t.Context(), h.Reversal()) }},
		} {
			if a := adv.send(); a.Outcome != outcome.Unknown {
				t.Errorf("%s(refused) = %s, want unknown: store-and-forward repeats an advice", adv.op, a.Outcome)
			}
		}
		for _, op := range []string{OpPay, OpConfirm, OpReverse} {
			if n := pt.Received(op); n != 0 {
				t.Errorf("partner received %d %s with its port closed", n, op)
			}
		}
	})
	for _, adv := range []struct {
		op   string
		msg  func() *partners.Advice
		send func(partners.Rail, context.Context, *partners.Advice) *partners.Answer
	}{
		{OpConfirm, h.Confirmation, partners.Rail.Confirm},
		{OpReverse, h.Reversal, partners.Rail.Reverse},
	} {
		t.Run(adv.op, func(t *testing.T) {
			r, pt := h.New(t)
			msg := adv.msg()
			for i := range 2 { // the same advice twice: the partner answers the same
				if a := adv.send(r, t.Context(), msg); a.Outcome != outcome.Successful || a.Code == "" {
					t.Fatalf("%s #%d = %s (%q), want successful", adv.op, i+1, a.Outcome, a.Code)
				}
			}
			if n := pt.Received(adv.op); n != 2 {
				t.Errorf("partner received %d %s, want 2 (one per call)", n, adv.op)
			}
			pt.Behave(adv.op, Unknown)
			if a := adv.send(r, t.Context(), adv.msg()); a.Outcome != outcome.Unknown {
				t.Errorf("%s(rail's unknown) = %s, want unknown", adv.op, a.Outcome)
			}
		})
	}
	t.Run("concurrent", func(t *testing.T) {
		r, pt := h.New(t)
		var wg sync.WaitGroup
		errs := make(chan string, 16)
		for range 16 {
			wg.Go(func() {
				if a := r.Pay(t.Context(), h.Payment()); a.Outcome != outcome.Successful {
					errs <- a.Outcome.String()
				}
			})
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Errorf("a concurrent Pay was %s, want successful", e)
		}
		if n := pt.Received(OpPay); n != 16 {
			t.Errorf("partner received %d payments, want 16", n)
		}
	})
}

// CheckDecline checks a failed payment's retailer answer: a status the
// interface declares for pay that means failed (400 or 503) and an
// ErrorDetail its clients accept (an id of at most 20 characters, a known
// errorType, a message of at most 40).
func CheckDecline(t testing.TB, f *wire.Failure) {
	t.Helper()
	switch {
	case f == nil || f.Detail == nil:
		t.Fatal("a failed payment without a Decline: the engine cannot answer the POS")
	case f.Status != 400 && f.Status != 503:
		t.Errorf("Decline status %d, want 400 or 503 (pay's failed statuses)", f.Status)
	case f.Detail.Validate() != nil || f.Detail.ID == "" || len(f.Detail.ID) > 20 || len([]rune(f.Detail.ErrorMessage)) > wire.MaxErrorMessage:
		t.Errorf("Decline detail %+v: not what the interface allows", f.Detail)
	}
}

// Host is a Host for a pull rail's conformance: it records what the rail
// reports and answers Paid as the test says. Tests of whole switches use
// the engine itself.
type Host struct {
	mu sync.Mutex
	// PaidErr, when set, answers Paid (ErrNotWaiting, ErrAmount, …).
	PaidErr error
	// Records, when set, are the rail's records in a real store: Paid
	// commits the records it is given there, as the engine does with the
	// approval.
	Records partners.Records
	paid    []*partners.Paid
	seen    []*partners.Seen
	ended   []string
	notify  chan struct{}
}

// NewHost returns a Host that accepts every payment.
func NewHost() *Host { return &Host{notify: make(chan struct{}, 64)} }

// Scanned declines: a pull rail has no scans.
func (h *Host) Scanned(context.Context, string, *wire.ScanNotification, []byte) *wire.Failure {
	return wire.Fail(400, wire.FunctionNotSupported, "No scans on a pull rail", "", "")
}

// Paid records a payment report.
func (h *Host) Paid(ctx context.Context, p *partners.Paid) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.PaidErr != nil {
		return h.PaidErr
	}
	for _, q := range h.paid {
		if q.TranID == p.TranID && q.Reference == p.Reference {
			return nil // reported before: the engine's answer too
		}
	}
	if h.Records != nil && len(p.Records) > 0 {
		if err := h.Records.Commit(ctx, p.Records...); err != nil {
			return err
		}
	}
	h.paid = append(h.paid, p)
	select {
	case h.notify <- struct{}{}:
	default:
	}
	return nil
}

// Seen records progress.
func (h *Host) Seen(_ context.Context, s *partners.Seen) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen = append(h.seen, s)
	return nil
}

// OfferEnded records an offer that ended.
func (h *Host) OfferEnded(_ context.Context, tranID, partnerID, reason string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ended = append(h.ended, tranID+": "+reason)
	return nil
}

// PaidReports returns what was reported paid.
func (h *Host) PaidReports() []*partners.Paid {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*partners.Paid(nil), h.paid...)
}

// SeenReports returns the progress reported.
func (h *Host) SeenReports() []*partners.Seen {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*partners.Seen(nil), h.seen...)
}

// Ended returns the offers reported ended, as "tranId: reason".
func (h *Host) Ended() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.ended...)
}

// WaitPaid waits until n payments were reported, or fails t after timeout
// (a backstop: tests decide on the report itself).
func (h *Host) WaitPaid(t testing.TB, n int, timeout time.Duration) []*partners.Paid {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if p := h.PaidReports(); len(p) >= n {
			return p
		}
		select {
		case <-h.notify:
		case <-deadline:
			t.Fatalf("%d payment(s) reported to the Host within %s, want %d", len(h.PaidReports()), timeout, n)
		}
	}
}

// Pull describes a pull rail to RunPull.
type Pull struct {
	// New builds the rail under test (and whatever its paying side needs)
	// reporting to host, keeping its records in records (nil unless
	// Records is set).
	New func(t *testing.T, host partners.Host, records partners.Records) partners.Rail
	// Records, when set, gives each test the rail's records in a fresh
	// real store: offers' records are committed there, and the Host
	// commits what Paid carries, as the engine does.
	Records func(t *testing.T) partners.Records
	// PayOffer pays an offer of the rail in full from the customer's side of
	// its protocol, once (repeat true: its paying side sends its last
	// message again, as a retry would), and returns when the rail has
	// answered the customer's side. It reports whether the rail took the
	// money.
	PayOffer func(t *testing.T, r partners.Rail, o *partners.OfferRequest, offer *partners.Offer, repeat bool) bool
	// Currency is a currency the rail takes (ISO 4217 numeric, or a rail's
	// own code such as a token's), and Amount an amount in its minor units.
	Currency string
	Amount   int64
}

// RunPull runs the conformance suite on a pull rail.
func RunPull(t *testing.T, h Pull) {
	request := func() *partners.OfferRequest {
		tranID := wire.NewID()
		return &partners.OfferRequest{
			TranID: tranID, RetailerID: "shop-1", Amount: &wire.LedgerAmount{Amount: h.Amount, Currency: h.Currency},
			Merchant:  &wire.Merchant{MerchantType: "5411", MerchantID: "M00000000000001", MerchantName: wire.MerchantName{Name: "Demo Shop", City: "Cape Town", Country: "ZA"}},
			ExpiresAt: time.Now().Add(5 * time.Minute), Now: time.Now(),
		}
	}
	rail := func(t *testing.T, host *Host) partners.Rail {
		if h.Records != nil {
			host.Records = h.Records(t)
		}
		return h.New(t, host, host.Records)
	}
	offer := func(t *testing.T, host *Host, r partners.Rail, o *partners.OfferRequest) *partners.Offer {
		t.Helper()
		of, ok := r.(partners.Offerer)
		if !ok {
			t.Fatal("a pull rail must be a partners.Offerer")
		}
		out, err := of.Offer(t.Context(), o)
		if err != nil {
			t.Fatalf("Offer = %v", err)
		}
		if len(out.Accounts) == 0 || out.Reference == "" {
			t.Fatalf("Offer = %+v, want a template and a reference", out)
		}
		// The template must fit an EMVCo code with the Electrum one.
		p := &qr.Payload{Scheme: qr.SchemeEMVCo, Accounts: append([]qr.MerchantAccount{qr.ElectrumAccount("0123456789abcdef0123456789abcdef")}, out.Accounts...),
			MCC: "5411", Currency: h.Currency, Amount: h.Amount, HasAmount: true, Country: "ZA", MerchantName: "Demo Shop", City: "Cape Town"}
		if _, iso := qr.CurrencyExponent(h.Currency); !iso {
			// A rail's own currency is not written in tags 53 and 54, as the
			// engine does it.
			p.Scheme, p.Currency, p.Amount, p.HasAmount = qr.SchemePseudoEMVCo, "", 0, false
		}
		if _, err := qr.Encode(p); err != nil {
			t.Fatalf("the offer's template does not fit an EMVCo code: %v", err)
		}
		if host.Records != nil && len(out.Records) > 0 {
			if err := host.Records.Commit(t.Context(), out.Records...); err != nil {
				t.Fatalf("committing the offer's records: %v", err)
			}
		}
		return out
	}
	t.Run("paid once", func(t *testing.T) {
		host := NewHost()
		r := rail(t, host)
		o := request()
		of := offer(t, host, r, o)
		if !h.PayOffer(t, r, o, of, false) {
			t.Fatal("the rail refused money for its own offer")
		}
		got := host.WaitPaid(t, 1, 30*time.Second)[0]
		if got.TranID != o.TranID || got.Amount == nil || got.Amount.Amount < h.Amount || got.Amount.Currency != h.Currency || got.Reference == "" {
			t.Fatalf("Paid = %+v (amount %+v), want code %s, at least %d %s, a reference", got, got.Amount, o.TranID, h.Amount, h.Currency)
		}
		h.PayOffer(t, r, o, of, true) // the customer's side repeats itself
		if n := len(host.PaidReports()); n != 1 {
			t.Fatalf("%d reports after a repeat, want 1: money is reported once", n)
		}
	})
	t.Run("money the engine refuses", func(t *testing.T) {
		host := NewHost()
		host.PaidErr = partners.ErrNotWaiting
		r := rail(t, host)
		o := request()
		of := offer(t, host, r, o)
		if h.PayOffer(t, r, o, of, false) {
			t.Fatal("the rail took money no payment request can take")
		}
	})
	t.Run("pay is not supported", func(t *testing.T) {
		r := rail(t, NewHost())
		a := r.Pay(t.Context(), &partners.Payment{TranID: "t", Request: &wire.PaymentRequest{Transaction: wire.Transaction{ID: wire.NewID()}}})
		if a.Outcome != outcome.Failed {
			t.Fatalf("Pay on a pull rail = %s, want failed", a.Outcome)
		}
		CheckDecline(t, a.Decline)
	})
}
