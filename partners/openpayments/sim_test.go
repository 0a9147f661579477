package openpayments_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/openpayments"
	"github.com/qrswitch/qrswitch/partners/railtest"
	"github.com/qrswitch/qrswitch/qr"
)

// TestSimulatorPaysQRCode: the simulator, told a QR code's payload, reads
// its incoming payment with a grant of the rail's authorisation server (a
// client known by its key), pays it over STREAM through the switch's ILP
// endpoint, and the engine hears Paid for the code.
func TestSimulatorPaysQRCode(t *testing.T) {
	host := railtest.NewHost()
	e := newEnv(t, host)
	openpayments.UseGNAP(e.rail)
	sim, err := e.rail.(partners.Simulated).Simulator(partners.SimEnv{SwitchURL: e.srv.URL,
		SwitchTLS: e.client.Transport.(*http.Transport).TLSClientConfig, Listen: "127.0.0.1:0", Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	simSrv := httptest.NewTLSServer(sim.Handler())
	t.Cleanup(simSrv.Close)

	o := &partners.OfferRequest{TranID: wire.NewID(), RetailerID: "shop-1", Amount: &wire.LedgerAmount{Amount: 4200, Currency: "840"},
		ExpiresAt: time.Now().Add(5 * time.Minute), Now: time.Now()}
	of, err := e.rail.(partners.Offerer).Offer(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.records.Commit(t.Context(), of.Records...); err != nil {
		t.Fatal(err)
	}
	payload, err := qr.Encode(&qr.Payload{Scheme: qr.SchemeEMVCo, Accounts: of.Accounts, MCC: "5411", Currency: "840", Amount: 4200, HasAmount: true,
		Country: "ZA", MerchantName: "Demo Shop", City: "Cape Town"})
	if err != nil {
		t.Fatalf("encoding the code: %v", err)
	}
	body, _ := json.Marshal(map[string]string{"qr": payload})
	resp, err := simSrv.Client().Post(simSrv.URL+"/sim/v1/pay", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Delivered uint64 `json:"delivered"`
		Error     string `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if resp.StatusCode != 200 || got.Delivered != 4200 || got.Error != "" {
		t.Fatalf("sim pay = %d %+v, want 4200 delivered", resp.StatusCode, got)
	}
	paid := host.WaitPaid(t, 1, 30*time.Second)
	if paid[0].TranID != o.TranID || paid[0].Amount.Amount != 4200 {
		t.Fatalf("Paid = %+v, want 4200 for %s", paid[0], o.TranID)
	}
	if d := sim.Describe(); !strings.HasSuffix(d["ilpEndpoint"].(string), "/op/ilp") {
		t.Fatalf("Describe = %v, want the switch's ILP endpoint", d)
	}
}
