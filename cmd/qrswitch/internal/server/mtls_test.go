package server

import (
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/internal/wire"
	tlsconfig "github.com/qrswitch/qrswitch/tls"
)

// TestPrincipalClientCertificates: a retailer or partner configured with
// client_cert must present that certificate, signed by the client CA, on top
// of its password; others keep Basic auth alone on the same listener.
func TestPrincipalClientCertificates(t *testing.T) {
	clients, err := tlsconfig.NewEphemeral("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "clients-ca.pem")
	if err := os.WriteFile(caFile, clients.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	h := NewHarness(t, func(c *config.Config, _ *Options) {
		c.TLS.ClientCAFile = caFile
		c.Retailers[0].ClientCert = "pos-1.shop-1"    // shop-1 must present it
		c.Partners[0].ClientCert = "gateway.wallet-a" // wallet-a too, on its scans
	})
	withCert := func(name string) *http.Client {
		conf := h.Client.Transport.(*http.Transport).TLSClientConfig.Clone()
		if name != "" {
			cert, err := clients.ClientCertificate(name)
			if err != nil {
				t.Fatal(err)
			}
			conf.Certificates = []tls.Certificate{cert}
		}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: conf}}
	}
	other, err := tlsconfig.NewEphemeral("127.0.0.1") // a CA the switch does not trust
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.ClientCertificate("pos-1.shop-1")
	if err != nil {
		t.Fatal(err)
	}
	foreignConf := h.Client.Transport.(*http.Transport).TLSClientConfig.Clone()
	foreignConf.Certificates = []tls.Certificate{foreign}

	scan := &wire.ScanNotification{ID: wire.NewID(), Time: now(), Partner: &wire.Institution{ID: "wallet-a", Name: "W"}, TranID: "00000000000000000000000000000000"}
	for _, tt := range []struct {
		name       string
		client     *http.Client
		path       string
		user, pass string
		body       any
		status     int
	}{
		{"retailer with its certificate", withCert("pos-1.shop-1"), "/qr/v1/qrCodes", ShopUser, ShopPass, qrRequest("1234"), 201},
		{"retailer without a certificate", withCert(""), "/qr/v1/qrCodes", ShopUser, ShopPass, qrRequest("1234"), 403},
		{"retailer with another name's certificate", withCert("pos-2.shop-1"), "/qr/v1/qrCodes", ShopUser, ShopPass, qrRequest("1234"), 403},
		{"retailer with the right password but a wrong one", withCert("pos-1.shop-1"), "/qr/v1/qrCodes", ShopUser, "nope", qrRequest("1234"), 401},
		{"retailer not asked for one", withCert(""), "/qr/v1/qrCodes", Shop2User, Shop2Pass, qrRequest("5678"), 201},
		{"partner with its certificate", withCert("gateway.wallet-a"), "/qr/v1/scans", ScanUser, ScanPass, scan, 400}, // past auth: the unknown QR is declined
		{"partner without a certificate", withCert(""), "/qr/v1/scans", ScanUser, ScanPass, scan, 403},
	} {
		t.Run(tt.name, func(t *testing.T) {
			saved := h.Client
			h.Client = tt.client
			defer func() { h.Client = saved }()
			r := h.Post(t, tt.path, tt.user, tt.pass, tt.body)
			if r.status != tt.status {
				t.Fatalf("status = %d %s, want %d", r.status, r.body, tt.status)
			}
			if tt.status >= 400 {
				r.detail(t)
			}
		})
	}
	t.Run("certificate from an untrusted CA", func(t *testing.T) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: foreignConf}}
		req, _ := http.NewRequest(http.MethodGet, h.Base+"/qr/v1/qrCodes/x/image.png", nil)
		req.SetBasicAuth(ShopUser, ShopPass)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("a certificate from an unknown CA got an answer (%d); the handshake must fail", resp.StatusCode)
		}
	})
}
