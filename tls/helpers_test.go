package tlsconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testTimeout bounds every network step of a test, so that a hang fails.
// It is a backstop for waits on events, never a verdict: long enough for a
// loaded machine.
const testTimeout = time.Minute

// whoami answers with the common name of the verified client certificate,
// or "-" when there is none.
var whoami = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	name := "-"
	if c := VerifiedClient(r.TLS); c != nil {
		name = c.Subject.CommonName
	}
	_, _ = io.WriteString(w, name)
})

// serve starts a real HTTPS server (http.Server.ServeTLS, as cmd does) with
// cfg on a loopback port and returns its address; it stops with the test.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	srv := &http.Server{
		Handler:           whoami,
		TLSConfig:         cfg,
		ReadHeaderTimeout: testTimeout,
		ReadTimeout:       testTimeout,
		WriteTimeout:      testTimeout,
		IdleTimeout:       testTimeout,
		// Refused handshakes are the point of many tests, not noise to print.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ServeTLS(ln, "", "")
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return ln.Addr().String()
}

// handshake dials addr with cfg and returns the state of the completed
// handshake.
func handshake(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: testTimeout}, Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState(), nil
}

// newClient returns an HTTP client with keep-alive connections using cfg.
func newClient(t *testing.T, cfg *tls.Config) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: testTimeout}
}

// answer is what one request saw.
type answer struct {
	body   string
	serial *big.Int // of the server certificate
	reused bool     // whether the request went over an existing connection
	proto  string
}

// get sends one GET to addr and reports what it saw.
func get(c *http.Client, addr string) (answer, error) {
	var a answer
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { a.reused = i.Reused }}
	ctx, cancel := context.WithTimeout(httptrace.WithClientTrace(context.Background(), trace), testTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/", nil)
	if err != nil {
		return a, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return a, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return a, err
	}
	if resp.StatusCode != http.StatusOK {
		return a, errors.New(resp.Status)
	}
	a.body, a.proto = string(body), resp.Proto
	a.serial = resp.TLS.PeerCertificates[0].SerialNumber
	return a, nil
}

// testAuthority returns an in-memory CA that is neither dev nor ephemeral.
func testAuthority(t *testing.T) *authority {
	t.Helper()
	a, err := newAuthority("qrswitch test CA", time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// writeLeaf issues a leaf for loopbackHosts valid from start for validity
// and writes it to certFile and keyFile.
func writeLeaf(t *testing.T, a *authority, certFile, keyFile string, start time.Time, validity time.Duration) *x509.Certificate {
	t.Helper()
	der, key, err := a.issue("localhost", loopbackHosts, start, validity)
	if err != nil {
		t.Fatal(err)
	}
	if err := writePair(certFile, keyFile, der, key); err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// writeFile writes data to dir/name and returns the path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// poolOf returns a pool holding a's certificate.
func poolOf(a *authority) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(a.cert)
	return p
}

// mustRead returns the contents of file.
func mustRead(t *testing.T, file string) []byte {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
