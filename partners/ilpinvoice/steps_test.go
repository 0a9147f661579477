package ilpinvoice

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/ilp/cond"
	"github.com/qrswitch/qrswitch/partners/railtest"
	redisstore "github.com/qrswitch/qrswitch/store/redis"
	"github.com/qrswitch/qrswitch/store/redis/redistest"
	"github.com/qrswitch/qrswitch/store/sqlite"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// The three steps of an execution (fence, approval, credit; ledger.go),
// interrupted between them as a crash would, on real stores: a SQLite file
// and a Redis Cluster spread over eight shards. A "crash" is the rail that
// did steps 1 and 2 (through its own functions) being dropped, its store
// closed; a new Rail on the same store (a restarted process) then sweeps.

// stepsOptions: dfsp1 holds 1000.00; a fixed fee of 0.25.
const stepsOptions = `
currency: "840"
fee_fixed: "0.25"
max_transfer_life: 1m
sweep_interval: 1h
dfsps:
  - {id: dfsp1, name: "First DFSP", account: dfsp1, balance: "1000.00", username: dfsp1, password: "dfsp1-secret"}
`

var stepsPrefix atomic.Int64

// openStores returns how to open the test's store again and again, for
// each kind of store.
func openStores(t *testing.T) map[string]func() (qrswitch.Store, func()) {
	dir := t.TempDir()
	out := map[string]func() (qrswitch.Store, func()){
		"sqlite": func() (qrswitch.Store, func()) {
			st, err := sqlite.Open(context.Background(), "sqlite://"+filepath.Join(dir, "ledger.db")+"?synchronous=normal", sqlite.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return st, func() { st.Close() }
		},
	}
	if testing.Short() {
		return out
	}
	var url string
	out["cluster-8-shards"] = func() (qrswitch.Store, func()) {
		if url == "" {
			url = fmt.Sprintf("%s?key_prefix=ilp%d:&shards=8", redistest.StartCluster(t, 3, 0).URL(), stepsPrefix.Add(1))
		}
		st, err := redisstore.Open(context.Background(), url, redisstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return st, func() { st.Close() }
	}
	return out
}

// stepsEnv is one process: a store and the rail on it, its routes on a
// mux (called in memory), reporting to host (the engine, shared by every
// process: its memory is in the store in the real switch).
type stepsEnv struct {
	t       *testing.T
	store   qrswitch.Store
	closeSt func()
	records partners.Records
	rail    *Rail
	mux     *http.ServeMux
}

func newStepsEnv(t *testing.T, open func() (qrswitch.Store, func()), host *railtest.Host, shift time.Duration) *stepsEnv {
	t.Helper()
	st, closeSt := open()
	e := &stepsEnv{t: t, store: st, closeSt: closeSt, records: qrswitch.RailRecords(st, "ilp"), mux: http.NewServeMux()}
	host.Records = e.records
	var node yaml.Node
	if err := yaml.Unmarshal([]byte(stepsOptions), &node); err != nil {
		t.Fatal(err)
	}
	r, err := New(partners.Config{
		PartnerID: "ilp", Name: "ILP invoices", Options: node.Content[0], Host: host, Records: e.records,
		PublicURL: "https://switch.test", Development: true, Timeout: 10 * time.Second, Logger: zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.rail = r.(*Rail)
	e.rail.now = func() time.Time { return time.Now().Add(shift) }
	if err := e.rail.openAccounts(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, rt := range e.rail.Routes() {
		e.mux.Handle(rt.Method+" "+rt.Path, rt.Handler)
	}
	return e
}

// crash drops the process: its rail and its store's connections.
func (e *stepsEnv) crash() { e.closeSt() }

// call calls the rail's surface as dfsp1.
func (e *stepsEnv) call(method, path string, body any) (int, []byte) {
	e.t.Helper()
	b, _ := json.Marshal(body)
	req := httptest.NewRequestWithContext(e.t.Context(), method, "/ilpinvoice/ilp"+path, bytes.NewReader(b))
	req.SetBasicAuth("dfsp1", "dfsp1-secret")
	w := httptest.NewRecorder()
	e.mux.ServeHTTP(w, req)
	return w.Code, w.Body.Bytes()
}

// offer issues an invoice of 100.00 for shop-1's new code, committed as
// the engine commits it with the code.
func (e *stepsEnv) offer() (tranID, invoiceID string) {
	e.t.Helper()
	tranID = wire.NewID()
	of, err := e.rail.Offer(e.t.Context(), &partners.OfferRequest{
		TranID: tranID, RetailerID: "shop-1", Amount: &wire.LedgerAmount{Amount: 10000, Currency: "840"},
		ExpiresAt: time.Now().Add(10 * time.Minute), Now: time.Now(),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.records.Commit(e.t.Context(), of.Records...); err != nil {
		e.t.Fatal(err)
	}
	return tranID, of.Reference[strings.LastIndex(of.Reference, "/")+1:]
}

// prepare prepares a transfer of 100.25 from dfsp1 paying the invoice
// (100.00 to shop-1, 0.25 of fee), expiring after life; it returns the
// transfer's id and fulfillment.
func (e *stepsEnv) prepare(invoiceID string, life time.Duration) (string, cond.Fulfillment) {
	e.t.Helper()
	pre := make([]byte, 32)
	rand.Read(pre)
	ff := cond.Fulfillment{Preimage: pre}
	id := wire.NewID()
	st, body := e.call(http.MethodPut, "/ledger/transfers/"+id, map[string]any{
		"debits": []map[string]any{{"account": "dfsp1", "amount": "100.25", "authorized": true}},
		"credits": []map[string]any{
			{"account": "shop-1", "amount": "100.00", "memo": map[string]string{"invoice": invoiceID}},
			{"account": feeAccount, "amount": "0.25"},
		},
		"execution_condition": ff.Condition().String(),
		"expires_at":          time.Now().Add(life).UTC().Format(time.RFC3339Nano),
	})
	if st != http.StatusCreated {
		e.t.Fatalf("prepare = %d %s", st, body)
	}
	return id, ff
}

// fenceAndApprove does steps 1 and 2 of the transfer's execution, as the
// fulfillment's handler does, and stops there (the crash).
func (e *stepsEnv) fenceAndApprove(id string, ff cond.Fulfillment) error {
	e.t.Helper()
	ctx := e.t.Context()
	t, rec, err := e.rail.readTransfer(ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.rail.fence(ctx, t, rec.Version, ff.String(), e.rail.now().UTC()); err != nil {
		e.t.Fatalf("step 1 (fence) = %v", err)
	}
	t, rec, err = e.rail.readTransfer(ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	if t.State != stateExecuting || t.Fulfillment != ff.String() {
		e.t.Fatalf("after step 1: %s with fulfillment %q, want executing with the fulfillment", t.State, t.Fulfillment)
	}
	return e.rail.approve(ctx, t, rec)
}

// balances reads the ledger's accounts (a merchant's not yet opened is 0).
func (e *stepsEnv) balances() map[string]int64 {
	e.t.Helper()
	out := map[string]int64{}
	for _, name := range []string{"dfsp1", "shop-1", feeAccount} {
		rec, err := e.records.Get(e.t.Context(), kindAccount, name)
		if errors.Is(err, partners.ErrNotFound) {
			continue
		}
		if err != nil {
			e.t.Fatal(err)
		}
		var a account
		json.Unmarshal(rec.Data, &a)
		out[name] = a.Balance
		if rec.Retailer != "" {
			e.t.Errorf("account %s has retailer %q: the ledger is of no retailer (the home slot)", name, rec.Retailer)
		}
	}
	return out
}

func (e *stepsEnv) transfer(id string) *transfer {
	e.t.Helper()
	t, rec, err := e.rail.readTransfer(e.t.Context(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	if rec.Retailer != "" {
		e.t.Errorf("transfer %s has retailer %q: the ledger is of no retailer (the home slot)", id, rec.Retailer)
	}
	return t
}

func (e *stepsEnv) invoice(id string) *invoice {
	e.t.Helper()
	v, rec, err := e.rail.invoiceRecord(e.t.Context(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	if rec.Retailer != "shop-1" {
		e.t.Errorf("invoice %s has retailer %q, want shop-1 (it lives with the retailer's payments)", id, rec.Retailer)
	}
	return v
}

// wantBalances checks the three accounts' balances (an account not yet
// opened holds 0), in minor units.
func wantBalances(t *testing.T, got map[string]int64, dfsp1, shop, fees int64) {
	t.Helper()
	if got["dfsp1"] != dfsp1 || got["shop-1"] != shop || got[feeAccount] != fees {
		t.Fatalf("balances = %v (minor units), want dfsp1 %d, shop-1 %d, %s %d", got, dfsp1, shop, feeAccount, fees)
	}
}

// TestCrashBetweenApprovalAndCredit: steps 1 and 2 done (the payment
// approved, the invoice paid), the process gone before step 3. A new
// process's sweep credits the merchant and the fee account, exactly once:
// a second sweep and the DFSP's resent fulfillment move nothing more.
func TestCrashBetweenApprovalAndCredit(t *testing.T) {
	for name, open := range openStores(t) {
		t.Run(name, func(t *testing.T) {
			host := railtest.NewHost()
			a := newStepsEnv(t, open, host, 0)
			tranID, inv := a.offer()
			id, ff := a.prepare(inv, 30*time.Second)
			if err := a.fenceAndApprove(id, ff); err != nil {
				t.Fatalf("step 2 (approval) = %v", err)
			}
			if p := host.PaidReports(); len(p) != 1 || p[0].TranID != tranID || p[0].Reference != id || p[0].Amount.Amount != 10000 || len(p[0].Records) != 1 || p[0].Records[0].Kind != kindInvoice {
				t.Fatalf("Paid = %+v, want one report for %s by %s, 100.00, with the invoice as its only record", p, tranID, id)
			}
			if v := a.invoice(inv); v.Status != statusPaid || v.Transfer != id {
				t.Fatalf("invoice after step 2 = %s by %q, want paid by %s", v.Status, v.Transfer, id)
			}
			wantBalances(t, a.balances(), 100000-10025, 0, 0) // held, not yet credited
			if st, body := a.call(http.MethodGet, "/ledger/transfers/"+id, nil); st != 200 || !strings.Contains(string(body), `"state":"prepared"`) {
				t.Fatalf("GET of the executing transfer = %d %s, want it shown prepared", st, body)
			}
			a.crash()

			// A new process, the transfer due (resolveAfter later): its
			// sweep and the DFSP's resent fulfillment race to finish it,
			// twice each.
			b := newStepsEnv(t, open, host, resolveAfter+time.Second)
			defer b.crash()
			var wg sync.WaitGroup
			for range 2 {
				wg.Add(2)
				go func() {
					defer wg.Done()
					if err := b.rail.Sweep(context.Background()); err != nil {
						t.Errorf("Sweep = %v", err)
					}
				}()
				go func() {
					defer wg.Done()
					if st, body := b.call(http.MethodPut, "/ledger/transfers/"+id+"/fulfillment", map[string]string{"fulfillment": ff.String()}); st != 200 {
						t.Errorf("the fulfillment sent again = %d %s, want 200", st, body)
					}
				}()
			}
			wg.Wait()
			if tr := b.transfer(id); tr.State != stateExecuted || tr.Fulfillment != ff.String() {
				t.Fatalf("after the sweep: %s, want executed with the fulfillment", tr.State)
			}
			wantBalances(t, b.balances(), 100000-10025, 10000, 25)
			// Again: nothing more moves.
			if err := b.rail.Sweep(t.Context()); err != nil {
				t.Fatalf("Sweep again = %v", err)
			}
			if tr, err := b.rail.credit(t.Context(), id); err != nil || tr.State != stateExecuted {
				t.Fatalf("step 3 again = %v, %v", tr, err)
			}
			if st, body := b.call(http.MethodPut, "/ledger/transfers/"+id+"/fulfillment", map[string]string{"fulfillment": ff.String()}); st != 200 {
				t.Fatalf("the fulfillment sent again = %d %s, want 200", st, body)
			}
			wantBalances(t, b.balances(), 100000-10025, 10000, 25)
			if n := len(host.PaidReports()); n != 1 {
				t.Fatalf("%d payments reported, want 1", n)
			}
			if v := b.invoice(inv); v.Status != statusPaid || v.Transfer != id {
				t.Fatalf("invoice = %s by %q, want paid by %s", v.Status, v.Transfer, id)
			}
		})
	}
}

// TestCrashBeforeApprovalResolvedByResend: step 1 done, the process gone
// before step 2. The DFSP sends its fulfillment again to a new process,
// which approves the payment and credits the accounts once.
func TestCrashBeforeApprovalResolvedByResend(t *testing.T) {
	for name, open := range openStores(t) {
		t.Run(name, func(t *testing.T) {
			host := railtest.NewHost()
			a := newStepsEnv(t, open, host, 0)
			_, inv := a.offer()
			id, ff := a.prepare(inv, 30*time.Second)
			tr, rec, err := a.rail.readTransfer(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.rail.fence(t.Context(), tr, rec.Version, ff.String(), time.Now().UTC()); err != nil {
				t.Fatal(err)
			}
			a.crash()

			b := newStepsEnv(t, open, host, 0)
			defer b.crash()
			if st, body := b.call(http.MethodPut, "/ledger/transfers/"+id+"/fulfillment", map[string]string{"fulfillment": ff.String()}); st != 200 {
				t.Fatalf("the fulfillment sent again = %d %s, want 200", st, body)
			}
			wantBalances(t, b.balances(), 100000-10025, 10000, 25)
			if n := len(host.PaidReports()); n != 1 {
				t.Fatalf("%d payments reported, want 1", n)
			}
			if tr := b.transfer(id); tr.State != stateExecuted {
				t.Fatalf("transfer %s, want executed", tr.State)
			}
		})
	}
}

// TestCrashThenPaymentGone: step 1 done, the process gone before step 2,
// and meanwhile the payment stopped waiting (its POS gave up). The new
// process's sweep tries step 2, is refused, and rejects the transfer: the
// DFSP's funds are back, the invoice is cancelled, nothing was reported.
func TestCrashThenPaymentGone(t *testing.T) {
	for name, open := range openStores(t) {
		t.Run(name, func(t *testing.T) {
			host := railtest.NewHost()
			a := newStepsEnv(t, open, host, 0)
			_, inv2 := a.offer()
			id2, ff2 := a.prepare(inv2, 30*time.Second)
			tr, rec, err := a.rail.readTransfer(t.Context(), id2)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.rail.fence(t.Context(), tr, rec.Version, ff2.String(), time.Now().UTC()); err != nil {
				t.Fatal(err)
			}
			wantBalances(t, a.balances(), 100000-10025, 0, 0)
			a.crash()

			host.PaidErr = fmt.Errorf("%w: the payment expired", partners.ErrNotWaiting)
			b := newStepsEnv(t, open, host, resolveAfter+time.Second)
			defer b.crash()
			if err := b.rail.Sweep(t.Context()); err != nil {
				t.Fatalf("Sweep = %v", err)
			}
			if tr := b.transfer(id2); tr.State != stateRejected || tr.Rejection != "cancelled" {
				t.Fatalf("transfer %s (%s), want rejected (cancelled)", tr.State, tr.Rejection)
			}
			wantBalances(t, b.balances(), 100000, 0, 0)
			if v := b.invoice(inv2); v.Status != statusCancelled {
				t.Fatalf("invoice %s, want cancelled", v.Status)
			}
			if n := len(host.PaidReports()); n != 0 {
				t.Fatalf("%d payments reported, want none", n)
			}
			if st, body := b.call(http.MethodPut, "/ledger/transfers/"+id2+"/fulfillment", map[string]string{"fulfillment": ff2.String()}); st != 422 || !strings.Contains(string(body), "TransferStateError") {
				t.Fatalf("the fulfillment sent again = %d %s, want 422 TransferStateError", st, body)
			}
		})
	}
}

// TestExecutingNotExpired is the fence: a transfer whose payment was
// approved (steps 1 and 2) and whose expiry passed before step 3 is not
// rejected by the expiry — rejecting it would give the DFSP its money back
// for a sale the POS was told was paid. The sweep credits it.
func TestExecutingNotExpired(t *testing.T) {
	for name, open := range openStores(t) {
		t.Run(name, func(t *testing.T) {
			host := railtest.NewHost()
			a := newStepsEnv(t, open, host, 0)
			_, inv := a.offer()
			id, ff := a.prepare(inv, 5*time.Second)
			if err := a.fenceAndApprove(id, ff); err != nil {
				t.Fatalf("step 2 = %v", err)
			}
			a.crash()

			b := newStepsEnv(t, open, host, time.Minute) // well past the expiry
			defer b.crash()
			if tr := b.transfer(id); !b.rail.now().After(tr.ExpiresAt) {
				t.Fatalf("the clock %s is not past the expiry %s", b.rail.now(), tr.ExpiresAt)
			}
			if err := b.rail.reject(t.Context(), id, "expired"); err != nil {
				t.Fatal(err)
			}
			if tr := b.transfer(id); tr.State != stateExecuting {
				t.Fatalf("after an expiry's reject: %s, want executing (the fence)", tr.State)
			}
			wantBalances(t, b.balances(), 100000-10025, 0, 0)
			if err := b.rail.Sweep(t.Context()); err != nil {
				t.Fatalf("Sweep = %v", err)
			}
			if tr := b.transfer(id); tr.State != stateExecuted {
				t.Fatalf("after the sweep: %s (%s), want executed", tr.State, tr.Rejection)
			}
			wantBalances(t, b.balances(), 100000-10025, 10000, 25)
		})
	}
}

// TestFulfilledBeforeTheRequestThenExpired: a fulfillment for an invoice
// whose payment request never reaches the switch is answered 503 (send
// again), and the transfer stays executing — seen as prepared, due at its
// expiry. At its expiry the sweep rejects it (expired) and gives the DFSP
// its funds back; the invoice refuses that transfer for good but stays
// payable by another.
func TestFulfilledBeforeTheRequestThenExpired(t *testing.T) {
	for name, open := range openStores(t) {
		t.Run(name, func(t *testing.T) {
			host := railtest.NewHost()
			host.PaidErr = fmt.Errorf("%w: no payment request for code x yet", partners.ErrNoRequestYet)
			a := newStepsEnv(t, open, host, 0)
			defer a.crash()
			tranID, inv := a.offer()
			id, ff := a.prepare(inv, 20*time.Second)
			if st, body := a.call(http.MethodPut, "/ledger/transfers/"+id+"/fulfillment", map[string]string{"fulfillment": ff.String()}); st != 503 {
				t.Fatalf("fulfillment before the request = %d %s, want 503", st, body)
			}
			tr := a.transfer(id)
			if tr.State != stateExecuting || !tr.ResolveAt.Equal(tr.ExpiresAt) {
				t.Fatalf("transfer %s due %s, want executing, due at its expiry %s", tr.State, tr.ResolveAt, tr.ExpiresAt)
			}
			if st, body := a.call(http.MethodGet, "/ledger/transfers/"+id, nil); st != 200 || !strings.Contains(string(body), `"state":"prepared"`) {
				t.Fatalf("GET = %d %s, want it shown prepared", st, body)
			}
			// Before its expiry, the sweep leaves it (not due).
			a.rail.now = func() time.Time { return time.Now().Add(resolveAfter + time.Second) }
			if err := a.rail.Sweep(t.Context()); err != nil {
				t.Fatal(err)
			}
			if tr := a.transfer(id); tr.State != stateExecuting {
				t.Fatalf("before its expiry: %s, want executing", tr.State)
			}
			wantBalances(t, a.balances(), 100000-10025, 0, 0)
			// At its expiry, with still no request: rejected, funds back.
			a.rail.now = func() time.Time { return time.Now().Add(time.Minute) }
			if err := a.rail.Sweep(t.Context()); err != nil {
				t.Fatal(err)
			}
			if tr := a.transfer(id); tr.State != stateRejected || tr.Rejection != "expired" {
				t.Fatalf("at its expiry: %s (%s), want rejected (expired)", tr.State, tr.Rejection)
			}
			wantBalances(t, a.balances(), 100000, 0, 0)
			v := a.invoice(inv)
			if v.Status != statusUnpaid || len(v.Refused) != 1 || v.Refused[0] != id {
				t.Fatalf("invoice %s refusing %v, want unpaid, refusing %s", v.Status, v.Refused, id)
			}
			// The invoice is still payable, by another transfer.
			host.PaidErr = nil
			a.rail.now = time.Now
			id2, ff2 := a.prepare(inv, 20*time.Second)
			if st, body := a.call(http.MethodPut, "/ledger/transfers/"+id2+"/fulfillment", map[string]string{"fulfillment": ff2.String()}); st != 200 {
				t.Fatalf("another transfer's fulfillment = %d %s, want 200", st, body)
			}
			wantBalances(t, a.balances(), 100000-10025, 10000, 25)
			if p := host.PaidReports(); len(p) != 1 || p[0].TranID != tranID || p[0].Reference != id2 {
				t.Fatalf("Paid = %+v, want one report by %s", p, id2)
			}
		})
	}
}

// TestRefusedTransferCannotApprove: a transfer the invoice refused (its
// rejection's fence) cannot pay it afterwards, even by a process that read
// the invoice before the refusal: its approval's commit fails on the
// invoice's version, and deciding again finds it refused.
func TestRefusedTransferCannotApprove(t *testing.T) {
	for name, open := range openStores(t) {
		t.Run(name, func(t *testing.T) {
			host := railtest.NewHost()
			a := newStepsEnv(t, open, host, 0)
			defer a.crash()
			_, inv := a.offer()
			id, ff := a.prepare(inv, 30*time.Second)
			tr, rec, err := a.rail.readTransfer(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.rail.fence(t.Context(), tr, rec.Version, ff.String(), time.Now().UTC()); err != nil {
				t.Fatal(err)
			}
			tr, rec, err = a.rail.readTransfer(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			// The stale approval: the invoice as read before the refusal.
			v, irec, err := a.rail.invoiceRecord(t.Context(), inv)
			if err != nil {
				t.Fatal(err)
			}
			if paid, err := a.rail.barInvoice(t.Context(), inv, id); err != nil || paid {
				t.Fatalf("barInvoice = %v, %v", paid, err)
			}
			v.Status, v.Transfer = statusPaid, id
			irec.Data, _ = json.Marshal(v)
			if err := a.records.Commit(t.Context(), irec); !errors.Is(err, partners.ErrConflict) {
				t.Fatalf("an approval's commit of the invoice read before the refusal = %v, want ErrConflict", err)
			}
			var refuse *refusal
			if err := a.rail.approve(t.Context(), tr, rec); !errors.As(err, &refuse) {
				t.Fatalf("step 2 after the refusal = %v, want a refusal", err)
			}
			if tr := a.transfer(id); tr.State != stateRejected {
				t.Fatalf("transfer %s, want rejected", tr.State)
			}
			wantBalances(t, a.balances(), 100000, 0, 0)
			if n := len(host.PaidReports()); n != 0 {
				t.Fatalf("%d payments reported, want none", n)
			}
		})
	}
}

// TestRefundBetweenApprovalAndCredit: the POS reverses a sale whose
// payment was approved (steps 1 and 2) before its transfer was credited
// (a crash before step 3, no sweep yet). The refund credits the transfer
// first, then takes it back: the DFSP has all its money again, the
// merchant and the fee account nothing, each moved once.
func TestRefundBetweenApprovalAndCredit(t *testing.T) {
	for name, open := range openStores(t) {
		t.Run(name, func(t *testing.T) {
			host := railtest.NewHost()
			a := newStepsEnv(t, open, host, 0)
			tranID, inv := a.offer()
			id, ff := a.prepare(inv, 30*time.Second)
			if err := a.fenceAndApprove(id, ff); err != nil {
				t.Fatalf("step 2 = %v", err)
			}
			a.crash()

			b := newStepsEnv(t, open, host, 0)
			defer b.crash()
			adv := &partners.Advice{ID: wire.NewID(), TranID: tranID, Kind: partners.KindRefund, Paid: host.PaidReports()[0]}
			for range 2 { // and again: the same refund
				if ans := b.rail.Refund(t.Context(), adv); ans.Outcome != outcome.Successful {
					t.Fatalf("Refund = %s %v, want successful", ans.Outcome, ans.Err)
				}
			}
			if tr := b.transfer(id); tr.State != stateExecuted {
				t.Fatalf("the paid transfer is %s, want executed", tr.State)
			}
			if tr := b.transfer("refund-" + adv.ID); tr.State != stateExecuted || !tr.Refund {
				t.Fatalf("the refund is %s, want an executed refund", tr.State)
			}
			wantBalances(t, b.balances(), 100000, 0, 0)
			if err := b.rail.Sweep(t.Context()); err != nil {
				t.Fatal(err)
			}
			wantBalances(t, b.balances(), 100000, 0, 0)
		})
	}
}

// failingDue is the rail's records in a real store, except that the one
// commit moving executing transfer id due at its expiry (approve, when
// the payment request has not come) fails, as it does while the store is
// away for a moment.
type failingDue struct {
	partners.Records
	id     string
	failed atomic.Int64
}

func (s *failingDue) Commit(ctx context.Context, rs ...*partners.Record) error {
	for _, rec := range rs {
		if rec.Kind == kindTransfer && rec.Key == s.id && s.movesDue(ctx, rec) && s.failed.CompareAndSwap(0, 1) {
			return fmt.Errorf("committing transfer %s: %w", s.id, qrswitch.ErrUnavailable)
		}
	}
	return s.Records.Commit(ctx, rs...)
}

// movesDue reports whether rec keeps the stored transfer executing and
// makes it due at its expiry (not the fence, which makes it executing).
func (s *failingDue) movesDue(ctx context.Context, rec *partners.Record) bool {
	var next, stored transfer
	cur, err := s.Records.Get(ctx, kindTransfer, rec.Key)
	return err == nil && json.Unmarshal(cur.Data, &stored) == nil && json.Unmarshal(rec.Data, &next) == nil &&
		stored.State == stateExecuting && next.State == stateExecuting && next.ResolveAt.Equal(next.ExpiresAt)
}

// TestNoRequestYetDueCommitFails: a fulfillment that comes before the
// invoice's payment request is answered 503 (send again), and its transfer
// is made due at its expiry. When that commit fails, nothing is lost: the
// transfer stays executing, its funds held, due resolveAfter after its
// fulfillment, and the sweep then finishes it — executed once the request
// has come, rejected (expired) at its expiry if it never does.
func TestNoRequestYetDueCommitFails(t *testing.T) {
	for _, end := range []struct {
		name    string
		request bool // the payment request reaches the switch before the sweep
	}{
		{"then the request arrives", true},
		{"then it expires", false},
	} {
		t.Run(end.name, func(t *testing.T) {
			for name, open := range openStores(t) {
				t.Run(name, func(t *testing.T) {
					host := railtest.NewHost()
					host.PaidErr = fmt.Errorf("%w: no payment request for code x yet", partners.ErrNoRequestYet)
					a := newStepsEnv(t, open, host, 0)
					defer a.crash()
					tranID, inv := a.offer()
					id, ff := a.prepare(inv, 20*time.Second)
					due := &failingDue{Records: a.records, id: id}
					a.rail.records = due
					if st, body := a.call(http.MethodPut, "/ledger/transfers/"+id+"/fulfillment", map[string]string{"fulfillment": ff.String()}); st != 503 || !strings.Contains(string(body), "has not reached the switch yet") {
						t.Fatalf("fulfillment before the request = %d %s, want 503 naming the missing request", st, body)
					}
					if n := due.failed.Load(); n != 1 {
						t.Fatalf("%d commits moving the transfer due at its expiry failed, want 1", n)
					}
					tr := a.transfer(id)
					if tr.State != stateExecuting || !tr.ResolveAt.Equal(tr.FulfilledAt.Add(resolveAfter)) {
						t.Fatalf("transfer %s due %s, want executing, due %s after its fulfillment at %s", tr.State, tr.ResolveAt, resolveAfter, tr.FulfilledAt)
					}
					wantBalances(t, a.balances(), 100000-10025, 0, 0)

					if end.request {
						host.PaidErr = nil
					}
					a.rail.now = func() time.Time { return time.Now().Add(resolveAfter + time.Second) }
					if err := a.rail.Sweep(t.Context()); err != nil {
						t.Fatalf("Sweep = %v", err)
					}
					if end.request {
						if tr := a.transfer(id); tr.State != stateExecuted || tr.Fulfillment != ff.String() {
							t.Fatalf("after the sweep: %s, want executed with the fulfillment", tr.State)
						}
						wantBalances(t, a.balances(), 100000-10025, 10000, 25)
						if err := a.rail.Sweep(t.Context()); err != nil {
							t.Fatalf("Sweep again = %v", err)
						}
						wantBalances(t, a.balances(), 100000-10025, 10000, 25)
						if p := host.PaidReports(); len(p) != 1 || p[0].TranID != tranID || p[0].Reference != id {
							t.Fatalf("Paid = %+v, want one report by %s", p, id)
						}
						if v := a.invoice(inv); v.Status != statusPaid || v.Transfer != id {
							t.Fatalf("invoice = %s by %q, want paid by %s", v.Status, v.Transfer, id)
						}
						return
					}
					// Still no request: the sweep made it due at its expiry.
					if tr := a.transfer(id); tr.State != stateExecuting || !tr.ResolveAt.Equal(tr.ExpiresAt) {
						t.Fatalf("after the sweep: %s due %s, want executing, due at its expiry %s", tr.State, tr.ResolveAt, tr.ExpiresAt)
					}
					wantBalances(t, a.balances(), 100000-10025, 0, 0)
					a.rail.now = func() time.Time { return time.Now().Add(time.Minute) }
					if err := a.rail.Sweep(t.Context()); err != nil {
						t.Fatalf("Sweep at its expiry = %v", err)
					}
					if tr := a.transfer(id); tr.State != stateRejected || tr.Rejection != "expired" {
						t.Fatalf("at its expiry: %s (%s), want rejected (expired)", tr.State, tr.Rejection)
					}
					wantBalances(t, a.balances(), 100000, 0, 0)
					if v := a.invoice(inv); v.Status != statusUnpaid || len(v.Refused) != 1 || v.Refused[0] != id {
						t.Fatalf("invoice %s refusing %v, want unpaid, refusing %s", v.Status, v.Refused, id)
					}
					if n := len(host.PaidReports()); n != 0 {
						t.Fatalf("%d payments reported, want none", n)
					}
				})
			}
		})
	}
}
