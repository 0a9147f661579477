package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/store/redis/redistest"
	qrswitch "github.com/qrswitch/qrswitch/switch"
	tlsconfig "github.com/qrswitch/qrswitch/tls"
)

// These tests pin what the Redis backend promises beyond the conformance
// suite: lifetimes, replica acknowledgement, outages, its round trips, and
// the exactness of its time comparisons.

var t0 = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)

func qrCode(tranID string, expires time.Time) *qrswitch.QRCode {
	return &qrswitch.QRCode{TranID: tranID, RetailerID: "shop-1", RequestID: "qr-" + tranID, Payload: "000201",
		CreatedAt: t0, ExpiresAt: expires}
}

func payment(id, tranID string, at time.Time) *qrswitch.Payment {
	return &qrswitch.Payment{RetailerID: "shop-1", RequestID: id, TranID: tranID, State: outcome.AwaitingScan,
		Request: &wire.PaymentRequest{
			Transaction: wire.Transaction{ID: id, Rrn: "rrn-" + id, Originator: &wire.Originator{TerminalID: "T1"}},
			Amounts:     &wire.Amounts{RequestAmount: &wire.LedgerAmount{Amount: 100, Currency: "710"}},
		},
		Owner: "node-a", HoldUntil: at.Add(time.Minute), CreatedAt: at, UpdatedAt: at}
}

func advice(id, paymentKey string, at time.Time) *qrswitch.Advice {
	return &qrswitch.Advice{Sender: "shop-1", ID: id, Kind: qrswitch.Confirmation, PaymentKey: paymentKey,
		Destination: "wallet-a", State: qrswitch.AdvicePending, NextAt: at, CreatedAt: at, UpdatedAt: at}
}

func mustCommit(t *testing.T, s *Store, what string, c *qrswitch.Change) {
	t.Helper()
	if err := s.Commit(t.Context(), c); err != nil {
		t.Fatalf("Commit(%s) error = %v", what, err)
	}
}

// keys lists the store's keys (KEYS is fine in a test; the store never
// scans the keyspace).
func keys(t *testing.T, srv *redistest.Server, s *Store) []string {
	t.Helper()
	ks, err := srv.Client(t).Keys(t.Context(), s.Prefix()+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range ks {
		ks[i] = strings.TrimPrefix(k, s.Prefix())
	}
	slices.Sort(ks)
	return ks
}

func TestLifetimes(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.Client(t)
	// TTLs are checked against bounds of an hour, so that a slow machine
	// reading a TTL late still reads it inside them; what must pass the
	// retention (50 ms) is swept after a sleep, which only ever lasts longer.
	const keep = time.Hour
	s := openOn(t, srv.URL(), newPrefix(), Options{Retention: 50 * time.Millisecond, QRKeep: keep, JanitorInterval: -1})
	ctx := t.Context()
	pttl := func(key string) time.Duration {
		t.Helper()
		d, err := rc.PTTL(ctx, s.Prefix()+key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	trace := []qrswitch.TraceEntry{{At: t0, Direction: qrswitch.Internal, Operation: "createQrCode"}}

	t.Run("UnusedQRExpires", func(t *testing.T) {
		q := qrCode("tran-unused", time.Now().Add(time.Hour))
		mustCommit(t, s, "qr", &qrswitch.Change{QR: q, TraceKey: "qr/tran-unused", Trace: trace})
		for _, k := range []string{"qr:tran-unused", "qrreq:shop-1/qr-tran-unused", "tr:qr/tran-unused"} {
			if d := pttl(k); d <= keep || d > keep+time.Hour {
				t.Errorf("PTTL(%s) = %v, want the hour to expiry plus %v", k, d, keep)
			}
		}
		// A code that expired long ago is kept for keep only.
		old := qrCode("tran-old", t0)
		mustCommit(t, s, "old qr", &qrswitch.Change{QR: old})
		if d := pttl("qr:tran-old"); d <= 0 || d > keep {
			t.Errorf("PTTL(expired qr) = %v, want up to %v", d, keep)
		}
	})

	t.Run("FinishedPaymentLeavesEveryIndex", func(t *testing.T) {
		q := qrCode("tran-1", time.Now().Add(time.Hour))
		mustCommit(t, s, "qr", &qrswitch.Change{QR: q, TraceKey: "qr/tran-1", Trace: trace})
		p := payment("pay-1", "tran-1", t0)
		q.PaymentKey = p.Key()
		mustCommit(t, s, "pay", &qrswitch.Change{QR: q, Payment: p, Trace: trace})
		for _, k := range []string{"qr:tran-1", "qrreq:shop-1/qr-tran-1", "tr:qr/tran-1", "pay:shop-1/pay-1", "tr:shop-1/pay-1"} {
			if d := pttl(k); d != -1 {
				t.Errorf("PTTL(%s) while a payment uses the code = %v, want none (-1)", k, d)
			}
		}
		p.State = outcome.Confirming
		a := advice("conf-1", p.Key(), t0)
		mustCommit(t, s, "confirm", &qrswitch.Change{Payment: p, Advices: []*qrswitch.Advice{a}, Trace: trace})
		p.State = outcome.Confirmed
		mustCommit(t, s, "confirmed", &qrswitch.Change{Payment: p})
		time.Sleep(60 * time.Millisecond) // past the retention

		// The advice is still pending: nothing is dropped unseen.
		if n, err := s.Sweep(ctx); err != nil || n != 0 {
			t.Fatalf("Sweep with a pending advice = %d, %v; want 0 deleted", n, err)
		}
		if _, err := s.Payment(ctx, p.Key()); err != nil {
			t.Fatalf("Payment after a sweep that must keep it: %v", err)
		}
		a.State, a.Outcome = qrswitch.AdviceDone, outcome.Successful
		mustCommit(t, s, "advice done", &qrswitch.Change{Advices: []*qrswitch.Advice{a}})
		// The payment was looked at: it comes back a (retention-bounded)
		// while later.
		if _, err := s.c.ZAdd(ctx, s.home.key("gc"), redis.Z{Score: 0, Member: p.Key()}).Result(); err != nil {
			t.Fatal(err)
		}
		if n, err := s.Sweep(ctx); err != nil || n != 1 {
			t.Fatalf("Sweep = %d, %v; want 1 deleted", n, err)
		}
		if _, err := s.Payment(ctx, p.Key()); !errors.Is(err, qrswitch.ErrNotFound) {
			t.Errorf("Payment after its retention = %v, want ErrNotFound", err)
		}
		if _, err := s.Advice(ctx, a.Key()); !errors.Is(err, qrswitch.ErrNotFound) {
			t.Errorf("Advice after its payment's retention = %v, want ErrNotFound", err)
		}
		for _, id := range []string{"pay-1", "tran-1", "conf-1", "rrn-pay-1"} {
			if got, err := s.Lookup(ctx, id); err != nil || len(got) != 0 {
				t.Errorf("Lookup(%s) after retention = %v, %v; want none", id, keysOf(got), err)
			}
		}
		if got, err := s.Search(ctx, qrswitch.Query{}); err != nil || len(got) != 0 {
			t.Errorf("Search after retention = %v, %v; want none", keysOf(got), err)
		}
		// The QR code it used goes back to the life of an unused code.
		if d := pttl("qr:tran-1"); d <= keep || d > time.Hour+keep {
			t.Errorf("PTTL(qr) after its payment was deleted = %v, want up to an hour plus %v", d, keep)
		}
		// Nothing of the payment is left: no record, no index entry.
		for _, k := range keys(t, srv, s) {
			if !strings.Contains(k, "tran-unused") && !strings.Contains(k, "tran-old") && !strings.Contains(k, "tran-1") {
				t.Errorf("key %s left after the payment was deleted", k)
			}
		}
	})

	t.Run("DeadAdviceKeepsItsPayment", func(t *testing.T) {
		p := payment("pay-dead", "", t0)
		p.State = outcome.ConfirmFailed // final, with a dead advice beside it
		a := advice("conf-dead", p.Key(), t0)
		a.State = qrswitch.AdviceDead
		mustCommit(t, s, "payment", &qrswitch.Change{Payment: p, Advices: []*qrswitch.Advice{a}})
		time.Sleep(60 * time.Millisecond)
		if n, err := s.Sweep(ctx); err != nil || n != 0 {
			t.Fatalf("Sweep = %d, %v; want nothing deleted", n, err)
		}
		if _, err := s.Advice(ctx, a.Key()); err != nil {
			t.Errorf("dead advice after a sweep: %v, want it kept", err)
		}
	})

	t.Run("TraceOfNothingExpires", func(t *testing.T) {
		// On a store whose retention outlasts a slow read of the TTL.
		long := openOn(t, srv.URL(), newPrefix(), Options{Retention: time.Hour, JanitorInterval: -1})
		mustCommit(t, long, "trace", &qrswitch.Change{TraceKey: "shop-1/never-seen", Trace: trace})
		d, err := rc.PTTL(ctx, long.Prefix()+"tr:shop-1/never-seen").Result()
		if err != nil {
			t.Fatal(err)
		}
		if d <= 0 || d > time.Hour {
			t.Errorf("PTTL(trace of no payment) = %v, want the retention (1h)", d)
		}
	})
}

// waitRefusal is the error of a Commit that too few replicas acknowledged.
var waitRefusal = regexp.MustCompile(`acknowledged by [01] of 2\b`)

func keysOf[T interface{ Key() string }](recs []T) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Key()
	}
	return out
}

// TestWaitReplicas: with WaitReplicas, a Commit succeeds only once enough
// replicas acknowledged it; otherwise it fails with ErrUnavailable.
func TestWaitReplicas(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartWith(t, redistest.Options{ReplicaOf: master.Addr()})
	prefix := newPrefix()
	ctx := t.Context()
	redistest.WaitReplica(t, master, replica)

	// WAIT returns as soon as the replica acknowledged; the timeout only
	// bounds a replica that never does, so it is long: a loaded machine's
	// replica may take more than the default 200 ms.
	one := openOn(t, master.URL(), prefix, Options{WaitReplicas: 1, WaitTimeout: 10 * time.Second})
	before := one.RoundTrips()
	mustCommit(t, one, "payment acknowledged by 1 replica", &qrswitch.Change{Payment: payment("pay-1", "tran-1", t0)})
	if n := one.RoundTrips() - before; n != 1 {
		t.Errorf("Commit with WAIT took %d round trips, want 1 (pipelined)", n)
	}
	if got, err := openOn(t, replica.URL(), prefix, Options{}).Payment(ctx, "shop-1/pay-1"); err != nil || got.Version != 1 {
		t.Errorf("payment on the replica = %+v, %v; want it there", got, err)
	}

	two := openOn(t, master.URL(), prefix, Options{WaitReplicas: 2, WaitTimeout: 100 * time.Millisecond})
	p := payment("pay-2", "tran-2", t0)
	start := time.Now()
	err := two.Commit(ctx, &qrswitch.Change{Payment: p})
	// How many of the 2 acknowledged within 100 ms depends on the machine's
	// load (the one replica, or none yet); that 2 were wanted does not.
	if !errors.Is(err, qrswitch.ErrUnavailable) || !waitRefusal.MatchString(err.Error()) {
		t.Errorf("Commit needing 2 replicas of 1 = %v, want ErrUnavailable naming 0 or 1 of 2", err)
	}
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Errorf("Commit needing 2 replicas failed after %v, want after the 100ms WaitTimeout", took)
	}
	if p.Version != 0 {
		t.Errorf("caller's Version after an unacknowledged Commit = %d, want 0", p.Version)
	}
	// A refused Change waits for nothing; a trace alone is not waited for.
	if err := two.Commit(ctx, &qrswitch.Change{Payment: payment("pay-1", "tran-1", t0)}); !errors.Is(err, qrswitch.ErrDuplicate) {
		t.Errorf("duplicate create with WaitReplicas 2 = %v, want ErrDuplicate", err)
	}
	mustCommit(t, two, "trace only", &qrswitch.Change{TraceKey: "shop-1/pay-1", Trace: []qrswitch.TraceEntry{{At: t0, Operation: "x"}}})
}

// TestOutage: while Redis is down every call fails fast with ErrUnavailable;
// when it is back (same data, from its AOF) the store carries on without
// being reopened.
func TestOutage(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{AppendFsync: "always"})
	s := openOn(t, srv.URL(), newPrefix(), Options{})
	ctx := t.Context()
	p := payment("pay-1", "tran-1", t0)
	mustCommit(t, s, "payment", &qrswitch.Change{Payment: p})

	srv.Kill()
	// Failing fast means failing on the refused connection, not on a
	// timeout: the verdict is the kind of error, not how long it took.
	fast := func(what string, err error) {
		t.Helper()
		var ne net.Error
		switch {
		case !errors.Is(err, qrswitch.ErrUnavailable):
			t.Errorf("%s with Redis down = %v, want ErrUnavailable", what, err)
		case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
			t.Errorf("%s with Redis down = %v, want it to fail on the refused connection, not after a timeout", what, err)
		}
	}
	fast("Ping", s.Ping(ctx))
	p.State = outcome.Forwarded
	fast("Commit", s.Commit(ctx, &qrswitch.Change{Payment: p}))
	_, err := s.Payment(ctx, p.Key())
	fast("Payment", err)
	_, err = s.ClaimAdvices(ctx, qrswitch.Claim{Destination: "wallet-a", Owner: "n", Now: t0, Lease: time.Second, Max: 1})
	fast("ClaimAdvices", err)

	srv.Restart()
	mustCommit(t, s, "update after the restart", &qrswitch.Change{Payment: p})
	if got, err := s.Payment(ctx, p.Key()); err != nil || got.Version != 2 || got.State != outcome.Forwarded {
		t.Errorf("Payment after the restart = %+v, %v; want version 2, FORWARDED", got, err)
	}
}

// TestScriptCacheLost: after SCRIPT FLUSH (as after a restart or a failover
// to a replica that never ran them) every script is sent again.
func TestScriptCacheLost(t *testing.T) {
	srv := redistest.Start(t)
	s := openOn(t, srv.URL(), newPrefix(), Options{WaitReplicas: 0})
	ctx := t.Context()
	if err := srv.Client(t).ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	p := payment("pay-1", "tran-1", t0)
	a := advice("adv-1", p.Key(), t0)
	mustCommit(t, s, "payment after SCRIPT FLUSH", &qrswitch.Change{Payment: p, Advices: []*qrswitch.Advice{a}})
	if got, err := s.ClaimAdvices(ctx, qrswitch.Claim{Destination: "wallet-a", Owner: "n", Now: t0, Lease: time.Second, Max: 1}); err != nil || len(got) != 1 {
		t.Errorf("ClaimAdvices after SCRIPT FLUSH = %v, %v", keysOf(got), err)
	}
	if got, err := s.Search(ctx, qrswitch.Query{}); err != nil || len(got) != 1 {
		t.Errorf("Search after SCRIPT FLUSH = %v, %v", keysOf(got), err)
	}
	if got, err := s.Lookup(ctx, "adv-1"); err != nil || len(got) != 1 {
		t.Errorf("Lookup after SCRIPT FLUSH = %v, %v", keysOf(got), err)
	}
}

// TestRoundTrips pins the cost of each operation in round trips.
func TestRoundTrips(t *testing.T) {
	srv := redistest.Start(t)
	s := openOn(t, srv.URL(), newPrefix(), Options{})
	ctx := t.Context()
	q := qrCode("tran-1", t0.Add(time.Hour))
	p := payment("pay-1", "tran-1", t0)
	for _, tc := range []struct {
		name string
		do   func() error
	}{
		{"Commit(qr)", func() error { return s.Commit(ctx, &qrswitch.Change{QR: q}) }},
		{"Commit(qr, payment, trace)", func() error {
			q.PaymentKey = p.Key()
			return s.Commit(ctx, &qrswitch.Change{QR: q, Payment: p, Trace: []qrswitch.TraceEntry{{At: t0}}})
		}},
		{"Commit(payment, 2 advices)", func() error {
			return s.Commit(ctx, &qrswitch.Change{Payment: p, Advices: []*qrswitch.Advice{advice("a1", p.Key(), t0), advice("a2", p.Key(), t0)}})
		}},
		{"Commit refused", func() error {
			if err := s.Commit(ctx, &qrswitch.Change{Payment: payment("pay-1", "", t0)}); !errors.Is(err, qrswitch.ErrDuplicate) {
				return fmt.Errorf("got %v, want ErrDuplicate", err)
			}
			return nil
		}},
		{"QR", func() error { _, err := s.QR(ctx, "tran-1"); return err }},
		{"Payment", func() error { _, err := s.Payment(ctx, p.Key()); return err }},
		{"Advice", func() error { _, err := s.Advice(ctx, "shop-1/a1"); return err }},
		{"Trace", func() error { _, err := s.Trace(ctx, p.Key()); return err }},
		{"PaymentAdvices", func() error { _, err := s.PaymentAdvices(ctx, p.Key()); return err }},
		{"Lookup", func() error { _, err := s.Lookup(ctx, "a1"); return err }},
		{"Search(3 filters)", func() error {
			_, err := s.Search(ctx, qrswitch.Query{RetailerID: "shop-1", TerminalID: "T1", State: outcome.AwaitingScan})
			return err
		}},
		{"ListAdvices", func() error { _, err := s.ListAdvices(ctx, qrswitch.AdviceQuery{Destination: "wallet-a"}); return err }},
		{"Orphans", func() error { _, err := s.Orphans(ctx, t0.Add(time.Hour), 10); return err }},
		{"ClaimAdvices", func() error {
			_, err := s.ClaimAdvices(ctx, qrswitch.Claim{Destination: "wallet-a", Owner: "n", Now: t0, Lease: time.Second, Max: 8})
			return err
		}},
		{"Notify", func() error { return s.Notifier().Notify(ctx, "k") }},
	} {
		before := s.RoundTrips()
		if err := tc.do(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if n := s.RoundTrips() - before; n != 1 {
			t.Errorf("%s took %d round trips, want 1", tc.name, n)
		}
	}
}

// TestExactTimes: comparisons are exact to the nanosecond, below the
// microsecond scores of the indexes.
func TestExactTimes(t *testing.T) {
	srv := redistest.Start(t)
	s := openOn(t, srv.URL(), newPrefix(), Options{})
	ctx := t.Context()
	now := t0.Add(500 * time.Nanosecond)

	a := advice("adv-1", "shop-1/pay-1", now.Add(300*time.Nanosecond)) // due 300ns after now, same µs
	mustCommit(t, s, "advice", &qrswitch.Change{Advices: []*qrswitch.Advice{a}})
	claim := qrswitch.Claim{Destination: "wallet-a", Owner: "w1", Now: now, Lease: time.Second, Max: 1}
	if got, _ := s.ClaimAdvices(ctx, claim); len(got) != 0 {
		t.Errorf("ClaimAdvices 300ns before NextAt = %v, want none", keysOf(got))
	}
	claim.Now = now.Add(300 * time.Nanosecond)
	got, err := s.ClaimAdvices(ctx, claim)
	if err != nil || len(got) != 1 {
		t.Fatalf("ClaimAdvices at NextAt = %v, %v; want the advice", keysOf(got), err)
	}
	until := got[0].LeaseUntil
	if stored, _ := s.Advice(ctx, a.Key()); !stored.LeaseUntil.Equal(until) || stored.LeaseUntil.Nanosecond()%1000 != 800 {
		t.Errorf("stored LeaseUntil = %v, want %v to the nanosecond", stored.LeaseUntil, until)
	}
	claim.Owner, claim.Now = "w2", until.Add(-time.Nanosecond)
	if got, _ := s.ClaimAdvices(ctx, claim); len(got) != 0 {
		t.Errorf("ClaimAdvices 1ns before LeaseUntil = %v, want none", keysOf(got))
	}
	claim.Now = until
	if got, _ := s.ClaimAdvices(ctx, claim); len(got) != 1 {
		t.Errorf("ClaimAdvices at LeaseUntil = %v, want the advice", keysOf(got))
	}

	p := payment("pay-1", "", now)
	p.HoldUntil = now.Add(time.Nanosecond)
	mustCommit(t, s, "payment", &qrswitch.Change{Payment: p})
	if got, _ := s.Orphans(ctx, now, 10); len(got) != 0 {
		t.Errorf("Orphans 1ns before HoldUntil = %v, want none", keysOf(got))
	}
	if got, _ := s.Orphans(ctx, now.Add(2*time.Nanosecond), 10); len(got) != 1 {
		t.Errorf("Orphans 1ns after HoldUntil = %v, want the payment", keysOf(got))
	}
	if got, _ := s.Search(ctx, qrswitch.Query{From: now.Add(time.Nanosecond)}); len(got) != 0 {
		t.Errorf("Search From 1ns after CreatedAt = %v, want none", keysOf(got))
	}
	if got, _ := s.Search(ctx, qrswitch.Query{Before: now.Add(time.Nanosecond)}); len(got) != 1 {
		t.Errorf("Search Before 1ns after CreatedAt = %v, want the payment", keysOf(got))
	}
}

// TestSearchPastTheBudget: a filter no index serves walks the time index in
// several calls, each within its budget, and finds what lies past the first.
func TestSearchPastTheBudget(t *testing.T) {
	srv := redistest.Start(t)
	s := openOn(t, srv.URL(), newPrefix(), Options{})
	ctx := t.Context()
	const n = 2 * walkBudget
	var want []string
	for i := range n {
		p := payment(fmt.Sprintf("pay-%04d", i), "", t0.Add(time.Duration(i)*time.Second))
		if i < 3 {
			p.Request.Amounts.RequestAmount.Amount = 5000 // only the three oldest
			want = append([]string{p.Key()}, want...)
		}
		mustCommit(t, s, "payment", &qrswitch.Change{Payment: p})
	}
	before := s.Stats()["Search"]
	got, err := s.Search(ctx, qrswitch.Query{MinAmount: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keysOf(got), want) {
		t.Errorf("Search(MinAmount) = %v, want %v", keysOf(got), want)
	}
	if calls := s.Stats()["Search"] - before; calls != 3 {
		t.Errorf("Search through %d payments took %d calls, want 3 (budget %d each)", n, calls, walkBudget)
	}
}

func TestNotifier(t *testing.T) { testNotifier(t, redistest.Start(t).URL()) }

// TestClusterNotifier: the same on a cluster, whose client routes the
// subscription and the publishing by the channel's slot.
func TestClusterNotifier(t *testing.T) { testNotifier(t, redistest.StartCluster(t, 3, 0).URL()) }

func testNotifier(t *testing.T, url string) {
	prefix := newPrefix()
	a := openOn(t, url, prefix, Options{})
	b := openOn(t, url, prefix, Options{})
	other := openOn(t, url, newPrefix(), Options{})
	ctx, cancel := context.WithCancel(t.Context())
	got := make(chan string, 4)
	done := make(chan error, 1)
	go func() { done <- a.Notifier().Listen(ctx, func(k string) { got <- k }) }()
	// Listen subscribes first; publish until the subscription is up (the
	// deadline is a backstop).
	deadline := time.Now().Add(time.Minute)
	for len(got) == 0 && time.Now().Before(deadline) {
		if err := other.Notifier().Notify(ctx, "another switch"); err != nil {
			t.Fatal(err)
		}
		if err := b.Notifier().Notify(ctx, "shop-1/pay-1"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case k := <-got:
		if k != "shop-1/pay-1" {
			t.Errorf("Listen got %q, want shop-1/pay-1 (and nothing of another prefix)", k)
		}
	default:
		t.Fatal("Listen got nothing within a minute")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Listen after its context ended = %v, want nil", err)
	}
}

func TestOpenRefusesEvictingRedis(t *testing.T) {
	srv := redistest.Start(t)
	if err := srv.Client(t).ConfigSet(t.Context(), "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	_, err := Open(t.Context(), srv.URL(), Options{})
	if err == nil || !strings.Contains(err.Error(), "allkeys-lru") {
		t.Errorf("Open on an allkeys-lru Redis = %v, want a refusal naming the policy", err)
	}
	if _, err := Open(t.Context(), "redis://127.0.0.1:1/0", Options{}); !errors.Is(err, qrswitch.ErrUnavailable) {
		t.Errorf("Open with nothing listening = %v, want ErrUnavailable", err)
	}
}

func TestParseURL(t *testing.T) {
	eph, err := tlsconfig.NewEphemeral("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, eph.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		url     string
		check   func(*endpoint) string // "" when fine
		wantErr string
	}{
		{"redis://127.0.0.1:6380/2", func(e *endpoint) string {
			if o := e.single; o.Addr != "127.0.0.1:6380" || o.DB != 2 || o.TLSConfig != nil || e.prefix != DefaultPrefix {
				return fmt.Sprintf("addr %s db %d tls %v prefix %s", o.Addr, o.DB, o.TLSConfig != nil, e.prefix)
			}
			return ""
		}, ""},
		{"redis://:s3cret@r:6379/0?key_prefix=sw2:&dial_timeout=1s", func(e *endpoint) string {
			if o := e.single; o.Password != "s3cret" || e.prefix != "sw2:" || o.DialTimeout != time.Second {
				return fmt.Sprintf("password %q prefix %q dial %v", o.Password, e.prefix, o.DialTimeout)
			}
			return ""
		}, ""},
		{"rediss://r.internal:6380/0", func(e *endpoint) string {
			if c := e.single.TLSConfig; c == nil || c.ServerName != "r.internal" || c.RootCAs != nil {
				return "want TLS to r.internal with the system roots"
			}
			return ""
		}, ""},
		{"rediss://r:6380/0?ca_file=" + ca, func(e *endpoint) string {
			if c := e.single.TLSConfig; c == nil || c.RootCAs == nil {
				return "want TLS trusting ca_file"
			}
			return ""
		}, ""},
		{"redis+sentinel://:pw@mymaster/s1:26379,s2:26380,s3:26381/3?sentinel_password=spw", func(e *endpoint) string {
			o := e.failover
			if o.MasterName != "mymaster" || !slices.Equal(o.SentinelAddrs, []string{"s1:26379", "s2:26380", "s3:26381"}) ||
				o.DB != 3 || o.Password != "pw" || o.SentinelPassword != "spw" {
				return fmt.Sprintf("%+v", o)
			}
			return ""
		}, ""},
		{"redis+sentinel://m/s1:26379", func(e *endpoint) string {
			if o := e.failover; o.MasterName != "m" || o.DB != 0 || o.Password != "" {
				return fmt.Sprintf("%+v", o)
			}
			return ""
		}, ""},
		{"redis+cluster://:pw@n1:7000,n2:7001,n3:7002?dial_timeout=1s", func(e *endpoint) string {
			o := e.cluster
			if !slices.Equal(o.Addrs, []string{"n1:7000", "n2:7001", "n3:7002"}) || o.Password != "pw" || o.TLSConfig != nil ||
				o.DialTimeout != time.Second || e.prefix != "{qrs}:" {
				return fmt.Sprintf("%+v prefix %q", o, e.prefix)
			}
			return ""
		}, ""},
		{"rediss+cluster://n1:7000?ca_file=" + ca + "&key_prefix=sw2:{east}:", func(e *endpoint) string {
			if c := e.cluster.TLSConfig; c == nil || c.RootCAs == nil || c.ServerName != "n1" || e.prefix != "sw2:{east}:" {
				return fmt.Sprintf("want TLS to n1 trusting ca_file, prefix sw2:{east}: as given; prefix %q", e.prefix)
			}
			return ""
		}, ""},
		{"redis+cluster://n1:7000?key_prefix=sw2", func(e *endpoint) string {
			if e.prefix != "{sw2}" {
				return fmt.Sprintf("prefix %q, want {sw2}", e.prefix)
			}
			return ""
		}, ""},
		{"redis+cluster://n1:7000/0", nil, "no database number"},
		{"redis+cluster://n1,n2:7001", nil, "HOST:PORT"},
		{"redis+cluster://n1:7000?addr=n2:7001", nil, "host part"},
		{"redis+cluster://n1:7000?ca_file=" + ca, nil, "needs rediss+cluster://"},
		{"redis+cluster://n1:7000?key_prefix=a{}:", nil, "hash tag"},
		{"redis+cluster://n1:7000?key_prefix=a}:", nil, "without a {"},
		{"redis+cluster://n1:7000?key_prefix=:", nil, "prefix with a name"},
		{"redis://r:6379/0?ca_file=" + ca, nil, "needs rediss://"},
		{"redis://r:6379/0?colour=blue", nil, "colour"},
		{"redis://r:6379/0?key_prefix=", nil, "key_prefix"},
		{"rediss://r:6380/0?ca_file=/nonexistent", nil, "ca_file"},
		{"redis+sentinel://m/", nil, "no sentinel addresses"},
		{"redis+sentinel://m/s1", nil, "HOST:PORT"},
		{"redis+sentinel://m/s1:1?master_name=x", nil, "URL's parts"},
		{"memcached://x", nil, "not a Redis one"},
	} {
		e, err := parseURL(tc.url)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseURL(%s) error = %v, want one mentioning %q", tc.url, err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("parseURL(%s) error = %v", tc.url, err)
		default:
			if msg := tc.check(e); msg != "" {
				t.Errorf("parseURL(%s): %s", tc.url, msg)
			}
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("parseURL(%s) error shows the password: %v", tc.url, err)
		}
	}
}

// TestDeployConfig: the shipped deploy/redis.conf starts a Redis the store
// accepts. Its dir line goes (Redis enters the directory as it reads the
// file, before command-line overrides): the test server's data lives in
// its temporary directory.
func TestDeployConfig(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("..", "..", "deploy", "redis.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, line := range strings.Split(string(text), "\n") {
		if !strings.HasPrefix(line, "dir ") {
			lines = append(lines, line)
		}
	}
	conf := filepath.Join(t.TempDir(), "redis.conf")
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := redistest.StartWith(t, redistest.Options{ConfigFile: conf})
	s := openOn(t, srv.URL(), newPrefix(), Options{})
	mustCommit(t, s, "payment", &qrswitch.Change{Payment: payment("pay-1", "tran-1", t0)})
	cfg, err := srv.Client(t).ConfigGet(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction", "protected-mode": "yes"} {
		if cfg[k] != want {
			t.Errorf("deploy/redis.conf: %s = %q, want %q", k, cfg[k], want)
		}
	}
}
