package openpayments_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/ilp"
	"github.com/qrswitch/qrswitch/partners/ilp/ilphttp"
	"github.com/qrswitch/qrswitch/partners/openpayments"
	"github.com/qrswitch/qrswitch/partners/railtest"
)

// TestAnotherReplicaTakesThePayment: a second rail on the same store (a
// replica, or the switch after a restart) with no memory of the incoming
// payment resolves its ILP address and credits it: nothing but the server
// secret is needed to match a packet to its incoming payment.
func TestAnotherReplicaTakesThePayment(t *testing.T) {
	e := newEnv(t, railtest.NewHost())
	in := e.incomingFor("shop1", usd("700"), "")
	_, ip := e.do("GET", in, "GNAP all", nil)
	m := ip["methods"].([]any)[0].(map[string]any)

	mux := http.NewServeMux()
	srv := httptest.NewUnstartedServer(mux)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	replica := newRail(t, railtest.NewHost(), e.records, e.srv.URL, srv.Client().Transport)
	for _, rt := range replica.(partners.Surface).Routes() {
		mux.Handle(rt.Method+" "+rt.Path, rt.Handler)
	}
	c := ilphttp.NewClient(srv.URL+"/op/ilp", peerToken, 0)
	c.HTTP.Transport = srv.Client().Transport
	p := &onePacket{client: c}
	if rep := p.send(t, ilp.Address(m["ilpAddress"].(string)), decodeSecret(t, m["sharedSecret"].(string)), 700); !isFulfill(rep) {
		t.Fatalf("replica answered %+v, want a Fulfill", rep)
	}
	if _, got := e.do("GET", in, "GNAP all", nil); got["completed"] != true || fmt.Sprint(got["receivedAmount"]) != fmt.Sprint(usd("700")) {
		t.Fatalf("incoming payment after the replica's credit = %v, want completed with 700", got)
	}
}

func isFulfill(r ilp.Reply) bool { _, ok := r.(*ilp.Fulfill); return ok }

// TestConcurrentPacketsNeverOverfill: twenty packets of 100 race for an
// incoming payment of 1000: exactly ten are fulfilled, the rest refused,
// and the payment holds 1000, completed.
func TestConcurrentPacketsNeverOverfill(t *testing.T) {
	e := newEnv(t, railtest.NewHost())
	in := e.incomingFor("shop1", usd("1000"), "")
	_, ip := e.do("GET", in, "GNAP all", nil)
	m := ip["methods"].([]any)[0].(map[string]any)
	dest, secret := ilp.Address(m["ilpAddress"].(string)), decodeSecret(t, m["sharedSecret"].(string))
	var wg sync.WaitGroup
	var mu sync.Mutex
	fulfilled, other := 0, map[string]int{}
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep := (&onePacket{client: e.ilpClient()}).send(t, dest, secret, 100)
			mu.Lock()
			defer mu.Unlock()
			if isFulfill(rep) {
				fulfilled++
			} else {
				other[string(rep.(*ilp.Reject).Code)]++
			}
		}()
	}
	wg.Wait()
	if fulfilled != 10 {
		t.Fatalf("%d packets fulfilled (others %v), want 10", fulfilled, other)
	}
	if _, got := e.do("GET", in, "GNAP all", nil); got["completed"] != true || fmt.Sprint(got["receivedAmount"]) != fmt.Sprint(usd("1000")) {
		t.Fatalf("incoming payment = %v, want completed with 1000", got)
	}
}

// TestPaidBeforeTheRequest: a code paid before the POS's payment request
// reached the switch (Host.Paid answers ErrNoRequestYet) is answered T00
// with nothing credited; the sender's retry of the same packet, once the
// request is there, is credited and reported once.
func TestPaidBeforeTheRequest(t *testing.T) {
	host := railtest.NewHost()
	host.PaidErr = partners.ErrNoRequestYet
	e := newEnv(t, host)
	o := &partners.OfferRequest{TranID: wire.NewID(), RetailerID: "shop-1", Amount: &wire.LedgerAmount{Amount: 150, Currency: "840"},
		ExpiresAt: time.Now().Add(5 * time.Minute), Now: time.Now()}
	of, err := e.rail.(partners.Offerer).Offer(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.records.Commit(t.Context(), of.Records...); err != nil {
		t.Fatal(err)
	}
	dest, secret := e.credentialsOf(of)
	p := &onePacket{client: e.ilpClient()}
	if rj, ok := p.send(t, dest, secret, 150).(*ilp.Reject); !ok || rj.Code != ilp.T00InternalError {
		t.Fatalf("packet before the request = %+v, want Reject T00", rj)
	}
	if _, pub := e.do("GET", of.Reference, "", nil); fmt.Sprint(pub["receivedAmount"]) != fmt.Sprint(usd("0")) {
		t.Fatalf("after T00: %v, want nothing received", pub)
	}
	host.PaidErr = nil
	if rep := p.resend(t); !isFulfill(rep) {
		t.Fatalf("retry = %+v, want a Fulfill", rep)
	}
	if rep := p.resend(t); !isFulfill(rep) {
		t.Fatalf("repeat of the fulfilled packet = %+v, want the Fulfill again", rep)
	}
	if paid := host.PaidReports(); len(paid) != 1 || paid[0].Amount.Amount != 150 {
		t.Fatalf("Paid reports = %v, want one of 150", paid)
	}
}

// endHost hears ended offers.
type endHost struct {
	*railtest.Host
	ended chan string
}

func (h endHost) OfferEnded(_ context.Context, tranID, _, reason string) error {
	h.ended <- tranID + ": " + reason
	return nil
}

// TestExpiredCodeReportedOnce: the sweeper tells the engine, once, that a
// code whose incoming payment expired unpaid can no longer be paid.
func TestExpiredCodeReportedOnce(t *testing.T) {
	e := newEnv(t, railtest.NewHost())
	host := endHost{Host: railtest.NewHost(), ended: make(chan string, 8)}
	r := newRail(t, host, e.records, e.srv.URL, e.client.Transport)
	var mu sync.Mutex
	now := time.Now()
	openpayments.SetClock(r, func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	o := &partners.OfferRequest{TranID: wire.NewID(), RetailerID: "shop-1", Amount: &wire.LedgerAmount{Amount: 100, Currency: "840"},
		ExpiresAt: now.Add(time.Minute), Now: now}
	of, err := r.(partners.Offerer).Offer(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.records.Commit(t.Context(), of.Records...); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	select {
	case got := <-host.ended:
		if !strings.HasPrefix(got, o.TranID+": ") {
			t.Fatalf("OfferEnded(%s), want code %s", got, o.TranID)
		}
	case <-time.After(30 * time.Second): // backstop; the sweeper runs every second
		t.Fatal("no OfferEnded within 30 s of the code's expiry")
	}
	if err := r.(*openpayments.Rail).Sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-host.ended:
		t.Fatalf("OfferEnded again: %s", got)
	default:
	}
}
