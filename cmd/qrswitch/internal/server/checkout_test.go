package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/electrum/electrumsim"
	"github.com/qrswitch/qrswitch/partners/railtest"
	"github.com/qrswitch/qrswitch/qr"
	"github.com/qrswitch/qrswitch/retailers/checkout"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

const shopSecret = "test-shop-postback-secret"

// shopHarness is a whole switch with a web shop (retailer shop-2, allowed
// from loopback) and a pull rail to pay its checkouts with.
type shopHarness struct {
	*Harness
	url  string // the checkout listener
	fake *railtest.Fake
}

func newShopHarness(t *testing.T, opts ...HarnessOption) *shopHarness {
	t.Helper()
	fake := &railtest.Fake{Pull: true}
	partners.RegisterForTest(t, "shop-pull", fake.New)
	opts = append([]HarnessOption{func(c *config.Config, o *Options) {
		c.Checkout.Listen = "127.0.0.1:0"
		c.Retailers[1].Checkout = config.RetailerCheckout{
			Allow: []string{"127.0.0.1"}, Credentials: config.CheckoutCredentialsOptional, Currency: "710",
			MaxAmount: "1000", Expiry: config.Duration(10 * time.Minute), PostbackSecret: shopSecret,
			Merchant: config.CheckoutMerchant{Name: "Web Shop", City: "Cape Town", Country: "ZA", MCC: "5999"},
		}
		c.Partners = append(c.Partners, config.Partner{ID: "shop-pull", Name: "Shop Pull", Rail: "shop-pull", Timeout: config.Duration(time.Second)})
	}}, opts...)
	h := NewHarness(t, opts...)
	return &shopHarness{Harness: h, url: "http://" + h.Srv.CheckoutAddr(), fake: fake}
}

// rpc posts a JSON-RPC body to the checkout listener.
func (h *shopHarness) rpc(t *testing.T, body string, user, pass string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.url+"/", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func (h *shopHarness) start(t *testing.T, params string) (id string, result map[string]any) {
	t.Helper()
	status, m := h.rpc(t, `{"jsonrpc":"2.0","id":111,"method":"start_payment","params":`+params+`}`, "", "")
	res, ok := m["result"].(map[string]any)
	if status != 200 || !ok || m["id"] != float64(111) {
		t.Fatalf("start_payment = %d %v, want a result for id 111", status, m)
	}
	return res["id"].(string), res
}

func (h *shopHarness) status(t *testing.T, id string) (*http.Response, *checkout.Status) {
	t.Helper()
	resp, err := http.Get(h.url + "/" + id + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st checkout.Status
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &st)
	return resp, &st
}

// pay pays a checkout on the pull rail, as a customer's wallet of that
// rail would.
func (h *shopHarness) pay(t *testing.T, st *checkout.Status, amount int64) {
	t.Helper()
	p, err := qr.Decode(st.QRCode)
	if err != nil {
		t.Fatal(err)
	}
	var tranID string
	for _, a := range p.Accounts() {
		if a.GUID == railtest.GUID {
			tranID, _ = a.Field("01")
		}
	}
	r := h.Post(t, fmt.Sprintf("/fake/shop-pull/pay/%s?amount=%d&currency=710", tranID, amount), "", "", nil)
	if r.status != http.StatusNoContent {
		t.Fatalf("paying the checkout = %d %s", r.status, r.body)
	}
}

// TestCheckoutJSONRPCErrors: every error of start_payment, exactly as
// 0xbtcpay answers it — HTTP 200, id null, its codes and messages.
func TestCheckoutJSONRPCErrors(t *testing.T) {
	h := newShopHarness(t)
	for _, tt := range []struct {
		name, body string
		code       float64
		message    string
	}{
		{"not JSON", `{zzz}`, -32700, "Parse error"},
		{"not an object", `[]`, -32700, "Parse error"},
		{"a number", `5`, -32700, "Parse error"},
		{"empty object", `{}`, -32600, "Invalid request"},
		{"no jsonrpc", `{"id":1,"method":"start_payment","params":{"amount":"1"}}`, -32600, "Invalid request"},
		{"jsonrpc 1.0", `{"jsonrpc":"1.0","id":1,"method":"start_payment","params":{"amount":"1"}}`, -32600, "Invalid request"},
		{"id null", `{"jsonrpc":"2.0","id":null,"method":"start_payment","params":{"amount":"1"}}`, -32600, "Invalid request"},
		{"no params", `{"jsonrpc":"2.0","id":1,"method":"start_payment"}`, -32600, "Invalid request"},
		{"unknown method", `{"jsonrpc":"2.0","id":1,"method":"do_stuff","params":{}}`, -32601, "Method not found"},
		{"missing amount", `{"jsonrpc":"2.0","id":1,"method":"start_payment","params":{"postback_url":"https://x.example/"}}`, -32602, "Invalid params: missing amount"},
		{"amount not a number", `{"jsonrpc":"2.0","id":1,"method":"start_payment","params":{"amount":"x"}}`, -32602, "Invalid params: invalid amount"},
		{"amount a JSON number", `{"jsonrpc":"2.0","id":1,"method":"start_payment","params":{"amount":5}}`, -32602, "Invalid params: invalid amount"},
		{"amount zero", `{"jsonrpc":"2.0","id":1,"method":"start_payment","params":{"amount":"0.00"}}`, -32602, "Invalid params: invalid amount"},
		{"nine decimals", `{"jsonrpc":"2.0","id":1,"method":"start_payment","params":{"amount":"1.123456789"}}`, -32602, "Invalid params: invalid amount"},
		{"finer than the currency", `{"jsonrpc":"2.0","id":1,"method":"start_payment","params":{"amount":"1.005"}}`, -32602, "Invalid params: invalid amount"},
		{"above the maximum", `{"jsonrpc":"2.0","id":1,"method":"start_payment","params":{"amount":"1000.01"}}`, -32602, "Invalid params: invalid amount"},
		{"negative", `{"jsonrpc":"2.0","id":1,"method":"start_payment","params":{"amount":"-1"}}`, -32602, "Invalid params: invalid amount"},
		{"bad postback URL", `{"jsonrpc":"2.0","id":1,"method":"start_payment","params":{"amount":"1","postback_url":"z"}}`, -32602, "Invalid params: invalid postback URL"},
		{"postback URL not http", `{"jsonrpc":"2.0","id":1,"method":"start_payment","params":{"amount":"1","postback_url":"ftp://x/"}}`, -32602, "Invalid params: invalid postback URL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, m := h.rpc(t, tt.body, "", "")
			e, _ := m["error"].(map[string]any)
			if status != 200 || m["jsonrpc"] != "2.0" || m["id"] != nil || e == nil || e["code"] != tt.code || e["message"] != tt.message {
				t.Fatalf("POST / %s = %d %v, want 200 with id null and error %v %q", tt.body, status, m, tt.code, tt.message)
			}
		})
	}
}

// TestCheckoutAllowList: a start_payment from an address outside the
// shop's list is refused with 403 before its body is read; a forged
// X-Forwarded-For from an untrusted peer changes nothing.
func TestCheckoutAllowList(t *testing.T) {
	h := newShopHarness(t, func(c *config.Config, o *Options) {
		c.Retailers[1].Checkout.Allow = []string{"10.9.9.9"}
	})
	conn, err := net.Dial("tcp", h.Srv.CheckoutAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The headers announce a megabyte of body that never comes: only an
	// answer given before reading it arrives.
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\nX-Forwarded-For: 10.9.9.9\r\nContent-Length: 1048576\r\n\r\n{")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer before the body was sent: %v", err)
	}
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("start_payment from a disallowed address = %d, want 403", resp.StatusCode)
	}
}

// TestCheckoutCredentials: a shop that requires credentials refuses a
// start_payment without them or with wrong ones (401), and another
// retailer's credentials (403).
func TestCheckoutCredentials(t *testing.T) {
	h := newShopHarness(t, func(c *config.Config, o *Options) {
		c.Retailers[1].Checkout.Credentials = config.CheckoutCredentialsRequired
	})
	body := `{"jsonrpc":"2.0","id":7,"method":"start_payment","params":{"amount":"10.50"}}`
	for _, tt := range []struct {
		name, user, pass string
		want             int
	}{
		{"none", "", "", 401},
		{"wrong password", Shop2User, "nope", 401},
		{"another retailer", ShopUser, ShopPass, 403},
		{"the shop's", Shop2User, Shop2Pass, 200},
	} {
		if status, m := h.rpc(t, body, tt.user, tt.pass); status != tt.want || tt.want == 200 && m["result"] == nil {
			t.Errorf("start_payment with %s credentials = %d %v, want %d", tt.name, status, m, tt.want)
		}
	}
}

// postbackReceiver is a shop's postback endpoint: it answers 503 to the
// first failures deliveries, then 200, and keeps what it received.
type postbackReceiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	failures int
	got      []receivedPostback
	done     chan struct{}
}

type receivedPostback struct {
	delivery, signature string
	body                []byte
	status              int
}

func newPostbackReceiver(t *testing.T, failures int) *postbackReceiver {
	p := &postbackReceiver{failures: failures, done: make(chan struct{})}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		defer p.mu.Unlock()
		status := 200
		if len(p.got) < p.failures {
			status = 503
		}
		p.got = append(p.got, receivedPostback{r.Header.Get(checkout.DeliveryHeader), r.Header.Get(checkout.SignatureHeader), b, status})
		w.WriteHeader(status)
		if status == 200 {
			close(p.done)
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *postbackReceiver) received() []receivedPostback {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]receivedPostback(nil), p.got...)
}

// TestCheckoutPaidWithPostback: a checkout started as 0xbtcpay's web shops
// start one, its public status through its states, and the signed postback
// repeated while the shop's endpoint fails, delivered once it answers 2xx,
// under one delivery id.
func TestCheckoutPaidWithPostback(t *testing.T) {
	h := newShopHarness(t)
	rcv := newPostbackReceiver(t, 2)
	id, res := h.start(t, `{"amount":"222.3","data":{"order_id":"444"},"postback_url":"`+rcv.srv.URL+`/payment_complete"}`)
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(id) || res["amount"] != "222.3" {
		t.Fatalf("result = %v, want a 16-hex id and the amount as 0xbtcpay writes it", res)
	}
	resp, st := h.status(t, id)
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" || st.State != "new" || st.SeenAt != nil || st.PaidAt != nil || st.TxHash != nil || st.Amount != "222.3" || st.QRCode == "" {
		t.Fatalf("status of a new checkout = %d %+v (CORS %q)", resp.StatusCode, st, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	h.pay(t, st, 22230)
	select {
	case <-rcv.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("postback not delivered: %+v", rcv.received())
	}
	_, st = h.status(t, id)
	if st.State != "paid" || st.PaidAt == nil || st.TxHash == nil || *st.TxHash != "fake-money-"+h.tranOf(t, st) {
		t.Fatalf("status of a paid checkout = %+v", st)
	}
	got := rcv.received()
	if len(got) != 3 {
		t.Fatalf("%d deliveries, want 3 (two answered 503, then 200)", len(got))
	}
	for i, g := range got {
		if g.delivery == "" || g.delivery != got[0].delivery {
			t.Errorf("delivery %d has id %q, want the same id on every attempt (%q)", i, g.delivery, got[0].delivery)
		}
		if err := checkout.Verify([]byte(shopSecret), g.body, g.signature, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("delivery %d: signature %q does not verify: %v", i, g.signature, err)
		}
	}
	var body struct {
		ID     string  `json:"id"`
		Data   string  `json:"data"`
		TxHash *string `json:"tx_hash"`
	}
	if err := json.Unmarshal(got[2].body, &body); err != nil || body.ID != id || body.Data != `{"order_id":"444"}` || body.TxHash == nil {
		t.Fatalf("postback body %s (%v), want 0xbtcpay's: the id, the data as its JSON text, the tx hash", got[2].body, err)
	}
	if err := checkout.Verify([]byte("another secret, long"), got[2].body, got[2].signature, time.Now(), time.Minute); err == nil {
		t.Fatal("a signature verified under another secret")
	}
	p := h.waitState(t, qrswitch.PaymentKey("shop-2", id), "CONFIRMED")
	if n := len(h.fake.Calls("confirm")); n != 1 || p.Paid == nil {
		t.Fatalf("confirmations sent to the rail = %d, payment %+v: want the switch's one", n, p)
	}
	time.Sleep(300 * time.Millisecond) // would a delivered postback go again? (SAF polls every 50 ms here)
	if n := len(rcv.received()); n != 3 {
		t.Fatalf("%d deliveries after the 200, want 3: a delivered postback is not sent again", n)
	}
}

func (h *shopHarness) tranOf(t *testing.T, st *checkout.Status) string {
	p, err := qr.Decode(st.QRCode)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range p.Accounts() {
		if a.GUID == railtest.GUID {
			v, _ := a.Field("01")
			return v
		}
	}
	return ""
}

// TestCheckoutStatusEdges: unknown and malformed ids are 404 as with
// 0xbtcpay, a checkout that expires unpaid says so, and money that comes
// after the expiry is refused by the engine (the rail keeps it for a
// refund).
func TestCheckoutStatusEdges(t *testing.T) {
	h := newShopHarness(t, func(c *config.Config, o *Options) {
		c.Retailers[1].Checkout.Expiry = config.Duration(time.Second)
	})
	for _, id := range []string{"0123456789abcdef", "nothex", "0123"} {
		resp, err := http.Get(h.url + "/" + id + "/status.json")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 404 || string(b) != "not found" {
			t.Errorf("GET /%s/status.json = %d %q, want 404 not found", id, resp.StatusCode, b)
		}
	}
	id, _ := h.start(t, `{"amount":"5"}`)
	deadline := time.Now().Add(30 * time.Second)
	var st *checkout.Status
	for {
		_, st = h.status(t, id)
		if st.State == "expired" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.State != "expired" || st.PaidAt != nil {
		t.Fatalf("a checkout past its expiry = %+v, want expired", st)
	}
	tran := h.tranOf(t, st)
	r := h.Post(t, fmt.Sprintf("/fake/shop-pull/pay/%s?amount=500&currency=710", tran), "", "", nil)
	if r.status != http.StatusConflict {
		t.Fatalf("paying an expired checkout = %d %s, want the rail refused by the engine", r.status, r.body)
	}
}

// TestCheckoutPaidByAnElectrumWallet: the checkout's EMVCo code carries
// the Electrum template too, so a partner's wallet pays it by scanning; the
// switch forwards the payment itself (no till holds it), confirms it with
// the partner, and posts back to the shop.
func TestCheckoutPaidByAnElectrumWallet(t *testing.T) {
	h := newShopHarness(t)
	rcv := newPostbackReceiver(t, 0)
	id, _ := h.start(t, `{"amount":"12.34","postback_url":"`+rcv.srv.URL+`/done"}`)
	_, st := h.status(t, id)
	if res := h.scan(t, st.QRCode); res.Status != http.StatusAccepted {
		t.Fatalf("the wallet's scan = %d %s, want 202", res.Status, res.Body)
	}
	select {
	case <-rcv.done:
	case <-time.After(30 * time.Second):
		t.Fatal("postback not delivered after the wallet paid")
	}
	p := h.waitState(t, qrswitch.PaymentKey("shop-2", id), "CONFIRMED")
	if p.PartnerID() != "wallet-a" {
		t.Fatalf("paid by %q, want the scanning wallet", p.PartnerID())
	}
	if pe, ok := h.ledgerPayment(p.Request.ID); !ok || pe.Amount != 1234 || pe.State != electrumsim.StateCaptured {
		t.Fatalf("the wallet's ledger has %+v, want the checkout's 1234, captured", pe)
	}
	if _, st = h.status(t, id); st.State != "paid" || st.PaidAt == nil {
		t.Fatalf("status after the wallet paid = %+v", st)
	}
}
