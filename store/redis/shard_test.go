package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/store/redis/redistest"
	store "github.com/qrswitch/qrswitch/store/storetest"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// openSharded opens a store of n shards on the cluster under prefix and
// closes it when the test ends.
func openSharded(t testing.TB, c *redistest.Cluster, prefix string, n int, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), fmt.Sprintf("%s?key_prefix=%s&shards=%d", c.URL(), prefix, n), opts)
	if err != nil {
		t.Fatalf("Open(shards=%d) error = %v", n, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestShardedConformance runs the suite on a store spread over eight
// shards of a cluster of three masters: every search, lookup, claim and
// statistic visits each shard, and the suite's records are spread over
// them by retailer. A Change keeps to one shard (Sharded).
func TestShardedConformance(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	store.ConformanceWith(t, store.Opener{
		Open: func(t *testing.T) qrswitch.Store { return openSharded(t, c, newPrefix(), 8, Options{}) },
		Reopen: func(t *testing.T, old qrswitch.Store) qrswitch.Store {
			s := old.(*Store)
			if err := s.Close(); err != nil {
				t.Fatalf("Close() error = %v", err)
			}
			return openSharded(t, c, s.Prefix(), 8, Options{})
		},
		Sharded: true,
	})
}

// TestShardsSpread shows what shards are for: the retailers' records of
// one store land on every master of the cluster, each QR code is read in
// one round trip with a tranId the store made, and the shard count of a
// store cannot change under it.
func TestShardsSpread(t *testing.T) {
	ctx := context.Background()
	c := redistest.StartCluster(t, 3, 0)
	prefix := newPrefix()
	s := openSharded(t, c, prefix, 16, Options{})
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i := range 64 {
		ret := fmt.Sprintf("shop-%d", i)
		tran := s.NewTranID(ret)
		if len(tran) != 32 || strings.Trim(tran, "0123456789abcdef") != "" {
			t.Fatalf("NewTranID = %q, want 32 hex digits", tran)
		}
		if s.idShard(tran) != s.group(ret) {
			t.Fatalf("NewTranID(%s) = %s hashes to another shard than the retailer's", ret, tran)
		}
		q := &qrswitch.QRCode{TranID: tran, RetailerID: ret, RequestID: "qr-1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		p := &qrswitch.Payment{RetailerID: ret, RequestID: "pay-1", TranID: tran, State: "AWAITING_SCAN", CreatedAt: now}
		q.PaymentKey = p.Key()
		mustCommit(t, s, "qr code", &qrswitch.Change{QR: q, TraceKey: "qr/" + tran, Trace: []qrswitch.TraceEntry{{At: now, Operation: "createQrCode", Kind: "event"}}})
		mustCommit(t, s, "payment", &qrswitch.Change{QR: q, Payment: p})
		before := s.RoundTrips()
		if _, err := s.QR(ctx, tran); err != nil {
			t.Fatalf("QR(%s): %v", tran, err)
		}
		if n := s.RoundTrips() - before; n != 1 {
			t.Fatalf("reading a QR code by a tranId the store made took %d round trips, want 1", n)
		}
	}
	// Every master holds some of the store's keys.
	for _, m := range c.Nodes { // three masters, no replicas
		n, err := m.Client(t).Keys(ctx, "{"+strings.TrimSuffix(prefix, ":")+".*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(n) == 0 {
			t.Errorf("master %s holds none of the store's keys: the shards did not spread", m.Addr())
		}
	}
	got, err := s.Search(ctx, qrswitch.Query{Limit: 100})
	if err != nil || len(got) != 64 {
		t.Fatalf("Search over every shard = %d payments, %v; want 64", len(got), err)
	}
	// A tranId the store did not make is found in whichever shard has it.
	q := &qrswitch.QRCode{TranID: "not-minted", RetailerID: "shop-1", RequestID: "qr-2", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	mustCommit(t, s, "qr code, tranId not made by the store", &qrswitch.Change{QR: q})
	if got, err := s.QR(ctx, "not-minted"); err != nil || got.RetailerID != "shop-1" {
		t.Fatalf("QR(not-minted) = %v, %v", got, err)
	}
	if _, err := s.QR(ctx, "nowhere"); !errors.Is(err, qrswitch.ErrNotFound) {
		t.Fatalf("QR(nowhere) = %v, want ErrNotFound", err)
	}
	// A retailer's advice is looked for in its shard alone (an advice id
	// is usually new); one the switch sent is found wherever it is, by
	// another process too.
	before := s.RoundTrips()
	if _, err := s.Advice(ctx, "shop-3/new-advice"); !errors.Is(err, qrswitch.ErrNotFound) {
		t.Fatalf("Advice(shop-3/new-advice) = %v, want ErrNotFound", err)
	}
	if n := s.RoundTrips() - before; n != 1 {
		t.Errorf("looking for a retailer's advice took %d round trips, want 1", n)
	}
	adv := &qrswitch.Advice{Sender: qrswitch.SwitchSender, ID: "rev-1", Kind: qrswitch.Reversal, PaymentKey: qrswitch.PaymentKey("shop-5", "pay-1"),
		Destination: "wallet-a", State: qrswitch.AdvicePending, CreatedAt: now, UpdatedAt: now, NextAt: now}
	mustCommit(t, s, "the switch's advice", &qrswitch.Change{Advices: []*qrswitch.Advice{adv}})
	other := openSharded(t, c, s.Prefix(), 16, Options{})
	if got, err := other.Advice(ctx, adv.Key()); err != nil || got.PaymentKey != adv.PaymentKey {
		t.Fatalf("Advice(%s) from another process = %v, %v", adv.Key(), got, err)
	}
	wrong := &qrswitch.Advice{Sender: "shop-1", ID: "a-1", Kind: qrswitch.Confirmation, PaymentKey: qrswitch.PaymentKey("shop-2", "pay-1"),
		State: qrswitch.AdvicePending, CreatedAt: now, UpdatedAt: now}
	if s.group("shop-1") != s.group("shop-2") {
		if err := s.Commit(ctx, &qrswitch.Change{Advices: []*qrswitch.Advice{wrong}}); !errors.Is(err, qrswitch.ErrSharded) {
			t.Errorf("a retailer's advice on another retailer's payment = %v, want ErrSharded", err)
		}
	}

	// The shard count is the store's: another one is refused.
	for _, n := range []int{1, 8} {
		if _, err := Open(ctx, fmt.Sprintf("%s?key_prefix=%s&shards=%d", c.URL(), prefix, n), Options{}); err == nil || !strings.Contains(err.Error(), "16 shards") {
			t.Errorf("Open(shards=%d) on a store of 16 = %v, want a refusal naming 16 shards", n, err)
		}
	}
	// An unsharded store's records are not hidden by opening it sharded.
	flat := newPrefix()
	u := openOn(t, c.URL(), flat, Options{})
	mustCommit(t, u, "unsharded payment", &qrswitch.Change{Payment: &qrswitch.Payment{RetailerID: "shop", RequestID: "r", State: "AWAITING_SCAN", CreatedAt: now}})
	if _, err := Open(ctx, fmt.Sprintf("%s?key_prefix=%s&shards=4", c.URL(), flat), Options{}); err == nil {
		t.Error("Open(shards=4) on an unsharded store with payments succeeded")
	}
	// A rail's records are committed alone, in the home slot.
	r := &partners.Record{Owner: "rail", Kind: "invoice", Key: "i-1", Data: []byte(`{}`)}
	mustCommit(t, s, "a rail's record", &qrswitch.Change{Records: []*partners.Record{r}})
	if _, err := s.Record(ctx, "rail", "invoice", "i-1"); err != nil {
		t.Fatalf("Record: %v", err)
	}
}
