package tlsconfig

import (
	"crypto/tls"
	"slices"
	"testing"
)

// TestPolicy dials a hardened server with clients of every vintage. Each
// client is also run against a control server with Go's permissive settings
// and the same certificate: a refusal by the hardened server then proves the
// policy refused, not that the client could not speak at all.
func TestPolicy(t *testing.T) {
	e, err := NewEphemeral()
	if err != nil {
		t.Fatal(err)
	}
	hardened := serve(t, e.Server)
	control := serve(t, &tls.Config{Certificates: e.Server.Certificates, MinVersion: tls.VersionTLS10})

	tests := []struct {
		name        string
		client      func(*tls.Config)
		wantVersion uint16 // 0: the hardened server refuses
		wantSuite   uint16
		wantCurve   tls.CurveID
	}{
		{
			name:   "TLS 1.0 refused",
			client: versions(tls.VersionTLS10, tls.VersionTLS10),
		},
		{
			name:   "TLS 1.1 refused",
			client: versions(tls.VersionTLS11, tls.VersionTLS11),
		},
		{
			name: "TLS 1.2 with CBC and RSA key exchange refused",
			client: func(c *tls.Config) {
				versions(tls.VersionTLS12, tls.VersionTLS12)(c)
				c.CipherSuites = []uint16{
					tls.TLS_RSA_WITH_AES_128_CBC_SHA,
					tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
					tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
					tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
				}
			},
		},
		{
			name: "TLS 1.3 with only P-384 refused",
			client: func(c *tls.Config) {
				c.CurvePreferences = []tls.CurveID{tls.CurveP384}
			},
		},
		{
			name: "TLS 1.2 ECDHE AES-128-GCM",
			client: func(c *tls.Config) {
				versions(tls.VersionTLS12, tls.VersionTLS12)(c)
				c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
			},
			wantVersion: tls.VersionTLS12,
			wantSuite:   tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			wantCurve:   tls.X25519,
		},
		{
			name: "TLS 1.2 ECDHE ChaCha20-Poly1305 over P-256",
			client: func(c *tls.Config) {
				versions(tls.VersionTLS12, tls.VersionTLS12)(c)
				c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}
				c.CurvePreferences = []tls.CurveID{tls.CurveP256}
			},
			wantVersion: tls.VersionTLS12,
			wantSuite:   tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			wantCurve:   tls.CurveP256,
		},
		{
			name:        "TLS 1.3 and a post-quantum hybrid by default",
			client:      func(*tls.Config) {},
			wantVersion: tls.VersionTLS13,
			wantCurve:   tls.X25519MLKEM768,
		},
		{
			name: "TLS 1.3 over X25519",
			client: func(c *tls.Config) {
				c.CurvePreferences = []tls.CurveID{tls.X25519}
			},
			wantVersion: tls.VersionTLS13,
			wantCurve:   tls.X25519,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.Client.Clone()
			// A plain client, not one Harden already narrowed.
			c.CipherSuites, c.CurvePreferences = nil, nil
			tt.client(c)

			if _, err := handshake(control, c); err != nil {
				t.Fatalf("control server refused the client: %v; the test proves nothing", err)
			}
			cs, err := handshake(hardened, c)
			if tt.wantVersion == 0 {
				if err == nil {
					t.Fatalf("handshake succeeded with %s %s, want refused",
						tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite))
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v, want %s", err, tls.VersionName(tt.wantVersion))
			}
			if cs.Version != tt.wantVersion {
				t.Errorf("version = %s, want %s", tls.VersionName(cs.Version), tls.VersionName(tt.wantVersion))
			}
			if tt.wantSuite != 0 && cs.CipherSuite != tt.wantSuite {
				t.Errorf("suite = %s, want %s", tls.CipherSuiteName(cs.CipherSuite), tls.CipherSuiteName(tt.wantSuite))
			}
			if cs.CurveID != tt.wantCurve {
				t.Errorf("key exchange = %s, want %s", cs.CurveID, tt.wantCurve)
			}
		})
	}
}

func versions(lo, hi uint16) func(*tls.Config) {
	return func(c *tls.Config) { c.MinVersion, c.MaxVersion = lo, hi }
}

func TestHarden(t *testing.T) {
	tests := []struct {
		name string
		in   uint16
		want uint16
	}{
		{"unset raised", 0, tls.VersionTLS12},
		{"TLS 1.0 raised", tls.VersionTLS10, tls.VersionTLS12},
		{"TLS 1.3 kept", tls.VersionTLS13, tls.VersionTLS13},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &tls.Config{MinVersion: tt.in, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}}
			Harden(c)
			if c.MinVersion != tt.want {
				t.Errorf("MinVersion = %s, want %s", tls.VersionName(c.MinVersion), tls.VersionName(tt.want))
			}
			if !slices.Equal(c.CipherSuites, cipherSuites) {
				t.Errorf("CipherSuites = %v, want %v", c.CipherSuites, cipherSuites)
			}
			for _, id := range c.CipherSuites {
				if slices.ContainsFunc(tls.InsecureCipherSuites(), func(s *tls.CipherSuite) bool { return s.ID == id }) {
					t.Errorf("suite %s is in tls.InsecureCipherSuites", tls.CipherSuiteName(id))
				}
			}
		})
	}
}

func TestHTTP2(t *testing.T) {
	e, err := NewEphemeral()
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, e.Server)
	a, err := get(newClient(t, e.Client), addr)
	if err != nil {
		t.Fatal(err)
	}
	if a.proto != "HTTP/2.0" {
		t.Errorf("protocol = %s, want HTTP/2.0 (net/http refuses h2 when a required suite is missing)", a.proto)
	}
}
