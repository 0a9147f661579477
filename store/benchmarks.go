package store

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/outcome"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// Benchmarks measures a backend with the suite's realistic records, so that
// backends are compared on the same work. open returns a new, empty store and
// closes it when the benchmark ends. Sub-benchmarks:
//
//   - CommitCreatePayment: a new payment, its (reusable) QR code updated to
//     point at it, and one trace entry: the engine's pay step.
//   - CommitUpdatePayment: one payment updated with one trace entry.
//   - ReadPayment: Payment by key.
//   - ClaimAdvices32: a claim of 32 advices (of 1024 due) with their leases.
//   - CommitParallel: creates of distinct payments with one trace entry from
//     many goroutines (32 per GOMAXPROCS), which is where a backend's
//     batching shows; reports commits/s.
//   - Flow: whole payment flows from many goroutines: issue a QR code, pay,
//     scan, approve, confirm and finish the advice (8 commits and 2 reads
//     each); reports flows/s.
func Benchmarks(b *testing.B, open func(b *testing.B) qrswitch.Store) {
	b.Run("CommitCreatePayment", func(b *testing.B) {
		s := open(b)
		q := newQR(retailerA, "qr-static", "tran-static", t0)
		q.SingleUse = false
		if err := s.Commit(b.Context(), &qrswitch.Change{QR: q}); err != nil {
			b.Fatalf("Commit(qr) error = %v", err)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			p := newPayment(retailerA, fmt.Sprintf("pay-%d", i), q.TranID, t0)
			q.PaymentKey = p.Key()
			if err := s.Commit(b.Context(), &qrswitch.Change{QR: q, Payment: p, Trace: []qrswitch.TraceEntry{entry("pay", i, t0)}}); err != nil {
				b.Fatalf("Commit(create payment) error = %v", err)
			}
			i++
		}
	})
	b.Run("CommitUpdatePayment", func(b *testing.B) {
		s := open(b)
		p := newPayment(retailerA, "pay-1", "tran-1", t0)
		scanned(p, partnerA, t0)
		if err := s.Commit(b.Context(), &qrswitch.Change{Payment: p}); err != nil {
			b.Fatalf("Commit(payment) error = %v", err)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			p.UpdatedAt = t0.Add(time.Duration(i) * time.Millisecond)
			p.HoldUntil = p.UpdatedAt.Add(time.Minute)
			if err := s.Commit(b.Context(), &qrswitch.Change{Payment: p, Trace: []qrswitch.TraceEntry{entry("update", i, t0)}}); err != nil {
				b.Fatalf("Commit(update payment) error = %v", err)
			}
			i++
		}
	})
	b.Run("ReadPayment", func(b *testing.B) {
		s := open(b)
		p := newPayment(retailerA, "pay-1", "tran-1", t0)
		scanned(p, partnerA, t0)
		approved(p, t0)
		if err := s.Commit(b.Context(), &qrswitch.Change{Payment: p}); err != nil {
			b.Fatalf("Commit(payment) error = %v", err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Payment(b.Context(), p.Key()); err != nil {
				b.Fatalf("Payment error = %v", err)
			}
		}
	})
	b.Run("ClaimAdvices32", func(b *testing.B) {
		s := open(b)
		const lease = time.Minute
		for i := range 1024 {
			a := newAdvice(retailerA, fmt.Sprintf("adv-%d", i), qrswitch.PaymentKey(retailerA, fmt.Sprintf("pay-%d", i)),
				partnerA, t0.Add(time.Duration(i)*time.Millisecond))
			if err := s.Commit(b.Context(), &qrswitch.Change{Advices: []*qrswitch.Advice{a}}); err != nil {
				b.Fatalf("Commit(advice) error = %v", err)
			}
		}
		b.ReportAllocs()
		now := t0.Add(time.Hour)
		for b.Loop() {
			// Each claim comes after the previous leases expired, so every
			// iteration leases the same 32 oldest advices again.
			now = now.Add(lease)
			got, err := s.ClaimAdvices(b.Context(), qrswitch.Claim{PartnerID: partnerA, Owner: "bench", Now: now, Lease: lease, Max: 32})
			if err != nil || len(got) != 32 {
				b.Fatalf("ClaimAdvices = %d advices, %v; want 32", len(got), err)
			}
		}
	})
	b.Run("CommitParallel", func(b *testing.B) {
		s := open(b)
		var n atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := int(n.Add(1))
				p := newPayment(retailerA, fmt.Sprintf("pay-%d", i), fmt.Sprintf("tran-%d", i), t0)
				if err := s.Commit(b.Context(), &qrswitch.Change{Payment: p, Trace: []qrswitch.TraceEntry{entry("pay", i, t0)}}); err != nil {
					b.Errorf("Commit(create payment) error = %v", err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
	})
	b.Run("Flow", func(b *testing.B) {
		s := open(b)
		var n atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := flow(b, s, int(n.Add(1))); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "flows/s")
	})
}

// flow runs the commits of one approved and confirmed payment, as the engine
// makes them.
func flow(b *testing.B, s qrswitch.Store, i int) error {
	ctx := b.Context()
	at := t0.Add(time.Duration(i) * time.Millisecond)
	tranID := fmt.Sprintf("tran-%d", i)
	step := func(what string, c *qrswitch.Change) error {
		if err := s.Commit(ctx, c); err != nil {
			return fmt.Errorf("Commit(%s) error = %w", what, err)
		}
		return nil
	}
	trace := func(op string) []qrswitch.TraceEntry { return []qrswitch.TraceEntry{entry(op, i, at)} }

	q := newQR(retailerA, fmt.Sprintf("qr-%d", i), tranID, at)
	if err := step("issue qr", &qrswitch.Change{QR: q, TraceKey: "qr:" + tranID, Trace: trace("createQrCode")}); err != nil {
		return err
	}
	p := newPayment(retailerA, fmt.Sprintf("pay-%d", i), tranID, at)
	q.PaymentKey = p.Key()
	if err := step("pay", &qrswitch.Change{QR: q, Payment: p, Trace: trace("pay")}); err != nil {
		return err
	}
	if _, err := s.QR(ctx, tranID); err != nil {
		return fmt.Errorf("QR error = %w", err)
	}
	scanned(p, partnerA, at)
	if err := step("scan", &qrswitch.Change{Payment: p, Trace: trace("notifyScan")}); err != nil {
		return err
	}
	if err := step("forward", &qrswitch.Change{TraceKey: p.Key(), Trace: trace("pay")}); err != nil {
		return err
	}
	approved(p, at)
	if err := step("approve", &qrswitch.Change{Payment: p, Trace: trace("pay")}); err != nil {
		return err
	}
	a := newAdvice(retailerA, fmt.Sprintf("conf-%d", i), p.Key(), partnerA, at)
	p.State, p.AdviceKey = outcome.Confirming, a.Key()
	if err := step("confirm", &qrswitch.Change{Payment: p, Advices: []*qrswitch.Advice{a}, Trace: trace("confirmPayment")}); err != nil {
		return err
	}
	if _, err := s.Payment(ctx, p.Key()); err != nil {
		return fmt.Errorf("Payment error = %w", err)
	}
	a.State, a.Outcome, a.DoneAt, a.Attempts = qrswitch.AdviceDone, outcome.Successful, at, 1
	if err := step("advice done", &qrswitch.Change{Advices: []*qrswitch.Advice{a}, TraceKey: p.Key(), Trace: trace("confirmPayment")}); err != nil {
		return err
	}
	p.State = outcome.Confirmed
	return step("confirmed", &qrswitch.Change{Payment: p, Trace: trace("confirmPayment")})
}
