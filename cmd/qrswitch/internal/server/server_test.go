package server

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestNewFailsCleanly: when a listener cannot open, New returns the error
// and releases what it opened (the store's lock), so a retry works.
func TestNewFailsCleanly(t *testing.T) {
	dir := t.TempDir()
	simURL, simCA, _ := startSim(t, dir, 0)
	cfg := testConfig(dir, simURL, simCA)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg.AdminListen = busy.Addr().String()
	if _, err := New(context.Background(), cfg, zerolog.Nop(), Options{}); err == nil || !strings.Contains(err.Error(), "admin") {
		t.Fatalf("New with a busy admin port = %v, want an error naming the admin listener", err)
	}
	cfg.AdminListen = "127.0.0.1:0"
	srv, err := New(context.Background(), cfg, zerolog.Nop(), Options{})
	if err != nil {
		t.Fatalf("New after a failed New = %v, want success (the store must have been released)", err)
	}
	srv.close()
}

// TestListenerErrorsAreSampled: a flood of TLS handshake errors (a port
// scan) writes at most errorLogBurst lines a minute, then a count.
func TestListenerErrorsAreSampled(t *testing.T) {
	var buf strings.Builder
	l := stdLogger(zerolog.New(&buf), "https")
	for i := range 3 * errorLogBurst {
		l.Printf("http: TLS handshake error from 192.0.2.%d:4242: EOF", i)
	}
	if n := strings.Count(buf.String(), "TLS handshake error"); n != errorLogBurst {
		t.Fatalf("logged %d of %d lines, want %d", n, 3*errorLogBurst, errorLogBurst)
	}
	w := l.Writer().(*sampledWriter)
	w.mu.Lock()
	w.window = w.window.Add(-time.Minute) // the minute is over
	w.mu.Unlock()
	l.Printf("http: TLS handshake error from 192.0.2.99:4242: EOF")
	if !strings.Contains(buf.String(), `"dropped":40`) || !strings.Contains(buf.String(), "192.0.2.99") {
		t.Fatalf("after the window: %s\nwant a count of 40 dropped lines and the new line", buf.String())
	}
}
