package cryptopay

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/cryptopay/chain"
	"github.com/qrswitch/qrswitch/partners/cryptopay/chainsim"
	"github.com/qrswitch/qrswitch/partners/cryptopay/ganachetest"
	"github.com/qrswitch/qrswitch/partners/cryptopay/hdkey"
	"github.com/qrswitch/qrswitch/partners/railtest"
	"github.com/qrswitch/qrswitch/store/sqlite"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

const (
	partnerID = "chain"
	currency  = "QTT"
	// testXPub is BIP-32 test vector 1's m/0H/1: a public key whose
	// private key is public, fine for tests only.
	testXPub = "xpub6ASuArnXKPbfEwhqN6e3mwBcDTgzisQN1wXN9BJcM47sSikHjJf3UFHKkNAWbWMiGj7Wf5uMash7SyYq527Hqck2AxYysAA7xmALppuCkwQ"
	// backstop bounds every wait: tests decide on events (a record's
	// state, a report), this only keeps a broken test from hanging.
	backstop = 60 * time.Second
)

// shared is the ganache node of tests that neither stop its miner nor
// revert it.
var shared ganachetest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Close()
	os.Exit(code)
}

// env is a rail on a real SQLite store watching a real ganache node.
type env struct {
	t       *testing.T
	node    *ganachetest.Node
	records partners.Records
	host    *railtest.Host
	rail    *Rail
	options string
}

type envOpts struct {
	node          *ganachetest.Node // default the shared node
	confirmations int               // default 1
	extra         string
	polling       bool // no WebSocket
	// host and records, when set, are the Host and store of the rail.
	host    *railtest.Host
	records partners.Records
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	if o.node == nil {
		o.node = shared.Get(t)
	}
	if o.confirmations == 0 {
		o.confirmations = 1
	}
	e := &env{t: t, node: o.node, records: o.records, host: o.host}
	if e.records == nil {
		e.records = newRecords(t)
	}
	if e.host == nil {
		e.host = railtest.NewHost()
		e.host.Records = e.records
	}
	ws := o.node.WSURL
	if o.polling {
		ws = ""
	}
	e.options = fmt.Sprintf("rpc_url: %s\nws_url: %q\ntoken_address: %s\ntoken_decimals: %d\ncurrency: %s\nxpub: %s\nconfirmations: %d\npoll_interval: 50ms\nsweep_interval: 20ms\nretry_interval: 20ms\n%s",
		o.node.URL, ws, o.node.Token, o.node.Decimals, currency, testXPub, o.confirmations, o.extra)
	e.rail = e.start(e.host)
	return e
}

// build builds a rail of e's options on e's store, reporting to host.
func (e *env) build(host partners.Host, options string) (*Rail, error) {
	var node yaml.Node
	if err := yaml.Unmarshal([]byte(options), &node); err != nil {
		e.t.Fatal(err)
	}
	r, err := New(partners.Config{PartnerID: partnerID, Name: "Token", Options: node.Content[0], Host: host, Records: e.records,
		Timeout: 10 * time.Second, Logger: zerolog.New(zerolog.NewTestWriter(e.t)).Level(zerolog.WarnLevel)})
	if err != nil {
		return nil, err
	}
	return r.(*Rail), nil
}

// start builds and starts a rail (a replica, or the switch after a
// restart), closed when the test ends.
func (e *env) start(host partners.Host) *Rail {
	e.t.Helper()
	r, err := e.build(host, e.options)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { r.Close() })
	return r
}

// offer offers a code of amount minor units and commits its records, as
// the engine does with the code.
func (e *env) offer(amount int64, expires time.Time) (*partners.OfferRequest, *partners.Offer) {
	e.t.Helper()
	o := &partners.OfferRequest{TranID: wire.NewID(), RetailerID: "shop-1", Amount: &wire.LedgerAmount{Amount: amount, Currency: currency},
		ExpiresAt: expires, Checkout: true, Now: time.Now()}
	of, err := e.rail.Offer(e.t.Context(), o)
	if err != nil {
		e.t.Fatalf("Offer = %v", err)
	}
	if err := e.records.Commit(e.t.Context(), of.Records...); err != nil {
		e.t.Fatalf("committing the offer: %v", err)
	}
	return o, of
}

func (e *env) address(of *partners.Offer) chain.Address {
	e.t.Helper()
	a, err := hdkey.ParseAddress(of.Display["address"])
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// pay sends value base units from ganache account from and waits for the
// block.
func (e *env) pay(from int, to chain.Address, value int64) chain.Hash {
	e.t.Helper()
	tx := e.node.Transfer(e.t, from, to, big.NewInt(value))
	e.node.Mined(e.t, tx)
	return tx
}

// payment reads the record of a code.
func (e *env) payment(tranID string) *payment {
	e.t.Helper()
	rec, err := e.records.Get(e.t.Context(), kindPayment, tranID)
	if err != nil {
		e.t.Fatalf("the record of %s: %v", tranID, err)
	}
	p, err := paymentOf(rec)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// wait waits until cond holds for the code's record.
func (e *env) wait(tranID, what string, cond func(*payment) bool) *payment {
	e.t.Helper()
	deadline := time.Now().Add(backstop)
	for {
		p := e.payment(tranID)
		if cond(p) {
			return p
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("waiting for %s: gave up after %s; record %+v; watcher %+v", what, backstop, p, e.rail.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// unit is one whole token in base units (6 decimals: minor = base units).
const unit = 1_000_000

func sum(p *payment) (seen, confirmed int64) {
	s, c := p.sums()
	return s.Int64(), c.Int64()
}

func TestConformance(t *testing.T) {
	railtest.RunPull(t, railtest.Pull{
		New: func(t *testing.T, host partners.Host, records partners.Records) partners.Rail {
			e := newEnv(t, envOpts{host: host.(*railtest.Host), records: records})
			envs[e.rail] = e
			return e.rail
		},
		Records: newRecords,
		PayOffer: func(t *testing.T, r partners.Rail, o *partners.OfferRequest, of *partners.Offer, repeat bool) bool {
			e := envs[r.(*Rail)]
			to := e.address(of)
			if repeat {
				// The chain cannot send a transaction twice; what comes
				// again is the watcher's delivery (at least once).
				p := e.payment(o.TranID)
				var ts []chain.Transfer
				for _, x := range p.Transfers {
					v, _ := new(big.Int).SetString(x.Value, 10)
					ts = append(ts, chain.Transfer{Token: e.node.Token, From: x.From, To: to, Value: v, BlockNumber: x.Block, BlockHash: x.BlockHash, TxHash: x.Tx})
				}
				if err := (sink{e.rail}).Blocks(t.Context(), &chain.Batch{First: ts[0].BlockNumber, Last: chain.Header{Number: ts[0].BlockNumber}, Transfers: ts, Confirmed: ts}); err != nil {
					t.Fatalf("delivering the block again: %v", err)
				}
				return e.payment(o.TranID).State == statePaid
			}
			e.pay(1, to, o.Amount.Amount)
			p := e.wait(o.TranID, "the rail's decision", func(p *payment) bool { return p.State != stateOpen })
			return p.State == statePaid
		},
		Currency: currency,
		Amount:   25 * unit / 10,
	})
}

// envs finds the env of a rail built by the conformance suite.
var envs = map[*Rail]*env{}

// newRecords is a rail's records in a fresh SQLite store.
func newRecords(t *testing.T) partners.Records {
	st, err := sqlite.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "chain.db")+"?synchronous=normal", sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return qrswitch.RailRecords(st, partnerID)
}

func TestFullPaymentWithConfirmations(t *testing.T) {
	node := ganachetest.Start(t, ganachetest.Options{})
	e := newEnv(t, envOpts{node: node, confirmations: 3})
	o, of := e.offer(12*unit, time.Now().Add(time.Hour))
	to := e.address(of)
	if of.Reference != to.String() || !strings.HasPrefix(of.Display["uri"], "ethereum:"+node.Token.String()+"@1337/transfer?address="+to.String()+"&uint256=12000000") {
		t.Fatalf("offer reference %q, uri %q", of.Reference, of.Display["uri"])
	}
	tx := e.pay(1, to, 12*unit)
	p := e.wait(o.TranID, "the transfer seen", func(p *payment) bool { return len(p.Transfers) == 1 })
	if p.State != stateOpen || p.Transfers[0].Confirmed {
		t.Fatalf("after 1 of 3 confirmations: state %s, confirmed %v", p.State, p.Transfers[0].Confirmed)
	}
	if seen := e.host.SeenReports(); len(seen) == 0 || seen[len(seen)-1].Received.Amount != 12*unit || seen[len(seen)-1].Received.Currency != currency {
		t.Fatalf("seen reports %+v, want 12000000 %s", seen, currency)
	}
	if n := len(e.host.PaidReports()); n != 0 {
		t.Fatalf("%d payment reports before the confirmations", n)
	}
	node.Mine(t, 1)
	// One more block: still 2 of 3. The rail must not report; wait until
	// the watcher has processed the block before looking.
	head := node.Head(t).Number
	waitTip(t, e.rail, head)
	if n := len(e.host.PaidReports()); n != 0 {
		t.Fatalf("%d payment reports at 2 of 3 confirmations", n)
	}
	node.Mine(t, 1)
	got := e.host.WaitPaid(t, 1, backstop)[0]
	if got.TranID != o.TranID || got.Reference != tx.String() || got.Amount.Amount != 12*unit || got.Amount.Currency != currency {
		t.Fatalf("Paid = %+v (amount %+v), want %s, tx %s, 12000000", got, got.Amount, o.TranID, tx)
	}
	p = e.wait(o.TranID, "the record paid", func(p *payment) bool { return p.State == statePaid })
	if p.PaidTx != tx.String() || p.PaidAt.IsZero() {
		t.Fatalf("record %+v, want paid by %s", p, tx)
	}
}

// waitTip waits until the rail's watcher processed block n.
func waitTip(t *testing.T, r *Rail, n uint64) {
	t.Helper()
	deadline := time.Now().Add(backstop)
	for r.Status().Tip.Number < n {
		if time.Now().After(deadline) {
			t.Fatalf("the watcher did not reach block %d: %+v", n, r.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPartialThenComplete(t *testing.T) {
	e := newEnv(t, envOpts{})
	o, of := e.offer(10*unit, time.Now().Add(time.Hour))
	to := e.address(of)
	e.pay(1, to, 4*unit)
	p := e.wait(o.TranID, "the partial payment", func(p *payment) bool { return len(p.Transfers) == 1 && p.Transfers[0].Confirmed })
	if p.State != stateOpen {
		t.Fatalf("after 4 of 10: state %s, want open", p.State)
	}
	if s := e.host.SeenReports(); len(s) != 1 || s[0].Received.Amount != 4*unit {
		t.Fatalf("seen %+v, want one report of 4000000", s)
	}
	tx := e.pay(2, to, 6*unit)
	got := e.host.WaitPaid(t, 1, backstop)[0]
	if got.Amount.Amount != 10*unit || got.Reference != tx.String() {
		t.Fatalf("Paid amount %d by %s, want 10000000 by the completing %s", got.Amount.Amount, got.Reference, tx)
	}
	if seen, conf := sum(e.payment(o.TranID)); seen != 10*unit || conf != 10*unit {
		t.Fatalf("record seen %d confirmed %d, want 10000000 each", seen, conf)
	}
}

func TestOverpayment(t *testing.T) {
	e := newEnv(t, envOpts{})
	o, of := e.offer(10*unit, time.Now().Add(time.Hour))
	e.pay(1, e.address(of), 15*unit)
	got := e.host.WaitPaid(t, 1, backstop)[0]
	if got.TranID != o.TranID || got.Amount.Amount != 15*unit {
		t.Fatalf("Paid %+v, want all 15000000 reported (the checkout says overpaid)", got.Amount)
	}
}

func TestTwoTransfersInOneBlock(t *testing.T) {
	node := ganachetest.Start(t, ganachetest.Options{})
	e := newEnv(t, envOpts{node: node})
	o, of := e.offer(10*unit, time.Now().Add(time.Hour))
	to := e.address(of)
	node.StopMiner(t)
	a := node.Transfer(t, 1, to, big.NewInt(5*unit))
	b := node.Transfer(t, 2, to, big.NewInt(5*unit))
	node.StartMiner(t)
	ra, rb := node.Mined(t, a), node.Mined(t, b)
	if ra.BlockNumber != rb.BlockNumber {
		t.Fatalf("transfers mined in blocks %d and %d, want one", ra.BlockNumber, rb.BlockNumber)
	}
	e.host.WaitPaid(t, 1, backstop)
	p := e.payment(o.TranID)
	if len(p.Transfers) != 2 || p.Transfers[0].Block != p.Transfers[1].Block || p.State != statePaid {
		t.Fatalf("record %+v, want both transfers of one block, paid", p)
	}
}

// TestReorg takes the chain back (evm_revert) under a seen transfer and
// under a paid one.
func TestReorg(t *testing.T) {
	node := ganachetest.Start(t, ganachetest.Options{})
	e := newEnv(t, envOpts{node: node, confirmations: 3})
	o, of := e.offer(7*unit, time.Now().Add(time.Hour))
	to := e.address(of)

	snap := node.Snapshot(t)
	e.pay(1, to, 7*unit)
	e.wait(o.TranID, "the transfer seen", func(p *payment) bool { return len(p.Transfers) == 1 })
	node.Revert(t, snap)
	node.Mine(t, 3) // a longer chain without the transfer
	p := e.wait(o.TranID, "the transfer taken back", func(p *payment) bool { return len(p.Transfers) == 0 })
	if p.State != stateOpen {
		t.Fatalf("state %s after the reorg, want open", p.State)
	}
	seen := e.host.SeenReports()
	if last := seen[len(seen)-1]; last.Received.Amount != 0 {
		t.Fatalf("last progress %d, want 0 after the reorg took the transfer", last.Received.Amount)
	}
	waitTip(t, e.rail, node.Head(t).Number)
	if n := len(e.host.PaidReports()); n != 0 {
		t.Fatalf("%d payment reports for a transfer the reorg took back", n)
	}

	// Paid with 3 confirmations, then a deeper reorg: the approval stands,
	// the record tells the operator.
	snap = node.Snapshot(t)
	e.pay(2, to, 7*unit)
	node.Mine(t, 2)
	e.host.WaitPaid(t, 1, backstop)
	node.Revert(t, snap)
	node.Mine(t, 4)
	p = e.wait(o.TranID, "the paid transfer taken back", func(p *payment) bool { return len(p.Transfers) == 0 })
	if p.State != statePaid || !strings.Contains(p.Note, "reorganisation") {
		t.Fatalf("record after a reorg under a paid payment: state %s, note %q", p.State, p.Note)
	}
}

// TestWatcherRestart stops the switch while transfers arrive and starts it
// again (a new rail on the same store): nothing missed, nothing twice.
func TestWatcherRestart(t *testing.T) {
	for _, mode := range []string{"subscribed", "polling"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, envOpts{polling: mode == "polling"})
			o, of := e.offer(10*unit, time.Now().Add(time.Hour))
			to := e.address(of)
			e.pay(1, to, 1*unit)
			e.wait(o.TranID, "the first transfer", func(p *payment) bool { return len(p.Transfers) == 1 })
			e.rail.Close()
			e.pay(2, to, 2*unit)
			e.pay(3, to, 3*unit)
			e.rail = e.start(e.host)
			e.pay(4, to, 4*unit)
			e.host.WaitPaid(t, 1, backstop)
			p := e.payment(o.TranID)
			seen, conf := sum(p)
			if len(p.Transfers) != 4 || seen != 10*unit || conf != 10*unit {
				t.Fatalf("%d transfers, %d seen, %d confirmed; want 4, 10000000, 10000000", len(p.Transfers), seen, conf)
			}
		})
	}
}

// TestTwoReplicas runs two rails on one store: each replica's offer is
// seen, and money is counted once.
func TestTwoReplicas(t *testing.T) {
	e := newEnv(t, envOpts{})
	other := e.start(e.host)
	o1, of1 := e.offer(3*unit, time.Now().Add(time.Hour))
	e.rail, other = other, e.rail
	o2, of2 := e.offer(4*unit, time.Now().Add(time.Hour))
	if of1.Reference == of2.Reference {
		t.Fatalf("two offers share address %s", of1.Reference)
	}
	e.pay(1, e.address(of1), 3*unit)
	e.pay(2, e.address(of2), 4*unit)
	e.host.WaitPaid(t, 2, backstop)
	for _, o := range []*partners.OfferRequest{o1, o2} {
		if p := e.payment(o.TranID); len(p.Transfers) != 1 || p.State != statePaid {
			t.Fatalf("record %+v, want one transfer, paid", p)
		}
	}
}

// TestLateMoney: the engine has no payment for the money (expired): the
// record says late, the money stays for a refund.
func TestLateMoney(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.host.PaidErr = fmt.Errorf("%w: code expired unpaid", partners.ErrNotWaiting)
	o, of := e.offer(2*unit, time.Now().Add(time.Hour))
	e.pay(1, e.address(of), 2*unit)
	p := e.wait(o.TranID, "the late money", func(p *payment) bool { return p.State != stateOpen })
	if p.State != stateLate || !strings.Contains(p.Note, "refund") {
		t.Fatalf("state %s note %q, want late with a refund note", p.State, p.Note)
	}
}

// TestExpiry: past its watch, an address is let go (the offer ended) and
// what is sent to it later is not read.
func TestExpiry(t *testing.T) {
	e := newEnv(t, envOpts{extra: "watch_after_expiry: 1ms\n"})
	o, of := e.offer(2*unit, time.Now().Add(50*time.Millisecond))
	p := e.wait(o.TranID, "the watch to end", func(p *payment) bool { return p.State == stateExpired })
	if !p.WatchUntil.IsZero() {
		t.Fatalf("watch until %s after the sweep", p.WatchUntil)
	}
	if ended := e.host.Ended(); len(ended) != 1 || !strings.HasPrefix(ended[0], o.TranID+": ") {
		t.Fatalf("offers ended %q, want %s", ended, o.TranID)
	}
	watched, err := e.rail.recipients(t.Context())
	if err != nil || len(watched) != 0 {
		t.Fatalf("recipients = %v, %v; want none", watched, err)
	}
	e.pay(1, e.address(of), 2*unit)
	waitTip(t, e.rail, e.node.Head(t).Number)
	if p := e.payment(o.TranID); len(p.Transfers) != 0 {
		t.Fatalf("a transfer to an address no longer watched was recorded: %+v", p.Transfers)
	}
}

// TestAddresses derives fresh addresses, child i of the xpub for offer i.
func TestAddresses(t *testing.T) {
	e := newEnv(t, envOpts{})
	k, err := hdkey.Parse(testXPub)
	if err != nil {
		t.Fatal(err)
	}
	for i := range uint32(3) {
		o, of := e.offer(unit, time.Now().Add(time.Hour))
		want, _ := k.Address(i)
		if p := e.payment(o.TranID); p.Index != i || p.Address != want || of.Display["address"] != want.String() {
			t.Fatalf("offer %d: index %d address %s, want %s", i, p.Index, p.Address, want)
		}
		if v, _ := of.Accounts[0].Field("01"); v != want.String() {
			t.Fatalf("template sub-tag 01 = %q, want %s", v, want)
		}
	}
}

func TestNotOffered(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, a := range []*wire.LedgerAmount{nil, {Amount: 100, Currency: "710"}, {Amount: 0, Currency: currency}} {
		_, err := e.rail.Offer(t.Context(), &partners.OfferRequest{TranID: wire.NewID(), Amount: a, ExpiresAt: time.Now().Add(time.Hour), Now: time.Now()})
		if !errors.Is(err, partners.ErrNotOffered) {
			t.Errorf("Offer(%+v) = %v, want ErrNotOffered", a, err)
		}
	}
}

// TestNodeDown: without the chain id, an offer cannot be made, and says
// why (the code goes out without this rail).
func TestNodeDown(t *testing.T) {
	e := &env{t: t, host: railtest.NewHost(), records: newRecords(t)}
	r, err := e.build(e.host, "rpc_url: http://127.0.0.1:1\ntoken_address: 0x5150000000000000000000000000000000000001\ntoken_decimals: 6\ncurrency: QTT\nxpub: "+testXPub+"\n")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Offer(t.Context(), &partners.OfferRequest{TranID: wire.NewID(), Amount: &wire.LedgerAmount{Amount: 1, Currency: currency}, ExpiresAt: time.Now().Add(time.Hour)})
	if err == nil || errors.Is(err, partners.ErrNotOffered) || !strings.Contains(err.Error(), "chain id") {
		t.Fatalf("Offer with the node down = %v, want the chain id's error", err)
	}
	// With the chain id configured, the first offer still needs the head
	// (its cursor): refused, and no address taken.
	r, err = e.build(e.host, "rpc_url: http://127.0.0.1:1\nchain_id: 1337\ntoken_address: 0x5150000000000000000000000000000000000001\ntoken_decimals: 6\ncurrency: QTT\nxpub: "+testXPub+"\n")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Offer(t.Context(), &partners.OfferRequest{TranID: wire.NewID(), Amount: &wire.LedgerAmount{Amount: 1, Currency: currency}, ExpiresAt: time.Now().Add(time.Hour)})
	if err == nil || !strings.Contains(err.Error(), "head before the first offer") {
		t.Fatalf("first Offer with the node down = %v, want the head's error", err)
	}
	if _, err := e.records.Get(t.Context(), kindCounter, keyAddresses); !errors.Is(err, partners.ErrNotFound) {
		t.Fatalf("an address index was taken for a refused offer: %v", err)
	}
}

func TestOptionsRefused(t *testing.T) {
	e := &env{t: t, records: newRecords(t)}
	good := map[string]string{"rpc_url": "http://127.0.0.1:8545", "token_address": "0x5150000000000000000000000000000000000001",
		"token_decimals": "6", "currency": "QTT", "xpub": testXPub} // YAML values as written
	for _, c := range []struct{ key, value, want string }{
		{"rpc_url", "ftp://x", "rpc_url"},
		{"rpc_url", "", "rpc_url: required"},
		{"ws_url", "http://x", "ws_url"},
		{"token_address", "0x12", "token_address"},
		{"token_decimals", "-1", "token_decimals"},
		{"token_decimals", "", "token_decimals"},
		{"currency", `"710"`, "currency"},
		{"currency", `"Q T"`, "currency"},
		{"xpub", "", "xpub"},
		{"xpub", "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi", "private"},
		{"colour", "blue", "colour"},
	} {
		var b strings.Builder
		for k, v := range good {
			if k != c.key {
				fmt.Fprintf(&b, "%s: %s\n", k, v)
			}
		}
		if c.value != "" {
			fmt.Fprintf(&b, "%s: %s\n", c.key, c.value)
		}
		_, err := e.build(railtest.NewHost(), b.String())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %q: New = %v, want an error naming %q", c.key, c.value, err, c.want)
		}
	}
	var b strings.Builder
	for k, v := range good {
		fmt.Fprintf(&b, "%s: %s\n", k, v)
	}
	if _, err := e.build(railtest.NewHost(), b.String()); err != nil {
		t.Fatalf("good options refused: %v", err)
	}
}

// TestRates: a code in rand, priced at 0.5 tokens per rand, asks its
// tokens rounded up, and is reported paid in rand.
func TestRates(t *testing.T) {
	const rates = "rates: [{currency: \"710\", tokens: \"0.5\"}]\n"
	e := newEnv(t, envOpts{extra: rates})
	o := &partners.OfferRequest{TranID: wire.NewID(), RetailerID: "shop-1", Amount: &wire.LedgerAmount{Amount: 1001, Currency: "710"},
		ExpiresAt: time.Now().Add(time.Hour), Now: time.Now()}
	of, err := e.rail.Offer(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.records.Commit(t.Context(), of.Records...); err != nil {
		t.Fatal(err)
	}
	// 10.01 rand × 0.5 = 5.005 tokens = 5005000 base units.
	if p := e.payment(o.TranID); p.Due != "5005000" || p.Currency != "710" || p.Asked != 1001 || of.Display["rate"] != "0.500000" {
		t.Fatalf("record due %s %s asked %d, display rate %q; want 5005000 for 1001 rand cents at 0.500000", p.Due, p.Currency, p.Asked, of.Display["rate"])
	}
	e.pay(1, e.address(of), 5_005_000)
	got := e.host.WaitPaid(t, 1, backstop)[0]
	if got.Amount.Amount != 1001 || got.Amount.Currency != "710" {
		t.Fatalf("Paid %+v, want 1001 rand cents", got.Amount)
	}
	if _, err := e.rail.Offer(t.Context(), &partners.OfferRequest{TranID: wire.NewID(), Amount: &wire.LedgerAmount{Amount: 1, Currency: "840"}}); !errors.Is(err, partners.ErrNotOffered) {
		t.Fatalf("a code in a currency without a rate: Offer = %v, want ErrNotOffered", err)
	}
	for _, bad := range []string{`[{currency: "ZAR", tokens: "1"}]`, `[{currency: "710", tokens: "-1"}]`, `[{currency: "710", tokens: "x"}]`,
		`[{currency: "710", tokens: "1"}, {currency: "710", tokens: "2"}]`} {
		if _, err := e.build(railtest.NewHost(), strings.Replace(e.options, rates, "rates: "+bad+"\n", 1)); err == nil || !strings.Contains(err.Error(), "rates[") {
			t.Errorf("rates %s: New = %v, want refused", bad, err)
		}
	}
}

// earlyHost answers Paid with ErrNoRequestYet for the codes it holds back:
// the POS has not sent their payment requests yet.
type earlyHost struct {
	*railtest.Host
	mu    sync.Mutex
	early map[string]bool
}

func (h *earlyHost) Paid(ctx context.Context, p *partners.Paid) error {
	h.mu.Lock()
	early := h.early[p.TranID]
	h.mu.Unlock()
	if early {
		return fmt.Errorf("%w: no payment request for code %s yet", partners.ErrNoRequestYet, p.TranID)
	}
	return h.Host.Paid(ctx, p)
}

// TestPaidBeforeTheRequest: money for a code whose payment request has not
// arrived is reported again until it has, and meanwhile the watcher goes
// on with other payments.
func TestPaidBeforeTheRequest(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.rail.Close()
	host := &earlyHost{Host: e.host, early: map[string]bool{}}
	e.rail = e.start(host)
	early, ofEarly := e.offer(3*unit, time.Now().Add(time.Hour))
	host.mu.Lock()
	host.early[early.TranID] = true
	host.mu.Unlock()
	other, ofOther := e.offer(4*unit, time.Now().Add(time.Hour))

	e.pay(1, e.address(ofEarly), 3*unit)
	p := e.wait(early.TranID, "the early money noted", func(p *payment) bool { return p.Retry })
	if p.State != stateOpen || !strings.Contains(p.Note, "before the payment request") {
		t.Fatalf("record %+v, want open, to be reported again", p)
	}
	e.pay(2, e.address(ofOther), 4*unit)
	if got := e.host.WaitPaid(t, 1, backstop)[0]; got.TranID != other.TranID {
		t.Fatalf("reported %s, want the other code %s while the early one waits", got.TranID, other.TranID)
	}
	host.mu.Lock()
	delete(host.early, early.TranID)
	host.mu.Unlock()
	e.host.WaitPaid(t, 2, backstop)
	p = e.wait(early.TranID, "the early money reported", func(p *payment) bool { return p.State == statePaid })
	if p.Retry {
		t.Fatalf("record %+v still marked for a retry", p)
	}
	if recs, err := e.records.List(t.Context(), partners.RecordQuery{Kind: kindPayment, Index: indexRetry}); err != nil || len(recs) != 0 {
		t.Fatalf("records to retry = %d, %v; want none", len(recs), err)
	}
}

// TestReorgReincluded: a reorganisation that mines a paid payment's
// transfer again in a new block leaves the payment paid, counted once, and
// without the operator's warning (on the development chain, which can
// re-include a transaction; ganache cannot).
func TestReorgReincluded(t *testing.T) {
	sim := chainsim.New(chainsim.Config{})
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	e := &env{t: t, records: newRecords(t), host: railtest.NewHost()}
	e.host.Records = e.records
	e.options = fmt.Sprintf("rpc_url: %s\ntoken_address: %s\ntoken_decimals: 6\ncurrency: %s\nxpub: %s\nconfirmations: 1\npoll_interval: 20ms\n",
		srv.URL, sim.Config().Token, currency, testXPub)
	e.rail = e.start(e.host)
	o, of := e.offer(5*unit, time.Now().Add(time.Hour))
	r, err := sim.Transfer(chainsim.TransferRequest{To: e.address(of), Value: big.NewInt(5 * unit)})
	if err != nil {
		t.Fatal(err)
	}
	e.host.WaitPaid(t, 1, backstop)
	if _, _, err := sim.Reorg(1, 2, true); err != nil {
		t.Fatal(err)
	}
	p := e.wait(o.TranID, "the transfer in its new block", func(p *payment) bool {
		return len(p.Transfers) == 1 && p.Transfers[0].BlockHash != r.BlockHash && p.Transfers[0].Confirmed
	})
	if p.State != statePaid || p.Note != "" || p.Transfers[0].Tx != r.TxHash {
		t.Fatalf("record after the re-inclusion: state %s, note %q, tx %s; want paid, no note, tx %s", p.State, p.Note, p.Transfers[0].Tx, r.TxHash)
	}
	if n := len(e.host.PaidReports()); n != 1 {
		t.Fatalf("%d payment reports, want 1", n)
	}
}

// TestOfferBeforeTheWatcherStarts: on the very first start, a code can be
// offered (the switch serving) before the watcher has read the chain; its
// payment, mined before the watcher starts, is still read.
func TestOfferBeforeTheWatcherStarts(t *testing.T) {
	node := shared.Get(t)
	e := &env{t: t, node: node, records: newRecords(t), host: railtest.NewHost()}
	e.host.Records = e.records
	e.options = fmt.Sprintf("rpc_url: %s\ntoken_address: %s\ntoken_decimals: %d\ncurrency: %s\nxpub: %s\nconfirmations: 1\npoll_interval: 20ms\n",
		node.URL, node.Token, node.Decimals, currency, testXPub)
	r, err := e.build(e.host, e.options)
	if err != nil {
		t.Fatal(err)
	}
	e.rail = r
	o, of := e.offer(2*unit, time.Now().Add(time.Hour))
	e.pay(1, e.address(of), 2*unit)
	node.Mine(t, 2)
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if got := e.host.WaitPaid(t, 1, backstop)[0]; got.TranID != o.TranID {
		t.Fatalf("paid %s, want %s", got.TranID, o.TranID)
	}
}
