package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.Write([]byte("ok\n"))
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	// An address nothing listens on: a listener opened and closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/healthz"
	ln.Close()
	for _, tt := range []struct {
		name, url string
		ok        bool
	}{
		{"healthy", srv.URL + "/healthz", true},
		{"503", srv.URL + "/readyz", false},
		{"nothing listening", closed, false},
		{"not a URL", "::", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := check(t.Context(), tt.url, 10*time.Second)
			if (err == nil) != tt.ok {
				t.Fatalf("check(%s) = %v, want ok %v", tt.url, err, tt.ok)
			}
		})
	}
}
