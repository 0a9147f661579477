package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/outcome"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// Benchmarks measures a backend with the suite's realistic records, so that
// backends are compared on the same work. open returns a new, empty store and
// closes it when the benchmark ends. Besides ns/op, each reports cpu-µs/op:
// the process's CPU time per operation. Sub-benchmarks:
//
//   - CommitCreatePayment: a new payment, its (reusable) QR code updated to
//     point at it, and one trace entry: the engine's pay step.
//   - CommitUpdatePayment: one payment updated with one trace entry.
//   - ReadPayment: Payment by key.
//   - ClaimAdvices32: a claim of 32 advices (of 1024 due) with their leases.
//   - CommitParallel: creates of distinct payments with one trace entry from
//     many goroutines (32 per GOMAXPROCS), which is where a backend's
//     batching shows; reports commits/s.
//   - Flow: whole payment flows, each as the engine makes it (read, decide,
//     commit): issue a QR code, pay, scan, forward, approve, confirm, send
//     the advice, confirmed; 8 commits and 8 reads per flow; reports
//     flows/s. 128 flows per GOMAXPROCS run at once, as on a busy switch
//     with many payments in flight: a flow spends half its operations
//     reading, so fewer would leave a batching backend's writer idle.
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
		cpu := startCPU(s)
		for b.Loop() {
			p := newPayment(retailerA, fmt.Sprintf("pay-%d", i), q.TranID, t0)
			q.PaymentKey = p.Key()
			if err := s.Commit(b.Context(), &qrswitch.Change{QR: q, Payment: p, Trace: []qrswitch.TraceEntry{entry("pay", i, t0)}}); err != nil {
				b.Fatalf("Commit(create payment) error = %v", err)
			}
			i++
		}
		cpu.report(b)
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
		cpu := startCPU(s)
		for b.Loop() {
			p.UpdatedAt = t0.Add(time.Duration(i) * time.Millisecond)
			p.HoldUntil = p.UpdatedAt.Add(time.Minute)
			if err := s.Commit(b.Context(), &qrswitch.Change{Payment: p, Trace: []qrswitch.TraceEntry{entry("update", i, t0)}}); err != nil {
				b.Fatalf("Commit(update payment) error = %v", err)
			}
			i++
		}
		cpu.report(b)
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
		cpu := startCPU(s)
		for b.Loop() {
			if _, err := s.Payment(b.Context(), p.Key()); err != nil {
				b.Fatalf("Payment error = %v", err)
			}
		}
		cpu.report(b)
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
		cpu := startCPU(s)
		for b.Loop() {
			// Each claim comes after the previous leases expired, so every
			// iteration leases the same 32 oldest advices again.
			now = now.Add(lease)
			got, err := s.ClaimAdvices(b.Context(), qrswitch.Claim{Destination: partnerA, Owner: "bench", Now: now, Lease: lease, Max: 32})
			if err != nil || len(got) != 32 {
				b.Fatalf("ClaimAdvices = %d advices, %v; want 32", len(got), err)
			}
		}
		cpu.report(b)
	})
	b.Run("CommitParallel", func(b *testing.B) {
		s := open(b)
		var n atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(32)
		cpu := startCPU(s)
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
		cpu.report(b)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
	})
	b.Run("Flow", func(b *testing.B) {
		s := open(b)
		var n atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(128)
		cpu := startCPU(s)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := flow(b, s, int(n.Add(1))); err != nil {
					b.Error(err)
					return
				}
			}
		})
		cpu.report(b)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "flows/s")
	})
}

// cpuMeter reports the process's CPU time per operation (user and system,
// every thread: callers, the backend's own goroutines, the garbage
// collector). On a shared machine it is steadier than ns/op, and for a
// server backend it is the client's share, the part that competes with the
// switch for its cores.
//
// For a store with a server, it also reports what the server does: rt/op,
// the round trips per operation (RoundTrips), which on a network dominate
// latency, and server-cpu-µs/op, the server process's CPU time per
// operation (ServerCPU), which the process's own figure leaves out.
type cpuMeter struct {
	start  time.Duration
	ok     bool
	server serverStore
	trips  int64
	cpu    time.Duration
}

// serverStore is a store with a server that reports its round trips to it
// and the server's CPU time.
type serverStore interface {
	RoundTrips() int64
	ServerCPU(ctx context.Context) (time.Duration, error)
}

func startCPU(s qrswitch.Store) cpuMeter {
	var m cpuMeter
	if srv, ok := s.(serverStore); ok {
		if cpu, err := srv.ServerCPU(context.Background()); err == nil {
			m.server, m.cpu, m.trips = srv, cpu, srv.RoundTrips()
		}
	}
	m.start, m.ok = processCPU()
	return m
}

func (m cpuMeter) report(b *testing.B) {
	end, ok := processCPU()
	if m.ok && ok && b.N > 0 {
		b.ReportMetric(float64(end-m.start)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
	}
	if m.server != nil && b.N > 0 {
		b.ReportMetric(float64(m.server.RoundTrips()-m.trips)/float64(b.N), "rt/op")
		if cpu, err := m.server.ServerCPU(context.Background()); err == nil {
			b.ReportMetric(float64(cpu-m.cpu)/float64(time.Microsecond)/float64(b.N), "server-cpu-µs/op")
		}
	}
}

// flow runs one approved and confirmed payment against s the way the engine
// does: read, decide, commit; 8 commits and 8 reads.
func flow(b *testing.B, s qrswitch.Store, i int) error {
	ctx := b.Context()
	at := t0.Add(time.Duration(i) * time.Millisecond)
	tranID := fmt.Sprintf("tran-%d", i)
	trace := func(op string) []qrswitch.TraceEntry { return []qrswitch.TraceEntry{entry(op, i, at)} }
	var err error
	step := func(what string, c *qrswitch.Change) {
		if err == nil {
			if cerr := s.Commit(ctx, c); cerr != nil {
				err = fmt.Errorf("Commit(%s) error = %w", what, cerr)
			}
		}
	}
	read := func(what string, rerr error) {
		if err == nil && rerr != nil {
			err = fmt.Errorf("%s error = %w", what, rerr)
		}
	}

	// createQrCode
	step("issue qr", &qrswitch.Change{QR: newQR(retailerA, fmt.Sprintf("qr-%d", i), tranID, at), TraceKey: "qr:" + tranID, Trace: trace("createQrCode")})
	// pay: the request holds the code
	code, rerr := s.QR(ctx, tranID)
	read("QR", rerr)
	if err != nil {
		return err
	}
	p := newPayment(retailerA, fmt.Sprintf("pay-%d", i), tranID, at)
	code.PaymentKey = p.Key()
	step("pay", &qrswitch.Change{QR: code, Payment: p, Trace: trace("pay")})
	// notifyScan: link and forward
	code, rerr = s.QR(ctx, tranID)
	read("QR", rerr)
	if err != nil {
		return err
	}
	p, rerr = s.Payment(ctx, code.PaymentKey)
	read("Payment", rerr)
	if err != nil {
		return err
	}
	scanned(p, partnerA, at)
	step("scan", &qrswitch.Change{Payment: p, Trace: trace("notifyScan")})
	step("forward", &qrswitch.Change{TraceKey: p.Key(), Trace: trace("pay")})
	// the partner approves
	p, rerr = s.Payment(ctx, p.Key())
	read("Payment", rerr)
	if err != nil {
		return err
	}
	approved(p, at)
	step("approve", &qrswitch.Change{Payment: p, Trace: trace("pay")})
	// confirmPayment from the retailer: a new advice, queued
	akey := qrswitch.AdviceKey(retailerA, fmt.Sprintf("conf-%d", i))
	if _, rerr := s.Advice(ctx, akey); !errors.Is(rerr, qrswitch.ErrNotFound) {
		read("Advice", fmt.Errorf("%v, want ErrNotFound", rerr))
	}
	p, rerr = s.Payment(ctx, p.Key())
	read("Payment", rerr)
	if err != nil {
		return err
	}
	a := newAdvice(retailerA, fmt.Sprintf("conf-%d", i), p.Key(), partnerA, at)
	p.State, p.AdviceKey = outcome.Confirming, a.Key()
	step("confirm", &qrswitch.Change{Payment: p, Advices: []*qrswitch.Advice{a}, Trace: trace("confirmPayment")})
	// store-and-forward sends it; the partner accepts
	a, rerr = s.Advice(ctx, akey)
	read("Advice", rerr)
	if err != nil {
		return err
	}
	a.State, a.Outcome, a.DoneAt, a.Attempts = qrswitch.AdviceDone, outcome.Successful, at, 1
	step("advice done", &qrswitch.Change{Advices: []*qrswitch.Advice{a}, TraceKey: p.Key(), Trace: trace("confirmPayment")})
	p, rerr = s.Payment(ctx, p.Key())
	read("Payment", rerr)
	if err != nil {
		return err
	}
	p.State = outcome.Confirmed
	step("confirmed", &qrswitch.Change{Payment: p, Trace: trace("confirmPayment")})
	return err
}
