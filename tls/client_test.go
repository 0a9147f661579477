package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNewClient calls a server holding a dev certificate for localhost,
// 127.0.0.1 and ::1 with partner client configs.
func TestNewClient(t *testing.T) {
	dir := t.TempDir()
	dev, err := OpenDevCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := dev.Issue(dir, "server", nil)
	if err != nil {
		t.Fatal(err)
	}
	clientCert, clientKey, err := dev.Issue(dir, "switch-client", []string{"switch-client"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(ServerOptions{CertFile: certFile, KeyFile: keyFile, ClientCAFile: dev.CertFile(), ClientAuth: ClientAuthRequire}, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srv.Config())

	other, err := NewEphemeral()
	if err != nil {
		t.Fatal(err)
	}
	otherCA := writeFile(t, dir, "other-ca.pem", other.CAPEM)

	unknownAuthority := func(err error) bool { return errors.As(err, new(x509.UnknownAuthorityError)) }
	wrongHost := func(err error) bool { return errors.As(err, new(x509.HostnameError)) }
	tests := []struct {
		name    string
		o       ClientOptions
		wantErr func(error) bool // nil: the call succeeds
	}{
		{name: "dev CA file", o: ClientOptions{CAFile: dev.CertFile()}},
		{name: "server name verified instead of the IP", o: ClientOptions{CAFile: dev.CertFile(), ServerName: "localhost"}},
		{name: "server name not in the certificate", o: ClientOptions{CAFile: dev.CertFile(), ServerName: "partner.example"}, wantErr: wrongHost},
		{name: "another CA file", o: ClientOptions{CAFile: otherCA}, wantErr: unknownAuthority},
		// System roots never hold the dev CA; where the machine has no roots
		// at all the error differs, so any error will do.
		{name: "system roots", o: ClientOptions{}, wantErr: func(err error) bool { return err != nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.CertFile, tt.o.KeyFile = clientCert, clientKey
			cfg, err := NewClient(tt.o)
			if err != nil {
				t.Fatalf("NewClient() = %v, want nil", err)
			}
			a, err := get(newClient(t, cfg), addr)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("request: %v, want success", err)
			case tt.wantErr == nil && a.body != "switch-client":
				t.Errorf("server saw client %q, want %q", a.body, "switch-client")
			case tt.wantErr != nil && !tt.wantErr(err):
				t.Errorf("request error = %v, want a refusal of the server certificate", err)
			}
		})
	}
}

func TestNewClientOptions(t *testing.T) {
	dir := t.TempDir()
	ca := testAuthority(t)
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "c-key.pem")
	writeLeaf(t, ca, certFile, keyFile, time.Now(), time.Hour)
	caFile := writeFile(t, dir, "ca.pem", encodeCert(ca.cert.Raw))
	bundle := writeFile(t, dir, "bundle.pem", append(encodeCert(ca.cert.Raw), mustRead(t, certFile)...))
	keyAsCA := writeFile(t, dir, "key.pem", mustRead(t, keyFile))
	damaged := writeFile(t, dir, "damaged.pem", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	empty := writeFile(t, dir, "empty.pem", nil)

	tests := []struct {
		name    string
		o       ClientOptions
		wantErr string
	}{
		{name: "nothing", o: ClientOptions{}},
		{name: "CA bundle", o: ClientOptions{CAFile: bundle}},
		{name: "client certificate", o: ClientOptions{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}},
		{name: "certificate without key", o: ClientOptions{CertFile: certFile}, wantErr: "go together"},
		{name: "key without certificate", o: ClientOptions{KeyFile: keyFile}, wantErr: "go together"},
		{name: "key as CA", o: ClientOptions{CAFile: keyAsCA}, wantErr: `unexpected PEM block "PRIVATE KEY"`},
		{name: "damaged CA", o: ClientOptions{CAFile: damaged}, wantErr: "parsing certificate 1"},
		{name: "empty CA", o: ClientOptions{CAFile: empty}, wantErr: "no PEM certificate"},
		{name: "missing CA", o: ClientOptions{CAFile: filepath.Join(dir, "nope.pem")}, wantErr: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := NewClient(tt.o)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewClient() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewClient() = %v, want nil", err)
			}
			if cfg.MinVersion != tls.VersionTLS12 {
				t.Errorf("MinVersion = %s, want TLS 1.2", tls.VersionName(cfg.MinVersion))
			}
			if (tt.o.CAFile == "") != (cfg.RootCAs == nil) {
				t.Errorf("RootCAs set = %v, want %v (system roots only without a CA file)", cfg.RootCAs != nil, tt.o.CAFile != "")
			}
		})
	}
}

func TestClientFromPEM(t *testing.T) {
	e, err := NewEphemeral()
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewEphemeral()
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, e.Server)

	tests := []struct {
		name   string
		caPEM  []byte
		wantOK bool
	}{
		{"server's CA", e.CAPEM, true},
		{"another CA", other.CAPEM, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ClientFromPEM(tt.caPEM)
			if err != nil {
				t.Fatalf("ClientFromPEM() = %v", err)
			}
			_, err = handshake(addr, cfg)
			if (err == nil) != tt.wantOK {
				t.Errorf("handshake error = %v, want success %v", err, tt.wantOK)
			}
		})
	}
	if _, err := ClientFromPEM([]byte("garbage")); err == nil {
		t.Error("ClientFromPEM(garbage) = nil error, want an error")
	}
}
