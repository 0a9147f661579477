package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners/openpayments"
	"github.com/qrswitch/qrswitch/store/redis/redistest"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// opAmount is the public form of an incoming payment's receivedAmount.
type opAmount struct {
	ReceivedAmount struct {
		Value      string
		AssetCode  string
		AssetScale int
	}
	AuthServer string
}

// incomingPaymentCode asks the development setup for a QR code of 25.99
// ZAR and returns its tranId and the incoming payment URL its Open
// Payments template carries.
func incomingPaymentCode(t testing.TB, h *Harness) (tranID, incomingURL string) {
	t.Helper()
	tranID, a := railCode(t, h, 2599, "", openpayments.GUID)
	incomingURL, _ = a.Field("01")
	if !strings.HasPrefix(incomingURL, h.Base+config.DevOPPath+"/incoming-payments/") {
		t.Fatalf("incoming payment URL %q, want one on the switch under %s", incomingURL, config.DevOPPath)
	}
	return tranID, incomingURL
}

// received reads the public form of an incoming payment.
func received(t testing.TB, h *Harness, url string) opAmount {
	t.Helper()
	var a opAmount
	if st := h.getJSON(t, url, "", "", &a); st != http.StatusOK {
		t.Fatalf("GET %s (public form) = %d, want 200", url, st)
	}
	return a
}

// TestOpenPaymentsThroughTheSwitch pays the development setup's retailer
// over the Open Payments rail, as a person would with `qrswitch serve`: the
// QR code carries an incoming payment of the retailer's wallet address,
// the simulated customer's wallet pays it over ILP STREAM through the
// switch's ILP-over-HTTP endpoint, and the held payment request answers
// 201 naming the rail's partner. Paying the code again moves no money; the
// protected routes refuse a request without a grant; a reversal of money
// that arrived over STREAM, which the switch cannot send back by itself,
// is held for an operator rather than pretended done.
func TestOpenPaymentsThroughTheSwitch(t *testing.T) {
	testOpenPaymentsThroughTheSwitch(t, devHarness)
}

// TestOpenPaymentsThroughTheSwitchSharded is the same on a store spread
// over eight shards of a Redis Cluster, with the development setup's rails
// that run on one (partners.ShardSafe): the incoming payment and its
// credits live with the retailer's payment, and the completing credit is
// committed with its approval.
func TestOpenPaymentsThroughTheSwitchSharded(t *testing.T) {
	testOpenPaymentsThroughTheSwitch(t, shardedDevHarness(t))
}

// shardedDevHarness is devHarness on a store spread over eight shards of a
// new Redis Cluster: the whole development setup, every rail of which runs
// on one (the server refuses to start a rail that is not ShardSafe there).
func shardedDevHarness(t *testing.T) func(testing.TB, ...string) (*Harness, *DevInfo) {
	url := redistest.StartCluster(t, 3, 0).URL() + "?shards=8"
	return func(t testing.TB, env ...string) (*Harness, *DevInfo) {
		return devHarnessWith(t, func(c *config.Config) { c.Store.URL = url }, env...)
	}
}

func testOpenPaymentsThroughTheSwitch(t *testing.T, devHarness func(testing.TB, ...string) (*Harness, *DevInfo)) {
	h, d := devHarness(t)
	sim := simulatorOf(t, d, openpayments.Name)
	const retailer, pass = config.DevRetailerUsername, config.DevRetailerPassword

	var wallet struct{ ID, AssetCode, AuthServer, ResourceServer string }
	walletURL := h.Base + config.DevOPPath + "/" + config.DevRetailerID
	if st := h.getJSON(t, walletURL, "", "", &wallet); st != http.StatusOK || wallet.ID != walletURL || wallet.AssetCode != "ZAR" ||
		wallet.ResourceServer != h.Base+config.DevOPPath {
		t.Fatalf("GET %s = %d %+v, want the demo retailer's ZAR wallet address served by the switch", walletURL, st, wallet)
	}

	for _, p := range d.Partners {
		if p.Rail != openpayments.Name {
			continue
		}
		named, _ := p.Simulator["walletAddresses"].(map[string]any)
		if named[config.DevRetailerID] != walletURL || sim["ilpEndpoint"] != h.Base+config.DevOPPath+"/ilp" {
			t.Fatalf("dev.json simulator = %v, want the demo retailer's wallet address %s and the ILP endpoint", p.Simulator, walletURL)
		}
	}

	tranID, incomingURL := incomingPaymentCode(t, h)
	if a := received(t, h, incomingURL); a.ReceivedAmount.Value != "0" || a.ReceivedAmount.AssetCode != "ZAR" || a.AuthServer != wallet.AuthServer {
		t.Fatalf("the new code's incoming payment = %+v, want 0 ZAR received and the wallet's auth server", a)
	}

	req := payRequest(config.DevRetailerInstitutionID, tranID, 2599)
	answer := h.payAsyncAs(req, retailer, pass)
	key := qrswitch.PaymentKey(config.DevRetailerID, req.ID)
	h.waitState(t, key, "AWAITING_SCAN")
	r := h.Post(t, sim["pay"], "", "", map[string]string{"incomingPayment": incomingURL})
	var paid struct {
		Sent, Delivered uint64
		Error           string
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &paid) != nil || paid.Delivered != 2599 || paid.Error != "" {
		t.Fatalf("the wallet paying = %d %s, want 2599 delivered", r.status, r.body)
	}
	a := <-answer
	var resp wire.PaymentResponse
	if a.status != http.StatusCreated || json.Unmarshal(a.body, &resp) != nil || resp.Partner == nil || resp.Partner.ID != config.DevOPPartnerID ||
		resp.Amounts == nil || resp.Amounts.ApprovedAmount == nil || resp.Amounts.ApprovedAmount.Amount != 2599 {
		t.Fatalf("pay = %d %s, want 201 approving 2599 on partner %s", a.status, a.body, config.DevOPPartnerID)
	}
	if got := received(t, h, incomingURL).ReceivedAmount.Value; got != "2599" {
		t.Fatalf("receivedAmount after payment = %s, want 2599", got)
	}
	// Support sees the money's arrival: the incoming payment, the amount
	// and the packets it took.
	var story struct{ Results []qrswitch.Story }
	h.getJSON(t, h.Base+"/support/v1/transactions/"+req.ID, config.DevSupportUsername, config.DevSupportPassword, &story)
	noted := ""
	for _, s := range story.Results {
		for _, e := range s.Trace {
			if e.Operation == "paid" {
				noted = e.Note
			}
		}
	}
	id := incomingURL[strings.LastIndex(incomingURL, "/")+1:]
	if !strings.Contains(noted, id) || !strings.Contains(noted, "2599") || !strings.Contains(noted, "packet") {
		t.Fatalf("the trace's paid event = %q, want the incoming payment %s, 2599 and its packets", noted, id)
	}

	// Support sees the rail's records: the code's incoming payment with
	// its packets (never its shared secret) and the wallet's grant.
	var kinds struct{ Kinds []string }
	if st := h.getJSON(t, h.Base+"/support/v1/rails/"+config.DevOPPartnerID, config.DevSupportUsername, config.DevSupportPassword, &kinds); st != http.StatusOK || !slices.Contains(kinds.Kinds, "incoming") {
		t.Fatalf("support rail kinds = %d %v, want incoming among them", st, kinds)
	}
	var incomings struct {
		Records []struct {
			Key  string
			View struct {
				TranID  string `json:"tranId"`
				Packets int
			}
		}
	}
	recURL := h.Base + "/support/v1/rails/" + config.DevOPPartnerID + "/records/incoming"
	if st := h.getJSON(t, recURL, config.DevSupportUsername, config.DevSupportPassword, &incomings); st != http.StatusOK ||
		len(incomings.Records) == 0 || incomings.Records[0].Key != id || incomings.Records[0].View.TranID != tranID || incomings.Records[0].View.Packets < 1 {
		t.Fatalf("support incoming payments = %d %+v, want %s first, for %s, with its packets", st, incomings, id, tranID)
	}
	req2, _ := http.NewRequest(http.MethodGet, recURL, nil)
	req2.SetBasicAuth(config.DevSupportUsername, config.DevSupportPassword)
	if resp, err := h.Client.Do(req2); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "sharedSecret") {
			t.Fatalf("support incoming payments show a shared secret: %s", b)
		}
	}
	var grants struct {
		Records []struct{ View struct{ Client string } }
	}
	if st := h.getJSON(t, h.Base+"/support/v1/rails/"+config.DevOPPartnerID+"/records/gnap-grant", config.DevSupportUsername, config.DevSupportPassword, &grants); st != http.StatusOK ||
		len(grants.Records) == 0 || !strings.HasPrefix(grants.Records[0].View.Client, "jwk:") {
		t.Fatalf("support grants = %d %+v, want the simulated wallet's grant (a key-only client)", st, grants)
	}
	if st := h.getJSON(t, recURL+"?limit=0", config.DevSupportUsername, config.DevSupportPassword, nil); st != http.StatusBadRequest {
		t.Fatalf("GET %s?limit=0 = %d, want 400", recURL, st)
	}
	for _, u := range []string{"/support/v1/rails/nobody", "/support/v1/rails/" + config.DevOPPartnerID + "/records/credit"} {
		if st := h.getJSON(t, h.Base+u, config.DevSupportUsername, config.DevSupportPassword, nil); st != http.StatusNotFound {
			t.Fatalf("GET %s = %d, want 404", u, st)
		}
	}

	// A completed incoming payment offers no payment method any more:
	// paying it again moves nothing.
	r = h.Post(t, sim["pay"], "", "", map[string]string{"incomingPayment": incomingURL})
	if r.status != http.StatusBadGateway || json.Unmarshal(r.body, &paid) != nil || paid.Delivered != 0 || !strings.Contains(paid.Error, "no ILP payment method") {
		t.Fatalf("paying a completed incoming payment = %d %s, want 502, nothing delivered, no payment method", r.status, r.body)
	}
	if got := received(t, h, incomingURL).ReceivedAmount.Value; got != "2599" {
		t.Fatalf("receivedAmount after a second payment = %s, want 2599", got)
	}

	// Without a grant the resource server writes nothing.
	post := h.Post(t, config.DevOPPath+"/incoming-payments", "", "", map[string]any{"walletAddress": walletURL})
	var opErr struct {
		Error struct{ Code, Description string }
	}
	if post.status != http.StatusUnauthorized || json.Unmarshal(post.body, &opErr) != nil || opErr.Error.Code != "unauthorized" {
		t.Fatalf("POST incoming-payments without a token = %d %s, want 401 unauthorized", post.status, post.body)
	}

	// The reversal of money that arrived is the operator's to return.
	if r := h.Post(t, "/qr/v1/payments/reversals", retailer, pass, reversal(req.ID, wire.ReasonCancelled)); r.status != http.StatusAccepted {
		t.Fatalf("reversal = %d %s", r.status, r.body)
	}
	h.waitState(t, key, "REVERSING")
	var tx struct {
		Results []struct{ Advices []qrswitch.Advice }
	}
	until(t, "the reversal to be held for an operator", func() bool {
		h.getJSON(t, h.Base+"/support/v1/transactions/"+req.ID, config.DevSupportUsername, config.DevSupportPassword, &tx)
		return len(tx.Results) == 1 && len(tx.Results[0].Advices) == 1 && tx.Results[0].Advices[0].State == qrswitch.AdviceOperator
	})
}

// TestOpenPaymentsPaidTooLate: when nothing was paid during the POS's
// wait, the request ends NO_SCAN_RECEIVED and a wallet that pays the
// code's incoming payment afterwards has its packets rejected: nothing is
// credited.
func TestOpenPaymentsPaidTooLate(t *testing.T) {
	h, d := devHarness(t, "QRSWITCH_SCAN_WAIT=1s")
	sim := simulatorOf(t, d, openpayments.Name)
	tranID, incomingURL := incomingPaymentCode(t, h)
	a := <-h.payAsyncAs(payRequest(config.DevRetailerInstitutionID, tranID, 2599), config.DevRetailerUsername, config.DevRetailerPassword)
	if a.status != http.StatusBadRequest || a.detail(t).ErrorType != wire.NoScanReceived {
		t.Fatalf("pay with nothing paid = %d %s, want 400 NO_SCAN_RECEIVED", a.status, a.body)
	}
	r := h.Post(t, sim["pay"], "", "", map[string]string{"incomingPayment": incomingURL})
	var paid struct {
		Delivered uint64
		Error     string
	}
	if r.status != http.StatusBadGateway || json.Unmarshal(r.body, &paid) != nil || paid.Delivered != 0 || !strings.Contains(paid.Error, "F02") {
		t.Fatalf("paying after the wait = %d %s, want 502, nothing delivered, the packets rejected F02", r.status, r.body)
	}
	if got := received(t, h, incomingURL).ReceivedAmount.Value; got != "0" {
		t.Fatalf("receivedAmount after a late payment = %s, want 0", got)
	}
}

// BenchmarkOpenPaymentsQRPayment pays QR codes of the development setup
// over the Open Payments rail one after another: the POS's request is held,
// then the simulated wallet reads the incoming payment and pays it over
// STREAM through the switch's ILP endpoint. The latency is the customer's:
// from the wallet's start to the POS's 201, reported as p50 and p99.
func BenchmarkOpenPaymentsQRPayment(b *testing.B) {
	h, d := devHarness(b)
	sim := simulatorOf(b, d, openpayments.Name)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		tranID, incomingURL := incomingPaymentCode(b, h)
		req := payRequest(config.DevRetailerInstitutionID, tranID, 2599)
		answer := h.payAsyncAs(req, config.DevRetailerUsername, config.DevRetailerPassword)
		h.waitState(b, qrswitch.PaymentKey(config.DevRetailerID, req.ID), "AWAITING_SCAN")
		b.StartTimer()
		start := time.Now()
		if r := h.Post(b, sim["pay"], "", "", map[string]string{"incomingPayment": incomingURL}); r.status != http.StatusOK {
			b.Fatalf("the wallet paying = %d %s", r.status, r.body)
		}
		if a := <-answer; a.status != http.StatusCreated {
			b.Fatalf("pay = %d %s", a.status, a.body)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// TestConsoleRailRecords: support staff read a rail's records in the
// console, in headless Chromium: after an Open Payments QR payment of the
// development setup, the Rails page lists the rail's kinds, the incoming
// payment of the code (with its tranId, without its shared secret) and the
// simulated wallet's grant.
func TestConsoleRailRecords(t *testing.T) {
	h, d := devHarness(t)
	sim := simulatorOf(t, d, openpayments.Name)
	tranID, incomingURL := incomingPaymentCode(t, h)
	req := payRequest(config.DevRetailerInstitutionID, tranID, 2599)
	answer := h.payAsyncAs(req, config.DevRetailerUsername, config.DevRetailerPassword)
	h.waitState(t, qrswitch.PaymentKey(config.DevRetailerID, req.ID), "AWAITING_SCAN")
	if r := h.Post(t, sim["pay"], "", "", map[string]string{"incomingPayment": incomingURL}); r.status != http.StatusOK {
		t.Fatalf("the wallet paying = %d %s", r.status, r.body)
	}
	if a := <-answer; a.status != http.StatusCreated {
		t.Fatalf("pay = %d %s", a.status, a.body)
	}
	id := incomingURL[strings.LastIndex(incomingURL, "/")+1:]

	b := startBrowser(t, t.TempDir())
	css := b.css
	b.do("log in",
		chromedp.Navigate(h.Base+"/console/"),
		chromedp.WaitVisible(css("#login")),
		chromedp.SendKeys(css("#username"), config.DevSupportUsername),
		chromedp.SendKeys(css("#password"), config.DevSupportPassword),
		chromedp.Click(css("#login-button")),
		chromedp.WaitVisible(css("#search-view")),
	)
	kindButton := fmt.Sprintf(`#rail-kinds button[data-partner=%q][data-kind="incoming"]`, config.DevOPPartnerID)
	b.do("the rails page", chromedp.Click(css("#nav-rails")), chromedp.WaitVisible(css(kindButton)))
	b.do("the incoming payments", chromedp.Click(css(kindButton)), chromedp.WaitVisible(css(fmt.Sprintf(`#rail-records tr.rail-record[data-key=%q]`, id))))
	row := b.text(fmt.Sprintf(`#rail-records tr.rail-record[data-key=%q]`, id))
	if !strings.Contains(row, tranID) || !strings.Contains(row, `"packets"`) || strings.Contains(row, "sharedSecret") {
		t.Errorf("the incoming payment's row = %q, want its tranId %s and packets, no shared secret", row, tranID)
	}
	grants := fmt.Sprintf(`#rail-kinds button[data-partner=%q][data-kind="gnap-grant"]`, config.DevOPPartnerID)
	b.do("the grants", chromedp.Click(css(grants)), chromedp.WaitVisible(css(`#rail-records tr.rail-record`)))
	if row := b.text(`#rail-records tr.rail-record`); !strings.Contains(row, `"client": "jwk:`) {
		t.Errorf("the grant's row = %q, want the simulated wallet's key-only client", row)
	}
	if errs := b.eval(`window.__qrsErrors.join("; ")`); errs != "" {
		t.Errorf("the page reported: %s", errs)
	}
}
