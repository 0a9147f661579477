package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestUnknownUsersCostAsMuchAsKnownOnes: the hash an unknown username is
// checked against has the highest cost of the accounts, so a wrong
// username answers no faster than a wrong password and usernames cannot be
// found by timing.
func TestUnknownUsersCostAsMuchAsKnownOnes(t *testing.T) {
	costly, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost+2)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		accounts []Account
		want     int
	}{
		{"cheap accounts", []Account{{Username: "a", Hash: hash(t, "x")}}, bcrypt.MinCost},
		{"the costliest account", []Account{{Username: "a", Hash: hash(t, "x")}, {Username: "b", Hash: costly}}, bcrypt.MinCost + 2},
		{"no accounts", nil, bcrypt.DefaultCost},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewAuthenticator(tt.accounts, AuthOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := bcrypt.Cost(a.dummy); got != tt.want {
				t.Fatalf("unknown usernames are checked at cost %d, want %d", got, tt.want)
			}
		})
	}
}

// TestForwardedForIsNotTrusted: the throttle and the access log use the
// connection's address; an X-Forwarded-For header neither spreads one
// client's failures over many addresses nor pins them on someone else.
func TestForwardedForIsNotTrusted(t *testing.T) {
	srv, _, auth := testServer(t, AuthOptions{MaxFailures: 2, Window: time.Minute})
	// Eight failures (the address limit is four times the user limit) under
	// as many usernames, each claiming another address.
	for i := range 8 {
		req, _ := http.NewRequest("POST", srv.URL+"/retail", strings.NewReader("{}"))
		req.SetBasicAuth(fmt.Sprintf("guess-%d", i), "bad")
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i))
		req.Header.Set("X-Real-IP", fmt.Sprintf("198.51.100.%d", i))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, _ := call(t, srv, "POST", "/retail", "shop", "shop-pw", `{"id":"x"}`)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after 8 failures from this address under forged X-Forwarded-For = %d, want 429: the address limit was evaded", resp.StatusCode)
	}
	// And nobody else's address was blamed.
	var throttled *ThrottledError
	if _, err := auth.Verify("shop", "shop-pw", "203.0.113.1"); errors.As(err, &throttled) {
		t.Fatal("an address named only in X-Forwarded-For was throttled")
	}
}

// TestTrustedProxyNamesTheClient: behind a configured load balancer, the
// client's address comes from X-Forwarded-For, so its failures are counted
// against it, not against the balancer every client shares.
func TestTrustedProxyNamesTheClient(t *testing.T) {
	srv, _, auth := testServer(t, AuthOptions{MaxFailures: 2, Window: time.Minute}, "127.0.0.1")
	for i := range 8 {
		req, _ := http.NewRequest("POST", srv.URL+"/retail", strings.NewReader("{}"))
		req.SetBasicAuth(fmt.Sprintf("guess-%d", i), "bad")
		req.Header.Set("X-Forwarded-For", "203.0.113.7")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	var throttled *ThrottledError
	if _, err := auth.Verify("shop", "shop-pw", "203.0.113.7"); !errors.As(err, &throttled) {
		t.Fatalf("Verify from the forwarded client = %v, want it throttled", err)
	}
	if resp, _ := call(t, srv, "POST", "/retail", "shop", "shop-pw", `{"id":"x"}`); resp.StatusCode != http.StatusCreated {
		t.Fatalf("another client behind the same balancer = %d, want 201", resp.StatusCode)
	}
	if _, err := NewRouter(Options{TrustedProxies: []string{"not-an-address"}}); err == nil {
		t.Fatal("NewRouter accepted an invalid trusted proxy")
	}
}
