package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/railtest"
	"github.com/qrswitch/qrswitch/qr"
	"github.com/qrswitch/qrswitch/store/redis/redistest"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// TestPullRailThroughTheSeam: a rail registered only in this test — a pull
// rail: it offers its template on new QR codes, serves its own route, and
// reports money through partners.Host — works in a whole switch without a
// line of the engine, the wiring or the config package knowing it. Its
// code is offered with the Electrum template; the POS's held payment
// request answers 201 naming the rail's partner once the rail reports the
// money; and the retailer's reversal becomes the rail's refund.
func TestPullRailThroughTheSeam(t *testing.T) {
	testPullRailThroughTheSeam(t, "", false)
}

// TestPullRailThroughTheSeamSharded is the same on a store spread over
// eight shards of a Redis Cluster, the fake keeping a record of each offer:
// the record is created with the QR code, so in the retailer's shard, and
// committed again with the payment it pays.
func TestPullRailThroughTheSeamSharded(t *testing.T) {
	testPullRailThroughTheSeam(t, redistest.StartCluster(t, 3, 0).URL()+"?shards=8", true)
}

func testPullRailThroughTheSeam(t *testing.T, storeURL string, records bool) {
	fake := &railtest.Fake{Pull: true, Records: records}
	partners.RegisterForTest(t, "test-pull", fake.New)
	h := NewHarness(t, func(c *config.Config, o *Options) {
		c.Partners = append(c.Partners, config.Partner{ID: "fake-pull", Name: "Fake Pull", Rail: "test-pull", Timeout: config.Duration(time.Second)})
		if storeURL != "" {
			c.Store.URL = storeURL
		}
	})
	tranID, payload := h.createQR(t)
	p, err := qr.Decode(payload)
	if err != nil {
		t.Fatal(err)
	}
	guids := map[string]string{}
	for _, a := range p.Accounts() {
		v, _ := a.Field("01")
		guids[a.GUID] = v
	}
	if guids[railtest.GUID] != tranID || guids[qr.ElectrumProvider] != tranID {
		t.Fatalf("QR code templates %v, want the Electrum one and the test rail's, both with tranId %s", guids, tranID)
	}
	req := payRequest("1234", tranID, 4321)
	answer := h.payAsync(req)
	h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "AWAITING_SCAN")

	// The customer pays on the rail's own protocol, at the rail's own route.
	r := h.Post(t, fmt.Sprintf("/fake/fake-pull/pay/%s?amount=4321&currency=710", tranID), "", "", nil)
	if r.status != http.StatusNoContent {
		t.Fatalf("paying on the rail = %d %s, want 204", r.status, r.body)
	}
	a := <-answer
	var resp wire.PaymentResponse
	if a.status != http.StatusCreated || json.Unmarshal(a.body, &resp) != nil || resp.Partner == nil || resp.Partner.ID != "fake-pull" {
		t.Fatalf("pay = %d %s, want 201 naming partner fake-pull", a.status, a.body)
	}
	if n := len(fake.Calls("pay")); n != 0 {
		t.Fatalf("the pull rail was sent %d payments, want none: the money came to it", n)
	}
	if records {
		rec, err := h.Srv.Store().Record(t.Context(), "fake-pull", railtest.OfferKind, tranID)
		if err != nil || rec.Retailer != "shop-1" || rec.Version != 2 || string(rec.Data) != `{"state":"paid"}` {
			t.Fatalf("the offer's record = %+v, %v; want shop-1's, paid, at version 2", rec, err)
		}
	}
	if r := h.Post(t, "/qr/v1/payments/reversals", ShopUser, ShopPass, reversal(req.ID, wire.ReasonCancelled)); r.status != http.StatusAccepted {
		t.Fatalf("reversal = %d %s", r.status, r.body)
	}
	h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "REVERSED")
	if refunds := fake.Calls("refund"); len(refunds) != 1 || refunds[0].Advice.Paid == nil || refunds[0].Advice.Paid.Reference != "fake-money-"+tranID {
		t.Fatalf("refunds = %+v, want one carrying the money's reference", refunds)
	}
}

// TestDevelopmentSetupDescribesItself: the development setup writes
// var/dev.json naming every listener, the CA, every credential and each
// simulated rail's simulator, which works as described.
func TestDevelopmentSetupDescribesItself(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Load("", devListeners(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	h := &Harness{T: t, Cfg: cfg, Logs: newSyncBuffer()}
	h.start(Options{DrainTimeout: 5 * time.Second})
	b, err := os.ReadFile(filepath.Join(dir, DevFileName))
	if err != nil {
		t.Fatalf("var/dev.json: %v", err)
	}
	var d DevInfo
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("var/dev.json: %v\n%s", err, b)
	}
	if d.Switch != h.Base || d.CAFile == "" || len(d.Retailers) == 0 || d.Retailers[0].Password == "" || len(d.Support) == 0 {
		t.Fatalf("dev.json = %s, want the switch %s, its CA, retailer and support credentials", b, h.Base)
	}
	var sim map[string]any
	for _, p := range d.Partners {
		if p.Rail == "electrum" {
			sim = p.Simulator
		}
	}
	if sim == nil || sim["scan"] == nil {
		t.Fatalf("dev.json partners = %+v, want the Electrum simulator described", d.Partners)
	}
	// The simulator answers where dev.json says.
	resp, err := h.Client.Get(sim["ledger"].(string))
	if err != nil {
		t.Fatalf("GET the simulator's ledger at %s: %v", sim["ledger"], err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d, want 200", sim["ledger"], resp.StatusCode)
	}
	if fi, err := os.Stat(filepath.Join(dir, DevFileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("var/dev.json mode = %v, %v; want 0600: it holds passwords", fi.Mode(), err)
	}
}
