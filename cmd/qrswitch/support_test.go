package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/server"
	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners/electrum/electrumsim"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// cliSwitch is a switch on loopback with the partner simulator behind it,
// for the support commands to talk to: the switch's test harness.
type cliSwitch struct {
	srv    *server.Server
	sim    *electrumsim.Sim
	client *http.Client
	base   string
}

func startCLISwitch(t *testing.T) *cliSwitch {
	t.Helper()
	h := server.NewHarness(t, func(c *config.Config, o *server.Options) {
		c.SAF.Workers = 4
		c.SAF.GiveUpAfter = config.Duration(300 * time.Millisecond)
		o.LateWindow = time.Second
	})
	return &cliSwitch{srv: h.Srv, sim: h.Sim, client: h.Client, base: h.Base}
}

func (c *cliSwitch) post(t *testing.T, path string, body any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, c.base+path, bytes.NewReader(b))
	req.SetBasicAuth("shop-1", "shop-1-password")
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// approved runs a payment to approval and returns its request.
func (c *cliSwitch) approved(t *testing.T, amount int64) *wire.PaymentRequest {
	t.Helper()
	orig := &wire.Originator{Institution: wire.Institution{ID: "1234", Name: "Shop"}, TerminalID: "T0000001",
		Merchant: wire.Merchant{MerchantType: "5411", MerchantID: "M00000000000001", MerchantName: wire.MerchantName{Name: "Corner Shop", City: "Cape Town", Country: "ZA"}}}
	now := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	client := &wire.Institution{ID: "pos-vendor", Name: "POS Vendor"}
	st, body := c.post(t, "/qr/v1/qrCodes", &wire.CreateQrCodeRequest{ID: wire.NewID(), Time: now, Originator: orig, Client: client})
	if st != 201 {
		t.Fatalf("createQrCode = %d %s", st, body)
	}
	var code wire.CreateQrCodeResponse
	json.Unmarshal(body, &code)
	req := &wire.PaymentRequest{Transaction: wire.Transaction{ID: wire.NewID(), Time: now, Originator: orig, Client: client, Rrn: "rrn-" + wire.NewID()[:8]},
		Amounts: &wire.Amounts{RequestAmount: &wire.LedgerAmount{Amount: amount, Currency: "710"}}, TranID: code.TranID}
	answer := make(chan int, 1)
	go func() { st, _ := c.post(t, "/qr/v1/payments", req); answer <- st }()
	key := qrswitch.PaymentKey("shop-1", req.ID)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if p, err := c.srv.Store().Payment(t.Context(), key); err == nil && p.State == "AWAITING_SCAN" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("payment request not held")
		}
	}
	if res, err := c.sim.Scan(t.Context(), electrumsim.ScanRequest{QrCode: code.QrCode}); err != nil || res.Status != 202 {
		t.Fatalf("scan: %v %+v", err, res)
	}
	if st := <-answer; st != 201 {
		t.Fatalf("pay = %d", st)
	}
	return req
}

func (c *cliSwitch) waitAdvice(t *testing.T, key string, state qrswitch.AdviceState) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if a, err := c.srv.Store().Advice(t.Context(), key); err == nil && a.State == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("advice %s not %s after 10 s", key, state)
		}
	}
}

// cli runs a qrswitch command as user and returns its output and error.
func (c *cliSwitch) cli(t *testing.T, user, pass string, args ...string) (string, error) {
	t.Helper()
	args = append(args, "--switch", c.base, "--ca", c.srv.DevCAFile(), "--user", user)
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), args, []string{"QRS_SUPPORT_PASSWORD=" + pass}, strings.NewReader(""), &stdout, &stderr)
	return stdout.String() + stderr.String(), err
}

func TestSupportCLI(t *testing.T) {
	c := startCLISwitch(t)
	req := c.approved(t, 1234)
	conf := &wire.PaymentConfirmation{BasicAdvice: wire.BasicAdvice{ID: wire.NewID(), RequestID: req.ID, Time: time.Now().UTC().Format(time.RFC3339)}}
	c.sim.SetFault(electrumsim.Fault{Operation: electrumsim.OpAdvice, Fault: electrumsim.Fault500})
	if st, body := c.post(t, "/qr/v1/payments/confirmations", conf); st != 202 {
		t.Fatalf("confirmation = %d %s", st, body)
	}
	adviceKey := "shop-1/" + conf.ID
	c.waitAdvice(t, adviceKey, qrswitch.AdviceDead)
	c.sim.ClearFaults()

	mustRun := func(user, pass string, args ...string) string {
		t.Helper()
		out, err := c.cli(t, user, pass, args...)
		if err != nil {
			t.Fatalf("qrswitch %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	t.Run("txn show", func(t *testing.T) {
		out := mustRun("victor", "victor-password", "txn", "show", req.ID)
		for _, want := range []string{"payment   shop-1/" + req.ID, "state     CONFIRMING (payment outcome: successful)", "12.34 710",
			adviceKey, "DEAD", "retailer:shop-1 --> switch", "switch --> partner:wallet-a", "pay", "201 · successful", "confirmPayment"} {
			if !strings.Contains(out, want) {
				t.Errorf("txn show lacks %q:\n%s", want, out)
			}
		}
		js := mustRun("victor", "victor-password", "txn", "show", "shop-1/"+req.ID, "--json")
		var ans struct{ Results []qrswitch.Story }
		if err := json.Unmarshal([]byte(js), &ans); err != nil || len(ans.Results) != 1 || ans.Results[0].Payment.RequestID != req.ID {
			t.Errorf("txn show --json = %v %s", err, js)
		}
	})
	t.Run("txn search", func(t *testing.T) {
		out := mustRun("victor", "victor-password", "txn", "search", "--retailer", "shop-1", "--outcome", "successful")
		if !strings.Contains(out, "CREATED (UTC)") || !strings.Contains(out, "shop-1/"+req.ID) || !strings.Contains(out, "CONFIRMING") {
			t.Errorf("txn search:\n%s", out)
		}
		if out := mustRun("victor", "victor-password", "txn", "search", "--outcome", "failed"); strings.Contains(out, req.ID) {
			t.Errorf("txn search --outcome failed finds the approved payment:\n%s", out)
		}
		js := mustRun("victor", "victor-password", "txn", "search", "--rrn", req.Rrn, "--json")
		var ans struct{ Results []qrswitch.PaymentSummary }
		if err := json.Unmarshal([]byte(js), &ans); err != nil || len(ans.Results) != 1 {
			t.Errorf("txn search --json = %v %s", err, js)
		}
	})
	t.Run("saf list and dead", func(t *testing.T) {
		out := mustRun("victor", "victor-password", "saf", "list")
		if !strings.Contains(out, "wallet-a") || !strings.Contains(out, "running") {
			t.Errorf("saf list:\n%s", out)
		}
		out = mustRun("victor", "victor-password", "saf", "dead", "wallet-a")
		if !strings.Contains(out, adviceKey) || !strings.Contains(out, "DEAD") {
			t.Errorf("saf dead wallet-a:\n%s", out)
		}
	})
	t.Run("refusals", func(t *testing.T) {
		if out, err := c.cli(t, "victor", "victor-password", "saf", "pause", "wallet-a", "--reason", "try"); err == nil || !strings.Contains(err.Error(), "403") {
			t.Errorf("saf pause as viewer = %v %s, want a 403 error", err, out)
		}
		if _, err := c.cli(t, "alice", "alice-password", "saf", "pause", "wallet-a"); err == nil || !strings.Contains(err.Error(), "--reason") {
			t.Errorf("saf pause without a reason = %v", err)
		}
		if _, err := c.cli(t, "alice", "", "saf", "list"); err == nil || !strings.Contains(err.Error(), "password") {
			t.Errorf("saf list without a password = %v", err)
		}
		if _, err := c.cli(t, "alice", "wrong", "saf", "list"); err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("saf list with a wrong password = %v", err)
		}
	})
	t.Run("pause, resume, replay", func(t *testing.T) {
		out := mustRun("alice", "alice-password", "saf", "pause", "wallet-a", "--reason", "maintenance")
		if !strings.Contains(out, "paused (by alice: maintenance)") {
			t.Errorf("saf pause: %s", out)
		}
		if out := mustRun("alice", "alice-password", "saf", "list"); !strings.Contains(out, "paused by alice: maintenance") {
			t.Errorf("saf list while paused:\n%s", out)
		}
		out = mustRun("alice", "alice-password", "saf", "replay", adviceKey, "--reason", "wallet-a is back")
		if !strings.Contains(out, "advice "+adviceKey+" is PENDING") {
			t.Errorf("saf replay: %s", out)
		}
		mustRun("alice", "alice-password", "saf", "resume", "wallet-a", "--reason", "maintenance over")
		c.waitAdvice(t, adviceKey, qrswitch.AdviceDone)
		if out := mustRun("alice", "alice-password", "txn", "show", req.ID); !strings.Contains(out, "[operator:alice]") || !strings.Contains(out, "wallet-a is back") {
			t.Errorf("txn show after replay lacks the audit entry:\n%s", out)
		}
	})
	t.Run("final", func(t *testing.T) {
		req2 := c.approved(t, 2345)
		c.sim.SetFault(electrumsim.Fault{Operation: electrumsim.OpAdvice, Fault: electrumsim.Fault500})
		conf2 := &wire.PaymentConfirmation{BasicAdvice: wire.BasicAdvice{ID: wire.NewID(), RequestID: req2.ID, Time: time.Now().UTC().Format(time.RFC3339)}}
		c.post(t, "/qr/v1/payments/confirmations", conf2)
		key := "shop-1/" + conf2.ID
		c.waitAdvice(t, key, qrswitch.AdviceDead)
		c.sim.ClearFaults()
		out := mustRun("alice", "alice-password", "saf", "final", key, "--outcome", "successful", "--reason", "wallet-a confirmed by phone")
		if !strings.Contains(out, "is DONE (successful)") {
			t.Errorf("saf final: %s", out)
		}
		if p, _ := c.srv.Store().Payment(t.Context(), qrswitch.PaymentKey("shop-1", req2.ID)); p.State != "CONFIRMED" {
			t.Errorf("payment after saf final = %s, want CONFIRMED", p.State)
		}
	})
}
