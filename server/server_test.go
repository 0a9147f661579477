package server

import (
	"context"
	"net"
	"strings"
	"testing"

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
