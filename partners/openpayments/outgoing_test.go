package openpayments_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/openpayments"
	"github.com/qrswitch/qrswitch/partners/railtest"
)

func eur(v string) map[string]any {
	return map[string]any{"value": v, "assetCode": "EUR", "assetScale": 2}
}

// incomingFor creates an incoming payment of wallet for amount.
func (e *env) incomingFor(wallet string, amount map[string]any, expires string) string {
	e.t.Helper()
	body := map[string]any{"walletAddress": e.base + "/" + wallet}
	if amount != nil {
		body["incomingAmount"] = amount
	}
	if expires != "" {
		body["expiresAt"] = expires
	}
	st, ip := e.do("POST", e.base+"/incoming-payments", "GNAP all", body)
	if st != 201 {
		e.t.Fatalf("create incoming = %d %v", st, ip)
	}
	return ip["id"].(string)
}

func TestQuotes(t *testing.T) {
	e := newEnv(t, railtest.NewHost())
	cust := e.base + "/customer"
	usdIn := e.incomingFor("shop1", usd("1000"), "")
	eurIn := e.incomingFor("shop-2", eur("500"), "")
	openIn := e.incomingFor("shop1", nil, "")
	soon := time.Now().Add(time.Minute).UTC().Truncate(time.Second)
	soonIn := e.incomingFor("shop1", usd("1000"), soon.Format(time.RFC3339))
	for _, c := range []struct {
		name           string
		body           map[string]any
		debit, receive map[string]any
	}{
		{"receiver's amount, fees on top", map[string]any{"receiver": usdIn}, usd("1020"), usd("1000")},
		{"fixed debit", map[string]any{"receiver": openIn, "debitAmount": usd("1020")}, usd("1020"), usd("1000")},
		{"fixed receive", map[string]any{"receiver": openIn, "receiveAmount": usd("1000")}, usd("1020"), usd("1000")},
		{"exchange pinned", map[string]any{"receiver": eurIn}, usd("1020"), eur("500")},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.body["walletAddress"], c.body["method"] = cust, "ilp"
			st, q := e.do("POST", e.base+"/quotes", "GNAP all", c.body)
			if st != 201 || fmt.Sprint(q["debitAmount"]) != fmt.Sprint(c.debit) || fmt.Sprint(q["receiveAmount"]) != fmt.Sprint(c.receive) ||
				q["walletAddress"] != cust || q["method"] != "ilp" {
				t.Fatalf("create quote = %d %v, want debit %v receive %v", st, q, c.debit, c.receive)
			}
			if st, got := e.do("GET", q["id"].(string), "GNAP all", nil); st != 200 || fmt.Sprint(got) != fmt.Sprint(q) {
				t.Fatalf("GET quote = %d %v, want %v", st, got, q)
			}
		})
	}
	st, q := e.do("POST", e.base+"/quotes", "GNAP all", map[string]any{"walletAddress": cust, "receiver": soonIn, "method": "ilp"})
	if exp, _ := time.Parse(time.RFC3339, fmt.Sprint(q["expiresAt"])); st != 201 || !exp.Equal(soon) {
		t.Fatalf("quote on a receiver expiring at %s = %d %v, want that expiry", soon, st, q)
	}
	for name, body := range map[string]map[string]any{
		"no rate":          {"walletAddress": e.base + "/shop-2", "receiver": usdIn, "method": "ilp"},
		"both amounts":     {"walletAddress": cust, "receiver": openIn, "method": "ilp", "debitAmount": usd("5"), "receiveAmount": usd("5")},
		"no amount at all": {"walletAddress": cust, "receiver": openIn, "method": "ilp"},
		"foreign receiver": {"walletAddress": cust, "receiver": "https://elsewhere.example/incoming-payments/1", "method": "ilp"},
		"unknown property": {"walletAddress": cust, "receiver": usdIn, "method": "ilp", "x": 1},
		"too much":         {"walletAddress": cust, "receiver": usdIn, "method": "ilp", "receiveAmount": usd("1001")},
		"fee eats it":      {"walletAddress": cust, "receiver": openIn, "method": "ilp", "debitAmount": usd("10")},
		"bad method":       {"walletAddress": cust, "receiver": usdIn, "method": "card"},
	} {
		st, out := e.do("POST", e.base+"/quotes", "GNAP all", body)
		checkError(t, "quote with "+name, st, 400, out)
	}
}

// TestOutgoingPaymentSettles: an outgoing payment on a quote is settled
// by the STREAM sender over the upstream peer (here the rail's own ILP
// endpoint), completing the receiver; its quote cannot be used again, a
// foreign or expired quote is refused.
func TestOutgoingPaymentSettles(t *testing.T) {
	e := newEnv(t, railtest.NewHost())
	cust := e.base + "/customer"
	in := e.incomingFor("shop1", usd("1000"), "")
	_, q := e.do("POST", e.base+"/quotes", "GNAP all", map[string]any{"walletAddress": cust, "receiver": in, "method": "ilp"})
	st, op := e.do("POST", e.base+"/outgoing-payments", "GNAP all", map[string]any{"walletAddress": cust, "quoteId": q["id"], "metadata": map[string]any{"ref": "x"}})
	if st != 201 || op["failed"] != false || fmt.Sprint(op["debitAmount"]) != fmt.Sprint(usd("1020")) || op["receiver"] != in {
		t.Fatalf("create outgoing = %d %v", st, op)
	}
	var got map[string]any
	deadline := time.Now().Add(60 * time.Second) // backstop; the verdict is the payment's own state
	for {
		_, got = e.do("GET", op["id"].(string), "GNAP all", nil)
		if got["failed"] == true || fmt.Sprint(got["sentAmount"]) == fmt.Sprint(usd("1000")) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got["failed"] != false || fmt.Sprint(got["sentAmount"]) != fmt.Sprint(usd("1000")) {
		t.Fatalf("outgoing payment = %v, want 1000 sent, not failed", got)
	}
	if _, ip := e.do("GET", in, "GNAP all", nil); ip["completed"] != true || fmt.Sprint(ip["receivedAmount"]) != fmt.Sprint(usd("1000")) {
		t.Fatalf("receiver after settlement = %v, want completed with 1000", ip)
	}
	st, out := e.do("POST", e.base+"/outgoing-payments", "GNAP all", map[string]any{"walletAddress": cust, "quoteId": q["id"]})
	checkError(t, "outgoing on a used quote", st, 400, out)

	in2 := e.incomingFor("shop1", usd("300"), "")
	_, q2 := e.do("POST", e.base+"/quotes", "GNAP all", map[string]any{"walletAddress": cust, "receiver": in2, "method": "ilp"})
	st, out = e.do("POST", e.base+"/outgoing-payments", "GNAP all", map[string]any{"walletAddress": e.base + "/shop1", "quoteId": q2["id"]})
	checkError(t, "outgoing on another wallet's quote", st, 400, out)
	var mu sync.Mutex
	later := time.Now().Add(10 * time.Minute)
	openpayments.SetClock(e.rail, func() time.Time { mu.Lock(); defer mu.Unlock(); return later })
	st, out = e.do("POST", e.base+"/outgoing-payments", "GNAP all", map[string]any{"walletAddress": cust, "quoteId": q2["id"]})
	checkError(t, "outgoing on an expired quote", st, 400, out)
}

// TestOutgoingPaymentResumes: an outgoing payment whose upstream peer
// hangs is stopped with the rail; a rail started again on the same store
// resumes it from its saved STREAM state over a working peer and delivers
// the quote's amount exactly once.
func TestOutgoingPaymentResumes(t *testing.T) {
	e := newEnv(t, railtest.NewHost())
	hung, release := make(chan struct{}, 64), make(chan struct{})
	stuck := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hung <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	stuck.StartTLS()
	t.Cleanup(stuck.Close)
	t.Cleanup(func() { close(release) })

	// The first rail pays through the hung peer, with its own surface.
	mux := http.NewServeMux()
	srv := httptest.NewUnstartedServer(mux)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	first := newRailUpstream(t, railtest.NewHost(), e.records, e.srv.URL, stuck.Client().Transport, stuck.URL, "2s")
	openpayments.SetVerifier(first, testVerifier)
	for _, rt := range first.(partners.Surface).Routes() {
		mux.Handle(rt.Method+" "+rt.Path, rt.Handler)
	}
	in := e.incomingFor("shop1", usd("400"), "")
	_, q := e.do("POST", e.base+"/quotes", "GNAP all", map[string]any{"walletAddress": e.base + "/customer", "receiver": in, "method": "ilp"})
	body, _ := json.Marshal(map[string]any{"walletAddress": e.base + "/customer", "quoteId": q["id"]})
	req, _ := http.NewRequest("POST", srv.URL+"/op/outgoing-payments", bytes.NewReader(body))
	req.Header.Set("Authorization", "GNAP all")
	resp, err := srv.Client().Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("create outgoing on the first rail = %v %v", resp, err)
	}
	var op map[string]any
	json.NewDecoder(resp.Body).Decode(&op)
	resp.Body.Close()
	select {
	case <-hung: // a packet is on its way to the hung peer
	case <-time.After(30 * time.Second): // backstop
		t.Fatal("the first rail sent nothing to its upstream peer within 30 s")
	}
	first.(partners.Starter).Close()

	// The rail of e (upstream: its own endpoint) is started again.
	if err := e.rail.(partners.Starter).Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	deadline := time.Now().Add(60 * time.Second) // backstop; the verdict is the payment's own state
	for {
		_, got = e.do("GET", op["id"].(string), "GNAP all", nil)
		if got["failed"] == true || fmt.Sprint(got["sentAmount"]) == fmt.Sprint(usd("400")) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got["failed"] != false || fmt.Sprint(got["sentAmount"]) != fmt.Sprint(usd("400")) {
		t.Fatalf("resumed outgoing payment = %v, want 400 sent", got)
	}
	if _, ip := e.do("GET", in, "GNAP all", nil); ip["completed"] != true || fmt.Sprint(ip["receivedAmount"]) != fmt.Sprint(usd("400")) {
		t.Fatalf("receiver = %v, want exactly 400, completed", ip)
	}
}

// TestOutgoingPaymentFails: a receiver completed between the quote and the
// payment refuses the money; the outgoing payment ends failed with nothing
// sent.
func TestOutgoingPaymentFails(t *testing.T) {
	e := newEnv(t, railtest.NewHost())
	in := e.incomingFor("shop1", usd("250"), "")
	_, q := e.do("POST", e.base+"/quotes", "GNAP all", map[string]any{"walletAddress": e.base + "/customer", "receiver": in, "method": "ilp"})
	if st, out := e.do("POST", in+"/complete", "GNAP all", nil); st != 200 {
		t.Fatalf("complete = %d %v", st, out)
	}
	st, op := e.do("POST", e.base+"/outgoing-payments", "GNAP all", map[string]any{"walletAddress": e.base + "/customer", "quoteId": q["id"]})
	if st != 201 {
		t.Fatalf("create outgoing = %d %v", st, op)
	}
	var got map[string]any
	deadline := time.Now().Add(60 * time.Second) // backstop; the verdict is the payment's own state
	for {
		_, got = e.do("GET", op["id"].(string), "GNAP all", nil)
		if got["failed"] == true || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got["failed"] != true || fmt.Sprint(got["sentAmount"]) != fmt.Sprint(usd("0")) {
		t.Fatalf("outgoing payment to a completed receiver = %v, want failed with nothing sent", got)
	}
}
