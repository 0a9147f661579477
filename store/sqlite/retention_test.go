package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// The retention tests run on a fake clock: records carry their own times,
// and Sweep is given its now. Nothing here waits for the wall clock.

const (
	testRetention = 90 * 24 * time.Hour
	testQRKeep    = time.Hour
)

var r0 = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)

func openRetention(t testing.TB, path, query string) *Store {
	t.Helper()
	s, err := Open(context.Background(), "sqlite://"+path+query, Options{Retention: testRetention, QRKeep: testQRKeep, JanitorInterval: -1})
	if err != nil {
		t.Fatalf("Open(%s) error = %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// story is one payment as the engine leaves it: its QR code, the payment,
// its advices and a few trace entries, for the payment and for the code.
type story struct {
	qr      *qrswitch.QRCode
	payment *qrswitch.Payment
	advices []*qrswitch.Advice
}

// newStory builds a payment created at at, with a QR code expiring five
// minutes later, in state st (updated at finished), with one advice per
// state in advs. Bodies are shaped like the engine's (a few hundred bytes of
// masked JSON per entry), so file sizes mean something.
func newStory(id string, at, finished time.Time, st outcome.State, advs ...qrswitch.AdviceState) story {
	tran := "tran-" + id
	q := &qrswitch.QRCode{TranID: tran, RetailerID: "shop-1", RequestID: "qr-" + id, Scheme: wire.SchemeEMVCo,
		Payload:   "00020101021226490014za.co.electrum0127" + tran + "5204541153037105802ZA5913Corner Grocer6009Cape Town6304ABCD",
		SingleUse: true, CreatedAt: at, ExpiresAt: at.Add(5 * time.Minute)}
	p := &qrswitch.Payment{RetailerID: "shop-1", RequestID: id, TranID: tran, State: st,
		Request: &wire.PaymentRequest{
			Transaction: wire.Transaction{ID: id, Time: at.Format(time.RFC3339), Rrn: "rrn-" + id, Stan: "000123",
				Originator: &wire.Originator{Institution: wire.Institution{ID: "1234", Name: "Retailer shop-1"}, TerminalID: "T0001",
					Merchant: wire.Merchant{MerchantType: "5411", MerchantID: "M-000123",
						MerchantName: wire.MerchantName{Name: "Corner Grocer", City: "Cape Town", Region: "WC", Country: "ZA"}}},
				BasketRef: "basket-" + id, TranType: "GOODS_AND_SERVICES"},
			Amounts: &wire.Amounts{RequestAmount: &wire.LedgerAmount{Amount: 79995, Currency: "710"}},
			TranID:  tran,
		},
		Scan:       &qrswitch.Scan{ID: "scan-" + id, PartnerID: "wallet-a", PartnerName: "Wallet A", ReceivedAt: at},
		PayOutcome: outcome.Successful, CreatedAt: at, UpdatedAt: finished}
	q.PaymentKey = p.Key()
	s := story{qr: q, payment: p}
	for i, st := range advs {
		a := &qrswitch.Advice{Sender: "shop-1", ID: fmt.Sprintf("adv-%s-%d", id, i), Kind: qrswitch.Confirmation,
			PaymentKey: p.Key(), TranID: tran, Destination: "wallet-a", State: st, Attempts: 1,
			QueuedAt: finished, NextAt: finished, CreatedAt: finished, UpdatedAt: finished}
		if st == qrswitch.AdviceDone {
			a.Outcome, a.DoneAt = outcome.Successful, finished
		}
		s.advices = append(s.advices, a)
	}
	return s
}

func body(op, id string) string {
	return fmt.Sprintf(`{"id":%q,"time":"2026-03-02T09:30:00Z","originator":{"institution":{"id":"1234","name":"Retailer shop-1"},"terminalId":"T0001","merchant":{"merchantId":"M-000123"}},"amounts":{"requestAmount":{"amount":79995,"currency":"710"}},"operation":%q}`, id, op)
}

// commitStory stores s as the engine would, in one Change (the QR code's
// trace in another), with four payment trace entries and one QR code entry.
func commitStory(t testing.TB, st *Store, s story) {
	t.Helper()
	if err := storeStory(st, s); err != nil {
		t.Fatal(err)
	}
}

func storeStory(st *Store, s story) error {
	at := s.payment.CreatedAt
	var trace []qrswitch.TraceEntry
	for i, op := range []string{"pay", "notifyScan", "pay", "confirmPayment"} {
		trace = append(trace, qrswitch.TraceEntry{At: at.Add(time.Duration(i) * time.Second), Direction: qrswitch.Inbound,
			Peer: "retailer:shop-1", Operation: op, Kind: qrswitch.KindRequest, MessageID: s.payment.RequestID, Body: body(op, s.payment.RequestID)})
	}
	if err := st.Commit(context.Background(), &qrswitch.Change{QR: s.qr, TraceKey: "qr/" + s.qr.TranID,
		Trace: []qrswitch.TraceEntry{{At: at, Direction: qrswitch.Inbound, Peer: "retailer:shop-1", Operation: "createQrCode",
			Kind: qrswitch.KindRequest, Body: body("createQrCode", s.qr.RequestID)}}}); err != nil {
		return fmt.Errorf("Commit(qr %s) error = %w", s.qr.TranID, err)
	}
	if err := st.Commit(context.Background(), &qrswitch.Change{QR: s.qr, Payment: s.payment, Advices: s.advices, Trace: trace}); err != nil {
		return fmt.Errorf("Commit(payment %s) error = %w", s.payment.Key(), err)
	}
	return nil
}

func sweep(t testing.TB, s *Store, now time.Time) Swept {
	t.Helper()
	got, err := s.Sweep(context.Background(), now)
	if err != nil {
		t.Fatalf("Sweep(%s) error = %v", now, err)
	}
	return got
}

// present reports whether the payment, its advices, its trace, its QR code
// and the code's trace are all there (true) or all gone (false); a mix fails.
func present(t *testing.T, s *Store, st story) bool {
	t.Helper()
	ctx := t.Context()
	have := map[string]bool{}
	_, err := s.Payment(ctx, st.payment.Key())
	have["payment"] = err == nil
	if err != nil && !errors.Is(err, qrswitch.ErrNotFound) {
		t.Fatalf("Payment(%s) error = %v", st.payment.Key(), err)
	}
	for _, a := range st.advices {
		_, err := s.Advice(ctx, a.Key())
		have["advice "+a.ID] = err == nil
	}
	tr, err := s.Trace(ctx, st.payment.Key())
	if err != nil {
		t.Fatal(err)
	}
	have["trace"] = len(tr) > 0
	_, err = s.QR(ctx, st.qr.TranID)
	have["qr"] = err == nil
	qt, err := s.Trace(ctx, "qr/"+st.qr.TranID)
	if err != nil {
		t.Fatal(err)
	}
	have["qr trace"] = len(qt) > 0
	found, err := s.Lookup(ctx, st.payment.Request.Rrn)
	if err != nil {
		t.Fatal(err)
	}
	have["lookup"] = len(found) > 0
	var first bool
	for _, v := range have {
		first = v
		break
	}
	for k, v := range have {
		if v != first {
			t.Fatalf("payment %s: %v; want all present or all gone (%s differs)", st.payment.Key(), have, k)
		}
	}
	return first
}

func TestRetention(t *testing.T) {
	path := tempDB(t)
	s := openRetention(t, path, "")
	ctx := t.Context()
	day := 24 * time.Hour
	now := r0.Add(testRetention + day) // the sweep's clock

	old := newStory("old", r0, r0.Add(time.Minute), outcome.Confirmed, qrswitch.AdviceDone, qrswitch.AdviceMerged)
	recent := newStory("recent", now.Add(-testRetention).Add(-time.Minute), now.Add(-testRetention).Add(time.Minute), outcome.Confirmed, qrswitch.AdviceDone)
	open := newStory("open", r0.Add(-365*day), r0.Add(-365*day), outcome.Approved)
	dead := newStory("dead", r0, r0, outcome.Confirmed, qrswitch.AdviceDone, qrswitch.AdviceDead)
	pending := newStory("pending", r0, r0, outcome.Reversed, qrswitch.AdvicePending)
	held := newStory("held", r0, r0, outcome.Reversed, qrswitch.AdviceHeld)
	declined := newStory("declined", r0, r0, outcome.Declined)
	for _, st := range []story{old, recent, open, dead, pending, held, declined} {
		commitStory(t, s, st)
	}
	// A finished payment updated long after it finished (a late advice):
	// its retention still counts from when it finished, as on Redis.
	late := newStory("late", r0, r0, outcome.Confirmed)
	commitStory(t, s, late)
	late.payment.UpdatedAt = now.Add(-day)
	late.payment.Owner = "node-b"
	if err := s.Commit(ctx, &qrswitch.Change{Payment: late.payment}); err != nil {
		t.Fatal(err)
	}
	// A QR code nobody paid, expired long ago, and one still valid.
	unused := newStory("unused", r0, r0, outcome.AwaitingScan)
	unused.qr.PaymentKey = ""
	if err := s.Commit(ctx, &qrswitch.Change{QR: unused.qr, TraceKey: "qr/" + unused.qr.TranID, Trace: []qrswitch.TraceEntry{{At: r0, Operation: "createQrCode"}}}); err != nil {
		t.Fatal(err)
	}
	valid := newStory("valid", now.Add(-time.Minute), now, outcome.AwaitingScan)
	valid.qr.PaymentKey = ""
	if err := s.Commit(ctx, &qrswitch.Change{QR: valid.qr}); err != nil {
		t.Fatal(err)
	}
	// Traces of nothing stored (an advice refused for an unknown payment),
	// one old and one recent, and a partner's audit trail.
	for key, at := range map[string]time.Time{"shop-1/ghost": r0, "shop-1/ghost-recent": now.Add(-day), "partner/wallet-a": r0} {
		if err := s.Commit(ctx, &qrswitch.Change{TraceKey: key, Trace: []qrswitch.TraceEntry{{At: at, Operation: "confirmPayment", Note: "refused"}}}); err != nil {
			t.Fatal(err)
		}
	}
	// Read the doomed records first, so that the read cache holds them.
	if !present(t, s, old) || !present(t, s, late) {
		t.Fatal("records missing before the sweep")
	}

	got := sweep(t, s, now)
	want := Swept{Payments: 3, Advices: 2, TraceEntries: 3*(4+1) + 1 + 1, Kept: 3, QRCodes: 4, Orphans: 1}
	if got != want {
		t.Errorf("Sweep(retention + 1 day) = %+v, want %+v", got, want)
	}
	for _, tc := range []struct {
		name string
		st   story
		kept bool
	}{
		{"final past retention", old, false},
		{"declined past retention", declined, false},
		{"final, updated later, finished past retention", late, false},
		{"final within retention", recent, true},
		{"not final, a year old", open, true},
		{"final with a dead letter", dead, true},
		{"final with a pending advice", pending, true},
		{"final with a held advice", held, true},
	} {
		if got := present(t, s, tc.st); got != tc.kept {
			t.Errorf("%s: present after the sweep = %v, want %v", tc.name, got, tc.kept)
		}
	}
	if _, err := s.QR(ctx, unused.qr.TranID); !errors.Is(err, qrswitch.ErrNotFound) {
		t.Errorf("QR(unused, expired) after the sweep error = %v, want ErrNotFound", err)
	}
	if _, err := s.QR(ctx, valid.qr.TranID); err != nil {
		t.Errorf("QR(unused, valid) after the sweep error = %v, want it kept", err)
	}
	for key, want := range map[string]int{"shop-1/ghost": 0, "shop-1/ghost-recent": 1, "partner/wallet-a": 1, "qr/" + unused.qr.TranID: 0} {
		if tr, err := s.Trace(ctx, key); err != nil || len(tr) != want {
			t.Errorf("Trace(%s) after the sweep = %d entries, %v; want %d", key, len(tr), err, want)
		}
	}
	if res, err := s.Search(ctx, qrswitch.Query{Limit: 100}); err != nil || len(res) != 5 {
		t.Errorf("Search after the sweep = %v, %v; want the 5 kept payments", keysOf(res), err)
	}

	// Nothing more goes at the same time; the pending advice, once done,
	// lets its payment go at the next sweep.
	if got := sweep(t, s, now); got.Payments != 0 || got.Kept != 3 {
		t.Errorf("second Sweep = %+v, want nothing deleted and 3 kept", got)
	}
	a := pending.advices[0]
	a.State, a.Outcome, a.UpdatedAt = qrswitch.AdviceDone, outcome.Successful, now
	if err := s.Commit(ctx, &qrswitch.Change{Advices: []*qrswitch.Advice{a}}); err != nil {
		t.Fatal(err)
	}
	if got := sweep(t, s, now); got.Payments != 1 || got.Kept != 2 {
		t.Errorf("Sweep after the pending advice was done = %+v, want 1 deleted, 2 kept", got)
	}
	if present(t, s, pending) {
		t.Error("payment whose advice became final is still there")
	}

	// A deleted payment's request id can be used again, and an update of
	// a deleted payment conflicts.
	stale := old.payment.Clone()
	stale.Owner = "node-c"
	var ce *qrswitch.CommitError
	if err := s.Commit(ctx, &qrswitch.Change{Payment: stale}); !errors.As(err, &ce) || !errors.Is(err, qrswitch.ErrConflict) {
		t.Errorf("Commit(update of a deleted payment) error = %v, want ErrConflict", err)
	}
	again := newStory("old", now, now, outcome.AwaitingScan)
	commitStory(t, s, again)

	// The file says the same after a restart.
	s.Close()
	r := openRetention(t, path, "")
	for _, tc := range []struct {
		st   story
		kept bool
	}{{recent, true}, {dead, true}, {late, false}, {again, true}} {
		if got := present(t, r, tc.st); got != tc.kept {
			t.Errorf("after reopening, %s present = %v, want %v", tc.st.payment.Key(), got, tc.kept)
		}
	}
}

func keysOf(ps []*qrswitch.Payment) []string {
	var ks []string
	for _, p := range ps {
		ks = append(ks, p.Key())
	}
	return ks
}

// TestRetentionOffKeepsEverything: without Options.Retention (the zero
// value) a sweep deletes nothing and no janitor runs.
func TestRetentionOffKeepsEverything(t *testing.T) {
	s := openAt(t, tempDB(t), "")
	old := newStory("old", r0, r0, outcome.Confirmed, qrswitch.AdviceDone)
	commitStory(t, s, old)
	if got, err := s.Sweep(t.Context(), r0.Add(100*365*24*time.Hour)); err != nil || got != (Swept{}) {
		t.Fatalf("Sweep without retention = %+v, %v; want nothing", got, err)
	}
	if !present(t, s, old) {
		t.Fatal("payment gone without retention")
	}
}

// TestRetentionMigration: a database written before retention gets
// finished_at from each final payment's updatedAt, and its QR codes'
// expiry, so its old payments and codes are swept like new ones.
func TestRetentionMigration(t *testing.T) {
	step := slices.IndexFunc(migrations, func(m string) bool { return strings.Contains(m, "ADD COLUMN finished_at") })
	if step < 0 {
		t.Fatal("no migration adds finished_at")
	}
	path := tempDB(t)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT '')"); err != nil {
		t.Fatal(err)
	}
	for v, m := range migrations[:step] {
		if _, err := db.Exec(m); err != nil {
			t.Fatalf("schema %d: %v", v+1, err)
		}
		if _, err := db.Exec("INSERT INTO schema_migrations (version) VALUES (?)", v+1); err != nil {
			t.Fatal(err)
		}
	}
	done := newStory("done", r0, r0.Add(123456789*time.Nanosecond), outcome.Confirmed)
	open := newStory("open", r0, r0, outcome.Approved)
	for _, st := range []story{done, open} {
		pd, _ := json.Marshal(st.payment)
		qd, _ := json.Marshal(st.qr)
		if _, err := db.Exec(`INSERT INTO payments (key, retailer_id, request_id, tran_id, rrn, stan, partner_id, merchant_id,
			terminal_id, state, amount, created_at, hold_until, version, data) VALUES (?, 'shop-1', ?, ?, ?, '', '', '', '', ?, NULL, ?, 0, 1, ?)`,
			st.payment.Key(), st.payment.RequestID, st.payment.TranID, st.payment.Request.Rrn, string(st.payment.State), nanos(r0), string(pd)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO qr_codes (tran_id, retailer_id, request_id, version, data) VALUES (?, 'shop-1', ?, 1, ?)`,
			st.qr.TranID, st.qr.RequestID, string(qd)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO trace (payment_key, data) VALUES (?, '{}')`, st.payment.Key()); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := openRetention(t, path, "")
	var finished int64
	if err := s.rdb.QueryRow("SELECT finished_at FROM payments WHERE key = ?", done.payment.Key()).Scan(&finished); err != nil {
		t.Fatal(err)
	}
	if want := nanos(done.payment.UpdatedAt.Truncate(time.Millisecond)); finished != want {
		t.Errorf("finished_at after migration = %d, want %d (updatedAt to the millisecond)", finished, want)
	}
	// One nanosecond before the retention ends, nothing goes; at its end
	// the finished payment and its code go, the open one stays.
	end := fromNanos(finished).Add(testRetention)
	if got := sweep(t, s, end.Add(-time.Nanosecond)); got.Payments != 0 {
		t.Errorf("Sweep just before the retention ends = %+v, want nothing deleted", got)
	}
	if got := sweep(t, s, end); got.Payments != 1 || got.QRCodes != 1 {
		t.Errorf("Sweep at the end of the retention = %+v, want the payment and its QR code", got)
	}
	if _, err := s.Payment(t.Context(), done.payment.Key()); !errors.Is(err, qrswitch.ErrNotFound) {
		t.Errorf("Payment(finished, migrated) after the sweep error = %v, want ErrNotFound", err)
	}
	if _, err := s.Payment(t.Context(), open.payment.Key()); err != nil {
		t.Errorf("Payment(open, migrated) after the sweep error = %v, want it kept", err)
	}
}

// dbSize returns the size of the database file once the WAL is
// checkpointed into it and truncated, and its free pages.
func dbSize(t testing.TB, path string) (size int64, free int64) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var busy, logged, moved int
	if err := db.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logged, &moved); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("PRAGMA freelist_count").Scan(&free); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	wal, _ := os.Stat(path + "-wal")
	size = fi.Size()
	if wal != nil {
		size += wal.Size()
	}
	return size, free * 4096
}

// TestRetentionBoundsTheFile: a steady workload — every "hour" of a fake
// clock, a batch of payments is created and finished, and the janitor's
// sweep runs — makes the file grow until the first payments pass their
// retention, then stop: freed pages are reused by the next payments.
// QRSWITCH_RETENTION_ROUNDS runs longer and logs every round.
func TestRetentionBoundsTheFile(t *testing.T) {
	rounds, perRound := 16, 500
	if v := os.Getenv("QRSWITCH_RETENTION_ROUNDS"); v != "" {
		fmt.Sscan(v, &rounds)
	}
	const retention = 4 * time.Hour
	path := tempDB(t)
	s, err := Open(t.Context(), "sqlite://"+path+"?synchronous=normal", Options{Retention: retention, JanitorInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var sizes []int64
	for round := range rounds {
		at := r0.Add(time.Duration(round) * time.Hour)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for w := range 16 {
			wg.Go(func() {
				for i := w; i < perRound; i += 16 {
					if err := storeStory(s, newStory(fmt.Sprintf("r%d-%d", round, i), at, at.Add(time.Minute), outcome.Confirmed, qrswitch.AdviceDone)); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		got := sweep(t, s, at.Add(2*time.Minute))
		if round >= 5 && got.Payments != perRound {
			t.Fatalf("round %d: swept %+v, want the %d payments of round %d", round, got, perRound, round-4)
		}
		size, free := dbSize(t, path)
		sizes = append(sizes, size)
		t.Logf("round %2d: %5d payments stored, file %6.2f MB (%5.2f MB free pages)", round, min(round+1, 5)*perRound, float64(size)/1e6, float64(free)/1e6)
	}
	// From the round where every stored payment is in its retention, the
	// store holds the same number of payments; the file must not grow by
	// more than a few pages of index fragmentation.
	steady := sizes[5]
	peak := slices.Max(sizes[5:])
	if peak > steady+steady/10 {
		t.Fatalf("file sizes by round = %v: grew from %d to %d bytes while the data stayed the same", sizes, steady, peak)
	}
}

// TestSweepDoesNotStallTheWriter: sweeping a backlog of finished payments
// runs as many small steps, each in a batch of its own, so Changes
// committed meanwhile are answered between steps instead of after the
// sweep. The verdict is on events (steps counted, commits answered while
// the sweep is still running); the latencies are measured and logged,
// not judged, because the CI machine's speed is not the test's business.
func TestSweepDoesNotStallTheWriter(t *testing.T) {
	backlog := 4000
	if testing.Short() {
		backlog = 1000
	}
	const retention = 24 * time.Hour
	path := tempDB(t)
	// The backlog is written without an fsync per batch, to be quick.
	fill, err := Open(t.Context(), "sqlite://"+path+"?synchronous=normal", Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < backlog; i += 16 {
				if err := storeStory(fill, newStory(fmt.Sprint("old-", i), r0, r0, outcome.Confirmed, qrswitch.AdviceDone)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	fill.Close()

	// Then the production setting, synchronous=full: every batch fsyncs.
	s, err := Open(t.Context(), "sqlite://"+path, Options{Retention: retention, JanitorInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := r0.Add(retention + time.Hour)
	// commits runs 8 committers, each creating payments one after the
	// other, until stop is closed, and returns every commit's latency
	// and the time each was answered.
	type answered struct {
		took time.Duration
		at   time.Time
	}
	commits := func(tag string, stop <-chan struct{}, n int) []answered {
		var mu sync.Mutex
		var out []answered
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					mu.Lock()
					enough := n > 0 && len(out) >= n
					mu.Unlock()
					if enough {
						return
					}
					p := newStory(fmt.Sprintf("%s-%d-%d", tag, w, i), now, now, outcome.AwaitingScan).payment
					start := time.Now()
					err := s.Commit(context.Background(), &qrswitch.Change{Payment: p, Trace: []qrswitch.TraceEntry{{At: now, Operation: "pay", Body: body("pay", p.RequestID)}}})
					done := time.Now()
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					out = append(out, answered{done.Sub(start), done})
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return out
	}
	percentiles := func(as []answered) string {
		d := make([]time.Duration, len(as))
		for i, a := range as {
			d[i] = a.took
		}
		slices.Sort(d)
		q := func(p float64) time.Duration {
			return d[min(len(d)-1, int(p*float64(len(d))))].Round(10 * time.Microsecond)
		}
		return fmt.Sprintf("%d commits, p50 %v, p99 %v, max %v", len(d), q(0.5), q(0.99), d[len(d)-1].Round(10*time.Microsecond))
	}

	quiet := commits("quiet", nil, 2000)

	before := s.Stats()
	stop := make(chan struct{})
	var swept Swept
	var sweepErr error
	var sweepStart, sweepEnd time.Time
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		// Start once the committers are running, so that they compete.
		sweepStart = time.Now()
		swept, sweepErr = s.Sweep(context.Background(), now)
		sweepEnd = time.Now()
		close(stop)
	}()
	during := commits("during", stop, 0)
	<-sweepDone
	if sweepErr != nil {
		t.Fatalf("Sweep error = %v", sweepErr)
	}
	after := s.Stats()
	if swept.Payments != backlog {
		t.Fatalf("Sweep deleted %d payments, want the backlog of %d", swept.Payments, backlog)
	}
	steps := after.SweepSteps - before.SweepSteps
	// Three phases (payments, QR codes, orphan traces), each ending with a
	// step that finds less than a full step's worth.
	if min := int64(2 * backlog / sweepLimit); steps < min {
		t.Fatalf("sweep of %d payments and their codes ran in %d steps, want at least %d of at most %d candidates", backlog, steps, min, sweepLimit)
	}
	inSweep := 0
	for _, a := range during {
		if a.at.Before(sweepEnd) {
			inSweep++
		}
	}
	if inSweep == 0 {
		t.Fatalf("no commit was answered while the sweep ran (%s, %d steps): the sweep held the writer", sweepEnd.Sub(sweepStart), steps)
	}
	t.Logf("writer alone: %s", percentiles(quiet))
	t.Logf("during a sweep of %d payments (%d advices, %d trace entries, %d QR codes) in %d steps over %v (%v a step): %s, %d answered before the sweep ended",
		swept.Payments, swept.Advices, swept.TraceEntries, swept.QRCodes, steps, sweepEnd.Sub(sweepStart).Round(time.Millisecond),
		(sweepEnd.Sub(sweepStart) / time.Duration(steps)).Round(10*time.Microsecond), percentiles(during), inSweep)
}
