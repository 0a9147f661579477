package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/ilp/cond"
	redisstore "github.com/qrswitch/qrswitch/store/redis"
	"github.com/qrswitch/qrswitch/store/redis/redistest"
	qrswitch "github.com/qrswitch/qrswitch/switch"
	tlsconfig "github.com/qrswitch/qrswitch/tls"
)

// TestILPInvoiceCrashSharded kills the switch process (SIGKILL) three
// times while a DFSP is fulfilling transfers into it on the ILP invoice
// rail, on a store spread over eight shards of a Redis Cluster, each time
// when the DFSP has had a number of fulfillments answered, and restarts it
// on the same store and address. The DFSP sends every prepare and
// fulfillment that got no answer again, as a real one does, but for a
// quarter of its transfers: those it only reads until the ledger decides
// them, which the restarted switch's sweep must. Invoices whose payment
// request never comes are paid too (their transfers are rejected at their
// expiry, across the kills). Afterwards the ledger is exact: every
// transfer is executed exactly once or rejected with its funds back, as
// the ledger told the DFSP; the DFSP's, the merchant's and the fee
// account's balances are what the executed transfers imply; an executed
// transfer's invoice is paid by it and its payment APPROVED, a rejected
// one's invoice is not paid and its payment, if any, not approved.
//
// On a Redis store the switch is not the store's sole owner: a payment
// request held by the killed process stays AWAITING_SCAN until its hold
// ends (scan_wait and a margin), so the DFSP's resend still approves it
// (the POS, whose request died, reverses it, as after any lost answer).
func TestILPInvoiceCrashSharded(t *testing.T) {
	start := time.Now()
	storeURL := redistest.StartCluster(t, 3, 0).URL() + "?shards=8"
	dir := t.TempDir()
	cfg := ilpCrashConfig(t, dir, storeURL)
	cfgFile, logs := childFiles(t, dir, cfg)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logs.Name())
			t.Logf("the child switch's log:\n%s", tail(b, 40))
		}
	})
	c := startChild(t, cfgFile, logs)
	clientTLS, err := tlsconfig.NewClient(tlsconfig.ClientOptions{CAFile: filepath.Join(dir, "tls", "ca.pem")})
	if err != nil {
		t.Fatal(err)
	}
	h := &Harness{T: t, Cfg: cfg, Base: "https://" + c.addr,
		Client: &http.Client{Timeout: settle, Transport: &http.Transport{TLSClientConfig: clientTLS}}}
	st, err := redisstore.Open(t.Context(), storeURL, redisstore.Options{JanitorInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	records := qrswitch.RailRecords(st, config.DevILPPartnerID)
	const merchant, fees, dfspAccount = config.DevRetailerID, "qrswitch-fees", config.DevILPDFSPID
	before := ledgerBalances(t, records, merchant, fees, dfspAccount)

	// The POS asks for n codes and holds a payment request on each but
	// the last unheld: those the DFSP pays before their payment request
	// comes, which never does.
	const n, unheld = 40, 8
	const retailer, pass = config.DevRetailerUsername, config.DevRetailerPassword
	type sale struct {
		tranID, invoiceURL, requestID string // requestID "": no payment request
		answer                        <-chan Response
	}
	sales := make([]*sale, n)
	for i := range sales {
		tranID, invoiceURL := invoiceCode(t, h, "")
		sales[i] = &sale{tranID: tranID, invoiceURL: invoiceURL}
		if i < n-unheld {
			req := payRequest(config.DevRetailerInstitutionID, tranID, 1500)
			sales[i].requestID, sales[i].answer = req.ID, h.payAsyncAs(req, retailer, pass)
		}
	}
	for _, s := range sales[:n-unheld] {
		waitPayment(t, st, s.requestID, "AWAITING_SCAN")
	}

	// The DFSP pays every invoice at once; the switch is killed each time
	// the DFSP has had answers to kills[i] fulfillments, the rest in flight,
	// and restarted: each kill catches transfers between other steps.
	kills := []int64{8, 16, 24}
	d := &ilpDFSP{client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: clientTLS}},
		ledger: h.Base + "/ilpinvoice/" + config.DevILPPartnerID, user: config.DevILPDFSPUsername, pass: config.DevILPDFSPPassword}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Second) // a backstop: the test waits on answers
	defer cancel()
	var answered atomic.Int64
	killAt := map[int64]chan struct{}{} // read-only once the DFSP starts
	for _, k := range kills {
		killAt[k] = make(chan struct{})
	}
	d.fulfilAnswered = func() {
		if ch, ok := killAt[answered.Add(1)]; ok {
			close(ch)
		}
	}
	paid := make([]*dfspTransfer, n)
	var wg sync.WaitGroup
	for i, s := range sales {
		wg.Add(1)
		go func() {
			defer wg.Done()
			life, watch := time.Minute, i%4 == 3
			switch {
			case s.requestID == "":
				life, watch = unheldLife, false // rejected at its expiry, the switch up again
			case watch:
				life = watchedLife // a fulfillment the switch never saw: rejected at its expiry
			}
			paid[i] = d.pay(ctx, s.invoiceURL, life, watch)
		}()
	}
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()
	posAnswers := map[string]Response{}
	var caught []map[string]int
	for round, k := range kills {
		select {
		case <-killAt[k]:
		case <-all:
			t.Fatalf("every payment ended before kill %d", round+1)
		case <-ctx.Done():
			t.Fatalf("only %d fulfillments answered before the backstop, want %d before kill %d", answered.Load(), k, round+1)
		}
		c.kill(t)
		caught = append(caught, transferStates(t, records))
		if round == 0 { // the POS's held requests die with the first switch
			for _, s := range sales[:n-unheld] {
				posAnswers[s.requestID] = <-s.answer
			}
		}
		// The same switch again, on the same store and address: the
		// DFSP's resends reach it.
		c = startChild(t, cfgFile, logs)
		if h.Base != "https://"+c.addr {
			t.Fatalf("the restarted switch listens on %s, want %s", c.addr, h.Base)
		}
	}
	select {
	case <-all:
	case <-ctx.Done():
		t.Fatalf("the DFSP still waits for answers at the backstop: %d of %d fulfillments answered; the transfers %v", answered.Load(), n, transferStates(t, records))
	}
	until(t, "every transfer and payment final", func() bool {
		rs, err := records.List(t.Context(), partners.RecordQuery{Kind: "transfer", Limit: 1000})
		if err != nil {
			return false
		}
		for _, rec := range rs {
			var tr struct{ State string }
			if json.Unmarshal(rec.Data, &tr) != nil || tr.State != "executed" && tr.State != "rejected" {
				return false
			}
		}
		for _, s := range sales[:n-unheld] {
			if p, err := st.Payment(t.Context(), qrswitch.PaymentKey(config.DevRetailerID, s.requestID)); err != nil || p.State == "AWAITING_SCAN" {
				return false
			}
		}
		return true
	})

	// The ledger, transfer by transfer: the store, the DFSP's answers and
	// what the ledger API tells the DFSP agree.
	rs, err := records.List(t.Context(), partners.RecordQuery{Kind: "transfer", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]string{}
	for _, rec := range rs {
		var tr struct{ State string }
		if err := json.Unmarshal(rec.Data, &tr); err != nil {
			t.Fatal(err)
		}
		stored[rec.Key] = tr.State
	}
	if len(stored) != n {
		t.Errorf("the ledger holds %d transfers, want the %d the DFSP prepared (%v)", len(stored), n, stored)
	}
	var executed, rejected, resent, watched int
	for i, s := range sales {
		p := paid[i]
		if p.err != nil {
			t.Errorf("paying %s: %v", s.invoiceURL, p.err)
			continue
		}
		resent += p.resends
		if p.watched {
			watched++
		}
		state := stored[p.id]
		if got := d.state(t, p.id); got != state {
			t.Errorf("transfer %s: the ledger API says %q, the store %q", p.id, got, state)
		}
		inv, irec := storedInvoice(t, records, s.invoiceURL)
		pay := &qrswitch.Payment{State: "none"}
		if s.requestID != "" {
			if pay, err = st.Payment(t.Context(), qrswitch.PaymentKey(config.DevRetailerID, s.requestID)); err != nil {
				t.Fatalf("payment %s: %v", s.requestID, err)
			}
		}
		var public struct{ Status string }
		h.getJSON(t, s.invoiceURL, "", "", &public)
		switch state {
		case "executed":
			executed++
			if p.learned != state {
				t.Errorf("transfer %s executed, but the DFSP was told %s", p.id, p.learned)
			}
			if inv.Status != "paid" || inv.Transfer != p.id || public.Status != "paid" || pay.State != "APPROVED" {
				t.Errorf("transfer %s executed: invoice %s %q by %q (public %q), payment %v; want paid by it and the payment APPROVED",
					p.id, irec, inv.Status, inv.Transfer, public.Status, pay.State)
			}
		case "rejected":
			rejected++
			if p.learned != state {
				t.Errorf("transfer %s rejected, but the DFSP was told %s", p.id, p.learned)
			}
			if inv.Status == "paid" || public.Status == "paid" || pay.State == "APPROVED" {
				t.Errorf("transfer %s rejected: invoice %s %q by %q (public %q), payment %v; want it unpaid and the payment not approved",
					p.id, irec, inv.Status, inv.Transfer, public.Status, pay.State)
			}
		default:
			t.Errorf("transfer %s (invoice %s) is %q in the store, want executed or rejected", p.id, s.invoiceURL, state)
		}
		if a, ok := posAnswers[s.requestID]; ok && a.status == http.StatusCreated && state != "executed" {
			t.Errorf("the POS was answered 201 for %s, but its transfer %s is %s", s.requestID, p.id, state)
		}
	}

	// The balances: each executed transfer moved 15.50 from the DFSP, 15.00
	// to the merchant and 0.50 to the fee account, once; a rejected one
	// moved nothing.
	after := ledgerBalances(t, records, merchant, fees, dfspAccount)
	e := int64(executed)
	want := map[string]int64{dfspAccount: before[dfspAccount] - 1550*e, merchant: before[merchant] + 1500*e, fees: before[fees] + 50*e}
	for name, w := range want {
		if after[name] != w {
			t.Errorf("account %s holds %d (minor units), want %d: %d transfers executed, %d rejected", name, after[name], w, executed, rejected)
		}
	}
	var acct struct{ Balance string }
	if st := h.getJSON(t, d.ledger+"/ledger/accounts/"+dfspAccount, d.user, d.pass, &acct); st != http.StatusOK || acct.Balance != fmt.Sprintf("%d.%02d", want[dfspAccount]/100, want[dfspAccount]%100) {
		t.Errorf("the ledger API gives the DFSP's balance as %d %q, want %d minor units", st, acct.Balance, want[dfspAccount])
	}
	if executed == 0 || rejected == 0 {
		t.Errorf("%d transfers executed and %d rejected: the test pays invoices of both ends", executed, rejected)
	}
	t.Logf("ILP crash: %d kill -9s after %v fulfillments answered, leaving the transfers %v; %d requests sent again, %d fulfillments left unanswered for the sweep; %d executed, %d rejected (%v)",
		len(kills), kills, caught, resent, watched, executed, rejected, time.Since(start).Round(time.Millisecond))
}

// ilpCrashConfig is the development setup with its ILP invoice rail only,
// for a child switch on a fixed address and the store at storeURL. The
// child reads it from a file, where the development setup's plaintext DFSP
// password is refused: it gets its bcrypt hash instead, and no simulator
// (the test is the DFSP; the directory is not needed without customers).
func ilpCrashConfig(t *testing.T, dir, storeURL string) *config.Config {
	t.Helper()
	cfg, err := config.Load("", []string{"QRSWITCH_DATA_DIR=" + dir, "QRSWITCH_LISTEN=" + freePort(t),
		"QRSWITCH_ADMIN_LISTEN=" + freePort(t), "QRSWITCH_CHECKOUT_LISTEN=127.0.0.1:0",
		// A payment request held at a kill is recovered (NO_SCAN) once its
		// hold ends, scan_wait and a margin after it came: shorter than
		// the default for the test's run time.
		"QRSWITCH_SCAN_WAIT=10s"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store.URL = storeURL
	for _, r := range cfg.Retailers {
		if r.ID == config.DevRetailerID { // the webshop's checkout pays over another rail
			// Named: nil would be written as "offers: []", which offers
			// no rail at all.
			r.Offers = []string{config.DevILPPartnerID}
			cfg.Retailers = []config.Retailer{r}
			break
		}
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(config.DevILPDFSPPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	var opts yaml.Node
	if err := yaml.Unmarshal([]byte(`
currency: "710"
ledger_prefix: test.qrswitch.
fee_fixed: "0.50"
dfsps:
  - {id: `+config.DevILPDFSPID+`, name: Sim DFSP, balance: "100000.00", username: `+config.DevILPDFSPUsername+`, password_hash: "`+string(hash)+`"}
`), &opts); err != nil {
		t.Fatal(err)
	}
	for _, p := range cfg.Partners {
		if p.ID == config.DevILPPartnerID {
			p.BaseURL, p.Options = "", *opts.Content[0]
			cfg.Partners = []config.Partner{p}
			return cfg
		}
	}
	t.Fatalf("the development setup has no partner %s", config.DevILPPartnerID)
	return nil
}

// transferStates counts the ledger's transfers by state, an executing
// one by its invoice's status too (paid: between approval and credit).
func transferStates(t *testing.T, records partners.Records) map[string]int {
	t.Helper()
	rs, err := records.List(t.Context(), partners.RecordQuery{Kind: "transfer", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, rec := range rs {
		var tr struct{ State, Invoice string }
		if err := json.Unmarshal(rec.Data, &tr); err != nil {
			t.Fatal(err)
		}
		if tr.State == "executing" {
			inv, _ := storedInvoice(t, records, tr.Invoice)
			tr.State += " (invoice " + inv.Status + ")"
		}
		out[tr.State]++
	}
	return out
}

// ledgerBalances reads accounts from the store (one not yet opened: 0).
func ledgerBalances(t *testing.T, records partners.Records, names ...string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, name := range names {
		rec, err := records.Get(t.Context(), "account", name)
		if errors.Is(err, partners.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var a struct{ Balance int64 }
		if err := json.Unmarshal(rec.Data, &a); err != nil {
			t.Fatal(err)
		}
		out[name] = a.Balance
	}
	return out
}

// storedInvoice reads the invoice behind an invoice URL from the store.
func storedInvoice(t *testing.T, records partners.Records, invoiceURL string) (inv struct{ Status, Transfer string }, id string) {
	t.Helper()
	id = invoiceURL[strings.LastIndex(invoiceURL, "/")+1:]
	rec, err := records.Get(t.Context(), "invoice", id)
	if err != nil {
		t.Fatalf("invoice %s: %v", id, err)
	}
	if err := json.Unmarshal(rec.Data, &inv); err != nil {
		t.Fatal(err)
	}
	return inv, id
}

// waitPayment waits until the store holds the demo retailer's payment in
// state.
func waitPayment(t *testing.T, st qrswitch.Store, requestID, state string) {
	t.Helper()
	until(t, "payment "+requestID+" "+state, func() bool {
		p, err := st.Payment(t.Context(), qrswitch.PaymentKey(config.DevRetailerID, requestID))
		return err == nil && string(p.State) == state
	})
}

// ilpDFSP is a customer's DFSP paying invoices on the switch's ledger over
// its wire protocol, as dfspsim does, but from the test's process (the
// development setup's simulator dies with the switch), and as a real DFSP
// would across a crash of the switch: a prepare or a fulfillment that got
// no answer, or a 503, is sent again (the same bytes) until it is answered
// — but for a watching DFSP's fulfillment: that one is not sent again, its
// transfer is read until the ledger has decided it (the switch's sweep
// must).
type ilpDFSP struct {
	client             *http.Client
	ledger, user, pass string
	fulfilAnswered     func() // called when a fulfillment is answered
}

// dfspTransfer is what the DFSP did for one invoice.
type dfspTransfer struct {
	id      string
	learned string // executed or rejected: what the ledger told the DFSP
	watched bool   // its fulfillment got no answer and was not sent again
	resends int    // requests sent again for want of an answer, or on 503
	err     error
}

// unheldLife is the life of the transfers paying invoices whose payment
// request never comes: long enough to be fenced before the kill and
// resent across it, short for the test's run time.
const unheldLife = 6 * time.Second

// watchedLife is the life of a watching DFSP's transfers: one whose
// fulfillment never reached the switch stays prepared until it expires.
const watchedLife = 10 * time.Second

// pay pays the invoice with a transfer that expires after life. With
// watch, a fulfillment that gets no answer is not sent again.
func (d *ilpDFSP) pay(ctx context.Context, invoiceURL string, life time.Duration, watch bool) *dfspTransfer {
	out := &dfspTransfer{id: wire.NewID()}
	var inv struct{ Account, Amount string }
	if st, b := d.send(ctx, out, http.MethodGet, invoiceURL, nil, false, false); st != http.StatusOK || json.Unmarshal(b, &inv) != nil {
		out.err = fmt.Errorf("reading the invoice: %d %s", st, b)
		return out
	}
	receiver := d.ledger + "/receivers/" + invoiceURL[strings.LastIndex(invoiceURL, "/")+1:]
	var quote struct{ SourceAmount, FeeAccount string }
	q := url.Values{"receiver": {receiver}, "destinationAmount": {inv.Amount}}
	if st, b := d.send(ctx, out, http.MethodGet, d.ledger+"/quoteDestinationAmount?"+q.Encode(), nil, false, false); st != http.StatusOK || json.Unmarshal(b, &quote) != nil {
		out.err = fmt.Errorf("quoting: %d %s", st, b)
		return out
	}
	src, amt := minorUnits(quote.SourceAmount), minorUnits(inv.Amount)
	if src <= amt || amt <= 0 {
		out.err = fmt.Errorf("quote %s for %s: want a fee on top", quote.SourceAmount, inv.Amount)
		return out
	}
	fee := fmt.Sprintf("%d.%02d", (src-amt)/100, (src-amt)%100)
	var preimage [32]byte
	rand.Read(preimage[:])
	ff := cond.Fulfillment{Preimage: preimage[:]}
	body, _ := json.Marshal(map[string]any{
		"id": d.ledger + "/ledger/transfers/" + out.id, "ledger": d.ledger + "/ledger",
		"debits": []map[string]any{{"account": d.ledger + "/ledger/accounts/" + config.DevILPDFSPID, "amount": quote.SourceAmount, "authorized": true}},
		"credits": []map[string]any{
			{"account": inv.Account, "amount": inv.Amount, "memo": map[string]string{"invoice": invoiceURL}},
			{"account": quote.FeeAccount, "amount": fee},
		},
		"execution_condition": ff.Condition().String(),
		"expires_at":          time.Now().Add(life).UTC().Format("2006-01-02T15:04:05.000Z07:00"),
	})
	if st, b := d.send(ctx, out, http.MethodPut, d.ledger+"/ledger/transfers/"+out.id, body, true, false); st != http.StatusCreated && st != http.StatusOK {
		out.err = fmt.Errorf("preparing: %d %s", st, b)
		return out
	}
	fb, _ := json.Marshal(map[string]string{"transferId": out.id, "fulfillment": ff.String(), "condition": ff.Condition().String()})
	switch st, b := d.send(ctx, out, http.MethodPut, d.ledger+"/ledger/transfers/"+out.id+"/fulfillment", fb, true, watch); st {
	case http.StatusOK:
		out.learned = "executed"
		d.fulfilAnswered()
	case http.StatusUnprocessableEntity:
		out.learned = "rejected"
		d.fulfilAnswered()
	case -1:
		if !watch || ctx.Err() != nil {
			out.err = fmt.Errorf("fulfilling: %s", b)
			return out
		}
		out.watched = true
		for out.learned == "" {
			var tr struct{ State string }
			st, b := d.send(ctx, out, http.MethodGet, d.ledger+"/ledger/transfers/"+out.id, nil, true, false)
			switch {
			case st != http.StatusOK || json.Unmarshal(b, &tr) != nil:
				out.err = fmt.Errorf("reading the transfer: %d %s", st, b)
				return out
			case tr.State == "executed" || tr.State == "rejected":
				out.learned = tr.State
			default:
				time.Sleep(100 * time.Millisecond)
			}
		}
	default:
		out.err = fmt.Errorf("fulfilling: %d %s", st, b)
	}
	return out
}

// send sends a request until it is answered (other than 503), or ctx
// ends (status -1); with once, a request that got no answer is not sent
// again (-1).
func (d *ilpDFSP) send(ctx context.Context, out *dfspTransfer, method, u string, body []byte, auth, once bool) (int, []byte) {
	for {
		req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
		if err != nil {
			return -1, []byte(err.Error())
		}
		if auth {
			req.SetBasicAuth(d.user, d.pass)
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := d.client.Do(req)
		wait := 50 * time.Millisecond // no answer: the switch is down, or died mid-request
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode != http.StatusServiceUnavailable {
				return resp.StatusCode, b
			}
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
				wait = time.Duration(s) * time.Second
			}
		} else if once {
			return -1, []byte(err.Error())
		}
		out.resends++
		select {
		case <-ctx.Done():
			return -1, []byte(ctx.Err().Error())
		case <-time.After(wait):
		}
	}
}

// state is the transfer's state as the ledger API tells the DFSP.
func (d *ilpDFSP) state(t *testing.T, id string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, d.ledger+"/ledger/transfers/"+id, nil)
	req.SetBasicAuth(d.user, d.pass)
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatalf("GET transfer %s: %v", id, err)
	}
	defer resp.Body.Close()
	var tr struct{ State string }
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&tr) != nil {
		t.Fatalf("GET transfer %s = %d", id, resp.StatusCode)
	}
	return tr.State
}

// tail is the last n lines of b.
func tail(b []byte, n int) []byte {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	return bytes.Join(lines[max(0, len(lines)-n):], []byte("\n"))
}

// minorUnits reads an amount of the ledger's currency (two decimals) in
// minor units; -1 when it is not one.
func minorUnits(s string) int64 {
	whole, frac, ok := strings.Cut(s, ".")
	n, err := strconv.ParseInt(whole+frac, 10, 64)
	if !ok || len(frac) != 2 || err != nil {
		return -1
	}
	return n
}
