package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestEphemeralHTTPTest runs the usage documented on Ephemeral.
func TestEphemeralHTTPTest(t *testing.T) {
	e, err := NewEphemeral()
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(whoami)
	ts.TLS = e.Server
	ts.StartTLS()
	defer ts.Close()

	served := e.Server.Certificates[0].Leaf
	tests := []struct {
		name   string
		client *tls.Config
	}{
		{"Ephemeral.Client", e.Client},
		{"ClientFromPEM(CAPEM)", mustClientFromPEM(t, e.CAPEM)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := get(newClient(t, tt.client), strings.TrimPrefix(ts.URL, "https://"))
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			if a.serial.Cmp(served.SerialNumber) != 0 {
				t.Errorf("served serial %s, want the ephemeral leaf's %s (httptest replaced the certificate)", a.serial, served.SerialNumber)
			}
		})
	}
}

func TestEphemeralHosts(t *testing.T) {
	e, err := NewEphemeral("partner.test", "10.1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	leaf := e.Server.Certificates[0].Leaf
	for _, h := range []string{"partner.test", "10.1.2.3"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: e.Client.RootCAs}); err != nil {
			t.Errorf("leaf does not verify for %s: %v", h, err)
		}
	}
	if err := leaf.VerifyHostname("localhost"); err == nil {
		t.Error("leaf verifies for localhost, want only the hosts asked for")
	}

	c, err := e.ClientCertificate("pos-7")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Leaf.Verify(x509.VerifyOptions{Roots: e.Client.RootCAs, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Errorf("client certificate does not verify for client auth: %v", err)
	}
	if got := c.Leaf.Subject.CommonName; got != "pos-7" {
		t.Errorf("client certificate common name = %q, want %q", got, "pos-7")
	}
}

func mustClientFromPEM(t *testing.T, caPEM []byte) *tls.Config {
	t.Helper()
	c, err := ClientFromPEM(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
