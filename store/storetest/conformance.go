// Package storetest holds what every qrswitch.Store backend is held to: the
// conformance suite that pins down each promise of the Store contract, and
// the benchmarks that measure backends the same way. Backends live in its
// sub-packages (store/sqlite, store/redis) and call Conformance and
// Benchmarks from their tests.
//
// The suite pins these readings of points the contract leaves open:
//   - Search: From is inclusive, To and Before exclusive; MinAmount and
//     MaxAmount are inclusive on the request amount.
//   - Indexed fields come from the record: the payment's RequestID,
//     TranID, LegOutcome(), its PartnerID() (the linked scan), and from its
//     Request: Rrn, Stan, Originator.TerminalID,
//     Originator.Merchant.MerchantID and Amounts.RequestAmount.
//   - Search orders by CreatedAt, then Key, both descending; the suite
//     gives payments either equal CreatedAt or ones a second or more apart,
//     so a backend ordering by the microsecond passes (see Query).
//   - "Oldest first" for advices means by CreatedAt.
//   - A zero HoldUntil, NextAt or LeaseUntil is a time before every other.
//   - QueueStats counts PENDING, HELD and DEAD advices by their PartnerID;
//     its times are checked on whole seconds.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/outcome"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// Opener makes stores for the suite.
type Opener struct {
	// Open returns a new, empty store and arranges (with t.Cleanup) for it to
	// be closed when the test ends.
	Open func(t *testing.T) qrswitch.Store
	// Reopen returns a store on old's records as a newly started process
	// would see them: for an embedded backend, close old and open its file
	// again; for a server backend, a new client on the same server (closing
	// old is allowed). It arranges for the new store to be closed. Nil skips
	// the durability tests.
	Reopen func(t *testing.T, old qrswitch.Store) qrswitch.Store
	// Sharded: the store places records in shards (see ErrSharded), so a
	// Change keeps to one retailer's records, or to rails' records and
	// partner controls, and a QR code keeps its retailer. The suite checks
	// that Changes joining shards fail whole instead of their atomicity.
	Sharded bool
}

// Conformance runs the suite against stores made by open, which returns a
// new, empty store and closes it when the test ends. It skips the durability
// tests; ConformanceWith runs them too.
func Conformance(t *testing.T, open func(t *testing.T) qrswitch.Store) {
	ConformanceWith(t, Opener{Open: open})
}

// ConformanceWith runs the suite against stores made by o, including the
// durability tests when o.Reopen is set. Each subtest opens its own store.
func ConformanceWith(t *testing.T, o Opener) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, o Opener)
	}{
		{"Ping", testPing},
		{"Records", testRecords},
		{"RailRecords", testRailRecords},
		{"QRRequestPair", testQRRequestPair},
		{"Atomicity", testAtomicity},
		{"Concurrency", testConcurrency},
		{"Trace", testTrace},
		{"ClaimAdvices", testClaimAdvices},
		{"PaymentAdvices", testPaymentAdvices},
		{"Lookup", testLookup},
		{"Search", testSearch},
		{"SearchPagingTies", testSearchPagingTies},
		{"QueueStats", testQueueStats},
		{"QueueStatsSample", testQueueStatsSample},
		{"PartnerControls", testPartnerControls},
		{"ListAdvices", testListAdvices},
		{"Limits", testQueryLimits},
		{"Orphans", testOrphans},
		{"UpdatesMoveIndexes", testUpdatesMoveIndexes},
		{"Durability", testDurability},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, o) })
	}
}

// commit commits c and fails the test on any error.
func commit(t *testing.T, s qrswitch.Store, what string, c *qrswitch.Change) {
	t.Helper()
	if err := s.Commit(t.Context(), c); err != nil {
		t.Fatalf("Commit(%s) error = %v, want nil", what, err)
	}
}

// commitOrError commits c and marks the test failed on any error; unlike
// commit it may run on any goroutine.
func commitOrError(t *testing.T, s qrswitch.Store, what string, c *qrswitch.Change) {
	t.Helper()
	if err := s.Commit(t.Context(), c); err != nil {
		t.Errorf("Commit(%s) error = %v, want nil", what, err)
	}
}

// wantCommitError checks that err is a *CommitError for the record and key
// that unwraps to want.
func wantCommitError(t *testing.T, what string, err error, record, key string, want error) {
	t.Helper()
	var ce *qrswitch.CommitError
	switch {
	case !errors.As(err, &ce):
		t.Errorf("Commit(%s) error = %v, want *CommitError(%s %s: %v)", what, err, record, key, want)
	case !errors.Is(err, want):
		t.Errorf("Commit(%s) error = %v, want %v", what, err, want)
	case ce.Record != record || ce.Key != key:
		t.Errorf("Commit(%s) CommitError names %s %q, want %s %q", what, ce.Record, ce.Key, record, key)
	}
}

// record adapts one record kind (QR code, payment, advice) to the table of
// testRecords.
type record struct {
	key     string
	value   any // the caller's record, a pointer
	version func() int64
	set     func(v int64) // sets the caller's Version
	change  func() *qrswitch.Change
	read    func(ctx context.Context, s qrswitch.Store) (any, error)
	// edit changes the record the way an engine update would; scribble
	// changes a record given by pointer deeply (nested messages too).
	edit     func(n int)
	scribble func(v any)
}

var kinds = []struct {
	name string // as in CommitError.Record
	make func(n int) *record
}{
	{"qr", func(n int) *record {
		q := newQR(retailerA, fmt.Sprintf("qr-req-%d", n), fmt.Sprintf("tran-%d", n), t0)
		return &record{
			key:     q.TranID,
			value:   q,
			version: func() int64 { return q.Version },
			set:     func(v int64) { q.Version = v },
			change:  func() *qrswitch.Change { return &qrswitch.Change{QR: q} },
			read: func(ctx context.Context, s qrswitch.Store) (any, error) {
				return s.QR(ctx, q.TranID)
			},
			edit: func(n int) {
				q.PaymentKey = qrswitch.PaymentKey(retailerA, fmt.Sprintf("pay-%d", n))
				q.HeldScan = &qrswitch.Scan{ID: fmt.Sprintf("scan-%d", n), PartnerID: partnerA, ReceivedAt: t0, Until: t0.Add(5 * time.Second)}
			},
			scribble: func(v any) {
				q := v.(*qrswitch.QRCode)
				q.Payload = "scribbled"
				q.Request.Originator.TerminalID = "scribbled"
				q.Request.Amounts.RequestAmount.Amount = -1
				*q.Request.QrProperties.SingleUse = false
			},
		}
	}},
	{"payment", func(n int) *record {
		p := newPayment(retailerA, fmt.Sprintf("pay-req-%d", n), fmt.Sprintf("tran-%d", n), t0)
		return &record{
			key:     p.Key(),
			value:   p,
			version: func() int64 { return p.Version },
			set:     func(v int64) { p.Version = v },
			change:  func() *qrswitch.Change { return &qrswitch.Change{Payment: p} },
			read: func(ctx context.Context, s qrswitch.Store) (any, error) {
				return s.Payment(ctx, p.Key())
			},
			edit: func(n int) {
				at := t0.Add(time.Duration(n) * time.Second)
				if p.Scan == nil {
					scanned(p, partnerA, at)
				} else {
					approved(p, at)
				}
				p.HoldUntil = at.Add(time.Minute)
			},
			scribble: func(v any) {
				p := v.(*qrswitch.Payment)
				p.State = outcome.Declined
				p.Request.Originator.Merchant.MerchantName.City = "scribbled"
				p.Request.ThirdPartyIdentifiers[0].TransactionIdentifier = "scribbled"
				p.Request.Amounts.RequestAmount.Amount = -1
				delete(p.Request.Amounts.AdditionalAmounts, "CASHBACK_AMOUNT")
				p.Request.SlipData[0] = '['
			},
		}
	}},
	{"advice", func(n int) *record {
		a := newAdvice(retailerA, fmt.Sprintf("adv-%d", n), qrswitch.PaymentKey(retailerA, "pay-1"), partnerA, t0)
		return &record{
			key:     a.Key(),
			value:   a,
			version: func() int64 { return a.Version },
			set:     func(v int64) { a.Version = v },
			change:  func() *qrswitch.Change { return &qrswitch.Change{Advices: []*qrswitch.Advice{a}} },
			read: func(ctx context.Context, s qrswitch.Store) (any, error) {
				return s.Advice(ctx, a.Key())
			},
			edit: func(n int) {
				a.Attempts++
				a.LastCode = "HTTP 504"
				a.LastError = fmt.Sprintf("attempt %d timed out", n)
				a.NextAt = a.NextAt.Add(time.Duration(n) * time.Second)
			},
			scribble: func(v any) {
				a := v.(*qrswitch.Advice)
				a.State = qrswitch.AdviceDead
				a.Confirmation.Amounts.ApprovedAmount.Amount = -1
				a.Confirmation.Partner.Name = "scribbled"
				a.AnswerBody[0] = 'X'
			},
		}
	}},
	{"control", func(n int) *record {
		c := newControl(fmt.Sprintf("wallet-%d", n), true, t0)
		return &record{
			key:     c.Destination,
			value:   c,
			version: func() int64 { return c.Version },
			set:     func(v int64) { c.Version = v },
			change:  func() *qrswitch.Change { return &qrswitch.Change{Control: c} },
			read: func(ctx context.Context, s qrswitch.Store) (any, error) {
				return s.QueueControl(ctx, c.Destination)
			},
			edit: func(n int) {
				c.Paused = !c.Paused
				c.By = fmt.Sprintf("operator-%d", n)
				c.At = t0.Add(time.Duration(n) * time.Minute)
				c.Reason = fmt.Sprintf("change %d", n)
			},
			scribble: func(v any) {
				c := v.(*qrswitch.QueueControl)
				c.Paused = !c.Paused
				c.Reason = "scribbled"
			},
		}
	}},
}

func testRecords(t *testing.T, o Opener) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			t.Run("CreateRead", func(t *testing.T) {
				s := o.Open(t)
				r := k.make(1)
				commit(t, s, "new "+k.name, r.change())
				if v := r.version(); v != 1 {
					t.Errorf("Version after create = %d, want 1", v)
				}
				got, err := r.read(t.Context(), s)
				if err != nil {
					t.Fatalf("read %s %s error = %v, want nil", k.name, r.key, err)
				}
				if !reflect.DeepEqual(got, r.value) {
					t.Errorf("read %s = %+v\nwant %+v", k.name, got, r.value)
				}
			})
			t.Run("NotFound", func(t *testing.T) {
				s := o.Open(t)
				commit(t, s, "new "+k.name, k.make(1).change())
				r := k.make(2)
				if _, err := r.read(t.Context(), s); !errors.Is(err, qrswitch.ErrNotFound) {
					t.Errorf("read missing %s error = %v, want ErrNotFound", k.name, err)
				}
			})
			t.Run("UpdateIncrementsVersion", func(t *testing.T) {
				s := o.Open(t)
				r := k.make(1)
				commit(t, s, "new "+k.name, r.change())
				for n := 2; n <= 3; n++ {
					r.edit(n)
					commit(t, s, "update "+k.name, r.change())
					if v := r.version(); v != int64(n) {
						t.Errorf("Version after update %d = %d, want %d", n-1, v, n)
					}
					got, err := r.read(t.Context(), s)
					if err != nil {
						t.Fatalf("read %s error = %v", k.name, err)
					}
					if !reflect.DeepEqual(got, r.value) {
						t.Errorf("read %s after update = %+v\nwant %+v", k.name, got, r.value)
					}
				}
			})
			t.Run("StaleVersion", func(t *testing.T) {
				s := o.Open(t)
				r := k.make(1)
				commit(t, s, "new "+k.name, r.change())
				stale := k.make(1)
				stale.set(1)
				r.edit(2)
				commit(t, s, "update "+k.name, r.change())
				stale.edit(3)
				before := reflect.ValueOf(stale.value).Elem().Interface()
				err := s.Commit(t.Context(), stale.change())
				wantCommitError(t, "stale "+k.name, err, k.name, r.key, qrswitch.ErrConflict)
				if after := reflect.ValueOf(stale.value).Elem().Interface(); !reflect.DeepEqual(after, before) {
					t.Errorf("failed Commit changed the caller's %s: %+v, want %+v", k.name, after, before)
				}
				got, _ := r.read(t.Context(), s)
				if !reflect.DeepEqual(got, r.value) {
					t.Errorf("read %s after stale Commit = %+v\nwant %+v", k.name, got, r.value)
				}
			})
			t.Run("UpdateMissing", func(t *testing.T) {
				s := o.Open(t)
				r := k.make(1)
				r.set(4)
				err := s.Commit(t.Context(), r.change())
				wantCommitError(t, "update of missing "+k.name, err, k.name, r.key, qrswitch.ErrConflict)
				if v := r.version(); v != 4 {
					t.Errorf("Version after failed Commit = %d, want 4", v)
				}
				if _, err := r.read(t.Context(), s); !errors.Is(err, qrswitch.ErrNotFound) {
					t.Errorf("read %s after failed update error = %v, want ErrNotFound", k.name, err)
				}
			})
			t.Run("CreateExisting", func(t *testing.T) {
				s := o.Open(t)
				r := k.make(1)
				commit(t, s, "new "+k.name, r.change())
				dup := k.make(1)
				dup.edit(2)
				err := s.Commit(t.Context(), dup.change())
				wantCommitError(t, "duplicate "+k.name, err, k.name, r.key, qrswitch.ErrDuplicate)
				if v := dup.version(); v != 0 {
					t.Errorf("Version after failed create = %d, want 0", v)
				}
				got, _ := r.read(t.Context(), s)
				if !reflect.DeepEqual(got, r.value) {
					t.Errorf("read %s after duplicate create = %+v\nwant %+v", k.name, got, r.value)
				}
			})
			t.Run("ReadsReturnCopies", func(t *testing.T) {
				s := o.Open(t)
				r := k.make(1)
				commit(t, s, "new "+k.name, r.change())
				got, _ := r.read(t.Context(), s)
				want, _ := r.read(t.Context(), s)
				r.scribble(got)
				r.scribble(r.value) // the caller's record, after its Commit
				again, err := r.read(t.Context(), s)
				if err != nil {
					t.Fatalf("read %s error = %v", k.name, err)
				}
				if !reflect.DeepEqual(again, want) {
					t.Errorf("read %s after changing earlier copies = %+v\nwant %+v", k.name, again, want)
				}
			})
		})
	}
}

func testPing(t *testing.T, o Opener) {
	if err := o.Open(t).Ping(t.Context()); err != nil {
		t.Errorf("Ping() error = %v, want nil", err)
	}
}

func testQRRequestPair(t *testing.T, o Opener) {
	s := o.Open(t)
	commit(t, s, "qr tran-1", &qrswitch.Change{QR: newQR(retailerA, "req-1", "tran-1", t0)})

	other := newQR(retailerA, "req-1", "tran-2", t0)
	err := s.Commit(t.Context(), &qrswitch.Change{QR: other})
	wantCommitError(t, "qr with a used (retailer, request id)", err, "qr", "tran-2", qrswitch.ErrDuplicate)
	if _, err := s.QR(t.Context(), "tran-2"); !errors.Is(err, qrswitch.ErrNotFound) {
		t.Errorf("QR(tran-2) after refused create error = %v, want ErrNotFound", err)
	}
	// The same request id from another retailer is another request.
	third := newQR(retailerB, "req-1", "tran-3", t0)
	commit(t, s, "qr of another retailer", &qrswitch.Change{QR: third})

	// The pair stays unique when an update changes it.
	third.RetailerID = retailerA
	err = s.Commit(t.Context(), &qrswitch.Change{QR: third})
	if o.Sharded {
		// A QR code is in its retailer's shard, and keeps its retailer.
		if err == nil {
			t.Error("Commit(qr moved to another retailer) succeeded on a sharded store")
		}
	} else {
		wantCommitError(t, "qr updated to a used (retailer, request id)", err, "qr", "tran-3", qrswitch.ErrDuplicate)
	}
	if got, _ := s.QR(t.Context(), "tran-3"); got == nil || got.RetailerID != retailerB || got.Version != 1 {
		t.Errorf("QR(tran-3) after refused update = %+v, want retailer %s at version 1", got, retailerB)
	}
	if o.Sharded {
		third.RetailerID, third.RequestID = retailerB, "req-2"
		commit(t, s, "qr updated to an unused request id", &qrswitch.Change{QR: third})
		commit(t, s, "qr reusing the pair given up", &qrswitch.Change{QR: newQR(retailerB, "req-1", "tran-4", t0)})
		return
	}
	third.RetailerID, third.RequestID = retailerA, "req-2"
	commit(t, s, "qr updated to an unused (retailer, request id)", &qrswitch.Change{QR: third})
	commit(t, s, "qr reusing the pair given up", &qrswitch.Change{QR: newQR(retailerB, "req-1", "tran-4", t0)})
}

func testAtomicity(t *testing.T, o Opener) {
	for _, tc := range []struct {
		name string
		last func(*qrswitch.Advice) *qrswitch.Advice // the failing last record
		want error
	}{
		{"StaleLast", func(a *qrswitch.Advice) *qrswitch.Advice {
			stale := *a
			stale.Version = 7
			return &stale
		}, qrswitch.ErrConflict},
		{"DuplicateLast", func(a *qrswitch.Advice) *qrswitch.Advice {
			dup := *a
			dup.Version = 0
			return &dup
		}, qrswitch.ErrDuplicate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := o.Open(t)
			ctx := t.Context()
			q := newQR(retailerA, "qr-1", "tran-1", t0)
			p := newPayment(retailerA, "pay-1", "tran-1", t0)
			a1 := newAdvice(retailerA, "adv-1", p.Key(), partnerA, t0)
			a2 := newAdvice(retailerA, "adv-2", p.Key(), partnerA, t0)
			commit(t, s, "setup", &qrswitch.Change{QR: q, Payment: p, Advices: []*qrswitch.Advice{a1, a2},
				Trace: []qrswitch.TraceEntry{entry("pay", 1, t0)}})

			q.PaymentKey = p.Key()
			scanned(p, partnerA, t0.Add(time.Second))
			a1.Attempts = 3
			a3 := newAdvice(retailerA, "adv-3", p.Key(), partnerA, t0)
			last := tc.last(a2)
			lastVersion := last.Version
			qBefore, pBefore := *q, *p
			err := s.Commit(ctx, &qrswitch.Change{QR: q, Payment: p, Advices: []*qrswitch.Advice{a1, a3, last},
				Trace: []qrswitch.TraceEntry{entry("notifyScan", 2, t0)}})
			wantCommitError(t, "change whose last record fails", err, "advice", a2.Key(), tc.want)

			if q.Version != 1 || p.Version != 1 || a1.Version != 1 || a3.Version != 0 || last.Version != lastVersion {
				t.Errorf("versions after failed Commit = qr %d, payment %d, advices %d %d %d, want 1 1 1 0 %d",
					q.Version, p.Version, a1.Version, a3.Version, last.Version, lastVersion)
			}
			if !reflect.DeepEqual(*q, qBefore) || !reflect.DeepEqual(*p, pBefore) {
				t.Errorf("failed Commit changed the caller's records")
			}
			if got, _ := s.QR(ctx, q.TranID); got == nil || got.PaymentKey != "" {
				t.Errorf("QR after failed Commit = %+v, want PaymentKey unset", got)
			}
			if got, _ := s.Payment(ctx, p.Key()); got == nil || got.State != outcome.AwaitingScan || got.Scan != nil {
				t.Errorf("Payment after failed Commit = %+v, want AWAITING_SCAN without scan", got)
			}
			if got, _ := s.Advice(ctx, a1.Key()); got == nil || got.Attempts != 0 || got.Version != 1 {
				t.Errorf("Advice(adv-1) after failed Commit = %+v, want 0 attempts at version 1", got)
			}
			if _, err := s.Advice(ctx, a3.Key()); !errors.Is(err, qrswitch.ErrNotFound) {
				t.Errorf("Advice(adv-3) after failed Commit error = %v, want ErrNotFound", err)
			}
			if trace, _ := s.Trace(ctx, p.Key()); len(trace) != 1 {
				t.Errorf("Trace after failed Commit has %d entries, want 1", len(trace))
			}
		})
	}
}

func testConcurrency(t *testing.T, o Opener) {
	t.Run("NoLostUpdate", func(t *testing.T) {
		const workers, updates = 8, 25
		s := o.Open(t)
		p := newPayment(retailerA, "pay-1", "tran-1", t0)
		p.Request.BasketRef = ""
		commit(t, s, "new payment", &qrswitch.Change{Payment: p})

		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := range updates {
					token := fmt.Sprintf("w%d.%d;", w, i)
					for attempt := 0; ; attempt++ {
						if attempt == 1000 {
							t.Errorf("update %s still conflicting after %d attempts", token, attempt)
							return
						}
						cur, err := s.Payment(t.Context(), p.Key())
						if err != nil {
							t.Errorf("Payment error = %v", err)
							return
						}
						cur.Request.BasketRef += token
						err = s.Commit(t.Context(), &qrswitch.Change{Payment: cur,
							Trace: []qrswitch.TraceEntry{entry("update", w*updates+i, t0)}})
						if errors.Is(err, qrswitch.ErrConflict) {
							continue
						}
						if err != nil {
							t.Errorf("Commit(update %s) error = %v, want nil or ErrConflict", token, err)
							return
						}
						break
					}
				}
			})
		}
		wg.Wait()

		got, err := s.Payment(t.Context(), p.Key())
		if err != nil {
			t.Fatalf("Payment error = %v", err)
		}
		if want := int64(1 + workers*updates); got.Version != want {
			t.Errorf("Version = %d, want %d", got.Version, want)
		}
		tokens := strings.Split(strings.TrimSuffix(got.Request.BasketRef, ";"), ";")
		seen := map[string]bool{}
		for _, tok := range tokens {
			seen[tok] = true
		}
		if len(tokens) != workers*updates || len(seen) != workers*updates {
			t.Errorf("payment carries %d updates (%d distinct), want %d", len(tokens), len(seen), workers*updates)
		}
		trace, _ := s.Trace(t.Context(), p.Key())
		if len(trace) != workers*updates {
			t.Errorf("Trace has %d entries, want %d", len(trace), workers*updates)
		}
		// Each worker's entries are in its own order.
		last := map[int]int{}
		for _, e := range trace {
			var n int
			fmt.Sscanf(e.MessageID, "msg-%d", &n)
			w := n / updates
			if prev, ok := last[w]; ok && n <= prev {
				t.Errorf("trace entry %s after msg-%d of the same worker", e.MessageID, prev)
			}
			last[w] = n
		}
	})
	t.Run("OneCreateWins", func(t *testing.T) {
		const workers = 8
		s := o.Open(t)
		var wg sync.WaitGroup
		errs := make([]error, workers)
		for w := range workers {
			wg.Go(func() {
				p := newPayment(retailerA, "pay-1", "tran-1", t0)
				p.Owner = fmt.Sprintf("node-%d", w)
				errs[w] = s.Commit(t.Context(), &qrswitch.Change{Payment: p})
			})
		}
		wg.Wait()
		won := 0
		for w, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, qrswitch.ErrDuplicate):
				t.Errorf("Commit(create by worker %d) error = %v, want nil or ErrDuplicate", w, err)
			}
		}
		if won != 1 {
			t.Errorf("%d concurrent creates of one payment succeeded, want 1", won)
		}
	})
}

func testTrace(t *testing.T, o Opener) {
	s := o.Open(t)
	ctx := t.Context()
	p := newPayment(retailerA, "pay-1", "tran-1", t0)
	var want []qrswitch.TraceEntry
	add := func(n int) []qrswitch.TraceEntry {
		e := []qrswitch.TraceEntry{entry("pay", n, t0.Add(time.Duration(n)*time.Millisecond)), entry("pay", n+1, t0)}
		want = append(want, e...)
		return e
	}
	commit(t, s, "payment with trace", &qrswitch.Change{Payment: p, Trace: add(1)})
	scanned(p, partnerA, t0)
	commit(t, s, "update with trace", &qrswitch.Change{Payment: p, Trace: add(3)})
	commit(t, s, "trace only", &qrswitch.Change{TraceKey: p.Key(), Trace: add(5)})
	a := newAdvice(retailerA, "adv-1", p.Key(), partnerA, t0)
	commit(t, s, "advice with trace", &qrswitch.Change{Advices: []*qrswitch.Advice{a}, TraceKey: p.Key(), Trace: add(7)})

	got, err := s.Trace(ctx, p.Key())
	if err != nil {
		t.Fatalf("Trace error = %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Trace = %+v\nwant %+v", got, want)
	}
	if p.Version != 2 {
		t.Errorf("payment Version after a trace-only Commit = %d, want 2", p.Version)
	}

	// TraceKey wins over Payment.Key(), and may name something that is no
	// payment (the engine traces QR codes this way).
	approved(p, t0)
	other := entry("createQrCode", 9, t0)
	key := "qr:tran-1"
	if o.Sharded {
		key = qrswitch.PaymentKey(p.RetailerID, "no-such-payment") // in the payment's shard
	}
	commit(t, s, "payment with TraceKey", &qrswitch.Change{Payment: p, TraceKey: key, Trace: []qrswitch.TraceEntry{other}})
	if got, _ := s.Trace(ctx, key); !reflect.DeepEqual(got, []qrswitch.TraceEntry{other}) {
		t.Errorf("Trace(%s) = %+v, want the one entry", key, got)
	}
	if got, _ := s.Trace(ctx, p.Key()); len(got) != len(want) {
		t.Errorf("Trace(payment) has %d entries after a Commit with another TraceKey, want %d", len(got), len(want))
	}

	got, err = s.Trace(ctx, "shop-9/none")
	if err != nil || len(got) != 0 {
		t.Errorf("Trace(unknown) = %v, %v; want empty, nil", got, err)
	}

	got, _ = s.Trace(ctx, p.Key())
	got[0].Note = "scribbled"
	if again, _ := s.Trace(ctx, p.Key()); !reflect.DeepEqual(again, want) {
		t.Errorf("Trace after changing an earlier copy = %+v\nwant %+v", again, want)
	}
}

// keysOf returns the advices' keys.
func keysOf[T interface{ Key() string }](recs []T) []string {
	keys := make([]string, len(recs))
	for i, r := range recs {
		keys[i] = r.Key()
	}
	return keys
}

func testClaimAdvices(t *testing.T, o Opener) {
	const lease = 30 * time.Second
	now := t0.Add(time.Hour)
	// setup stores advices; each entry is (id, payment, partner, state,
	// NextAt offset from now).
	type adv struct {
		id, payment, partner string
		state                qrswitch.AdviceState
		next                 time.Duration
	}
	setup := func(t *testing.T, s qrswitch.Store, advs []adv) map[string]*qrswitch.Advice {
		byID := map[string]*qrswitch.Advice{}
		for _, a := range advs {
			rec := newAdvice(retailerA, a.id, qrswitch.PaymentKey(retailerA, a.payment), a.partner, now.Add(a.next))
			rec.State = a.state
			commit(t, s, "advice "+a.id, &qrswitch.Change{Advices: []*qrswitch.Advice{rec}})
			byID[a.id] = rec
		}
		return byID
	}
	claim := func(t *testing.T, s qrswitch.Store, c qrswitch.Claim) []string {
		t.Helper()
		got, err := s.ClaimAdvices(t.Context(), c)
		if err != nil {
			t.Fatalf("ClaimAdvices(%+v) error = %v", c, err)
		}
		ids := make([]string, len(got))
		for i, a := range got {
			ids[i] = a.ID
		}
		return ids
	}
	pending := qrswitch.AdvicePending
	for _, tc := range []struct {
		name  string
		advs  []adv
		claim qrswitch.Claim
		want  []string
	}{
		{"DueOldestFirst", []adv{
			{"late", "p1", partnerA, pending, time.Second},
			{"now", "p2", partnerA, pending, 0},
			{"old", "p3", partnerA, pending, -time.Minute},
			{"older", "p4", partnerA, pending, -time.Hour},
		}, qrswitch.Claim{Destination: partnerA, Max: 10}, []string{"older", "old", "now"}},
		{"OnlyPending", []adv{
			{"held", "p1", partnerA, qrswitch.AdviceHeld, -time.Minute},
			{"done", "p2", partnerA, qrswitch.AdviceDone, -time.Minute},
			{"dead", "p3", partnerA, qrswitch.AdviceDead, -time.Minute},
			{"pending", "p4", partnerA, pending, -time.Minute},
		}, qrswitch.Claim{Destination: partnerA, Max: 10}, []string{"pending"}},
		{"PartnerFilter", []adv{
			{"a1", "p1", partnerA, pending, -2 * time.Minute},
			{"b1", "p2", partnerB, pending, -3 * time.Minute},
			{"a2", "p3", partnerA, pending, -time.Minute},
		}, qrswitch.Claim{Destination: partnerB, Max: 10}, []string{"b1"}},
		{"Max", []adv{
			{"a1", "p1", partnerA, pending, -1 * time.Minute},
			{"a2", "p2", partnerA, pending, -2 * time.Minute},
			{"a3", "p3", partnerA, pending, -3 * time.Minute},
			{"a4", "p4", partnerA, pending, -4 * time.Minute},
		}, qrswitch.Claim{Destination: partnerA, Max: 2}, []string{"a4", "a3"}},
		{"OnePerPayment", []adv{
			{"second", "p1", partnerA, pending, -time.Minute},
			{"first", "p1", partnerA, pending, -2 * time.Minute},
			{"other", "p2", partnerA, pending, -30 * time.Second},
		}, qrswitch.Claim{Destination: partnerA, Max: 10}, []string{"first", "other"}},
		{"DueBy", []adv{
			{"later", "p1", partnerA, pending, time.Hour},
			{"soon", "p2", partnerA, pending, time.Minute},
			{"past", "p3", partnerA, pending, -time.Minute},
		}, qrswitch.Claim{Destination: partnerA, Max: 10, DueBy: now.Add(10 * time.Minute)}, []string{"past", "soon"}},
		{"DueByBeforeNowIsNow", []adv{
			{"soon", "p1", partnerA, pending, time.Minute},
			{"past", "p2", partnerA, pending, -time.Minute},
		}, qrswitch.Claim{Destination: partnerA, Max: 10, DueBy: now.Add(-time.Hour)}, []string{"past"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := o.Open(t)
			setup(t, s, tc.advs)
			c := tc.claim
			c.Owner, c.Now, c.Lease = "worker-1", now, lease
			if got := claim(t, s, c); !slices.Equal(got, tc.want) {
				t.Errorf("ClaimAdvices = %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("ZeroNextAtIsDueFirst", func(t *testing.T) {
		s := o.Open(t)
		setup(t, s, []adv{{"old", "p1", partnerA, pending, -time.Hour}})
		zero := newAdvice(retailerA, "zero", qrswitch.PaymentKey(retailerA, "p2"), partnerA, now)
		zero.NextAt = time.Time{}
		commit(t, s, "advice zero", &qrswitch.Change{Advices: []*qrswitch.Advice{zero}})
		c := qrswitch.Claim{Destination: partnerA, Owner: "worker-1", Now: now, Lease: lease, Max: 10}
		if got := claim(t, s, c); !slices.Equal(got, []string{"zero", "old"}) {
			t.Errorf("ClaimAdvices = %v, want [zero old]", got)
		}
	})

	t.Run("Lease", func(t *testing.T) {
		s := o.Open(t)
		recs := setup(t, s, []adv{{"a1", "p1", partnerA, pending, -time.Minute}})
		got, err := s.ClaimAdvices(t.Context(), qrswitch.Claim{Destination: partnerA, Owner: "worker-1", Now: now, Lease: lease, Max: 10})
		if err != nil || len(got) != 1 {
			t.Fatalf("ClaimAdvices = %v, %v; want one advice", got, err)
		}
		a := got[0]
		if a.LeaseOwner != "worker-1" || !a.LeaseUntil.Equal(now.Add(lease)) || a.Version != 2 {
			t.Errorf("claimed advice lease = %q until %v at version %d, want worker-1 until %v at version 2",
				a.LeaseOwner, a.LeaseUntil, a.Version, now.Add(lease))
		}
		stored, err := s.Advice(t.Context(), a.Key())
		if err != nil {
			t.Fatalf("Advice error = %v", err)
		}
		if !reflect.DeepEqual(stored, a) {
			t.Errorf("stored advice = %+v\nwant the claimed one %+v", stored, a)
		}
		// The worker's copy from before the claim is stale now.
		old := recs["a1"]
		old.Attempts++
		err = s.Commit(t.Context(), &qrswitch.Change{Advices: []*qrswitch.Advice{old}})
		wantCommitError(t, "advice read before its claim", err, "advice", old.Key(), qrswitch.ErrConflict)

		// A live lease hides the advice, up to and excluding LeaseUntil.
		for _, at := range []time.Time{now, now.Add(lease - time.Nanosecond)} {
			if ids := claim(t, s, qrswitch.Claim{Destination: partnerA, Owner: "worker-2", Now: at, Lease: lease, Max: 10}); len(ids) != 0 {
				t.Errorf("ClaimAdvices at %v under a live lease = %v, want none", at.Sub(now), ids)
			}
		}
		// At LeaseUntil the lease has expired: another worker takes it.
		again, err := s.ClaimAdvices(t.Context(), qrswitch.Claim{Destination: partnerA, Owner: "worker-2", Now: now.Add(lease), Lease: lease, Max: 10})
		if err != nil || len(again) != 1 {
			t.Fatalf("ClaimAdvices after the lease expired = %v, %v; want the advice", again, err)
		}
		if again[0].LeaseOwner != "worker-2" || again[0].Version != 3 || !again[0].LeaseUntil.Equal(now.Add(2*lease)) {
			t.Errorf("reclaimed advice lease = %q until %v at version %d, want worker-2 until %v at version 3",
				again[0].LeaseOwner, again[0].LeaseUntil, again[0].Version, now.Add(2*lease))
		}
	})

	t.Run("LeasedPaymentWaits", func(t *testing.T) {
		s := o.Open(t)
		setup(t, s, []adv{
			{"first", "p1", partnerA, pending, -2 * time.Minute},
			{"second", "p1", partnerA, pending, -time.Minute},
		})
		c := qrswitch.Claim{Destination: partnerA, Owner: "worker-1", Now: now, Lease: lease, Max: 10}
		got, err := s.ClaimAdvices(t.Context(), c)
		if err != nil || len(got) != 1 || got[0].ID != "first" {
			t.Fatalf("ClaimAdvices = %v, %v; want [first]", keysOf(got), err)
		}
		c.Owner = "worker-2"
		if ids := claim(t, s, c); len(ids) != 0 {
			t.Errorf("ClaimAdvices while the payment's other advice is leased = %v, want none", ids)
		}
		// The worker finishes the first advice and gives up its lease.
		first := got[0]
		first.State, first.Outcome = qrswitch.AdviceDone, outcome.Successful
		first.LeaseOwner, first.LeaseUntil, first.DoneAt = "", time.Time{}, now
		commit(t, s, "advice done", &qrswitch.Change{Advices: []*qrswitch.Advice{first}})
		if ids := claim(t, s, c); !slices.Equal(ids, []string{"second"}) {
			t.Errorf("ClaimAdvices after the first advice is done = %v, want [second]", ids)
		}
	})
}

func testPaymentAdvices(t *testing.T, o Opener) {
	s := o.Open(t)
	p := qrswitch.PaymentKey(retailerA, "pay-1")
	// Created out of order: oldest first means by CreatedAt.
	for _, a := range []*qrswitch.Advice{
		newAdvice(retailerA, "middle", p, partnerA, t0.Add(2*time.Second)),
		newAdvice(qrswitch.SwitchSender, "newest", p, partnerA, t0.Add(3*time.Second)),
		newAdvice(retailerA, "oldest", p, partnerA, t0.Add(time.Second)),
		newAdvice(retailerA, "other", qrswitch.PaymentKey(retailerA, "pay-2"), partnerA, t0),
	} {
		commit(t, s, "advice "+a.ID, &qrswitch.Change{Advices: []*qrswitch.Advice{a}})
	}
	got, err := s.PaymentAdvices(t.Context(), p)
	if err != nil {
		t.Fatalf("PaymentAdvices error = %v", err)
	}
	want := []string{"shop-1/oldest", "shop-1/middle", "switch/newest"}
	if keys := keysOf(got); !slices.Equal(keys, want) {
		t.Errorf("PaymentAdvices = %v, want %v", keys, want)
	}
	got, err = s.PaymentAdvices(t.Context(), qrswitch.PaymentKey(retailerA, "none"))
	if err != nil || len(got) != 0 {
		t.Errorf("PaymentAdvices(unknown) = %v, %v; want empty, nil", keysOf(got), err)
	}
}

func testLookup(t *testing.T, o Opener) {
	s := o.Open(t)
	p1 := newPayment(retailerA, "req-A", "tran-1", t0.Add(1*time.Minute))
	p1.Request.Rrn = "rrn-shared"
	p2 := newPayment(retailerB, "req-A", "tran-2", t0.Add(2*time.Minute))
	p3 := newPayment(retailerA, "req-C", "tran-3", t0.Add(3*time.Minute))
	p3.Request.Rrn = "rrn-shared"
	p4 := newPayment(retailerA, "req-D", "tran-4", t0.Add(4*time.Minute))
	p4.Request.Rrn = "req-D" // one id naming one payment twice
	for _, p := range []*qrswitch.Payment{p1, p2, p3, p4} {
		commit(t, s, "payment "+p.Key(), &qrswitch.Change{Payment: p})
	}
	advices := []*qrswitch.Advice{
		newAdvice(retailerA, "adv-X", p3.Key(), partnerA, t0),
		newAdvice(qrswitch.SwitchSender, "adv-X", p2.Key(), partnerA, t0),
	}
	if o.Sharded { // two retailers' payments: two shards
		for _, a := range advices {
			commit(t, s, "advice", &qrswitch.Change{Advices: []*qrswitch.Advice{a}})
		}
	} else {
		commit(t, s, "advices", &qrswitch.Change{Advices: advices})
	}
	for _, tc := range []struct {
		id   string
		want []string
	}{
		{"req-A", []string{p2.Key(), p1.Key()}},
		{"tran-3", []string{p3.Key()}},
		{"adv-X", []string{p3.Key(), p2.Key()}},
		{"rrn-shared", []string{p3.Key(), p1.Key()}},
		{"req-D", []string{p4.Key()}},
		{"unknown", []string{}},
	} {
		got, err := s.Lookup(t.Context(), tc.id)
		if err != nil {
			t.Errorf("Lookup(%q) error = %v, want nil", tc.id, err)
			continue
		}
		if keys := keysOf(got); !slices.Equal(keys, tc.want) {
			t.Errorf("Lookup(%q) = %v, want %v", tc.id, keys, tc.want)
		}
	}
}

func testSearch(t *testing.T, o Opener) {
	s := o.Open(t)
	// A dataset varying every field a Query filters on; match says which
	// payments a query selects, the reference the store must agree with.
	var all []*qrswitch.Payment
	for i := range 24 {
		retailer := []string{retailerA, retailerB}[i%2]
		p := newPayment(retailer, fmt.Sprintf("req-%02d", i), fmt.Sprintf("tran-%02d", i), t0.Add(time.Duration(i)*time.Minute))
		p.Request.Originator.Merchant.MerchantID = []string{"M-1", "M-2", "M-3"}[i%3]
		p.Request.Originator.TerminalID = []string{"T1", "T2", "T3", "T4"}[i%4]
		p.Request.Stan = fmt.Sprintf("%06d", i%5)
		p.Request.Rrn = fmt.Sprintf("rrn-%d", i%6)
		p.Request.Amounts.RequestAmount.Amount = int64(1000 * (i + 1))
		switch i % 3 {
		case 1:
			scanned(p, partnerA, p.CreatedAt)
			if i%4 == 1 {
				timedOut(p, p.CreatedAt)
			}
		case 2:
			scanned(p, partnerB, p.CreatedAt)
			approved(p, p.CreatedAt)
			if i%4 == 3 {
				declined(p, p.CreatedAt)
			}
		}
		all = append(all, p)
	}
	noAmount := newPayment(retailerA, "req-noamount", "tran-na", t0.Add(30*time.Minute))
	noAmount.Request.Amounts = nil
	all = append(all, noAmount)
	// A request id two retailers used, and a tombstone (no payment leg,
	// so no outcome).
	shared := newPayment(retailerA, "req-05", "tran-shared", t0.Add(31*time.Minute))
	tomb := newPayment(retailerB, "req-tomb", "tran-tomb", t0.Add(32*time.Minute))
	tomb.State, tomb.Tombstone = outcome.Reversed, true
	all = append(all, shared, tomb)
	var wg sync.WaitGroup
	for _, p := range all {
		wg.Go(func() { commitOrError(t, s, "payment "+p.Key(), &qrswitch.Change{Payment: p}) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	match := func(p *qrswitch.Payment, q qrswitch.Query) bool {
		r := p.Request
		var amount int64
		hasAmount := r.Amounts != nil && r.Amounts.RequestAmount != nil
		if hasAmount {
			amount = r.Amounts.RequestAmount.Amount
		}
		return (q.RetailerID == "" || p.RetailerID == q.RetailerID) &&
			(q.RequestID == "" || p.RequestID == q.RequestID) &&
			(q.Outcome == "" || p.LegOutcome() == q.Outcome) &&
			(q.PartnerID == "" || p.PartnerID() == q.PartnerID) &&
			(q.MerchantID == "" || r.Originator.Merchant.MerchantID == q.MerchantID) &&
			(q.TerminalID == "" || r.Originator.TerminalID == q.TerminalID) &&
			(q.State == "" || p.State == q.State) &&
			(q.TranID == "" || p.TranID == q.TranID) &&
			(q.Rrn == "" || r.Rrn == q.Rrn) &&
			(q.Stan == "" || r.Stan == q.Stan) &&
			(q.MinAmount == 0 || hasAmount && amount >= q.MinAmount) &&
			(q.MaxAmount == 0 || hasAmount && amount <= q.MaxAmount) &&
			(q.From.IsZero() || !p.CreatedAt.Before(q.From)) &&
			(q.To.IsZero() || p.CreatedAt.Before(q.To)) &&
			(q.Before.IsZero() || p.CreatedAt.Before(q.Before))
	}
	want := func(q qrswitch.Query) []string {
		var keys []string
		for i := len(all) - 1; i >= 0; i-- { // all is oldest first
			if match(all[i], q) {
				keys = append(keys, all[i].Key())
			}
		}
		return keys
	}
	for _, tc := range []struct {
		name string
		q    qrswitch.Query
	}{
		{"All", qrswitch.Query{}},
		{"Retailer", qrswitch.Query{RetailerID: retailerB}},
		{"RequestID", qrswitch.Query{RequestID: "req-05"}},
		{"RetailerRequestID", qrswitch.Query{RetailerID: retailerB, RequestID: "req-05"}},
		{"OutcomeSuccessful", qrswitch.Query{Outcome: "successful"}},
		{"OutcomeUnknown", qrswitch.Query{Outcome: "unknown"}},
		{"OutcomeFailed", qrswitch.Query{Outcome: "failed"}},
		{"OutcomeAndPartner", qrswitch.Query{Outcome: "unknown", PartnerID: partnerA}},
		{"Partner", qrswitch.Query{PartnerID: partnerA}},
		{"Merchant", qrswitch.Query{MerchantID: "M-2"}},
		{"Terminal", qrswitch.Query{TerminalID: "T3"}},
		{"State", qrswitch.Query{State: outcome.Approved}},
		{"TranID", qrswitch.Query{TranID: "tran-07"}},
		{"Rrn", qrswitch.Query{Rrn: "rrn-4"}},
		{"Stan", qrswitch.Query{Stan: "000002"}},
		{"MinAmount", qrswitch.Query{MinAmount: 20000}},
		{"MaxAmount", qrswitch.Query{MaxAmount: 5000}},
		{"AmountRange", qrswitch.Query{MinAmount: 5000, MaxAmount: 9000}},
		{"From", qrswitch.Query{From: t0.Add(20 * time.Minute)}},
		{"To", qrswitch.Query{To: t0.Add(3 * time.Minute)}},
		{"FromTo", qrswitch.Query{From: t0.Add(5 * time.Minute), To: t0.Add(9 * time.Minute)}},
		{"Before", qrswitch.Query{Before: t0.Add(4 * time.Minute)}},
		{"Combined", qrswitch.Query{RetailerID: retailerA, PartnerID: partnerB, MinAmount: 3000, From: t0.Add(2 * time.Minute)}},
		{"NoMatch", qrswitch.Query{RetailerID: retailerA, TerminalID: "T2"}},
		{"Limit", qrswitch.Query{RetailerID: retailerA, Limit: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Search(t.Context(), tc.q)
			if err != nil {
				t.Fatalf("Search(%+v) error = %v", tc.q, err)
			}
			w := want(tc.q)
			if tc.q.Limit > 0 && len(w) > tc.q.Limit {
				w = w[:tc.q.Limit]
			}
			if keys := keysOf(got); !slices.Equal(keys, w) {
				t.Errorf("Search(%+v) = %v\nwant %v", tc.q, keys, w)
			}
		})
	}
	t.Run("Paging", func(t *testing.T) {
		var pages []string
		q := qrswitch.Query{Limit: 4}
		for range 10 {
			got, err := s.Search(t.Context(), q)
			if err != nil {
				t.Fatalf("Search(%+v) error = %v", q, err)
			}
			if len(got) == 0 {
				break
			}
			pages = append(pages, keysOf(got)...)
			q.Before = got[len(got)-1].CreatedAt
		}
		if w := want(qrswitch.Query{}); !slices.Equal(pages, w) {
			t.Errorf("Search pages by Before = %v\nwant %v", pages, w)
		}
	})
	// Every filter once more through a second page, which the cursor
	// (Before and BeforeKey) starts.
	t.Run("PagingFiltered", func(t *testing.T) {
		for _, q := range []qrswitch.Query{
			{RetailerID: retailerA},
			{Outcome: "successful"},
			{PartnerID: partnerA, MinAmount: 2000},
		} {
			w := want(q)
			var pages []string
			page := q
			page.Limit = 2
			for range 20 {
				got, err := s.Search(t.Context(), page)
				if err != nil {
					t.Fatalf("Search(%+v) error = %v", page, err)
				}
				if len(got) == 0 {
					break
				}
				pages = append(pages, keysOf(got)...)
				last := got[len(got)-1]
				page.Before, page.BeforeKey = last.CreatedAt, last.Key()
			}
			if !slices.Equal(pages, w) {
				t.Errorf("Search(%+v) in pages of 2 = %v\nwant %v", q, pages, w)
			}
		}
	})
}

// testSearchPagingTies pages through payments many of which share a
// CreatedAt: ties come by key, descending, and a cursor in the middle of a
// run of ties continues exactly after it.
func testSearchPagingTies(t *testing.T, o Opener) {
	s := o.Open(t)
	var all []*qrswitch.Payment
	for i := range 14 {
		at := t0.Add(time.Duration(i/5) * time.Second) // runs of 5, 5 and 4 ties
		retailer := []string{retailerA, retailerB}[i%2]
		p := newPayment(retailer, fmt.Sprintf("req-%02d", (i*5)%14), fmt.Sprintf("tran-%02d", i), at)
		all = append(all, p)
		commit(t, s, "payment "+p.Key(), &qrswitch.Change{Payment: p})
	}
	order := func(keep func(*qrswitch.Payment) bool) []string {
		var ps []*qrswitch.Payment
		for _, p := range all {
			if keep(p) {
				ps = append(ps, p)
			}
		}
		slices.SortFunc(ps, func(a, b *qrswitch.Payment) int {
			if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
				return c
			}
			return strings.Compare(b.Key(), a.Key())
		})
		return keysOf(ps)
	}
	for _, tc := range []struct {
		name string
		q    qrswitch.Query
		keep func(*qrswitch.Payment) bool
	}{
		{"All", qrswitch.Query{}, func(*qrswitch.Payment) bool { return true }},
		{"Retailer", qrswitch.Query{RetailerID: retailerB}, func(p *qrswitch.Payment) bool { return p.RetailerID == retailerB }},
	} {
		for _, size := range []int{1, 2, 3, 5} {
			t.Run(fmt.Sprintf("%s/PagesOf%d", tc.name, size), func(t *testing.T) {
				q := tc.q
				q.Limit = size
				var got []string
				for range 20 {
					page, err := s.Search(t.Context(), q)
					if err != nil {
						t.Fatalf("Search(%+v) error = %v", q, err)
					}
					if len(page) == 0 {
						break
					}
					got = append(got, keysOf(page)...)
					last := page[len(page)-1]
					q.Before, q.BeforeKey = last.CreatedAt, last.Key()
				}
				if w := order(tc.keep); !slices.Equal(got, w) {
					t.Errorf("Search pages = %v\nwant %v", got, w)
				}
			})
		}
	}
	// Before without BeforeKey still means "created strictly before".
	got, err := s.Search(t.Context(), qrswitch.Query{Before: t0.Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if w := order(func(p *qrswitch.Payment) bool { return p.CreatedAt.Before(t0.Add(time.Second)) }); !slices.Equal(keysOf(got), w) {
		t.Errorf("Search(Before alone) = %v, want %v", keysOf(got), w)
	}
}

func testQueueStats(t *testing.T, o Opener) {
	s := o.Open(t)
	ctx := t.Context()
	type adv struct {
		id       string
		partner  string
		state    qrswitch.AdviceState
		queued   time.Duration // QueuedAt - t0
		next     time.Duration // NextAt - t0
		attempts int
	}
	advs := []adv{
		{"p1", partnerA, qrswitch.AdvicePending, 3 * time.Minute, 10 * time.Minute, 2},
		{"p2", partnerA, qrswitch.AdvicePending, time.Minute, 5 * time.Minute, 7},
		{"p3", partnerA, qrswitch.AdvicePending, 2 * time.Minute, 20 * time.Minute, 2},
		{"p4", partnerA, qrswitch.AdvicePending, 4 * time.Minute, 4 * time.Minute, 0},
		{"h1", partnerA, qrswitch.AdviceHeld, 0, 0, 0},
		{"d1", partnerA, qrswitch.AdviceDead, 0, time.Minute, 40},
		{"d2", partnerA, qrswitch.AdviceDead, 0, time.Minute, 41},
		{"x1", partnerA, qrswitch.AdviceDone, 0, 0, 1},
		{"x2", partnerA, qrswitch.AdviceMerged, 0, 0, 0},
		{"b1", partnerB, qrswitch.AdvicePending, 30 * time.Second, 30 * time.Second, 1},
	}
	recs := map[string]*qrswitch.Advice{}
	for i, a := range advs {
		rec := newAdvice(retailerA, a.id, qrswitch.PaymentKey(retailerA, fmt.Sprintf("pay-%d", i)), a.partner, t0.Add(a.next))
		rec.State, rec.Attempts = a.state, a.attempts
		if a.state == qrswitch.AdvicePending || a.state == qrswitch.AdviceDead {
			rec.QueuedAt = t0.Add(a.queued)
		}
		recs[a.id] = rec
		commit(t, s, "advice "+a.id, &qrswitch.Change{Advices: []*qrswitch.Advice{rec}})
	}
	// One pending advice is being sent: still pending, still counted.
	if _, err := s.ClaimAdvices(ctx, qrswitch.Claim{Destination: partnerA, Owner: "w", Now: t0.Add(time.Hour), Lease: time.Minute, Max: 1}); err != nil {
		t.Fatal(err)
	}
	check := func(what, partner string, want qrswitch.QueueStats) {
		t.Helper()
		got, err := s.QueueStats(ctx, partner)
		if err != nil {
			t.Fatalf("QueueStats(%s) %s error = %v", partner, what, err)
		}
		want.Destination = partner
		if want.Attempts == nil {
			want.Attempts = map[int]int{}
		}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("QueueStats(%s) %s = %+v\nwant %+v", partner, what, *got, want)
		}
	}
	check("at first", partnerA, qrswitch.QueueStats{Pending: 4, Held: 1, Dead: 2,
		OldestQueuedAt: t0.Add(time.Minute), NextAt: t0.Add(4 * time.Minute),
		Attempts: map[int]int{0: 1, 2: 2, 7: 1}, Sampled: 4})
	check("at first", partnerB, qrswitch.QueueStats{Pending: 1,
		OldestQueuedAt: t0.Add(30 * time.Second), NextAt: t0.Add(30 * time.Second),
		Attempts: map[int]int{1: 1}, Sampled: 1})
	check("of an unknown partner", "wallet-z", qrswitch.QueueStats{})

	// The oldest pending advice is dead-lettered, a dead one replayed
	// (queued afresh) and the held one queued: every count and time moves.
	p2 := recs["p2"]
	p2.State, p2.Attempts = qrswitch.AdviceDead, 8
	d1 := recs["d1"]
	d1.State, d1.QueuedAt, d1.NextAt = qrswitch.AdvicePending, t0.Add(time.Hour), t0.Add(time.Hour)
	h1 := recs["h1"]
	h1.State, h1.QueuedAt, h1.NextAt = qrswitch.AdvicePending, t0.Add(90*time.Second), t0.Add(90*time.Second)
	commit(t, s, "advices moved", &qrswitch.Change{Advices: []*qrswitch.Advice{p2, d1, h1}})
	check("after updates", partnerA, qrswitch.QueueStats{Pending: 5, Dead: 2,
		OldestQueuedAt: t0.Add(90 * time.Second), NextAt: t0.Add(90 * time.Second),
		Attempts: map[int]int{0: 2, 2: 2, 40: 1}, Sampled: 5})
}

// testQueueStatsSample checks that Attempts counts the QueueSample advices
// queued longest when more are pending, and Pending counts them all.
func testQueueStatsSample(t *testing.T, o Opener) {
	s := o.Open(t)
	const extra = 5
	var advs []*qrswitch.Advice
	want := map[int]int{}
	for i := range qrswitch.QueueSample + extra {
		a := newAdvice(retailerA, fmt.Sprintf("adv-%04d", i), qrswitch.PaymentKey(retailerA, fmt.Sprintf("pay-%04d", i)), partnerA, t0)
		a.QueuedAt = t0.Add(time.Duration(i) * time.Second)
		a.Attempts = i % 4
		if i >= qrswitch.QueueSample {
			a.Attempts = 99 // queued last: outside the sample
		} else {
			want[a.Attempts]++
		}
		advs = append(advs, a)
	}
	commit(t, s, "advices", &qrswitch.Change{Advices: advs})
	got, err := s.QueueStats(t.Context(), partnerA)
	if err != nil {
		t.Fatalf("QueueStats error = %v", err)
	}
	if got.Pending != qrswitch.QueueSample+extra || got.Sampled != qrswitch.QueueSample || !reflect.DeepEqual(got.Attempts, want) {
		t.Errorf("QueueStats = pending %d, sampled %d, attempts %v; want %d, %d, %v",
			got.Pending, got.Sampled, got.Attempts, qrswitch.QueueSample+extra, qrswitch.QueueSample, want)
	}
}

func testPartnerControls(t *testing.T, o Opener) {
	s := o.Open(t)
	ctx := t.Context()
	if got, err := s.QueueControls(ctx); err != nil || len(got) != 0 {
		t.Fatalf("PartnerControls of an empty store = %v, %v; want none", got, err)
	}
	b := newControl(partnerB, true, t0)
	a := newControl(partnerA, false, t0)
	entry := entry("pausePartner", 1, t0)
	commit(t, s, "control b with its audit entry", &qrswitch.Change{Control: b, TraceKey: "partner/" + partnerB, Trace: []qrswitch.TraceEntry{entry}})
	commit(t, s, "control a", &qrswitch.Change{Control: a})
	got, err := s.QueueControls(ctx)
	if err != nil || !reflect.DeepEqual(got, []*qrswitch.QueueControl{a, b}) {
		t.Errorf("PartnerControls = %+v, %v; want [%+v %+v]", got, err, a, b)
	}
	if tr, err := s.Trace(ctx, "partner/"+partnerB); err != nil || !reflect.DeepEqual(tr, []qrswitch.TraceEntry{entry}) {
		t.Errorf("Trace(partner/%s) = %+v, %v; want the audit entry", partnerB, tr, err)
	}
	// A control is written with the rest of its Change or not at all.
	a.Paused = true
	stale := newAdvice(retailerA, "adv-1", qrswitch.PaymentKey(retailerA, "pay-1"), partnerA, t0)
	stale.Version = 3
	err = s.Commit(ctx, &qrswitch.Change{Control: a, Advices: []*qrswitch.Advice{stale}})
	if o.Sharded {
		if !errors.Is(err, qrswitch.ErrSharded) {
			t.Errorf("Commit(control with an advice) = %v, want ErrSharded", err)
		}
	} else {
		wantCommitError(t, "control with a stale advice", err, "advice", stale.Key(), qrswitch.ErrConflict)
	}
	if got, _ := s.QueueControl(ctx, partnerA); got == nil || got.Paused || got.Version != 1 {
		t.Errorf("PartnerControl after a refused Change = %+v, want unpaused at version 1", got)
	}
}

// checkLimits checks the default and maximum Limit of a query that could
// return n records.
func checkLimits(t *testing.T, s qrswitch.Store, n int, search func(limit int) (int, error), what string) {
	t.Helper()
	for _, tc := range []struct{ limit, want int }{
		{0, min(n, 50)},
		{-1, min(n, 50)},
		{7, 7},
		{1000, min(n, 500)},
	} {
		got, err := search(tc.limit)
		if err != nil {
			t.Errorf("%s(Limit %d) error = %v", what, tc.limit, err)
		} else if got != tc.want {
			t.Errorf("%s(Limit %d) returned %d, want %d", what, tc.limit, got, tc.want)
		}
	}
}

func testListAdvices(t *testing.T, o Opener) {
	s := o.Open(t)
	var all []*qrswitch.Advice
	for i := range 12 {
		a := newAdvice(retailerA, fmt.Sprintf("adv-%02d", i), qrswitch.PaymentKey(retailerA, fmt.Sprintf("pay-%d", i)),
			[]string{partnerA, partnerB}[i%2], t0.Add(time.Duration(12-i)*time.Minute)) // created newest first
		a.State = []qrswitch.AdviceState{qrswitch.AdvicePending, qrswitch.AdviceDone, qrswitch.AdviceDead}[i%3]
		if i%4 == 0 {
			a.LeaseOwner, a.LeaseUntil = "node-x", t0.Add(time.Hour)
		}
		all = append(all, a)
		commit(t, s, "advice "+a.ID, &qrswitch.Change{Advices: []*qrswitch.Advice{a}})
	}
	want := func(q qrswitch.AdviceQuery) []string {
		var keys []string
		for i := len(all) - 1; i >= 0; i-- {
			a := all[i]
			if (q.Destination == "" || a.Destination == q.Destination) && (q.State == "" || a.State == q.State) && (!q.Leased || !a.LeaseUntil.IsZero()) {
				keys = append(keys, a.Key())
			}
		}
		if q.Limit > 0 && len(keys) > q.Limit {
			keys = keys[:q.Limit]
		}
		return keys
	}
	for _, tc := range []struct {
		name string
		q    qrswitch.AdviceQuery
	}{
		{"All", qrswitch.AdviceQuery{}},
		{"Partner", qrswitch.AdviceQuery{Destination: partnerB}},
		{"State", qrswitch.AdviceQuery{State: qrswitch.AdviceDead}},
		{"PartnerState", qrswitch.AdviceQuery{Destination: partnerA, State: qrswitch.AdvicePending}},
		{"NoMatch", qrswitch.AdviceQuery{Destination: "wallet-z"}},
		{"Limit", qrswitch.AdviceQuery{Limit: 5}},
		{"Leased", qrswitch.AdviceQuery{Leased: true}},
		{"LeasedPending", qrswitch.AdviceQuery{Leased: true, State: qrswitch.AdvicePending}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListAdvices(t.Context(), tc.q)
			if err != nil {
				t.Fatalf("ListAdvices(%+v) error = %v", tc.q, err)
			}
			if keys, w := keysOf(got), want(tc.q); !slices.Equal(keys, w) {
				t.Errorf("ListAdvices(%+v) = %v\nwant %v", tc.q, keys, w)
			}
		})
	}
}

// testQueryLimits checks the Limit defaults and maximum on 510 payments and
// advices, committed 32 at a time.
func testQueryLimits(t *testing.T, o Opener) {
	const n = 510
	s := o.Open(t)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			p := newPayment(retailerA, fmt.Sprintf("req-%03d", i), fmt.Sprintf("tran-%03d", i), t0.Add(time.Duration(i)*time.Second))
			a := newAdvice(retailerA, fmt.Sprintf("adv-%03d", i), p.Key(), partnerA, t0.Add(time.Duration(i)*time.Second))
			commitOrError(t, s, "payment "+p.Key(), &qrswitch.Change{Payment: p, Advices: []*qrswitch.Advice{a}})
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	checkLimits(t, s, n, func(limit int) (int, error) {
		got, err := s.Search(t.Context(), qrswitch.Query{Limit: limit})
		return len(got), err
	}, "Search")
	checkLimits(t, s, n, func(limit int) (int, error) {
		got, err := s.ListAdvices(t.Context(), qrswitch.AdviceQuery{Limit: limit})
		return len(got), err
	}, "ListAdvices")
}

func testOrphans(t *testing.T, o Opener) {
	s := o.Open(t)
	now := t0.Add(time.Hour)
	type pay struct {
		id    string
		state outcome.State
		hold  time.Duration // HoldUntil - now
	}
	var orphans []string
	for _, p := range []pay{
		{"awaiting-past", outcome.AwaitingScan, -time.Second},
		{"forwarded-past", outcome.Forwarded, -time.Minute},
		{"awaiting-now", outcome.AwaitingScan, 0}, // not before now
		{"forwarded-future", outcome.Forwarded, time.Second},
		{"approved-past", outcome.Approved, -time.Minute},
		{"noscan-past", outcome.NoScan, -time.Minute},
		{"reversing-past", outcome.Reversing, -time.Minute},
	} {
		rec := newPayment(retailerA, p.id, "tran-"+p.id, t0)
		rec.State = p.state
		rec.HoldUntil = now.Add(p.hold)
		commit(t, s, "payment "+p.id, &qrswitch.Change{Payment: rec})
		if p.state == outcome.AwaitingScan || p.state == outcome.Forwarded {
			if p.hold < 0 {
				orphans = append(orphans, rec.Key())
			}
		}
	}
	// A zero HoldUntil is before every time: such a payment has no owner.
	zero := newPayment(retailerA, "awaiting-zero", "tran-zero", t0)
	zero.HoldUntil = time.Time{}
	commit(t, s, "payment awaiting-zero", &qrswitch.Change{Payment: zero})
	orphans = append(orphans, zero.Key())

	got, err := s.Orphans(t.Context(), now, 10)
	if err != nil {
		t.Fatalf("Orphans error = %v", err)
	}
	keys := keysOf(got)
	slices.Sort(keys)
	slices.Sort(orphans)
	if !slices.Equal(keys, orphans) {
		t.Errorf("Orphans(now, 10) = %v, want %v", keys, orphans)
	}
	got, err = s.Orphans(t.Context(), now, 1)
	if err != nil || len(got) != 1 || !slices.Contains(orphans, got[0].Key()) {
		t.Errorf("Orphans(now, 1) = %v, %v; want one of %v", keysOf(got), err, orphans)
	}
	got, err = s.Orphans(t.Context(), t0, 10)
	if err != nil || !slices.Equal(keysOf(got), []string{zero.Key()}) {
		t.Errorf("Orphans(long ago) = %v, %v; want only [%s]", keysOf(got), err, zero.Key())
	}
}

// testUpdatesMoveIndexes checks that an update moves a record in every
// lookup, search, list and claim by the fields it changed.
func testUpdatesMoveIndexes(t *testing.T, o Opener) {
	s := o.Open(t)
	ctx := t.Context()
	now := t0.Add(time.Hour)
	keys := func(what string, got []*qrswitch.Payment, err error) []string {
		t.Helper()
		if err != nil {
			t.Fatalf("%s error = %v", what, err)
		}
		return keysOf(got)
	}
	has := func(list []string, key string) bool { return slices.Contains(list, key) }

	p := newPayment(retailerA, "pay-1", "tran-1", t0)
	p.HoldUntil = now.Add(time.Minute)
	commit(t, s, "payment", &qrswitch.Change{Payment: p})
	oldRrn, oldTerminal := p.Request.Rrn, p.Request.Originator.TerminalID
	scanned(p, partnerB, now)
	p.HoldUntil = now.Add(-time.Second)
	p.Request.Rrn, p.Request.Originator.TerminalID = "rrn-moved", "T-moved"
	commit(t, s, "payment update", &qrswitch.Change{Payment: p})

	for _, tc := range []struct {
		what string
		q    qrswitch.Query
		want bool
	}{
		{"new state", qrswitch.Query{State: outcome.Forwarded}, true},
		{"old state", qrswitch.Query{State: outcome.AwaitingScan}, false},
		{"new partner", qrswitch.Query{PartnerID: partnerB}, true},
		{"new rrn", qrswitch.Query{Rrn: "rrn-moved"}, true},
		{"old rrn", qrswitch.Query{Rrn: oldRrn}, false},
		{"new terminal", qrswitch.Query{TerminalID: "T-moved"}, true},
		{"old terminal", qrswitch.Query{TerminalID: oldTerminal}, false},
	} {
		got, err := s.Search(ctx, tc.q)
		if found := has(keys("Search", got, err), p.Key()); found != tc.want {
			t.Errorf("Search(%s) after update finds the payment = %v, want %v", tc.what, found, tc.want)
		}
	}
	if got, err := s.Lookup(ctx, oldRrn); len(keys("Lookup", got, err)) != 0 {
		t.Errorf("Lookup(old rrn) after update = %v, want none", keysOf(got))
	}
	if got, err := s.Orphans(ctx, now, 10); !has(keys("Orphans", got, err), p.Key()) {
		t.Errorf("Orphans after HoldUntil moved into the past = %v, want the payment", keysOf(got))
	}
	if got, err := s.Search(ctx, qrswitch.Query{Outcome: "successful"}); has(keys("Search", got, err), p.Key()) {
		t.Errorf("Search(successful) finds the payment while it is forwarded")
	}
	approved(p, now)
	commit(t, s, "payment approved", &qrswitch.Change{Payment: p})
	if got, err := s.Search(ctx, qrswitch.Query{Outcome: "successful"}); !has(keys("Search", got, err), p.Key()) {
		t.Errorf("Search(successful) after the payment was approved does not find it")
	}
	if got, err := s.Orphans(ctx, now, 10); has(keys("Orphans", got, err), p.Key()) {
		t.Errorf("Orphans after the payment was approved = %v, want none", keysOf(got))
	}

	a := newAdvice(retailerA, "adv-1", p.Key(), partnerA, now.Add(-time.Minute))
	commit(t, s, "advice", &qrswitch.Change{Advices: []*qrswitch.Advice{a}})
	a.NextAt = now.Add(time.Minute)
	a.Attempts = 1
	commit(t, s, "advice rescheduled", &qrswitch.Change{Advices: []*qrswitch.Advice{a}})
	claim := qrswitch.Claim{Destination: partnerA, Owner: "worker-1", Now: now, Lease: time.Minute, Max: 10}
	if got, err := s.ClaimAdvices(ctx, claim); err != nil || len(got) != 0 {
		t.Errorf("ClaimAdvices after NextAt moved into the future = %v, %v; want none", keysOf(got), err)
	}
	a.NextAt = now.Add(-time.Second)
	a.Destination = partnerB
	commit(t, s, "advice moved to another partner", &qrswitch.Change{Advices: []*qrswitch.Advice{a}})
	if got, err := s.ClaimAdvices(ctx, claim); err != nil || len(got) != 0 {
		t.Errorf("ClaimAdvices(old partner) after the advice moved = %v, %v; want none", keysOf(got), err)
	}
	a.State, a.Outcome = qrswitch.AdviceDone, outcome.Successful
	commit(t, s, "advice done", &qrswitch.Change{Advices: []*qrswitch.Advice{a}})
	claim.Destination = partnerB
	if got, err := s.ClaimAdvices(ctx, claim); err != nil || len(got) != 0 {
		t.Errorf("ClaimAdvices after the advice is done = %v, %v; want none", keysOf(got), err)
	}
	for _, tc := range []struct {
		q    qrswitch.AdviceQuery
		want int
	}{
		{qrswitch.AdviceQuery{State: qrswitch.AdviceDone}, 1},
		{qrswitch.AdviceQuery{State: qrswitch.AdvicePending}, 0},
		{qrswitch.AdviceQuery{Destination: partnerB}, 1},
		{qrswitch.AdviceQuery{Destination: partnerA}, 0},
	} {
		if got, err := s.ListAdvices(ctx, tc.q); err != nil || len(got) != tc.want {
			t.Errorf("ListAdvices(%+v) after updates = %v, %v; want %d advices", tc.q, keysOf(got), err, tc.want)
		}
	}
}

func testDurability(t *testing.T, o Opener) {
	if o.Reopen == nil {
		t.Skip("the backend gives no way to reopen a store")
	}
	s := o.Open(t)
	ctx := t.Context()
	q := newQR(retailerA, "qr-1", "tran-1", t0)
	p := newPayment(retailerA, "pay-1", "tran-1", t0)
	q.PaymentKey = p.Key()
	trace := []qrswitch.TraceEntry{entry("pay", 1, t0), entry("notifyScan", 2, t0)}
	commit(t, s, "qr", &qrswitch.Change{QR: q})
	commit(t, s, "payment", &qrswitch.Change{QR: q, Payment: p, Trace: trace[:1]})
	scanned(p, partnerA, t0)
	approved(p, t0)
	a := newAdvice(retailerA, "adv-1", p.Key(), partnerA, t0)
	commit(t, s, "advice", &qrswitch.Change{Payment: p, Advices: []*qrswitch.Advice{a}, Trace: trace[1:]})
	claimed, err := s.ClaimAdvices(ctx, qrswitch.Claim{Destination: partnerA, Owner: "worker-1", Now: t0, Lease: time.Minute, Max: 1})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("ClaimAdvices = %v, %v; want one advice", keysOf(claimed), err)
	}

	ctl := newControl(partnerA, true, t0)
	commit(t, s, "control", &qrswitch.Change{Control: ctl})

	r := o.Reopen(t, s)
	if got, err := r.QueueControl(ctx, partnerA); err != nil || !reflect.DeepEqual(got, ctl) {
		t.Errorf("PartnerControl after reopen = %+v, %v\nwant %+v", got, err, ctl)
	}
	if got, err := r.QR(ctx, q.TranID); err != nil || !reflect.DeepEqual(got, q) {
		t.Errorf("QR after reopen = %+v, %v\nwant %+v", got, err, q)
	}
	if got, err := r.Payment(ctx, p.Key()); err != nil || !reflect.DeepEqual(got, p) {
		t.Errorf("Payment after reopen = %+v, %v\nwant %+v", got, err, p)
	}
	if got, err := r.Advice(ctx, a.Key()); err != nil || !reflect.DeepEqual(got, claimed[0]) {
		t.Errorf("Advice after reopen = %+v, %v\nwant the claimed %+v", got, err, claimed[0])
	}
	if got, err := r.Trace(ctx, p.Key()); err != nil || !reflect.DeepEqual(got, trace) {
		t.Errorf("Trace after reopen = %+v, %v\nwant %+v", got, err, trace)
	}
	if got, err := r.Lookup(ctx, "adv-1"); err != nil || !slices.Equal(keysOf(got), []string{p.Key()}) {
		t.Errorf("Lookup(adv-1) after reopen = %v, %v; want [%s]", keysOf(got), err, p.Key())
	}
	// Versions carry on where they were.
	stale := *p
	stale.Version--
	err = r.Commit(ctx, &qrswitch.Change{Payment: &stale})
	wantCommitError(t, "stale payment after reopen", err, "payment", p.Key(), qrswitch.ErrConflict)
	p.State = outcome.Confirming
	commit(t, r, "payment after reopen", &qrswitch.Change{Payment: p})
	if p.Version != 3 {
		t.Errorf("Version after reopen and update = %d, want 3", p.Version)
	}
}
