package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners/electrum/electrumsim"
	tlsconfig "github.com/qrswitch/qrswitch/tls"
)

// partnersimOutput is an io.Writer safe to read while runPartnersim writes.
type partnersimOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *partnersimOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *partnersimOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

var partnersimListening = regexp.MustCompile(`listening on (https://\S+);`)

func TestPartnersim(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr partnersimOutput
	done := make(chan error, 1)
	go func() {
		done <- runPartnersim(ctx, []string{
			"--listen", "127.0.0.1:0", "--data-dir", dir, "--late-after", "2s",
		}, &stdout, &stderr)
	}()

	var base string
	deadline := time.Now().Add(5 * time.Second)
	for base == "" {
		if m := partnersimListening.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("runPartnersim returned early: %v\nstderr: %s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listen line within 5s; stdout: %q", stdout.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(stdout.String(), electrumsim.BehaviourTable()) {
		t.Errorf("start-up output lacks the behaviour table:\n%s", stdout.String())
	}

	clientTLS, err := tlsconfig.NewClient(tlsconfig.ClientOptions{CAFile: filepath.Join(dir, "tls", "ca.pem")})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: clientTLS}}
	defer client.CloseIdleConnections()

	req := partnersimPayment(1234)
	body, _ := json.Marshal(req)
	for _, tc := range []struct {
		name       string
		user, pass string
		status     int
	}{
		{"switch's dev credentials", config.DevPartnerUsername, config.DevPartnerPassword, http.StatusCreated},
		{"duplicate", config.DevPartnerUsername, config.DevPartnerPassword, http.StatusBadRequest},
		{"no credentials", "", "", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hr, err := http.NewRequest(http.MethodPost, base+"/qr/v1/payments", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.user != "" {
				hr.SetBasicAuth(tc.user, tc.pass)
			}
			resp, err := client.Do(hr)
			if err != nil {
				t.Fatalf("pay over TLS: %v", err)
			}
			defer resp.Body.Close()
			answer, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("pay = %d %s, want %d", resp.StatusCode, answer, tc.status)
			}
			if tc.status != http.StatusCreated {
				return
			}
			var pr wire.PaymentResponse
			if err := wire.Decode(answer, &pr); err != nil {
				t.Fatalf("answer %s: %v", answer, err)
			}
			if pr.ID != req.ID || pr.Partner == nil || pr.Partner.ID != config.DevPartnerID ||
				pr.Amounts.ApprovedAmount == nil || pr.Amounts.ApprovedAmount.Amount != 1234 {
				t.Errorf("PaymentResponse = %s, want %s approved by %s for 1234", answer, req.ID, config.DevPartnerID)
			}
		})
	}

	resp, err := client.Get(base + "/sim/v1/ledger")
	if err != nil {
		t.Fatal(err)
	}
	var l electrumsim.Ledger
	err = json.NewDecoder(resp.Body).Decode(&l)
	resp.Body.Close()
	if err != nil || l.Totals.Payments != 1 || l.Totals.Approved != 1 || l.Totals.DuplicateDeliveries != 1 {
		t.Errorf("ledger totals = %+v (%v), want 1 payment approved, 1 duplicate", l.Totals, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("runPartnersim after cancel = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("runPartnersim did not stop within 5s of cancel")
	}
}

func TestPartnersimFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--cert", "only-cert.pem"},
		{"extra"},
		{"--late-after", "soon"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out partnersimOutput
			if err := runPartnersim(context.Background(), args, &out, &out); err == nil {
				t.Errorf("runPartnersim(%q) = nil, want an error", args)
			}
		})
	}
}

func partnersimPayment(amount int64) *wire.PaymentRequest {
	shop := wire.Institution{ID: config.DevRetailerInstitutionID, Name: "Demo Shop"}
	return &wire.PaymentRequest{
		Transaction: wire.Transaction{
			ID:   wire.NewID(),
			Time: time.Now().UTC().Format(time.RFC3339Nano),
			Originator: &wire.Originator{
				Institution: shop,
				TerminalID:  "TERM0001",
				Merchant: wire.Merchant{
					MerchantType: "5411",
					MerchantID:   "MERCHANT0000001",
					MerchantName: wire.MerchantName{Name: "Demo Shop", City: "Cape Town", Country: "ZA"},
				},
			},
			Client:                &shop,
			ThirdPartyIdentifiers: []wire.ThirdPartyIdentifier{},
		},
		Amounts: &wire.Amounts{RequestAmount: &wire.LedgerAmount{Amount: amount, Currency: "710"}},
		TranID:  "f82d7f64feea4f2ab24da94aaf5c2941",
	}
}
