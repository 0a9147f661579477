package redisstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/outcome"
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
// shards of a cluster of three masters, each with a replica: every search, lookup, claim and
// statistic visits each shard, and the suite's records are spread over
// them by retailer. A Change keeps to one shard (Sharded).
func TestShardedConformance(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	opts := Options{WaitReplicas: 1, WaitTimeout: 10 * time.Second} // see TestClusterConformance
	store.ConformanceWith(t, store.Opener{
		Open: func(t *testing.T) qrswitch.Store { return openSharded(t, c, newPrefix(), 8, opts) },
		Reopen: func(t *testing.T, old qrswitch.Store) qrswitch.Store {
			s := old.(*Store)
			if err := s.Close(); err != nil {
				t.Fatalf("Close() error = %v", err)
			}
			return openSharded(t, c, s.Prefix(), 8, opts)
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

// TestShardedMoveSlot moves one shard's slot to another master, key by key,
// while two retailers commit payments: the retailer of the moving shard is
// refused whole while its slot is half moved (as in TestClusterMoveSlot),
// the other retailer's shard is not touched and never refused, and every
// acknowledged payment of both is there afterwards.
func TestShardedMoveSlot(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	s := openSharded(t, c, newPrefix(), 4, Options{WaitReplicas: 1, WaitTimeout: 5 * time.Second, clusterReload: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	moving := "shop-1"
	from, err := c.MasterOf(ctx, s.ShardPrefix(moving))
	if err != nil {
		t.Fatal(err)
	}
	// A retailer whose shard is on another master than the moving one's
	// and stays there.
	var other string
	var to *redistest.Server
	for i := 2; other == "" && i < 1000; i++ {
		r := fmt.Sprintf("shop-%d", i)
		if m, err := c.MasterOf(ctx, s.ShardPrefix(r)); err == nil && m != from {
			other = r
			for _, n := range c.Nodes {
				if role, _, _, err := c.Role(ctx, n); err == nil && role == "master" && n != from && n != m {
					to = n
				}
			}
		}
	}
	if other == "" || to == nil {
		t.Fatal("no retailer on another master, or no third master to move to")
	}
	acked := map[string][]*qrswitch.Payment{}
	refused := map[string]int{}
	commit := func(ctx context.Context, retailer string, i int) {
		t.Helper()
		p := payment(fmt.Sprintf("pay-%d", i), fmt.Sprintf("tran-%s-%d", retailer, i), t0.Add(time.Duration(i)*time.Second))
		p.RetailerID = retailer
		switch err := s.Commit(ctx, &qrswitch.Change{Payment: p}); {
		case err == nil:
			acked[retailer] = append(acked[retailer], p)
		case errors.Is(err, qrswitch.ErrUnavailable):
			refused[retailer]++
		default:
			t.Errorf("Commit(%s) error = %v, want nil or ErrUnavailable", p.Key(), err)
		}
	}
	next := 0
	for ; next < 10; next++ {
		commit(ctx, moving, next)
		commit(ctx, other, next)
	}
	steps := 0
	c.MoveSlot(ctx, s.ShardPrefix(moving), to, func() {
		steps++
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		commit(short, moving, next)
		cancel()
		commit(ctx, other, next)
		next++
		if _, err := s.Payment(ctx, acked[other][0].Key()); err != nil {
			t.Errorf("Payment(%s) of another shard while a slot moves = %v", acked[other][0].Key(), err)
		}
	})
	if steps < 3 {
		t.Fatalf("the slot moved in %d steps; the test wants the store at work while it is half moved", steps)
	}
	if now, err := c.MasterOf(ctx, s.ShardPrefix(moving)); err != nil || now != to {
		t.Fatalf("the moved shard's master = %v, %v; want %s", now, err, to.Addr())
	}
	for end := next + 10; next < end; next++ {
		commit(ctx, moving, next)
		commit(ctx, other, next)
	}
	if refused[other] != 0 {
		t.Errorf("%d commits of %s refused, whose shard did not move", refused[other], other)
	}
	if refused[moving] > steps {
		t.Errorf("%d commits of %s refused, more than the %d made while its slot moved", refused[moving], moving, steps)
	}
	for _, r := range []string{moving, other} {
		found, err := s.Search(ctx, qrswitch.Query{RetailerID: r, Limit: 500})
		if err != nil || len(found) != len(acked[r]) {
			t.Fatalf("Search(%s) after the move = %d payments, %v; want the %d acknowledged", r, len(found), err, len(acked[r]))
		}
	}
	all, err := s.Search(ctx, qrswitch.Query{Limit: 500})
	if err != nil || len(all) != len(acked[moving])+len(acked[other]) {
		t.Fatalf("Search over every shard after the move = %d payments, %v", len(all), err)
	}
	t.Logf("shard slot moved in %d steps: %s %d acknowledged, %d refused; %s %d acknowledged",
		steps, moving, len(acked[moving]), refused[moving], other, len(acked[other]))
}

// TestShardedSweep: the janitor deletes finished payments past their
// retention in every shard.
func TestShardedSweep(t *testing.T) {
	ctx := context.Background()
	c := redistest.StartCluster(t, 3, 0)
	s := openSharded(t, c, newPrefix(), 8, Options{Retention: time.Millisecond, JanitorInterval: -1})
	now := time.Now().UTC()
	const n = 24
	for i := range n {
		p := &qrswitch.Payment{RetailerID: fmt.Sprintf("shop-%d", i), RequestID: "pay-1", State: outcome.Declined, CreatedAt: now}
		mustCommit(t, s, "finished payment", &qrswitch.Change{Payment: p})
	}
	if got, err := s.Search(ctx, qrswitch.Query{Limit: 100}); err != nil || len(got) != n {
		t.Fatalf("Search before the sweep = %d, %v; want %d", len(got), err, n)
	}
	swept := 0
	for deadline := time.Now().Add(time.Minute); swept < n && time.Now().Before(deadline); {
		k, err := s.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		swept += k
	}
	if swept != n {
		t.Fatalf("swept %d payments, want %d", swept, n)
	}
	if got, err := s.Search(ctx, qrswitch.Query{Limit: 100}); err != nil || len(got) != 0 {
		t.Fatalf("Search after the sweep = %d, %v; want none", len(got), err)
	}
}

// TestShardedRailRecords: a rail's record created with a retailer's QR code
// lives in that retailer's shard, is found there by another process, is
// committed with the retailer's payment later, and is listed with records
// of other shards.
func TestShardedRailRecords(t *testing.T) {
	ctx := context.Background()
	c := redistest.StartCluster(t, 3, 0)
	s := openSharded(t, c, newPrefix(), 8, Options{})
	now := time.Now().UTC().Truncate(time.Millisecond)
	var ret string
	for i := 1; ret == ""; i++ { // a retailer whose shard is not the home slot's master's
		r := fmt.Sprintf("shop-%d", i)
		hm, _ := c.MasterOf(ctx, s.Prefix())
		if m, _ := c.MasterOf(ctx, s.ShardPrefix(r)); m != hm {
			ret = r
		}
	}
	tran := s.NewTranID(ret)
	q := &qrswitch.QRCode{TranID: tran, RetailerID: ret, RequestID: "qr-1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	offer := &partners.Record{Owner: "rail", Kind: "offer", Key: tran, Data: []byte(`{"state":"open"}`), Retailer: ret}
	alone := &partners.Record{Owner: "rail", Kind: "offer", Key: "counter", Data: []byte(`{"n":1}`)}
	mustCommit(t, s, "qr code with the rail's offer", &qrswitch.Change{QR: q, Records: []*partners.Record{offer}})
	mustCommit(t, s, "a record of no retailer", &qrswitch.Change{Records: []*partners.Record{alone}})
	other := openSharded(t, c, s.Prefix(), 8, Options{})
	got, err := other.Record(ctx, "rail", "offer", tran)
	if err != nil || got.Retailer != ret || got.Version != 1 {
		t.Fatalf("Record from another process = %+v, %v", got, err)
	}
	p := &qrswitch.Payment{RetailerID: ret, RequestID: "pay-1", TranID: tran, State: outcome.Approved, CreatedAt: now}
	got.Data = []byte(`{"state":"paid"}`)
	mustCommit(t, other, "the payment with its offer", &qrswitch.Change{Payment: p, Records: []*partners.Record{got}})
	m, err := c.MasterOf(ctx, s.ShardPrefix(ret))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := m.Client(t).Exists(ctx, s.ShardPrefix(ret)+"rec:rail/offer/"+tran).Result(); err != nil || n != 1 {
		t.Fatalf("the offer in its retailer's shard: %d, %v", n, err)
	}
	want := []string{"counter", tran}
	slices.Sort(want)
	rs, err := s.Records(ctx, "rail", partners.RecordQuery{Kind: "offer"})
	if err != nil || len(rs) != 2 || rs[0].Key != want[0] || rs[1].Key != want[1] {
		t.Fatalf("Records = %d records, %v; want the counter (home) and the offer (retailer's shard), by key", len(rs), err)
	}
	if r, _ := s.Record(ctx, "rail", "offer", tran); r == nil || string(r.Data) != `{"state":"paid"}` || r.Version != 2 {
		t.Fatalf("the offer after the payment's commit = %+v", r)
	}
	// A record of no retailer cannot join the retailer's payment.
	alone.Data = []byte(`{"n":2}`)
	if err := s.Commit(ctx, &qrswitch.Change{Payment: p, Records: []*partners.Record{alone}}); !errors.Is(err, qrswitch.ErrSharded) {
		t.Fatalf("a payment with a record of no retailer = %v, want ErrSharded", err)
	}
}

// TestShardedQRCodeAdvices: an advice issued with a QR code (its
// PaymentKey "qr/TRANID": the ILP invoice rail's notification to the
// customer's DFSP, made with the code's offer) lives with the code, in its
// retailer's shard — not in the shard the text "qr" hashes to. It is
// committed with the code, claimed, updated alone by another process, and
// listed as the code's.
func TestShardedQRCodeAdvices(t *testing.T) {
	ctx := context.Background()
	c := redistest.StartCluster(t, 3, 0)
	s := openSharded(t, c, newPrefix(), 8, Options{})
	now := time.Now().UTC().Truncate(time.Millisecond)
	var ret string
	for i := 1; ret == ""; i++ { // a retailer whose shard is not the one "qr" hashes to
		if r := fmt.Sprintf("shop-%d", i); s.group(r) != s.group("qr") {
			ret = r
		}
	}
	tran := s.NewTranID(ret)
	q := &qrswitch.QRCode{TranID: tran, RetailerID: ret, RequestID: "qr-1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	adv := &qrswitch.Advice{Sender: qrswitch.SwitchSender, ID: "note-1", Kind: qrswitch.AdviceKind(partners.KindNotification),
		PaymentKey: "qr/" + tran, TranID: tran, Destination: "ilp", State: qrswitch.AdvicePending, CreatedAt: now, UpdatedAt: now, NextAt: now}
	mustCommit(t, s, "qr code with its notification", &qrswitch.Change{QR: q, Advices: []*qrswitch.Advice{adv}, TraceKey: "qr/" + tran,
		Trace: []qrswitch.TraceEntry{{At: now, Operation: "createQrCode", Kind: "event"}}})
	m, err := c.MasterOf(ctx, s.ShardPrefix(ret))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := m.Client(t).Exists(ctx, s.ShardPrefix(ret)+"adv:"+adv.Key()).Result(); err != nil || n != 1 {
		t.Fatalf("the notification in its retailer's shard: %d, %v", n, err)
	}
	got, err := s.ClaimAdvices(ctx, qrswitch.Claim{Destination: "ilp", Owner: "n", Now: now, Lease: time.Minute, Max: 10})
	if err != nil || len(got) != 1 || got[0].Key() != adv.Key() {
		t.Fatalf("ClaimAdvices = %d advices, %v; want the notification", len(got), err)
	}
	other := openSharded(t, c, s.Prefix(), 8, Options{})
	done, err := other.Advice(ctx, adv.Key())
	if err != nil {
		t.Fatalf("Advice(%s) from another process: %v", adv.Key(), err)
	}
	done.State, done.Outcome, done.LeaseOwner, done.UpdatedAt = qrswitch.AdviceDone, outcome.Successful, "", now.Add(time.Second)
	mustCommit(t, other, "the notification delivered, alone", &qrswitch.Change{Advices: []*qrswitch.Advice{done}, TraceKey: "qr/" + tran,
		Trace: []qrswitch.TraceEntry{{At: now, Operation: "notification", Kind: "event"}}})
	as, err := other.PaymentAdvices(ctx, "qr/"+tran)
	if err != nil || len(as) != 1 || as[0].State != qrswitch.AdviceDone {
		t.Fatalf("PaymentAdvices(qr/%s) = %d advices, %v; want the notification, done", tran, len(as), err)
	}
	if tr, err := other.Trace(ctx, "qr/"+tran); err != nil || len(tr) != 2 {
		t.Fatalf("the code's trace = %d entries, %v; want 2", len(tr), err)
	}
}

// TestHash32IsFNV1a: the shards' hash is FNV-1a, as hash/fnv computes it
// (a store's layout depends on it: it must never change).
func TestHash32IsFNV1a(t *testing.T) {
	for _, s := range []string{"", "shop-1", "a/b", "0123456789abcdef0123456789abcdef"} {
		h := fnv.New32a()
		h.Write([]byte(s))
		if got, want := hash32(s), h.Sum32(); got != want {
			t.Errorf("hash32(%q) = %d, want %d", s, got, want)
		}
	}
}

// TestShardedClaimOutlastsAStalledMaster: while one master does not answer
// (CLIENT PAUSE: the cluster still counts it healthy), a claim leases the
// due advices of the shards the other masters serve, rather than failing
// whole; the stalled master's shards keep theirs until it answers. The
// janitor likewise sweeps the shards that answer.
func TestShardedClaimOutlastsAStalledMaster(t *testing.T) {
	ctx := context.Background()
	c := redistest.StartCluster(t, 3, 0)
	prefix := newPrefix()
	s, err := Open(ctx, fmt.Sprintf("%s?key_prefix=%s&shards=16&read_timeout=300ms", c.URL(), prefix), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	now := time.Now().UTC()
	// Two retailers on two masters; the third master stalls.
	byMaster := map[*redistest.Server]string{}
	for i := 1; len(byMaster) < 3 && i < 1000; i++ {
		r := fmt.Sprintf("shop-%d", i)
		m, err := c.MasterOf(ctx, s.ShardPrefix(r))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := byMaster[m]; !ok {
			byMaster[m] = r
		}
	}
	// A second process on the store, whose payments' retention ends at once.
	sweeper, err := Open(ctx, fmt.Sprintf("%s?key_prefix=%s&shards=16&read_timeout=300ms", c.URL(), prefix), Options{Retention: time.Millisecond, JanitorInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sweeper.Close() })
	var stalled *redistest.Server
	for m, r := range byMaster {
		a := advice("adv-"+r, qrswitch.PaymentKey(r, "pay-1"), now.Add(-time.Minute))
		a.Sender = r
		mustCommit(t, s, "due advice of "+r, &qrswitch.Change{Advices: []*qrswitch.Advice{a}})
		done := &qrswitch.Payment{RetailerID: r, RequestID: "done-1", State: outcome.Declined, CreatedAt: now}
		mustCommit(t, sweeper, "finished payment of "+r, &qrswitch.Change{Payment: done})
		stalled = m
	}
	if err := stalled.Client(t).Do(ctx, "client", "pause", "10000", "all").Err(); err != nil {
		t.Fatal(err)
	}
	defer stalled.Client(t).Do(ctx, "client", "unpause")
	got, err := s.ClaimAdvices(ctx, qrswitch.Claim{Owner: "node-a", Now: now, Lease: time.Minute, Max: 10})
	if err != nil {
		t.Fatalf("ClaimAdvices with a master stalled = %v, want the other masters' advices", err)
	}
	if len(got) != 2 {
		t.Fatalf("ClaimAdvices with a master stalled leased %d advices, want the 2 the other masters hold", len(got))
	}
	for _, a := range got {
		if a.Sender == byMaster[stalled] {
			t.Errorf("leased %s, whose master is stalled", a.Key())
		}
	}
	// The janitor sweeps the shards that answer, and says one did not.
	n, err := sweeper.Sweep(ctx)
	if !errors.Is(err, qrswitch.ErrUnavailable) || n != 2 {
		t.Fatalf("Sweep with a master stalled = %d, %v; want the 2 other masters' finished payments and ErrUnavailable", n, err)
	}
}

// BenchmarkNewTranID measures the price of a tranId that lands in its
// retailer's shard: about N FNV-1a hashes of 32 bytes on N shards.
func BenchmarkNewTranID(b *testing.B) {
	for _, n := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("shards=%d", n), func(b *testing.B) {
			s := &Store{home: newShard("{qrs}:")}
			s.shards = []*shard{s.home}
			if n > 1 {
				s.shards = make([]*shard, n)
				for i := range s.shards {
					s.shards[i] = newShard(shardPrefix("{qrs}:", i))
				}
			}
			for i := 0; b.Loop(); i++ {
				s.NewTranID(fmt.Sprintf("shop-%d", i%100))
			}
		})
	}
}
