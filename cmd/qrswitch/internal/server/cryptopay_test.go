package server

import (
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/cryptopay"
	"github.com/qrswitch/qrswitch/partners/cryptopay/chain"
	"github.com/qrswitch/qrswitch/partners/cryptopay/ganachetest"
	"github.com/qrswitch/qrswitch/partners/cryptopay/hdkey"
	"github.com/qrswitch/qrswitch/retailers/checkout"
	redisstore "github.com/qrswitch/qrswitch/store/redis"
	"github.com/qrswitch/qrswitch/store/redis/redistest"
	qrswitch "github.com/qrswitch/qrswitch/switch"
	tlsconfig "github.com/qrswitch/qrswitch/tls"
)

// chainTransfer sends amount tokens from the simulated customer to an
// address on the development chain, and returns the transaction hash.
func chainTransfer(t *testing.T, h *Harness, sim map[string]string, to, amount string) string {
	t.Helper()
	r := h.Post(t, sim["transfer"], "", "", map[string]string{"to": to, "amount": amount})
	var receipt struct{ TxHash string }
	if r.status != http.StatusOK || json.Unmarshal(r.body, &receipt) != nil || receipt.TxHash == "" {
		t.Fatalf("the customer's transfer = %d %s", r.status, r.body)
	}
	return receipt.TxHash
}

// checkoutStatus reads a checkout's public status.json.
func checkoutStatus(t *testing.T, base, id string) *checkout.Status {
	t.Helper()
	resp, err := http.Get(base + "/" + id + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st checkout.Status
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &st) != nil {
		t.Fatalf("status.json = %d %s", resp.StatusCode, b)
	}
	return &st
}

// TestCryptopayCheckoutThroughTheSwitch is the development setup's web
// shop, started as a 0xbtcpay shop starts a payment and paid in two
// transfers on the simulated chain: partially paid, then paid with the
// completing transaction's hash, the signed postback delivered, the
// payment confirmed by the switch itself, and support sees the address.
func TestCryptopayCheckoutThroughTheSwitch(t *testing.T) {
	h, d := devHarness(t)
	sim := simulatorOf(t, d, cryptopay.Name)
	rcv := newPostbackReceiver(t, 0)
	base := "http://" + h.Srv.CheckoutAddr()
	resp, err := http.Post(base+"/", "application/json", strings.NewReader(
		`{"jsonrpc":"2.0","id":7,"method":"start_payment","params":{"amount":"12.5","data":{"order_id":"9"},"postback_url":"`+rcv.srv.URL+`/paid"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var started struct {
		Result struct{ ID, Amount, Address string }
	}
	json.NewDecoder(resp.Body).Decode(&started)
	resp.Body.Close()
	id, addr := started.Result.ID, started.Result.Address
	if !strings.HasPrefix(addr, "0x") || len(addr) != 42 || started.Result.Amount != "12.5" {
		t.Fatalf("start_payment = %+v, want a fresh address", started.Result)
	}
	st := checkoutStatus(t, base, id)
	offer := st.Offers[config.DevChainPartnerID]
	if st.State != "new" || st.Address != addr || offer["address"] != addr ||
		offer["uri"] != fmt.Sprintf("ethereum:%s@%d/transfer?address=%s&uint256=12500000", config.DevChainToken, config.DevChainID, addr) {
		t.Fatalf("status of a new checkout = %+v", st)
	}

	chainTransfer(t, h, sim, addr, "5")
	until(t, "the partial payment to show", func() bool { return checkoutStatus(t, base, id).State == "partially_paid" })
	if st = checkoutStatus(t, base, id); st.SeenAt == nil || st.PaidAt != nil || st.TxHash != nil || st.Received != "5.0" {
		t.Fatalf("status partly paid = %+v", st)
	}
	tx := chainTransfer(t, h, sim, addr, "7.5")
	until(t, "the checkout paid", func() bool { return checkoutStatus(t, base, id).State == "paid" })
	if st = checkoutStatus(t, base, id); st.PaidAt == nil || st.TxHash == nil || *st.TxHash != tx || st.Received != "12.5" {
		t.Fatalf("status paid = %+v, want paid by %s", st, tx)
	}
	select {
	case <-rcv.done:
	case <-time.After(45 * time.Second):
		t.Fatal("postback not delivered")
	}
	got := rcv.received()
	var body struct {
		ID     string  `json:"id"`
		TxHash *string `json:"tx_hash"`
	}
	if err := checkout.Verify([]byte(config.DevCheckoutPostbackSecret), got[0].body, got[0].signature, time.Now(), 5*time.Minute); err != nil ||
		json.Unmarshal(got[0].body, &body) != nil || body.ID != id || body.TxHash == nil || *body.TxHash != tx {
		t.Fatalf("postback %s (signature %v), want id %s and tx %s, signed", got[0].body, err, id, tx)
	}
	p := h.waitState(t, qrswitch.PaymentKey(config.DevShopID, id), "CONFIRMED")
	if p.PartnerID() != config.DevChainPartnerID || p.Paid == nil || p.Paid.Reference != tx {
		t.Fatalf("payment %+v, want paid on %s by %s", p, config.DevChainPartnerID, tx)
	}

	var recs struct {
		Records []struct {
			Key  string
			View map[string]any
		}
	}
	url := h.Base + "/support/v1/rails/" + config.DevChainPartnerID + "/records/payment"
	if code := h.getJSON(t, url, config.DevSupportUsername, config.DevSupportPassword, &recs); code != http.StatusOK || len(recs.Records) != 1 {
		t.Fatalf("GET %s = %d %+v, want the checkout's address", url, code, recs)
	}
	if v := recs.Records[0].View; v["address"] != addr || v["state"] != "paid" || v["received"] != "12.5 QTT" {
		t.Fatalf("support's view of the address = %v", v)
	}
}

// TestCryptopayPOSThroughTheSwitch: a till's code (in rand: the
// development token is priced at one per rand) carries the rail's
// template; the POS's payment request waits until the transfer is
// confirmed, then is approved naming the chain, for the rand amount.
func TestCryptopayPOSThroughTheSwitch(t *testing.T) {
	testCryptopayPOS(t, devHarness)
}

// TestCryptopayPOSThroughTheSwitchSharded is the same on a store spread
// over eight shards (see TestOpenPaymentsThroughTheSwitchSharded).
func TestCryptopayPOSThroughTheSwitchSharded(t *testing.T) {
	testCryptopayPOS(t, shardedDevHarness(t))
}

func testCryptopayPOS(t *testing.T, devHarness func(testing.TB, ...string) (*Harness, *DevInfo)) {
	h, d := devHarness(t)
	sim := simulatorOf(t, d, cryptopay.Name)
	const retailer, pass = config.DevRetailerUsername, config.DevRetailerPassword
	amount := &wire.LedgerAmount{Amount: 250, Currency: "710"}
	req := qrRequest(config.DevRetailerInstitutionID)
	req.Amounts = &wire.Amounts{RequestAmount: amount}
	r := h.Post(t, "/qr/v1/qrCodes", retailer, pass, req)
	var code wire.CreateQrCodeResponse
	if r.status != http.StatusCreated || json.Unmarshal(r.body, &code) != nil {
		t.Fatalf("createQrCode in the token = %d %s", r.status, r.body)
	}
	tmpl := templateOf(t, code.QrCode, cryptopay.GUID)
	addr, _ := tmpl.Field("01")
	chainID, _ := tmpl.Field("02")
	due, _ := tmpl.Field("03")
	if chainID != fmt.Sprint(config.DevChainID) || due != "2500000" {
		t.Fatalf("template %+v, want chain %d and 2500000 base units", tmpl, config.DevChainID)
	}

	pay := payRequest(config.DevRetailerInstitutionID, code.TranID, 0)
	pay.Amounts.RequestAmount = amount
	answer := h.payAsyncAs(pay, retailer, pass)
	h.waitState(t, qrswitch.PaymentKey(config.DevRetailerID, pay.ID), "AWAITING_SCAN")
	tx := chainTransfer(t, h, sim, addr, "2.5")
	a := <-answer
	var resp wire.PaymentResponse
	if a.status != http.StatusCreated || json.Unmarshal(a.body, &resp) != nil || resp.Partner == nil || resp.Partner.ID != config.DevChainPartnerID {
		t.Fatalf("pay = %d %s, want 201 naming %s", a.status, a.body, config.DevChainPartnerID)
	}
	p := h.waitState(t, qrswitch.PaymentKey(config.DevRetailerID, pay.ID), "APPROVED")
	if p.Paid == nil || p.Paid.Reference != tx || p.Paid.Amount.Amount != 250 || p.Paid.Amount.Currency != "710" {
		t.Fatalf("payment paid %+v, want 250 rand cents by %s", p.Paid, tx)
	}
}

// TestCryptopayCrashWhileTransfersArrive kills the switch process with
// SIGKILL while customers' transfers arrive on a real EVM node (ganache),
// makes more transfers while it is down, and restarts it on the same
// store: every transfer is counted exactly once (no checkout overpaid, each
// address's record holds its three transfers) and every checkout is paid.
func TestCryptopayCrashWhileTransfersArrive(t *testing.T) {
	testCryptopayCrash(t, "")
}

// TestCryptopayCrashSharded is the same on a store spread over eight
// shards of a Redis Cluster: each address's record lives with its
// retailer's payments, and is committed with the payment it pays.
func TestCryptopayCrashSharded(t *testing.T) {
	testCryptopayCrash(t, redistest.StartCluster(t, 3, 0).URL()+"?shards=8")
}

func testCryptopayCrash(t *testing.T, storeURL string) {
	node := ganachetest.Start(t, ganachetest.Options{})
	dir := t.TempDir()
	simURL, simCA, _ := startSim(t, dir, 3*time.Second)
	cfg := testConfig(dir, simURL, simCA)
	if storeURL != "" {
		cfg.Store.URL = storeURL
	}
	cfg.Listen, cfg.AdminListen, cfg.Checkout.Listen = freePort(t), freePort(t), freePort(t)
	cfg.Retailers[1].Checkout = config.RetailerCheckout{
		Allow: []string{"127.0.0.1"}, Currency: "QTT", MaxAmount: "1000", Expiry: config.Duration(10 * time.Minute),
		PostbackSecret: shopSecret, Merchant: config.CheckoutMerchant{Name: "Web Shop", City: "Cape Town", Country: "ZA", MCC: "5999"},
	}
	// Written out, a retailer's absent offers become "offers: []", which
	// means none: name the rail.
	cfg.Retailers[1].Offers = []string{"chain"}
	var opts yaml.Node
	if err := yaml.Unmarshal([]byte(fmt.Sprintf("rpc_url: %s\nws_url: %s\ntoken_address: %q\ntoken_decimals: %d\ncurrency: QTT\nxpub: %s\nconfirmations: 1\npoll_interval: 50ms\n",
		node.URL, node.WSURL, node.Token, node.Decimals, testChainXPub)), &opts); err != nil {
		t.Fatal(err)
	}
	cfg.Partners = append(cfg.Partners, config.Partner{ID: "chain", Name: "Chain", Rail: cryptopay.Name, Timeout: config.Duration(10 * time.Second), Options: *opts.Content[0]})
	cfgFile, logs := childFiles(t, dir, cfg)
	c := startChild(t, cfgFile, logs)
	base := "http://" + cfg.Checkout.Listen

	const checkouts = 3
	var ids []string
	var addrs []chain.Address
	for range checkouts {
		resp, err := http.Post(base+"/", "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"start_payment","params":{"amount":"10"}}`))
		if err != nil {
			t.Fatal(err)
		}
		var started struct{ Result struct{ ID, Address string } }
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		json.Unmarshal(raw, &started)
		a, err := hdkey.ParseAddress(started.Result.Address)
		if err != nil {
			l, _ := os.ReadFile(logs.Name())
			t.Fatalf("start_payment = %s: address %v\n%s", raw, err, l)
		}
		ids, addrs = append(ids, started.Result.ID), append(addrs, a)
	}
	pay := func(from int, to chain.Address, tokens int64) {
		tx := node.Transfer(t, from, to, new(big.Int).Mul(big.NewInt(tokens), node.Unit()))
		node.Mined(t, tx)
	}
	for i, a := range addrs {
		pay(1+i, a, 4)
	}
	eventually(t, "the first transfers seen", func() bool {
		for _, id := range ids {
			if checkoutStatus(t, base, id).State != "partially_paid" {
				return false
			}
		}
		return true
	})

	// Transfers keep arriving while the switch is killed and is down.
	arrived := make(chan struct{})
	go func() {
		defer close(arrived)
		for i, a := range addrs {
			pay(1+i, a, 3)
		}
	}()
	c.kill(t)
	<-arrived
	c = startChild(t, cfgFile, logs)
	for i, a := range addrs {
		pay(1+i, a, 3)
	}
	eventually(t, "every checkout paid after the restart", func() bool {
		for _, id := range ids {
			if st := checkoutStatus(t, base, id); st.State != "paid" && st.State != "overpaid" {
				return false
			}
		}
		return true
	})
	for _, id := range ids {
		if st := checkoutStatus(t, base, id); st.State != "paid" || st.Received != "10.0" {
			t.Errorf("checkout %s: %s with %s received, want paid with exactly 10.0 (each transfer once)", id, st.State, st.Received)
		}
	}
	caFile := filepath.Join(dir, "tls", "ca.pem")
	clientTLS, err := tlsconfig.NewClient(tlsconfig.ClientOptions{CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	h := &Harness{Cfg: cfg, Base: "https://" + c.addr, Client: &http.Client{Timeout: settle, Transport: &http.Transport{TLSClientConfig: clientTLS}}}
	var recs struct {
		Records []struct{ View map[string]any }
	}
	if code := h.getJSON(t, h.Base+"/support/v1/rails/chain/records/payment", SupUser, SupPass, &recs); code != http.StatusOK || len(recs.Records) != checkouts {
		t.Fatalf("support records = %d, %d records; want %d", code, len(recs.Records), checkouts)
	}
	for _, r := range recs.Records {
		if ts, _ := r.View["transfers"].([]any); len(ts) != 3 || r.View["received"] != "10 QTT" || r.View["state"] != "paid" {
			t.Errorf("address %v: %d transfers, %v received, %v; want 3, 10 QTT, paid", r.View["address"], len(ts), r.View["received"], r.View["state"])
		}
	}
	if storeURL != "" {
		// Each address's record is the web shop's, so in its shard, where
		// its payment is.
		probe, err := redisstore.Open(t.Context(), storeURL, redisstore.Options{JanitorInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer probe.Close()
		rs, err := probe.Records(t.Context(), "chain", partners.RecordQuery{Kind: "payment"})
		if err != nil || len(rs) != checkouts {
			t.Fatalf("the rail's payment records = %d, %v; want %d", len(rs), err, checkouts)
		}
		for _, r := range rs {
			if r.Retailer != "shop-2" {
				t.Errorf("record %s: retailer %q, want the web shop's, shop-2 (its shard: %s)", r.Key, r.Retailer, probe.ShardPrefix("shop-2"))
			}
		}
	}
}

// testChainXPub is BIP-32 test vector 1's m/0H/1 (its private key is
// public: tests only).
const testChainXPub = "xpub6ASuArnXKPbfEwhqN6e3mwBcDTgzisQN1wXN9BJcM47sSikHjJf3UFHKkNAWbWMiGj7Wf5uMash7SyYq527Hqck2AxYysAA7xmALppuCkwQ"
