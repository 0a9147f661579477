package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/outcome"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// openStopped opens a store whose writer has not started, so a test can
// queue Changes and have the writer take them as one batch.
func openStopped(t *testing.T) *Store {
	t.Helper()
	s, err := open(t.Context(), "sqlite://"+tempDB(t), Options{})
	if err != nil {
		t.Fatalf("open error = %v", err)
	}
	return s
}

// commitAll commits each Change on its own goroutine once they are all
// queued, then starts the writer, which takes them as one batch.
func commitAll(t *testing.T, s *Store, changes []*qrswitch.Change) []error {
	t.Helper()
	errs := make([]error, len(changes))
	var wg sync.WaitGroup
	for i, c := range changes {
		wg.Go(func() { errs[i] = s.Commit(context.Background(), c) })
	}
	for deadline := time.Now().Add(time.Minute); len(s.queue) < len(changes); {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d Changes queued after a minute", len(s.queue), len(changes))
		}
		time.Sleep(time.Millisecond)
	}
	go s.run()
	wg.Wait()
	return errs
}

func TestBatchIsolatesFailedChanges(t *testing.T) {
	// Setup through a running store, then reopen with the writer stopped.
	setup := openAt(t, tempDB(t), "")
	existing := newPayment("shop-1", "existing")
	other := newPayment("shop-1", "other")
	if err := setup.Commit(t.Context(), &qrswitch.Change{Payment: existing}); err != nil {
		t.Fatalf("Commit(setup) error = %v", err)
	}
	if err := setup.Commit(t.Context(), &qrswitch.Change{Payment: other}); err != nil {
		t.Fatalf("Commit(setup) error = %v", err)
	}
	path := setup.Path()
	setup.Close()
	s, err := open(t.Context(), "sqlite://"+path, Options{})
	if err != nil {
		t.Fatalf("open error = %v", err)
	}
	t.Cleanup(func() { s.Close() })

	stale := *existing
	stale.Version = 7
	dup := newPayment("shop-1", "existing")
	// A Change whose first records are good and whose last is stale: its
	// savepoint must undo the first ones.
	partial := newPayment("shop-1", "partial")
	partialQR := &qrswitch.QRCode{TranID: "tran-partial", RetailerID: "shop-1", RequestID: "qr-partial"}
	staleAdvice := &qrswitch.Advice{Sender: "shop-1", ID: "adv-1", PaymentKey: other.Key(), Version: 3}

	good := func(i int) *qrswitch.Payment { return newPayment("shop-1", fmt.Sprintf("good-%d", i)) }
	var goods []*qrswitch.Payment
	var batch []struct {
		c    *qrswitch.Change
		want error // nil for a good Change
	}
	add := func(c *qrswitch.Change, want error) {
		batch = append(batch, struct {
			c    *qrswitch.Change
			want error
		}{c, want})
	}
	for i := range 8 {
		p := good(i)
		goods = append(goods, p)
		add(&qrswitch.Change{Payment: p, Trace: []qrswitch.TraceEntry{{Operation: "pay"}}}, nil)
		switch i { // bad Changes between good ones
		case 1:
			add(&qrswitch.Change{Payment: &stale}, qrswitch.ErrConflict)
		case 3:
			add(&qrswitch.Change{Payment: dup}, qrswitch.ErrDuplicate)
		case 5:
			add(&qrswitch.Change{QR: partialQR, Payment: partial, Advices: []*qrswitch.Advice{staleAdvice},
				Trace: []qrswitch.TraceEntry{{Operation: "pay"}}}, qrswitch.ErrConflict)
		}
	}
	changes := make([]*qrswitch.Change, len(batch))
	for i, b := range batch {
		changes[i] = b.c
	}
	before := s.Stats()
	errs := commitAll(t, s, changes)

	for i, err := range errs {
		var ce *qrswitch.CommitError
		switch want := batch[i].want; {
		case want == nil && err != nil:
			t.Errorf("Commit(good change %d) error = %v, want nil", i, err)
		case want != nil && (!errors.As(err, &ce) || !errors.Is(err, want)):
			t.Errorf("Commit(bad change %d) error = %v, want CommitError %v", i, err, want)
		}
	}
	after := s.Stats()
	if n := after.Batches - before.Batches; n != 1 {
		t.Errorf("%d Changes took %d batches, want 1", len(changes), n)
	}
	if n := after.Commits - before.Commits; n != int64(len(goods)) {
		t.Errorf("Stats().Commits grew by %d, want %d", n, len(goods))
	}
	for _, p := range goods {
		if p.Version != 1 {
			t.Errorf("good payment %s Version = %d, want 1", p.Key(), p.Version)
		}
		if _, err := s.Payment(t.Context(), p.Key()); err != nil {
			t.Errorf("Payment(%s) error = %v, want it committed", p.Key(), err)
		}
	}
	if _, err := s.Payment(t.Context(), partial.Key()); !errors.Is(err, qrswitch.ErrNotFound) {
		t.Errorf("Payment(partial) error = %v, want ErrNotFound (rolled back to its savepoint)", err)
	}
	if _, err := s.QR(t.Context(), "tran-partial"); !errors.Is(err, qrswitch.ErrNotFound) {
		t.Errorf("QR(tran-partial) error = %v, want ErrNotFound (rolled back to its savepoint)", err)
	}
	if trace, _ := s.Trace(t.Context(), partial.Key()); len(trace) != 0 {
		t.Errorf("Trace(partial) has %d entries, want none (rolled back to its savepoint)", len(trace))
	}
	if partial.Version != 0 || partialQR.Version != 0 || stale.Version != 7 || dup.Version != 0 {
		t.Errorf("failed Changes' versions = %d %d %d %d, want 0 0 7 0", partial.Version, partialQR.Version, stale.Version, dup.Version)
	}
}

func TestBatchFailureFailsEveryChange(t *testing.T) {
	s := openStopped(t)
	t.Cleanup(func() { s.Close() })
	// With the write connection gone, BEGIN fails: no Change of the batch
	// can be trusted to be written.
	s.w.Close()
	var changes []*qrswitch.Change
	var ps []*qrswitch.Payment
	for i := range 4 {
		p := newPayment("shop-1", fmt.Sprintf("pay-%d", i))
		ps = append(ps, p)
		changes = append(changes, &qrswitch.Change{Payment: p})
	}
	for i, err := range commitAll(t, s, changes) {
		if !errors.Is(err, qrswitch.ErrUnavailable) {
			t.Errorf("Commit(change %d of a failed batch) error = %v, want ErrUnavailable", i, err)
		}
		if ps[i].Version != 0 {
			t.Errorf("payment %d Version after a failed batch = %d, want 0", i, ps[i].Version)
		}
	}
}

func TestGroupCommit(t *testing.T) {
	s := openAt(t, tempDB(t), "") // synchronous=FULL: one fsync per batch
	const workers, each = 64, 20
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				p := newPayment("shop-1", fmt.Sprintf("pay-%d-%d", w, i))
				if err := s.Commit(t.Context(), &qrswitch.Change{Payment: p}); err != nil {
					t.Errorf("Commit error = %v", err)
					return
				}
				p.State = outcome.Forwarded
				if err := s.Commit(t.Context(), &qrswitch.Change{Payment: p, Trace: []qrswitch.TraceEntry{{Operation: "pay"}}}); err != nil {
					t.Errorf("Commit error = %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	if want := int64(2 * workers * each); st.Commits != want {
		t.Errorf("Stats().Commits = %d, want %d", st.Commits, want)
	}
	// With 64 committers at once, batches must be large; 4 is a floor that
	// holds on a slow, loaded machine (typically it is 30 or more).
	if st.Batches*4 > st.Commits {
		t.Errorf("%d Commits took %d batches, want at most a quarter as many", st.Commits, st.Batches)
	}
	t.Logf("%d commits in %d batches (%.1f per batch)", st.Commits, st.Batches, float64(st.Commits)/float64(st.Batches))
}

func TestBatchRollbackForgetsWrites(t *testing.T) {
	setup := openAt(t, tempDB(t), "")
	p := newPayment("shop-1", "pay-1")
	if err := setup.Commit(t.Context(), &qrswitch.Change{Payment: p}); err != nil {
		t.Fatalf("Commit(setup) error = %v", err)
	}
	path := setup.Path()
	setup.Close()
	s, err := open(t.Context(), "sqlite://"+path, Options{})
	if err != nil {
		t.Fatalf("open error = %v", err)
	}
	t.Cleanup(func() { s.Close() })

	// The batch updates p, then fails on a record too big for the file's
	// page limit: the whole batch rolls back, p's update included.
	var pages int
	s.w.QueryRowContext(t.Context(), "PRAGMA page_count").Scan(&pages)
	if _, err := s.w.ExecContext(t.Context(), fmt.Sprintf("PRAGMA max_page_count = %d", pages+50)); err != nil {
		t.Fatal(err)
	}
	update := *p
	update.State = outcome.Forwarded
	big := newPayment("shop-1", "big")
	big.Owner = strings.Repeat("x", 1<<20)
	errs := commitAll(t, s, []*qrswitch.Change{{Payment: &update}, {Payment: big}})
	for i, err := range errs {
		if !errors.Is(err, qrswitch.ErrUnavailable) {
			t.Errorf("Commit(change %d of a batch that hit SQLITE_FULL) error = %v, want ErrUnavailable", i, err)
		}
	}
	if _, err := s.w.ExecContext(t.Context(), "PRAGMA max_page_count = 1073741823"); err != nil {
		t.Fatal(err)
	}

	// The store knows p is still at version 1.
	if got, err := s.Payment(t.Context(), p.Key()); err != nil || got.Version != 1 || got.State != outcome.AwaitingScan {
		t.Fatalf("Payment after the failed batch = %+v, %v; want version 1, AWAITING_SCAN", got, err)
	}
	update = *p
	update.State = outcome.Forwarded
	if err := s.Commit(t.Context(), &qrswitch.Change{Payment: &update}); err != nil {
		t.Errorf("Commit(update at the stored version after a failed batch) error = %v, want nil", err)
	}
	if update.Version != 2 {
		t.Errorf("Version after the update = %d, want 2", update.Version)
	}
}
