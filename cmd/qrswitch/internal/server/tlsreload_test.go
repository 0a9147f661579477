package server

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	tlsconfig "github.com/qrswitch/qrswitch/tls"
)

// TestReloadIntervalConfigured: with tls.reload_interval set, the server's
// own watcher (no SIGHUP, no extra watcher) serves a certificate rotated on
// disk to new connections. The test waits for that event — a new
// connection carrying the new serial — and takes about the configured
// interval; the deadline is only a backstop.
func TestReloadIntervalConfigured(t *testing.T) {
	t.Parallel()
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
		c.TLS.ReloadInterval = config.Duration(50 * time.Millisecond)
	}, func(string) string { return cf.ca.CertFile() }, nil)
	first := serialOf(t, cf.certFile)
	if s, _ := servedSerial(t, h, h.Client); s != first {
		t.Fatalf("served serial %s, want %s", s, first)
	}
	second := cf.rotate(t)
	start := time.Now()
	backstop := time.After(time.Minute)
	for {
		fresh := &http.Client{Transport: &http.Transport{TLSClientConfig: h.Client.Transport.(*http.Transport).TLSClientConfig.Clone()}}
		s, _ := servedSerial(t, h, fresh)
		fresh.CloseIdleConnections()
		if s == second {
			break
		}
		if s != first {
			t.Fatalf("new connection got serial %s, want %s or, once reloaded, %s", s, first, second)
		}
		select {
		case <-backstop:
			t.Fatalf("new connections still get serial %s a minute after the files changed, want %s", s, second)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Logf("rotated certificate served after %s (reload_interval 50ms)", time.Since(start).Round(time.Millisecond))
}
