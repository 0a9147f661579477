package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/qrswitch/qrswitch/internal/wire"
)

func hash(t *testing.T, pw string) []byte {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

type counter struct{ requests, panics atomic.Int64 }

func (c *counter) Request(string, string, int, time.Duration) { c.requests.Add(1) }
func (c *counter) Panic(string)                               { c.panics.Add(1) }

func testServer(t *testing.T, o AuthOptions, trustedProxies ...string) (*httptest.Server, *counter, *Authenticator) {
	t.Helper()
	auth, err := NewAuthenticator([]Account{
		{Username: "shop", Hash: hash(t, "shop-pw"), Principal: Principal{Kind: KindRetailer, ID: "shop-1"}},
		{Username: "wallet", Hash: hash(t, "wallet-pw"), Principal: Principal{Kind: KindPartner, ID: "wallet-a"}},
		{Username: "viewer", Hash: hash(t, "viewer-pw"), Principal: Principal{Kind: KindSupport, ID: "viewer", Role: RoleViewer}},
	}, o)
	if err != nil {
		t.Fatal(err)
	}
	obs := &counter{}
	r, err := NewRouter(Options{Logger: zerolog.Nop(), Observer: obs, TrustedProxies: trustedProxies})
	if err != nil {
		t.Fatal(err)
	}
	r.POST("/retail", auth.Require(KindRetailer), func(c *gin.Context) {
		var v struct {
			ID string `json:"id"`
		}
		if _, ok := Decode(c, &v); !ok {
			return
		}
		p, _ := PrincipalOf(c)
		JSON(c, 201, map[string]string{"id": v.ID, "principal": p.ID})
	})
	r.GET("/panic", func(*gin.Context) { panic("boom") })
	r.GET("/ops", auth.Require(KindSupport), RequireRole(RoleOperator), func(c *gin.Context) { c.Status(204) })
	srv := httptest.NewTLSServer(r)
	t.Cleanup(srv.Close)
	return srv, obs, auth
}

func call(t *testing.T, srv *httptest.Server, method, path, user, pass, body string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func errorType(t *testing.T, b []byte) string {
	t.Helper()
	var d wire.ErrorDetail
	if err := json.Unmarshal(b, &d); err != nil || d.ID == "" || d.ErrorMessage == "" {
		t.Fatalf("body is not an ErrorDetail: %s", b)
	}
	return d.ErrorType
}

func TestAuthentication(t *testing.T) {
	srv, _, _ := testServer(t, AuthOptions{})
	tests := []struct {
		name, user, pass string
		status           int
	}{
		{"good", "shop", "shop-pw", 201},
		{"wrong password", "shop", "nope", 401},
		{"unknown user", "ghost", "shop-pw", 401},
		{"no credentials", "", "", 401},
		{"another kind", "wallet", "wallet-pw", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := call(t, srv, "POST", "/retail", tt.user, tt.pass, `{"id":"x"}`)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d %s, want %d", resp.StatusCode, b, tt.status)
			}
			if tt.status == 401 {
				if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Basic realm="qrswitch"`) {
					t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
				}
				errorType(t, b)
			}
		})
	}
}

func TestVerifiedPasswordsAreCached(t *testing.T) {
	_, _, auth := testServer(t, AuthOptions{})
	if _, err := auth.Verify("shop", "shop-pw", "1.2.3.4"); err != nil {
		t.Fatal(err)
	}
	// Replace the hash with one that matches nothing: a cached password
	// must still pass without bcrypt, and a different one must fail.
	auth.accounts["shop"].Hash = hash(t, "something-else")
	if _, err := auth.Verify("shop", "shop-pw", "1.2.3.4"); err != nil {
		t.Fatalf("cached password refused: %v", err)
	}
	if _, err := auth.Verify("shop", "shop-pw2", "1.2.3.4"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("Verify(other password) = %v, want ErrBadCredentials", err)
	}
}

func TestThrottling(t *testing.T) {
	srv, _, auth := testServer(t, AuthOptions{MaxFailures: 3, Window: time.Minute})
	for i := 0; i < 3; i++ {
		if resp, _ := call(t, srv, "POST", "/retail", "shop", "bad", "{}"); resp.StatusCode != 401 {
			t.Fatalf("failure %d = %d, want 401", i+1, resp.StatusCode)
		}
	}
	resp, b := call(t, srv, "POST", "/retail", "shop", "shop-pw", `{"id":"x"}`)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("after 3 failures = %d (Retry-After %q), want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	errorType(t, b)
	// Another user from the same address is not blocked (the address limit
	// is four times the user limit).
	if resp, _ := call(t, srv, "GET", "/ops", "viewer", "viewer-pw", ""); resp.StatusCode != 403 {
		t.Fatalf("other user = %d, want 403 (authenticated, wrong role)", resp.StatusCode)
	}
	var throttled *ThrottledError
	if _, err := auth.Verify("shop", "shop-pw", "127.0.0.1"); !errors.As(err, &throttled) || throttled.RetryAfter <= 0 {
		t.Fatalf("Verify from the throttled address = %v, want *ThrottledError", err)
	}
	// The username itself is not locked: from another address the right
	// password passes.
	if _, err := auth.Verify("shop", "shop-pw", "10.0.0.1"); err != nil {
		t.Fatalf("Verify from another address = %v, want the user admitted", err)
	}
}

func TestPlumbing(t *testing.T) {
	srv, obs, _ := testServer(t, AuthOptions{})
	t.Run("panic becomes 500 ErrorDetail", func(t *testing.T) {
		resp, b := call(t, srv, "GET", "/panic", "", "", "")
		if resp.StatusCode != 500 || errorType(t, b) != wire.GeneralError {
			t.Fatalf("panic answer = %d %s", resp.StatusCode, b)
		}
		if obs.panics.Load() != 1 {
			t.Fatalf("panics counted = %d, want 1", obs.panics.Load())
		}
	})
	t.Run("oversized body", func(t *testing.T) {
		resp, b := call(t, srv, "POST", "/retail", "shop", "shop-pw", `{"id":"`+strings.Repeat("x", MaxBody)+`"}`)
		if resp.StatusCode != 400 || errorType(t, b) != wire.FormatError {
			t.Fatalf("oversized = %d %s", resp.StatusCode, b)
		}
	})
	t.Run("malformed body names the field", func(t *testing.T) {
		resp, b := call(t, srv, "POST", "/retail", "shop", "shop-pw", `{"id":5}`)
		if resp.StatusCode != 400 || errorType(t, b) != wire.FormatError || !strings.Contains(string(b), "Invalid field id") {
			t.Fatalf("malformed = %d %s", resp.StatusCode, b)
		}
	})
	t.Run("request id", func(t *testing.T) {
		req, _ := http.NewRequest("GET", srv.URL+"/nowhere", nil)
		req.Header.Set("X-Request-Id", "abc-123")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 || resp.Header.Get("X-Request-Id") != "abc-123" {
			t.Fatalf("unknown route = %d, request id %q", resp.StatusCode, resp.Header.Get("X-Request-Id"))
		}
	})
	t.Run("method not allowed", func(t *testing.T) {
		resp, b := call(t, srv, "DELETE", "/retail", "", "", "")
		if resp.StatusCode != 405 || errorType(t, b) != wire.FunctionNotSupported {
			t.Fatalf("DELETE = %d %s", resp.StatusCode, b)
		}
	})
	if obs.requests.Load() == 0 {
		t.Fatal("no request was observed")
	}
}

func TestNewAuthenticatorRefusesBadAccounts(t *testing.T) {
	for _, accs := range [][]Account{
		{{Username: "", Hash: hash(t, "x")}},
		{{Username: "a", Hash: hash(t, "x")}, {Username: "a", Hash: hash(t, "y")}},
		{{Username: "a", Hash: []byte("not bcrypt")}},
	} {
		if _, err := NewAuthenticator(accs, AuthOptions{}); err == nil {
			t.Errorf("NewAuthenticator(%v) succeeded, want an error", accs)
		}
	}
}
