package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/partners"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// testRailRecords pins down the rails' records: create and update by
// version, atomic with the engine's records, reads and listings by key,
// secondary key and due time, owners kept apart, and many writers of one
// record (a ledger balance) never losing an update.
func testRailRecords(t *testing.T, o Opener) {
	ctx := t.Context()
	rec := func(owner, kind, key string, data any, index ...string) *partners.Record {
		b, _ := json.Marshal(data)
		return &partners.Record{Owner: owner, Kind: kind, Key: key, Data: b, Index: index}
	}
	keys := func(rs []*partners.Record) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Key)
		}
		return out
	}
	t.Run("CreateReadUpdate", func(t *testing.T) {
		s := o.Open(t)
		r := rec("rail-a", "invoice", "inv-1", map[string]any{"status": "unpaid"}, "relay:77", "shop:shop-1")
		r.DueAt = t0.Add(time.Hour)
		commit(t, s, "create", &qrswitch.Change{Records: []*partners.Record{r}})
		if r.Version != 1 {
			t.Fatalf("Version after create = %d, want 1", r.Version)
		}
		got, err := s.Record(ctx, "rail-a", "invoice", "inv-1")
		if err != nil || got.Version != 1 || string(got.Data) != string(r.Data) || !slices.Equal(got.Index, r.Index) || !got.DueAt.Equal(r.DueAt) || got.Owner != "rail-a" {
			t.Fatalf("Record = %+v, %v; want what was written", got, err)
		}
		wantCommitError(t, "create again", s.Commit(ctx, &qrswitch.Change{Records: []*partners.Record{rec("rail-a", "invoice", "inv-1", 1)}}), "record", "rail-a/invoice/inv-1", qrswitch.ErrDuplicate)
		stale := got.Clone()
		got.Data = json.RawMessage(`{"status":"paid"}`)
		got.Index = []string{"shop:shop-1"}
		got.DueAt = time.Time{}
		commit(t, s, "update", &qrswitch.Change{Records: []*partners.Record{got}})
		stale.Data = json.RawMessage(`{"status":"cancelled"}`)
		wantCommitError(t, "stale update", s.Commit(ctx, &qrswitch.Change{Records: []*partners.Record{stale}}), "record", "rail-a/invoice/inv-1", qrswitch.ErrConflict)
		again, _ := s.Record(ctx, "rail-a", "invoice", "inv-1")
		if string(again.Data) != `{"status":"paid"}` || again.Version != 2 {
			t.Fatalf("after a refused stale update: %+v, want version 2, paid", again)
		}
		if rs, err := s.Records(ctx, "rail-a", partners.RecordQuery{Kind: "invoice", Index: "relay:77"}); err != nil || len(rs) != 0 {
			t.Fatalf("by a secondary key the update removed = %v, %v; want none", keys(rs), err)
		}
		if rs, err := s.Records(ctx, "rail-a", partners.RecordQuery{Kind: "invoice", DueBy: t0.Add(48 * time.Hour)}); err != nil || len(rs) != 0 {
			t.Fatalf("due after the update cleared DueAt = %v, %v; want none", keys(rs), err)
		}
		if _, err := s.Record(ctx, "rail-b", "invoice", "inv-1"); !errors.Is(err, qrswitch.ErrNotFound) {
			t.Fatalf("another owner's record = %v, want ErrNotFound", err)
		}
		if _, err := s.Record(ctx, "rail-a", "transfer", "inv-1"); !errors.Is(err, qrswitch.ErrNotFound) {
			t.Fatalf("another kind's record = %v, want ErrNotFound", err)
		}
	})
	t.Run("AtomicWithPayments", func(t *testing.T) {
		s := o.Open(t)
		p := newPayment(retailerA, "req-atomic", "tran-atomic", t0)
		commit(t, s, "payment", &qrswitch.Change{Payment: p})
		if o.Sharded {
			// A record of no retailer is kept apart from the retailers'.
			next := p.Clone()
			next.State = "APPROVED"
			err := s.Commit(ctx, &qrswitch.Change{Payment: next, Records: []*partners.Record{rec("rail-a", "transfer", "t-0", 1)}})
			if !errors.Is(err, qrswitch.ErrSharded) {
				t.Fatalf("a payment with a record of no retailer = %v, want ErrSharded", err)
			}
			if _, err := s.Record(ctx, "rail-a", "transfer", "t-0"); !errors.Is(err, qrswitch.ErrNotFound) {
				t.Fatalf("record of a refused Change = %v, want ErrNotFound", err)
			}
			if got, _ := s.Payment(ctx, p.Key()); got.State == "APPROVED" {
				t.Fatal("the payment of a refused Change was written")
			}
			// Records of the payment's retailer are committed with it.
			rec0 := rec
			rec = func(owner, kind, key string, data any, index ...string) *partners.Record {
				r := rec0(owner, kind, key, data, index...)
				r.Retailer = retailerA
				return r
			}
			defer func() { rec = rec0 }()
		}
		stale := p.Clone()
		commit(t, s, "payment update", &qrswitch.Change{Payment: p.Clone()})
		// A Change whose payment is stale writes no record either.
		err := s.Commit(ctx, &qrswitch.Change{Payment: stale, Records: []*partners.Record{rec("rail-a", "transfer", "t-1", 1)}})
		wantCommitError(t, "stale payment with a record", err, "payment", p.Key(), qrswitch.ErrConflict)
		if _, err := s.Record(ctx, "rail-a", "transfer", "t-1"); !errors.Is(err, qrswitch.ErrNotFound) {
			t.Fatalf("record of a refused Change = %v, want ErrNotFound", err)
		}
		// And a record that fails its check writes no payment.
		commit(t, s, "record", &qrswitch.Change{Records: []*partners.Record{rec("rail-a", "transfer", "t-2", 1)}})
		cur, _ := s.Payment(ctx, p.Key())
		next := cur.Clone()
		next.State = "APPROVED"
		err = s.Commit(ctx, &qrswitch.Change{Payment: next, Records: []*partners.Record{rec("rail-a", "transfer", "t-2", 2)}})
		wantCommitError(t, "payment with a duplicate record", err, "record", "rail-a/transfer/t-2", qrswitch.ErrDuplicate)
		if got, _ := s.Payment(ctx, p.Key()); got.State == "APPROVED" {
			t.Fatal("the payment of a refused Change was written")
		}
		if err := s.Commit(ctx, &qrswitch.Change{Records: []*partners.Record{{Owner: "rail/a", Kind: "x", Key: "k"}}}); err == nil {
			t.Fatal("a record whose owner holds '/' was written")
		}
	})
	t.Run("Listings", func(t *testing.T) {
		s := o.Open(t)
		var rs []*partners.Record
		for i := range 7 {
			r := rec("rail-a", "payment", fmt.Sprintf("p-%02d", i), i, "wallet:w1")
			if i%2 == 1 {
				r.Index = []string{"wallet:w2"}
			}
			r.DueAt = t0.Add(time.Duration(7-i) * time.Minute)
			rs = append(rs, r)
		}
		rs = append(rs, rec("rail-b", "payment", "p-00", 0, "wallet:w1"), rec("rail-a", "quote", "q-00", 0, "wallet:w1"))
		if o.Sharded {
			// Records of several retailers, and of none, are in different
			// shards: committed apart, listed together.
			for i, r := range rs {
				if i%3 != 0 {
					r.Retailer = fmt.Sprintf("shop-%d", i)
				}
				commit(t, s, "record "+r.Key, &qrswitch.Change{Records: []*partners.Record{r}})
			}
		} else {
			commit(t, s, "records", &qrswitch.Change{Records: rs})
		}
		for _, tt := range []struct {
			name string
			q    partners.RecordQuery
			want []string
		}{
			{"all of a kind", partners.RecordQuery{Kind: "payment"}, []string{"p-00", "p-01", "p-02", "p-03", "p-04", "p-05", "p-06"}},
			{"by secondary key", partners.RecordQuery{Kind: "payment", Index: "wallet:w1"}, []string{"p-00", "p-02", "p-04", "p-06"}},
			{"descending", partners.RecordQuery{Kind: "payment", Index: "wallet:w1", Desc: true}, []string{"p-06", "p-04", "p-02", "p-00"}},
			{"page after", partners.RecordQuery{Kind: "payment", After: "p-02", Limit: 2}, []string{"p-03", "p-04"}},
			{"page before, descending", partners.RecordQuery{Kind: "payment", Index: "wallet:w1", Before: "p-04", Desc: true}, []string{"p-02", "p-00"}},
			{"after and before", partners.RecordQuery{Kind: "payment", After: "p-01", Before: "p-05"}, []string{"p-02", "p-03", "p-04"}},
			{"due, earliest first", partners.RecordQuery{Kind: "payment", DueBy: t0.Add(3 * time.Minute)}, []string{"p-06", "p-05", "p-04"}},
			{"an unknown secondary key", partners.RecordQuery{Kind: "payment", Index: "wallet:w9"}, nil},
		} {
			got, err := s.Records(ctx, "rail-a", tt.q)
			if err != nil || !slices.Equal(keys(got), tt.want) {
				t.Errorf("Records(%s) = %v, %v; want %v", tt.name, keys(got), err, tt.want)
			}
		}
		if _, err := s.Records(ctx, "rail-a", partners.RecordQuery{}); err == nil {
			t.Error("Records without a kind succeeded, want an error")
		}
	})
	t.Run("ConcurrentBalance", func(t *testing.T) {
		// Many writers debit one account record with optimistic
		// concurrency: every accepted debit is counted once, and the
		// balance never goes below zero.
		s := o.Open(t)
		type account struct{ Balance int64 }
		commit(t, s, "account", &qrswitch.Change{Records: []*partners.Record{rec("ledger", "account", "merchant", account{Balance: 1000})}})
		var wg sync.WaitGroup
		var mu sync.Mutex
		accepted := 0
		for w := range 8 {
			wg.Go(func() {
				for i := range 40 {
					for {
						cur, err := s.Record(ctx, "ledger", "account", "merchant")
						if err != nil {
							t.Errorf("reading the account: %v", err)
							return
						}
						var a account
						json.Unmarshal(cur.Data, &a)
						if a.Balance < 7 {
							break // refused: it would go negative
						}
						a.Balance -= 7
						cur.Data, _ = json.Marshal(a)
						transfer := rec("ledger", "transfer", fmt.Sprintf("w%d-%d", w, i), 7)
						err = s.Commit(ctx, &qrswitch.Change{Records: []*partners.Record{cur, transfer}})
						if errors.Is(err, qrswitch.ErrConflict) {
							continue
						}
						if err != nil {
							t.Errorf("debit: %v", err)
							return
						}
						mu.Lock()
						accepted++
						mu.Unlock()
						break
					}
				}
			})
		}
		wg.Wait()
		cur, _ := s.Record(ctx, "ledger", "account", "merchant")
		var a account
		json.Unmarshal(cur.Data, &a)
		transfers, _ := s.Records(ctx, "ledger", partners.RecordQuery{Kind: "transfer", Limit: 1000})
		if a.Balance < 0 || a.Balance != 1000-7*int64(accepted) || len(transfers) != accepted || accepted != 1000/7 {
			t.Fatalf("balance %d after %d debits of 7 (%d transfers): want %d debits, balance %d", a.Balance, accepted, len(transfers), 1000/7, 1000%7)
		}
	})
}
