package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/internal/wire"
	qrswitch "github.com/qrswitch/qrswitch/switch"
	tlsconfig "github.com/qrswitch/qrswitch/tls"
)

// These tests attack a whole switch over its real TLS listener: who may do
// what (authentication, throttling, tenants, roles, mutual TLS), the TLS
// policy and certificate reload, hostile clients (huge headers and bodies,
// slowloris), and a store that fails under it.

// startTuned starts a server on h's configuration like harness.start, but
// calls tune on it before it serves, and has the harness's client trust
// caFile (the development CA when empty).
func (h *Harness) startTuned(o Options, caFile string, tune func(*Server)) {
	h.T.Helper()
	log := zerolog.New(h.Logs).With().Timestamp().Logger()
	srv, err := New(context.Background(), h.Cfg, log, o)
	if err != nil {
		h.T.Fatalf("server.New: %v", err)
	}
	if tune != nil {
		tune(srv)
	}
	h.Srv = srv
	h.Base = "https://" + srv.Addr()
	if caFile == "" {
		caFile = srv.DevCAFile()
	}
	clientTLS, err := tlsconfig.NewClient(tlsconfig.ClientOptions{CAFile: caFile})
	if err != nil {
		h.T.Fatal(err)
	}
	h.Client = &http.Client{Timeout: settle, Transport: &http.Transport{TLSClientConfig: clientTLS, MaxIdleConnsPerHost: 64}}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- srv.Run(ctx) }()
	h.T.Cleanup(h.stop)
}

// newTunedHarness is newHarness with a configuration hook and startTuned.
func newTunedHarness(t *testing.T, configure func(dir string, c *config.Config), caFile func(dir string) string, tune func(*Server)) *Harness {
	t.Helper()
	dir := t.TempDir()
	simURL, simCA, makeSim := startSim(t, dir, 1500*time.Millisecond)
	cfg := testConfig(dir, simURL, simCA)
	if configure != nil {
		configure(dir, cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test configuration invalid: %v", err)
	}
	h := &Harness{T: t, Cfg: cfg, SimURL: simURL, Logs: newSyncBuffer()}
	ca := ""
	if caFile != nil {
		ca = caFile(dir)
	}
	h.startTuned(Options{LateWindow: 2 * time.Second, SAFPoll: 50 * time.Millisecond, DrainTimeout: 5 * time.Second}, ca, tune)
	h.Sim = makeSim(h.Base, h.Client.Transport.(*http.Transport).TLSClientConfig)
	return h
}

func TestPrincipalsStayInTheirLane(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	tranID, _ := h.createQR(t)
	scanMsg := &wire.ScanNotification{ID: wire.NewID(), Time: now(), Partner: &wire.Institution{ID: "wallet-a", Name: "W"}, TranID: tranID}
	ops := []struct {
		name, method, path string
		body               any
		allowed            []string // usernames admitted
	}{
		{"createQrCode", "POST", "/qr/v1/qrCodes", qrRequest("1234"), []string{ShopUser}},
		{"QR image", "GET", "/qr/v1/qrCodes/" + tranID + "/image.png", nil, []string{ShopUser}},
		{"confirm", "POST", "/qr/v1/payments/confirmations", confirmation(wire.NewID()), []string{ShopUser}},
		{"notifyScan", "POST", "/qr/v1/scans", scanMsg, []string{ScanUser}},
		{"support lookup", "GET", "/support/v1/transactions/" + tranID, nil, []string{SupUser, ViewUser}},
	}
	creds := [][2]string{{ShopUser, ShopPass}, {ScanUser, ScanPass}, {SupUser, SupPass}, {ViewUser, ViewPass}}
	for _, op := range ops {
		for _, c := range creds {
			t.Run(op.name+" as "+c[0], func(t *testing.T) {
				r := h.Do(t, op.method, op.path, c[0], c[1], op.body)
				allowed := false
				for _, u := range op.allowed {
					allowed = allowed || u == c[0]
				}
				if allowed == (r.status == http.StatusUnauthorized) {
					t.Fatalf("%s %s as %s = %d %s; admitted %v", op.method, op.path, c[0], r.status, r.body, allowed)
				}
				if !allowed && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
					t.Errorf("401 without a Basic challenge")
				}
				if !allowed {
					r.detail(t)
				}
			})
		}
		t.Run(op.name+" anonymously", func(t *testing.T) {
			if r := h.Do(t, op.method, op.path, "", "", op.body); r.status != http.StatusUnauthorized {
				t.Fatalf("%s %s without credentials = %d, want 401", op.method, op.path, r.status)
			}
		})
	}
}

// TestRetailersAreIsolated: a retailer cannot read, pay, confirm or reverse
// another retailer's QR codes or payments — the other's ids are as unknown
// as ids never issued — and nothing it tries changes them.
func TestRetailersAreIsolated(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	req := h.approvedPayment(t, 1101) // shop-1's
	key := qrswitch.PaymentKey("shop-1", req.ID)
	tranID, _ := h.createQR(t)
	conf := confirmation(req.ID)
	for _, tt := range []struct {
		name   string
		method string
		path   string
		body   any
		status int
		etype  string
	}{
		{"image of shop-1's code", "GET", "/qr/v1/qrCodes/" + tranID + "/image.png", nil, 404, wire.UnableToLocateRecord},
		{"pay shop-1's code", "POST", "/qr/v1/payments", payRequest("5678", tranID, 100), 400, wire.InvalidTranID},
		{"pay as shop-1's institution", "POST", "/qr/v1/payments", payRequest("1234", tranID, 100), 400, wire.FormatError},
		{"confirm shop-1's payment", "POST", "/qr/v1/payments/confirmations", confirmation(req.ID), 404, wire.UnableToLocateRecord},
		{"confirm under shop-1's advice id", "POST", "/qr/v1/payments/confirmations", conf, 404, wire.UnableToLocateRecord},
		{"reverse shop-1's payment", "POST", "/qr/v1/payments/reversals", reversal(req.ID, wire.ReasonCancelled), 404, wire.UnableToLocateRecord},
		{"support lookup", "GET", "/support/v1/transactions/" + req.ID, nil, 401, wire.GeneralError},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := h.Do(t, tt.method, tt.path, Shop2User, Shop2Pass, tt.body)
			if r.status != tt.status {
				t.Fatalf("shop-2: %s = %d %s, want %d", tt.name, r.status, r.body, tt.status)
			}
			if d := r.detail(t); d.ErrorType != tt.etype {
				t.Fatalf("errorType = %s, want %s", d.ErrorType, tt.etype)
			}
		})
	}
	// shop-1's payment is untouched and still its own to confirm, with the
	// advice id shop-2 tried.
	if p := h.payment(t, key); p.State != "APPROVED" {
		t.Fatalf("shop-1's payment is %s after shop-2's attempts, want APPROVED", p.State)
	}
	if r := h.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, conf); r.status != 202 {
		t.Fatalf("shop-1's confirmation = %d %s", r.status, r.body)
	}
	h.waitState(t, key, "CONFIRMED")
	for _, a := range h.Sim.Ledger().Advices {
		if a.RequestID == req.ID && a.Kind == "reversal" {
			t.Fatalf("a reversal of shop-1's payment reached the partner: %+v", a)
		}
	}
	// A tombstone shop-2 left for the id does not bar shop-1 either.
	if _, err := h.Srv.Store().Payment(t.Context(), qrswitch.PaymentKey("shop-2", req.ID)); err != nil {
		t.Fatalf("shop-2's reversal left no record of its own: %v", err)
	}
}

func TestFailedLoginsAreThrottled(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	const wrong = "wrong-Pa55word-never-logged"
	t.Run("per user", func(t *testing.T) {
		for i := range 10 {
			if r := h.Post(t, "/qr/v1/qrCodes", ShopUser, wrong, qrRequest("1234")); r.status != 401 {
				t.Fatalf("failure %d = %d, want 401", i+1, r.status)
			}
		}
		r := h.Post(t, "/qr/v1/qrCodes", ShopUser, ShopPass, qrRequest("1234"))
		if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
			t.Fatalf("the right password after 10 failures = %d (Retry-After %q), want 429 with Retry-After", r.status, r.header.Get("Retry-After"))
		}
		r.detail(t)
		// Another user is not locked out by shop-1's failures.
		if r := h.Post(t, "/qr/v1/qrCodes", Shop2User, Shop2Pass, qrRequest("5678")); r.status != 201 {
			t.Fatalf("shop-2 = %d %s, want 201", r.status, r.body)
		}
	})
	t.Run("per address", func(t *testing.T) {
		// Failures under ever new usernames from one address: the address
		// limit (4 × 10) stops them, and every user behind it.
		status := 0
		for i := range 45 {
			status = h.Post(t, "/qr/v1/qrCodes", fmt.Sprintf("guess-%d", i), wrong, qrRequest("1234")).status
		}
		if status != http.StatusTooManyRequests {
			t.Fatalf("the 45th failure from one address = %d, want 429", status)
		}
		if r := h.Post(t, "/qr/v1/qrCodes", Shop2User, Shop2Pass, qrRequest("5678")); r.status != http.StatusTooManyRequests {
			t.Fatalf("a good login from the throttled address = %d, want 429", r.status)
		}
	})
	logs := h.Logs.String()
	if !strings.Contains(logs, `"message":"authentication failed"`) || !strings.Contains(logs, `"username":"shop-1"`) || !strings.Contains(logs, `"remote":"127.0.0.1"`) {
		t.Error("failed logins are not logged with the username and address")
	}
	if strings.Contains(logs, wrong) || strings.Contains(logs, ShopPass) {
		t.Error("a password reached the log")
	}
}

// TestSupportRoles: both roles read; neither may act as a retailer or a
// partner. The operator-only actions (SAF controls, replaying dead
// letters) come with issue 7 and their tests with them.
func TestSupportRoles(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	req := h.approvedPayment(t, 1102)
	for _, u := range [][2]string{{SupUser, SupPass}, {ViewUser, ViewPass}} {
		if r := h.Do(t, "GET", "/support/v1/transactions/"+req.ID, u[0], u[1], nil); r.status != 200 {
			t.Errorf("support lookup as %s = %d, want 200", u[0], r.status)
		}
		if r := h.Post(t, "/qr/v1/payments/reversals", u[0], u[1], reversal(req.ID, wire.ReasonCancelled)); r.status != 401 {
			t.Errorf("reversal as support user %s = %d, want 401", u[0], r.status)
		}
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		if r := h.Do(t, m, "/support/v1/transactions/"+req.ID, ViewUser, ViewPass, nil); r.status != http.StatusMethodNotAllowed {
			t.Errorf("%s on a transaction as viewer = %d, want 405", m, r.status)
		}
	}
}

// clientCA is a CA of client certificates on disk.
type clientCA struct {
	ca  *tlsconfig.DevCA
	dir string
}

func newClientCA(t *testing.T, dir string) *clientCA {
	t.Helper()
	ca, err := tlsconfig.OpenDevCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &clientCA{ca: ca, dir: dir}
}

// cert issues a client certificate for name.
func (c *clientCA) cert(t *testing.T, name string) tls.Certificate {
	t.Helper()
	certFile, keyFile, err := c.ca.Issue(c.dir, name, []string{name + ".example"})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestMutualTLS: with tls.client_ca_file set, the listener asks for a
// client certificate and verifies one that is given: a certificate of that
// CA is accepted, one of another CA refused at the handshake. A client
// without one is still served (retailers share the listener and need not
// hold certificates); requiring one per principal is a design question
// (docs/reliability.md).
func TestMutualTLS(t *testing.T) {
	t.Parallel()
	var good, bad *clientCA
	h := newTunedHarness(t, func(dir string, c *config.Config) {
		good = newClientCA(t, filepath.Join(dir, "clients"))
		bad = newClientCA(t, filepath.Join(dir, "strangers"))
		c.TLS.ClientCAFile = good.ca.CertFile()
	}, nil, nil)
	base := h.Client.Transport.(*http.Transport).TLSClientConfig
	get := func(cert *tls.Certificate) (*http.Response, error) {
		c := base.Clone()
		if cert != nil {
			c.Certificates = []tls.Certificate{*cert}
		}
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: c}}
		req, _ := http.NewRequest("GET", h.Base+"/support/v1/transactions/none", nil)
		req.SetBasicAuth(ViewUser, ViewPass)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}
	pos := good.cert(t, "pos-1")
	if resp, err := get(&pos); err != nil || resp.StatusCode != 404 {
		t.Fatalf("with a certificate of the client CA: %v, %v; want served (404 for an unknown id)", resp, err)
	}
	if resp, err := get(nil); err != nil || resp.StatusCode != 404 {
		t.Fatalf("without a certificate: %v, %v; want served", resp, err)
	}
	stranger := bad.cert(t, "pos-9")
	if resp, err := get(&stranger); err == nil {
		t.Fatalf("with a certificate of another CA: served %d, want the handshake refused", resp.StatusCode)
	}
	// The handshake itself says why.
	c := base.Clone()
	c.Certificates = []tls.Certificate{stranger}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(h.Base, "https://"), c)
	if err == nil {
		_, err = conn.Read(make([]byte, 1)) // TLS 1.3: the server's verdict arrives after the client's Finished
		conn.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("handshake with a stranger's certificate: %v, want a certificate error", err)
	}
}

// TestTLSPolicy: against the running switch, old protocol versions, CBC,
// RC4, 3DES and non-forward-secret suites are refused; TLS 1.2 with an
// ECDHE AEAD suite is accepted, and TLS 1.3 is what a modern client gets.
func TestTLSPolicy(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	addr := strings.TrimPrefix(h.Base, "https://")
	roots := h.Client.Transport.(*http.Transport).TLSClientConfig.RootCAs
	dial := func(min, max uint16, suites ...uint16) (tls.ConnectionState, error) {
		c := &tls.Config{RootCAs: roots, MinVersion: min, MaxVersion: max, CipherSuites: suites}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, c)
		if err != nil {
			return tls.ConnectionState{}, err
		}
		defer conn.Close()
		return conn.ConnectionState(), nil
	}
	refused := []struct {
		name     string
		min, max uint16
		suites   []uint16
	}{
		{"TLS 1.0", tls.VersionTLS10, tls.VersionTLS10, nil},
		{"TLS 1.1", tls.VersionTLS11, tls.VersionTLS11, nil},
		{"TLS 1.2 with CBC suites only", tls.VersionTLS12, tls.VersionTLS12, []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}},
		{"TLS 1.2 with RC4 and 3DES", tls.VersionTLS12, tls.VersionTLS12, []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA, tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA}},
		{"TLS 1.2 without forward secrecy", tls.VersionTLS12, tls.VersionTLS12, []uint16{
			tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			if cs, err := dial(tt.min, tt.max, tt.suites...); err == nil {
				t.Fatalf("handshake accepted: %s, %s", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite))
			}
		})
	}
	t.Run("TLS 1.2 with ECDHE AEAD suites", func(t *testing.T) {
		for _, s := range []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256} {
			cs, err := dial(tls.VersionTLS12, tls.VersionTLS12, s)
			if err != nil || cs.CipherSuite != s {
				t.Errorf("%s: %v (negotiated %s)", tls.CipherSuiteName(s), err, tls.CipherSuiteName(cs.CipherSuite))
			}
		}
	})
	t.Run("TLS 1.3 preferred", func(t *testing.T) {
		cs, err := dial(tls.VersionTLS12, tls.VersionTLS13)
		if err != nil || cs.Version != tls.VersionTLS13 {
			t.Fatalf("a client offering 1.2 and 1.3 got %s (%v), want TLS 1.3", tls.VersionName(cs.Version), err)
		}
	})
}

// certFiles is a server certificate on disk that a test replaces.
type certFiles struct {
	ca                *tlsconfig.DevCA
	dir               string
	certFile, keyFile string
	n                 int
}

// rotate writes a new certificate in place, by rename (as certbot and
// Kubernetes do), and returns its serial.
func (c *certFiles) rotate(t *testing.T) string {
	t.Helper()
	c.n++
	dir := filepath.Join(c.dir, fmt.Sprint("issue-", c.n))
	certFile, keyFile, err := c.ca.Issue(dir, "switch", []string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(keyFile, c.keyFile); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(certFile, c.certFile); err != nil {
		t.Fatal(err)
	}
	return serialOf(t, c.certFile)
}

func serialOf(t *testing.T, certFile string) string {
	t.Helper()
	leaf, err := tls.LoadX509KeyPair(certFile, certFile[:len(certFile)-len(".pem")]+"-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(leaf.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.String()
}

// newReloadHarness runs a switch on certificate files a test rotates.
func newReloadHarness(t *testing.T) (*Harness, *certFiles) {
	var cf *certFiles
	h := newTunedHarness(t, func(dir string, c *config.Config) {
		ca, err := tlsconfig.OpenDevCA(filepath.Join(dir, "server-ca"))
		if err != nil {
			t.Fatal(err)
		}
		cf = &certFiles{ca: ca, dir: filepath.Join(dir, "server-ca"),
			certFile: filepath.Join(dir, "server-ca", "live.pem"), keyFile: filepath.Join(dir, "server-ca", "live-key.pem")}
		cf.rotate(t)
		c.TLS.CertFile, c.TLS.KeyFile = cf.certFile, cf.keyFile
	}, func(string) string { return cf.ca.CertFile() }, nil)
	return h, cf
}

// servedSerial makes a request with client and returns the serial of the
// certificate the connection carries and whether the connection was reused.
func servedSerial(t *testing.T, h *Harness, client *http.Client) (serial string, reused bool) {
	t.Helper()
	var info httptrace.GotConnInfo
	ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { info = i }})
	req, _ := http.NewRequestWithContext(ctx, "GET", h.Base+"/support/v1/transactions/none", nil)
	req.SetBasicAuth(ViewUser, ViewPass)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("lookup = %d, want 404", resp.StatusCode)
	}
	return resp.TLS.PeerCertificates[0].SerialNumber.String(), info.Reused
}

// TestCertificateReload: Server.ReloadTLS (what SIGHUP calls) serves a new
// certificate to new connections while a kept-alive connection carries on.
func TestCertificateReload(t *testing.T) {
	t.Parallel()
	h, cf := newReloadHarness(t)
	first := serialOf(t, cf.certFile)
	kept := h.Client
	if s, _ := servedSerial(t, h, kept); s != first {
		t.Fatalf("served serial %s, want %s", s, first)
	}
	second := cf.rotate(t)
	if err := h.Srv.ReloadTLS(); err != nil {
		t.Fatalf("ReloadTLS: %v", err)
	}
	if s, reused := servedSerial(t, h, kept); !reused || s != first {
		t.Fatalf("kept-alive connection after the reload: reused %v, serial %s; want the same connection, serial %s", reused, s, first)
	}
	fresh := &http.Client{Transport: &http.Transport{TLSClientConfig: kept.Transport.(*http.Transport).TLSClientConfig.Clone()}}
	if s, _ := servedSerial(t, h, fresh); s != second {
		t.Fatalf("new connection after the reload got serial %s, want %s", s, second)
	}
	// A broken file leaves the working certificate in service.
	if err := os.WriteFile(cf.certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.Srv.ReloadTLS(); err == nil {
		t.Fatal("ReloadTLS of a broken file succeeded")
	}
	fresh.CloseIdleConnections()
	if s, _ := servedSerial(t, h, fresh); s != second {
		t.Fatalf("after a failed reload new connections got serial %s, want %s still", s, second)
	}
}

// TestCertificateFileChangeReload: a certificate replaced on disk is served
// to new connections with no signal, while a kept-alive connection carries
// on. Run polls the files every tlsconfig.DefaultWatchInterval (10 s); to
// keep the suite fast the test adds a watcher of the same certificate
// source polling every 100 ms. QRSWITCH_TLS_WATCH=real waits for the
// server's own poll instead.
func TestCertificateFileChangeReload(t *testing.T) {
	t.Parallel()
	h, cf := newReloadHarness(t)
	wait := tlsconfig.DefaultWatchInterval + 5*time.Second
	if os.Getenv("QRSWITCH_TLS_WATCH") != "real" {
		ctx, stop := context.WithCancel(context.Background())
		t.Cleanup(stop)
		go h.Srv.tls.Watch(ctx, 100*time.Millisecond)
		wait = 5 * time.Second
	}
	first := serialOf(t, cf.certFile)
	kept := h.Client
	servedSerial(t, h, kept)
	second := cf.rotate(t)
	deadline := time.Now().Add(wait)
	for {
		fresh := &http.Client{Transport: &http.Transport{TLSClientConfig: kept.Transport.(*http.Transport).TLSClientConfig.Clone()}}
		s, _ := servedSerial(t, h, fresh)
		fresh.CloseIdleConnections()
		if s == second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new connections still get serial %s %s after the file changed, want %s", s, time.Since(deadline), second)
		}
		// The kept-alive connection stays up all along.
		if s, reused := servedSerial(t, h, kept); !reused || s != first {
			t.Fatalf("kept-alive connection: reused %v, serial %s", reused, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s, reused := servedSerial(t, h, kept); !reused || s != first {
		t.Fatalf("kept-alive connection after the reload: reused %v, serial %s; want it untouched", reused, s)
	}
}

// TestHostileRequests: oversized headers and bodies are refused before they
// cost anything, with an ErrorDetail where HTTP allows one.
func TestHostileRequests(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	t.Run("huge header", func(t *testing.T) {
		req, _ := http.NewRequest("POST", h.Base+"/qr/v1/qrCodes", strings.NewReader("{}"))
		req.SetBasicAuth(ShopUser, ShopPass)
		req.Header.Set("X-Padding", strings.Repeat("a", 64<<10))
		resp, err := h.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("64 KiB header = %d, want 431", resp.StatusCode)
		}
	})
	t.Run("huge chunked body", func(t *testing.T) {
		// No Content-Length: the limit holds while the body streams in.
		body := io.MultiReader(strings.NewReader(`{"id":"`), strings.NewReader(strings.Repeat("x", 1<<20)), strings.NewReader(`"}`))
		req, _ := http.NewRequest("POST", h.Base+"/qr/v1/payments", io.NopCloser(body))
		req.SetBasicAuth(ShopUser, ShopPass)
		resp, err := h.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		r := Response{status: resp.StatusCode, header: resp.Header, body: b}
		if r.status != 400 || r.detail(t).ErrorType != wire.FormatError {
			t.Fatalf("1 MiB chunked body = %d %s, want 400 FORMAT_ERROR", r.status, b)
		}
	})
	t.Run("huge request id", func(t *testing.T) {
		req, _ := http.NewRequest("GET", h.Base+"/support/v1/transactions/x", nil)
		req.Header.Set("X-Request-Id", strings.Repeat("r", 1000))
		resp, err := h.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Request-Id"); len(got) > 64 {
			t.Fatalf("a 1000-byte request id was echoed (%d bytes)", len(got))
		}
	})
}

// TestServerTimeouts: the HTTPS listener of a real configuration bounds how
// long a client may take over its headers and its body, how many header
// bytes it may send, and how long an idle connection stays.
func TestServerTimeouts(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	api := h.Srv.api
	if api.ReadHeaderTimeout <= 0 || api.ReadHeaderTimeout > 10*time.Second ||
		api.ReadTimeout <= 0 || api.ReadTimeout > time.Minute ||
		api.WriteTimeout <= 0 || api.IdleTimeout <= 0 ||
		api.MaxHeaderBytes <= 0 || api.MaxHeaderBytes > 64<<10 {
		t.Fatalf("HTTPS server: read header %s, read %s, write %s, idle %s, max header %d bytes: want all set and bounded",
			api.ReadHeaderTimeout, api.ReadTimeout, api.WriteTimeout, api.IdleTimeout, api.MaxHeaderBytes)
	}
}

// TestSlowClientsAreCutOff: a client that never finishes its handshake,
// trickles its headers (slowloris) or its body is disconnected when the
// server's timeouts pass. The switch's timeouts are shortened for the test
// (10 s for headers, 30 s for the whole request in production).
func TestSlowClientsAreCutOff(t *testing.T) {
	t.Parallel()
	const headerTimeout, readTimeout = 400 * time.Millisecond, time.Second
	h := newTunedHarness(t, nil, nil, func(s *Server) {
		s.api.ReadHeaderTimeout, s.api.ReadTimeout = headerTimeout, readTimeout
	})
	addr := strings.TrimPrefix(h.Base, "https://")
	tlsConf := h.Client.Transport.(*http.Transport).TLSClientConfig.Clone()
	tlsConf.NextProtos = []string{"http/1.1"}
	// cutOff runs a client that writes chunk every tick for 8 s and reports
	// how long the server let it.
	cutOff := func(t *testing.T, conn net.Conn, start []byte, chunk []byte) time.Duration {
		t.Helper()
		defer conn.Close()
		begin := time.Now()
		closed := make(chan struct{})
		go func() {
			io.Copy(io.Discard, conn) // returns when the server closes
			close(closed)
		}()
		if _, err := conn.Write(start); err != nil {
			return time.Since(begin)
		}
		for time.Since(begin) < 8*time.Second {
			select {
			case <-closed:
				return time.Since(begin)
			case <-time.After(100 * time.Millisecond):
			}
			if chunk != nil {
				if _, err := conn.Write(chunk); err != nil {
					return time.Since(begin)
				}
			}
		}
		t.Fatal("the server kept a trickling client for 8 s")
		return 0
	}
	t.Run("never handshakes", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if took := cutOff(t, conn, nil, nil); took > headerTimeout+time.Second {
			t.Fatalf("a silent client was kept %s, want about %s", took, headerTimeout)
		}
	})
	t.Run("trickles its headers", func(t *testing.T) {
		conn, err := tls.Dial("tcp", addr, tlsConf)
		if err != nil {
			t.Fatal(err)
		}
		took := cutOff(t, conn, []byte("POST /qr/v1/payments HTTP/1.1\r\nHost: switch\r\n"), []byte("X-Slow: 1\r\n"))
		if took > headerTimeout+time.Second {
			t.Fatalf("a slowloris client was kept %s, want about %s", took, headerTimeout)
		}
	})
	t.Run("trickles its body", func(t *testing.T) {
		conn, err := tls.Dial("tcp", addr, tlsConf)
		if err != nil {
			t.Fatal(err)
		}
		auth := "Basic " + basic(ShopUser, ShopPass)
		start := "POST /qr/v1/payments HTTP/1.1\r\nHost: switch\r\nAuthorization: " + auth +
			"\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
		took := cutOff(t, conn, []byte(start), []byte(" "))
		if took > readTimeout+time.Second {
			t.Fatalf("a client trickling its body was kept %s, want about %s", took, readTimeout)
		}
	})
	// The switch still serves everyone else.
	if r := h.Post(t, "/qr/v1/qrCodes", ShopUser, ShopPass, qrRequest("1234")); r.status != 201 {
		t.Fatalf("createQrCode after the slow clients = %d", r.status)
	}
}

func basic(user, pass string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, pass)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

// TestStoreFailureAnswers503: when the store fails, the switch answers 503
// UPSTREAM_UNAVAILABLE to a request — never a pretend success — and 500 to
// an advice, which the interface has the POS repeat (a 503 would be final,
// and the partner would never capture or release the funds); it logs the
// cause the ErrorDetail does not show.
func TestStoreFailureAnswers503(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	req := h.approvedPayment(t, 1103)
	if err := h.Srv.Store().Close(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path      string
		body      any
		status    int
		errorType string
	}{
		{"/qr/v1/qrCodes", qrRequest("1234"), http.StatusServiceUnavailable, wire.UpstreamUnavailable},
		{"/qr/v1/payments/confirmations", confirmation(req.ID), http.StatusInternalServerError, wire.GeneralError},
		{"/qr/v1/payments/reversals", reversal(wire.NewID(), wire.ReasonTimeout), http.StatusInternalServerError, wire.GeneralError},
	} {
		r := h.Post(t, tt.path, ShopUser, ShopPass, tt.body)
		if r.status != tt.status || r.detail(t).ErrorType != tt.errorType {
			t.Errorf("POST %s with the store down = %d %s, want %d %s", tt.path, r.status, r.body, tt.status, tt.errorType)
		}
	}
	res, err := http.Get("http://" + h.Srv.AdminAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz with the store down = %d, want 503", res.StatusCode)
	}
	n := 0
	sc := bufio.NewScanner(strings.NewReader(h.Logs.String()))
	for sc.Scan() {
		var line struct {
			Message, Error string
			Status         int
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "request failed" && (line.Status == 503 || line.Status == 500) && strings.Contains(line.Error, "closed") {
			n++
		}
	}
	if n < 3 {
		t.Errorf("%d of 3 storage failures are logged with their cause", n)
	}
}

// TestPanicsAreContained: a handler that panics answers 500 with an
// ErrorDetail, is logged and counted in the metrics, and the switch goes on
// serving. A route that panics is added to the real router for the test.
func TestPanicsAreContained(t *testing.T) {
	t.Parallel()
	h := newTunedHarness(t, nil, nil, func(s *Server) {
		s.api.Handler.(*gin.Engine).GET("/test/panic", func(*gin.Context) { panic("boom") })
	})
	r := h.Do(t, "GET", "/test/panic", "", "", nil)
	if r.status != http.StatusInternalServerError || r.detail(t).ErrorType != wire.GeneralError {
		t.Fatalf("panicking handler = %d %s, want 500 GENERAL_ERROR", r.status, r.body)
	}
	if strings.Contains(string(r.body), "boom") {
		t.Fatalf("the panic value reached the client: %s", r.body)
	}
	if !strings.Contains(h.Logs.String(), `"message":"handler panicked"`) {
		t.Error("the panic was not logged")
	}
	res, err := http.Get("http://" + h.Srv.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(metrics), `qrswitch_http_panics_total{route="/test/panic"} 1`) {
		t.Errorf("the panic is not counted in /metrics")
	}
	if r := h.Post(t, "/qr/v1/qrCodes", ShopUser, ShopPass, qrRequest("1234")); r.status != 201 {
		t.Fatalf("createQrCode after the panic = %d", r.status)
	}
}
