package openpayments_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/qrswitch/qrswitch/internal/jstest"
	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/ilp"
	"github.com/qrswitch/qrswitch/partners/ilp/ilphttp"
	"github.com/qrswitch/qrswitch/partners/ilp/stream"
	"github.com/qrswitch/qrswitch/partners/openpayments"
	"github.com/qrswitch/qrswitch/partners/railtest"
	"github.com/qrswitch/qrswitch/store/sqlite"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

const (
	partnerID = "op"
	peerToken = "peer-token"
	client    = "https://client.example/wallet"
	// options of the tests: three wallets, one ILP peer, a rate, and the
	// rail's own ILP endpoint as its upstream peer (%s).
	testOptions = `
ilp_address: test.qrswitch
quote_ttl: 5m
rates:
  - {from: USD, to: EUR, rate: "0.5"}
upstream: {url: %q, token: peer-token, timeout: %s}
stream_secret: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
wallets:
  - {retailer: shop-1, name: shop1, public_name: "Demo Shop", asset_code: USD, asset_scale: 2}
  - {retailer: shop-2, asset_code: EUR, asset_scale: 2}
  - {retailer: customer, asset_code: USD, asset_scale: 2, fee_fixed: 10, fee_bps: 100}
peers:
  - {name: payer, token: peer-token, address: test.qrswitch.payer, asset_code: USD, asset_scale: 2}
gnap: {token_ttl: 10m, outgoing_payments: allow, private_clients: true}
`
)

// env is the rail on a real SQLite store behind a TLS server.
type env struct {
	t       testing.TB
	mux     *http.ServeMux
	rail    partners.Rail
	records partners.Records
	host    *railtest.Host
	srv     *httptest.Server
	client  *http.Client
	base    string
}

// testVerifier admits "GNAP all" with every action, "GNAP read" with read
// and create only, and refuses anything else, as the GNAP server would.
func testVerifier(r *http.Request, need openpayments.Access) (*openpayments.Grant, error) {
	switch r.Header.Get("Authorization") {
	case "GNAP all":
		return &openpayments.Grant{Client: client, Actions: []string{"create", "read", "read-all", "list", "list-all", "complete"}}, nil
	case "GNAP other":
		return &openpayments.Grant{Client: "https://other.example/w", Actions: []string{"create", "read", "list", "complete"}}, nil
	}
	return nil, openpayments.ErrUnauthorized
}

func newEnv(t testing.TB, host *railtest.Host) *env {
	t.Helper()
	mux := http.NewServeMux()
	e := &env{t: t, host: host, mux: mux}
	e.srv = httptest.NewUnstartedServer(mux)
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	e.client = e.srv.Client()
	st, err := sqlite.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "op.db")+"?synchronous=normal", sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.records = qrswitch.RailRecords(st, partnerID)
	host.Records = e.records
	r := newRail(t, host, e.records, e.srv.URL, e.client.Transport)
	openpayments.SetVerifier(r, testVerifier)
	for _, rt := range r.(partners.Surface).Routes() {
		mux.Handle(rt.Method+" "+rt.Path, rt.Handler)
	}
	e.rail, e.base = r, e.srv.URL+"/op"
	return e
}

// newRail builds and starts the rail of the tests on records, published
// at publicURL, its upstream peer its own ILP endpoint.
func newRail(t testing.TB, host partners.Host, records partners.Records, publicURL string, transport http.RoundTripper) partners.Rail {
	t.Helper()
	return newRailUpstream(t, host, records, publicURL, transport, publicURL+"/op/ilp", "30s")
}

// newRailUpstream is newRail with another upstream peer and packet expiry.
func newRailUpstream(t testing.TB, host partners.Host, records partners.Records, publicURL string, transport http.RoundTripper, upstream, expiry string) partners.Rail {
	t.Helper()
	var node yaml.Node
	if err := yaml.Unmarshal([]byte(fmt.Sprintf(testOptions, upstream, expiry)), &node); err != nil {
		t.Fatal(err)
	}
	r, err := openpayments.New(partners.Config{PartnerID: partnerID, Name: "Open Payments", Options: node.Content[0], Host: host,
		Records: records, PublicURL: publicURL, Timeout: 10 * time.Second, Logger: zerolog.Nop(), Transport: transport})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.(partners.Starter).Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.(partners.Starter).Close() })
	return r
}

// do makes one request and decodes the JSON answer.
func (e *env) do(method, url, auth string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			b, _ = json.Marshal(body)
		}
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(e.t.Context(), method, url, rd)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		e.t.Fatalf("%s %s answered %d %q: not a JSON object", method, url, resp.StatusCode, b)
	}
	return resp.StatusCode, out
}

// checkError checks an Open Payments error body.
func checkError(t *testing.T, what string, status, want int, body map[string]any) {
	t.Helper()
	e, _ := body["error"].(map[string]any)
	if status != want || e == nil || e["code"] == "" {
		t.Fatalf("%s = %d %v, want %d with an Open Payments error body", what, status, body, want)
	}
}

func usd(v string) map[string]any {
	return map[string]any{"value": v, "assetCode": "USD", "assetScale": 2}
}

func TestWalletAddress(t *testing.T) {
	e := newEnv(t, railtest.NewHost())
	st, w := e.do("GET", e.base+"/shop1", "", nil)
	want := map[string]any{"id": e.base + "/shop1", "publicName": "Demo Shop", "assetCode": "USD", "assetScale": float64(2),
		"authServer": e.base + "/auth", "resourceServer": e.base}
	if st != 200 || fmt.Sprint(w) != fmt.Sprint(want) {
		t.Fatalf("GET wallet = %d %v, want %v", st, w, want)
	}
	if st, w := e.do("GET", e.base+"/shop-2", "", nil); st != 200 || w["assetCode"] != "EUR" || w["publicName"] != "shop-2" {
		t.Fatalf("GET second wallet = %d %v, want EUR named shop-2", st, w)
	}
	if st, k := e.do("GET", e.base+"/shop1/jwks.json", "", nil); st != 200 || fmt.Sprint(k["keys"]) != "[]" {
		t.Fatalf("GET jwks.json = %d %v, want an empty key set", st, k)
	}
	for _, p := range []string{"/nobody", "/nobody/jwks.json"} {
		st, body := e.do("GET", e.base+p, "", nil)
		checkError(t, "GET "+p, st, 404, body)
	}
}

func TestIncomingPaymentLifecycle(t *testing.T) {
	e := newEnv(t, railtest.NewHost())
	wallet := e.base + "/shop1"
	expires := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	st, ip := e.do("POST", e.base+"/incoming-payments", "GNAP all", map[string]any{
		"walletAddress": wallet, "incomingAmount": usd("2500"), "expiresAt": expires, "metadata": map[string]any{"externalRef": "INV-1"}})
	if st != 201 {
		t.Fatalf("create = %d %v, want 201", st, ip)
	}
	id, _ := ip["id"].(string)
	ms, _ := ip["methods"].([]any)
	if !strings.HasPrefix(id, e.base+"/incoming-payments/") || ip["walletAddress"] != wallet || ip["completed"] != false ||
		fmt.Sprint(ip["incomingAmount"]) != fmt.Sprint(usd("2500")) || fmt.Sprint(ip["receivedAmount"]) != fmt.Sprint(usd("0")) || len(ms) != 1 {
		t.Fatalf("create = %v, want an open incoming payment of 2500 USD with one method", ip)
	}
	m := ms[0].(map[string]any)
	secret, err := base64.RawURLEncoding.DecodeString(m["sharedSecret"].(string))
	if m["type"] != "ilp" || !strings.HasPrefix(m["ilpAddress"].(string), "test.qrswitch.") || err != nil || len(secret) != 32 {
		t.Fatalf("method = %v, want ilp with an address under test.qrswitch and a 32-octet base64url secret", m)
	}
	if meta := fmt.Sprint(ip["metadata"]); meta != "map[externalRef:INV-1]" {
		t.Fatalf("metadata = %s, want externalRef INV-1", meta)
	}

	t.Run("get full and public", func(t *testing.T) {
		st, full := e.do("GET", id, "GNAP all", nil)
		if st != 200 || fmt.Sprint(full["methods"]) != fmt.Sprint(ip["methods"]) || full["id"] != id {
			t.Fatalf("GET full = %d %v, want the same methods as at creation", st, full)
		}
		st, pub := e.do("GET", id, "", nil)
		if st != 200 || len(pub) != 2 || pub["authServer"] != e.base+"/auth" || fmt.Sprint(pub["receivedAmount"]) != fmt.Sprint(usd("0")) {
			t.Fatalf("GET public = %d %v, want only authServer and receivedAmount", st, pub)
		}
		st, body := e.do("GET", id, "GNAP nonsense", nil)
		checkError(t, "GET with a bad token", st, 401, body)
		st, body = e.do("GET", id, "GNAP other", nil)
		checkError(t, "GET by another client with read", st, 403, body)
		st, body = e.do("GET", e.base+"/incoming-payments/00000000000000000000", "GNAP all", nil)
		checkError(t, "GET unknown", st, 404, body)
	})

	t.Run("refused bodies", func(t *testing.T) {
		for name, body := range map[string]any{
			"unknown property":  map[string]any{"walletAddress": wallet, "foo": 1},
			"unknown in amount": map[string]any{"walletAddress": wallet, "incomingAmount": map[string]any{"value": "1", "assetCode": "USD", "assetScale": 2, "x": 1}},
			"number amount":     map[string]any{"walletAddress": wallet, "incomingAmount": map[string]any{"value": 1, "assetCode": "USD", "assetScale": 2}},
			"wrong asset":       map[string]any{"walletAddress": wallet, "incomingAmount": map[string]any{"value": "1", "assetCode": "EUR", "assetScale": 2}},
			"zero amount":       map[string]any{"walletAddress": wallet, "incomingAmount": usd("0")},
			"negative amount":   map[string]any{"walletAddress": wallet, "incomingAmount": usd("-5")},
			"past expiry":       map[string]any{"walletAddress": wallet, "expiresAt": "2001-01-01T00:00:00Z"},
			"foreign wallet":    map[string]any{"walletAddress": "https://elsewhere.example/alice"},
			"no wallet":         map[string]any{},
			"metadata not obj":  map[string]any{"walletAddress": wallet, "metadata": []int{1}},
			"trailing data":     []byte(`{"walletAddress":"` + wallet + `"} {}`),
			"not json":          []byte(`walletAddress=x`),
		} {
			st, out := e.do("POST", e.base+"/incoming-payments", "GNAP all", body)
			checkError(t, "create with "+name, st, 400, out)
		}
		st, out := e.do("POST", e.base+"/incoming-payments", "", map[string]any{"walletAddress": wallet})
		checkError(t, "create without a token", st, 401, out)
	})

	t.Run("complete", func(t *testing.T) {
		st, done := e.do("POST", id+"/complete", "GNAP all", nil)
		if st != 200 || done["completed"] != true || done["methods"] != nil {
			t.Fatalf("complete = %d %v, want completed without methods", st, done)
		}
		st, full := e.do("GET", id, "GNAP all", nil)
		if st != 200 || full["completed"] != true || fmt.Sprint(full["methods"]) != "[]" {
			t.Fatalf("GET after complete = %d %v, want completed with no payment method", st, full)
		}
		if st, again := e.do("POST", id+"/complete", "GNAP all", nil); st != 200 || again["completed"] != true {
			t.Fatalf("complete again = %d %v, want 200 completed", st, again)
		}
	})
}

func TestListIncomingPayments(t *testing.T) {
	e := newEnv(t, railtest.NewHost())
	wallet := e.base + "/shop1"
	var ids []string
	for i := range 5 {
		auth := "GNAP all"
		if i == 2 {
			auth = "GNAP other"
		}
		st, ip := e.do("POST", e.base+"/incoming-payments", auth, map[string]any{"walletAddress": wallet})
		if st != 201 {
			t.Fatalf("create %d = %d %v", i, st, ip)
		}
		ids = append(ids, ip["id"].(string))
	}
	// another wallet's payment never shows
	e.do("POST", e.base+"/incoming-payments", "GNAP all", map[string]any{"walletAddress": e.base + "/shop-2"})
	list := func(auth, query string) ([]string, map[string]any) {
		t.Helper()
		st, out := e.do("GET", e.base+"/incoming-payments?wallet-address="+wallet+query, auth, nil)
		if st != 200 {
			t.Fatalf("list %s = %d %v", query, st, out)
		}
		var got []string
		for _, r := range out["result"].([]any) {
			got = append(got, r.(map[string]any)["id"].(string))
		}
		return got, out["pagination"].(map[string]any)
	}
	var seen []string
	cursor := ""
	for page := 0; ; page++ {
		q := "&first=2"
		if cursor != "" {
			q += "&cursor=" + cursor[strings.LastIndex(cursor, "/")+1:]
		}
		got, p := list("GNAP all", q)
		seen = append(seen, got...)
		if p["hasPreviousPage"] != (page > 0) {
			t.Fatalf("page %d hasPreviousPage = %v", page, p["hasPreviousPage"])
		}
		if p["hasNextPage"] != true {
			break
		}
		cursor = got[len(got)-1]
	}
	if len(seen) != 5 {
		t.Fatalf("paged through %d incoming payments, want 5: %v", len(seen), seen)
	}
	for i, id := range seen {
		if id != ids[4-i] {
			t.Fatalf("list[%d] = %s, want %s (newest first)", i, id, ids[4-i])
		}
	}
	back, p := list("GNAP all", "&last=2&cursor="+seen[4][strings.LastIndex(seen[4], "/")+1:])
	if fmt.Sprint(back) != fmt.Sprint(seen[2:4]) || p["hasPreviousPage"] != true {
		t.Fatalf("list last=2 before the oldest = %v %v, want %v with a previous page", back, p, seen[2:4])
	}
	mine, _ := list("GNAP other", "")
	if len(mine) != 1 || mine[0] != ids[2] {
		t.Fatalf("list with list (not list-all) = %v, want only the client's own %s", mine, ids[2])
	}
	for _, q := range []string{"&first=0", "&first=101", "&first=1&last=1", "&last=2", "&first=x"} {
		st, out := e.do("GET", e.base+"/incoming-payments?wallet-address="+wallet+q, "GNAP all", nil)
		checkError(t, "list "+q, st, 400, out)
	}
}

// payResult is what pay.js prints.
type payResult struct {
	AmountSent      string  `json:"amountSent"`
	AmountDelivered string  `json:"amountDelivered"`
	Error           *string `json:"error"`
}

// payWithPay pays an incoming payment's method with @interledger/pay.
func (e *env) payWithPay(ip map[string]any, amount uint64) payResult {
	e.t.Helper()
	m := ip["methods"].([]any)[0].(map[string]any)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := jstest.Command(ctx, e.t.(*testing.T), filepath.Join("testdata", "pay.js"), e.base+"/ilp", peerToken,
		m["ilpAddress"].(string), m["sharedSecret"].(string), strconv.FormatUint(amount, 10), "USD", "2")
	cmd.Env = append(cmd.Environ(), "NODE_EXTRA_CA_CERTS="+e.caFile())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, _ := cmd.Output()
	var res payResult
	if err := json.Unmarshal(out, &res); err != nil {
		e.t.Fatalf("reading pay.js output %q: %v\n%s", out, err, stderr.String())
	}
	return res
}

// caFile writes the test server's certificate for node to trust.
func (e *env) caFile() string {
	e.t.Helper()
	f := filepath.Join(e.t.TempDir(), "ca.pem")
	writePEM(e.t, f, e.srv.Certificate().Raw)
	return f
}

// TestPayIncomingPaymentWithPay: @interledger/pay pays an incoming
// payment through the ILP-over-HTTP endpoint; the incoming payment reports
// the amount received and completes; a second payment is refused.
func TestPayIncomingPaymentWithPay(t *testing.T) {
	e := newEnv(t, railtest.NewHost())
	st, ip := e.do("POST", e.base+"/incoming-payments", "GNAP all", map[string]any{"walletAddress": e.base + "/shop1", "incomingAmount": usd("12345")})
	if st != 201 {
		t.Fatalf("create = %d %v", st, ip)
	}
	res := e.payWithPay(ip, 12345)
	if res.Error != nil || res.AmountDelivered != "12345" {
		t.Fatalf("pay = %+v, want 12345 delivered without error", res)
	}
	_, got := e.do("GET", ip["id"].(string), "GNAP all", nil)
	if got["completed"] != true || fmt.Sprint(got["receivedAmount"]) != fmt.Sprint(usd("12345")) {
		t.Fatalf("incoming payment after pay = %v, want completed with 12345 received", got)
	}
	if res := e.payWithPay(ip, 100); res.Error == nil || res.AmountDelivered != "" && res.AmountDelivered != "0" {
		t.Fatalf("pay to a completed incoming payment = %+v, want an error and nothing delivered", res)
	}
}

// sendOnce sends one fulfillable STREAM Prepare carrying amount to an
// address with its secret, repeat re-sending the very same packet.
type onePacket struct {
	client *ilphttp.Client
	last   *ilp.Prepare
}

func (o *onePacket) send(t *testing.T, dest ilp.Address, secret []byte, amount uint64) ilp.Reply {
	t.Helper()
	keys, err := stream.NewKeys(secret)
	if err != nil {
		t.Fatal(err)
	}
	data, err := keys.SealPacket(&stream.Packet{Sequence: 1, ILPType: ilp.TypePrepare, PrepareAmount: amount,
		Frames: []stream.Frame{stream.StreamMoney{StreamID: 1, Shares: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	o.last = &ilp.Prepare{Amount: amount, ExpiresAt: time.Now().Add(10 * time.Minute), ExecutionCondition: keys.ConditionFor(data), Destination: dest, Data: data}
	return o.resend(t)
}

func (o *onePacket) resend(t *testing.T) ilp.Reply {
	t.Helper()
	rep, err := o.client.Send(t.Context(), o.last)
	if err != nil {
		t.Fatalf("sending prepare: %v", err)
	}
	return rep
}

// credentialsOf reads an offer's incoming payment in full.
func (e *env) credentialsOf(of *partners.Offer) (ilp.Address, []byte) {
	e.t.Helper()
	st, ip := e.do("GET", of.Reference, "GNAP all", nil)
	if st != 200 {
		e.t.Fatalf("GET %s = %d %v", of.Reference, st, ip)
	}
	m := ip["methods"].([]any)[0].(map[string]any)
	secret, _ := base64.RawURLEncoding.DecodeString(m["sharedSecret"].(string))
	return ilp.Address(m["ilpAddress"].(string)), secret
}

func (e *env) ilpClient() *ilphttp.Client {
	c := ilphttp.NewClient(e.base+"/ilp", peerToken, 30*time.Second)
	c.HTTP.Transport = e.client.Transport
	return c
}

var conformance sync.Map // rail → env

func TestRailConformance(t *testing.T) {
	railtest.RunPull(t, railtest.Pull{
		New: func(t *testing.T, host partners.Host, _ partners.Records) partners.Rail {
			e := newEnv(t, host.(*railtest.Host))
			conformance.Store(e.rail, e)
			return e.rail
		},
		PayOffer: func(t *testing.T, r partners.Rail, o *partners.OfferRequest, of *partners.Offer, repeat bool) bool {
			v, _ := conformance.Load(r)
			e := v.(*env)
			v, _ = conformance.Load(of)
			var p *onePacket
			if repeat && v != nil {
				p = v.(*onePacket)
				_, ok := p.resend(t).(*ilp.Fulfill)
				return ok
			}
			dest, secret := e.credentialsOf(of)
			p = &onePacket{client: e.ilpClient()}
			conformance.Store(of, p)
			_, ok := p.send(t, dest, secret, uint64(o.Amount.Amount)).(*ilp.Fulfill)
			return ok
		},
		Currency: "840",
		Amount:   12345,
	})
}

// TestQRCodePaidWithPay: a QR code's incoming payment is paid with
// @interledger/pay; the engine hears Paid once with the code's amount.
func TestQRCodePaidWithPay(t *testing.T) {
	host := railtest.NewHost()
	e := newEnv(t, host)
	o := &partners.OfferRequest{TranID: wire.NewID(), RetailerID: "shop-1", Amount: &wire.LedgerAmount{Amount: 2599, Currency: "840"},
		ExpiresAt: time.Now().Add(5 * time.Minute), Now: time.Now()}
	of, err := e.rail.(partners.Offerer).Offer(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if u := of.Accounts[0].Fields[0].Value; u != of.Reference || len(u) > 99 {
		t.Fatalf("template URL = %q, want the incoming payment URL %q within 99 characters", u, of.Reference)
	}
	if err := e.records.Commit(t.Context(), of.Records...); err != nil {
		t.Fatal(err)
	}
	_, ip := e.do("GET", of.Reference, "GNAP all", nil)
	if res := e.payWithPay(ip, 2599); res.Error != nil || res.AmountDelivered != "2599" {
		t.Fatalf("pay = %+v, want 2599 delivered", res)
	}
	paid := host.WaitPaid(t, 1, 60*time.Second)
	if len(paid) != 1 || paid[0].TranID != o.TranID || paid[0].Amount.Amount != 2599 || paid[0].Amount.Currency != "840" || paid[0].Reference != of.Reference {
		t.Fatalf("Paid = %+v, want one report of 2599 840 for %s", paid[0], o.TranID)
	}
	if st, out := e.do("POST", of.Reference+"/complete", "GNAP all", nil); st != 200 || out["completed"] != true {
		t.Fatalf("complete a paid code's incoming payment = %d %v, want 200 completed", st, out)
	}
}

// TestQRCodeExpires: no payment before the code's expiry → the incoming
// payment has expired and a late packet is rejected F02 without credit.
func TestQRCodeExpires(t *testing.T) {
	host := railtest.NewHost()
	e := newEnv(t, host)
	now := time.Now()
	var mu sync.Mutex
	openpayments.SetClock(e.rail, func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	o := &partners.OfferRequest{TranID: wire.NewID(), RetailerID: "shop-1", Amount: &wire.LedgerAmount{Amount: 500, Currency: "840"},
		ExpiresAt: now.Add(time.Minute), Now: now}
	of, err := e.rail.(partners.Offerer).Offer(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.records.Commit(t.Context(), of.Records...); err != nil {
		t.Fatal(err)
	}
	dest, secret := e.credentialsOf(of)
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	p := &onePacket{client: e.ilpClient()}
	rep := p.send(t, dest, secret, 500)
	if rj, ok := rep.(*ilp.Reject); !ok || rj.Code != ilp.F02Unreachable {
		t.Fatalf("late packet = %+v, want Reject F02", rep)
	}
	_, pub := e.do("GET", of.Reference, "", nil)
	if fmt.Sprint(pub["receivedAmount"]) != fmt.Sprint(usd("0")) || len(host.PaidReports()) != 0 {
		t.Fatalf("after a late packet: %v, %d reports; want nothing received or reported", pub, len(host.PaidReports()))
	}
	if _, err := e.rail.(partners.Offerer).Offer(t.Context(), &partners.OfferRequest{TranID: "x", RetailerID: "shop-1",
		Amount: &wire.LedgerAmount{Amount: 1, Currency: "978"}}); err == nil {
		t.Fatal("Offer in EUR on a USD wallet succeeded, want ErrNotOffered")
	}
}
