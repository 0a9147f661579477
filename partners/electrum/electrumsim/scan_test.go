package electrumsim

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
)

const (
	scanUser = "sim-wallet"
	scanPass = "sim-wallet-dev-password"
	testQR   = "00020126500010za.co.elec0132" + testTran
)

// fakeSwitch is a tiny TLS server that takes scan notifications the way
// the switch does, records them, and answers as told.
type fakeSwitch struct {
	srv *httptest.Server

	mu     sync.Mutex
	got    []wire.ScanNotification
	auth   [][2]string
	status int
	body   []byte
	delay  time.Duration
}

func newFakeSwitch(t *testing.T) *fakeSwitch {
	f := &fakeSwitch{status: http.StatusAccepted}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /qr/v1/scans", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var n wire.ScanNotification
		if err := wire.Decode(body, &n); err != nil {
			t.Errorf("switch received %s: %v", body, err)
		}
		u, p, _ := r.BasicAuth()
		f.mu.Lock()
		f.got = append(f.got, n)
		f.auth = append(f.auth, [2]string{u, p})
		status, answer, delay := f.status, f.body, f.delay
		f.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		if answer != nil {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		w.Write(answer)
	})
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

// trust returns a client config that trusts only the fake switch.
func (f *fakeSwitch) trust() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(f.srv.Certificate())
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

func (f *fakeSwitch) answer(status int, body []byte, delay time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status, f.body, f.delay = status, body, delay
}

func (f *fakeSwitch) received() ([]wire.ScanNotification, [][2]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]wire.ScanNotification(nil), f.got...), append([][2]string(nil), f.auth...)
}

func TestScan(t *testing.T) {
	sw := newFakeSwitch(t)
	e := newEnv(t, Config{
		PartnerID:    "wallet-x",
		PartnerName:  "Wallet X",
		SwitchURL:    sw.srv.URL + "/",
		ScanUsername: scanUser,
		ScanPassword: scanPass,
		SwitchTLS:    sw.trust(),
	})
	declined := mustJSON(t, wire.NewErrorDetail(wire.InvalidTranID, "No payment waiting", "", testTran))
	for _, tc := range []struct {
		name        string
		req         ScanRequest
		switchSays  int
		switchBody  []byte
		switchDelay time.Duration
		status      int
		errorType   string // the sim's own ErrorDetail, when the scan went nowhere
		sent        bool
	}{
		{"qr code and token", ScanRequest{QrCode: testQR, PartnerPaymentToken: testToken}, 202, nil, 0, 202, "", true},
		{"tranId only", ScanRequest{TranID: testTran}, 202, nil, 0, 202, "", true},
		{"qr code and matching tranId", ScanRequest{QrCode: testQR, TranID: testTran}, 202, nil, 0, 202, "", true},
		{"switch declines", ScanRequest{QrCode: testQR}, 400, declined, 0, 400, "", true},
		{"bad qr code", ScanRequest{QrCode: "000201265000"}, 0, nil, 0, 400, wire.FormatError, false},
		{"tranId not the qr code's", ScanRequest{QrCode: testQR, TranID: "other"}, 0, nil, 0, 400, wire.FormatError, false},
		{"nothing to scan", ScanRequest{}, 0, nil, 0, 400, wire.FormatError, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := sw.received()
			sw.answer(tc.switchSays, tc.switchBody, tc.switchDelay)
			r := e.do(http.MethodPost, "/sim/v1/scan", tc.req)
			if r.err != nil || r.status != tc.status {
				t.Fatalf("POST /sim/v1/scan = %d %v %s, want %d", r.status, r.err, r.body, tc.status)
			}
			if tc.errorType != "" {
				wantError(t, "scan", r, tc.status, tc.errorType)
			} else if !bytes.Equal(r.body, tc.switchBody) {
				t.Errorf("scan answered %q, want the switch's body %q passed through", r.body, tc.switchBody)
			}
			got, auth := sw.received()
			if !tc.sent {
				if len(got) != len(before) {
					t.Errorf("switch received %d notifications, want none more", len(got)-len(before))
				}
				return
			}
			if len(got) != len(before)+1 {
				t.Fatalf("switch received %d notifications, want 1", len(got)-len(before))
			}
			n, a := got[len(got)-1], auth[len(auth)-1]
			if err := n.Validate(); err != nil {
				t.Errorf("notification: %v", err)
			}
			if n.TranID != testTran || n.Partner == nil || *n.Partner != (wire.Institution{ID: "wallet-x", Name: "Wallet X"}) ||
				n.PartnerPaymentToken != tc.req.PartnerPaymentToken {
				t.Errorf("notification = %+v, want tranId %s from wallet-x with token %q", n, testTran, tc.req.PartnerPaymentToken)
			}
			if a != [2]string{scanUser, scanPass} {
				t.Errorf("switch saw Basic auth %q, want %s/%s", a, scanUser, scanPass)
			}
		})
	}
	scans := e.sim.Ledger().Scans
	var statuses []int
	for _, s := range scans {
		statuses = append(statuses, s.Status)
	}
	if want := []int{202, 202, 202, 400}; !equalInts(statuses, want) {
		t.Errorf("ledger scan statuses = %v, want %v", statuses, want)
	}
	if scans[0].PartnerPaymentToken != "****7890" || scans[1].PartnerPaymentToken != "" {
		t.Errorf("ledger scans = %+v, want the token masked", scans)
	}
}

func TestScanSwitchTooSlow(t *testing.T) {
	sw := newFakeSwitch(t)
	sw.answer(http.StatusAccepted, nil, 5*time.Second)
	e := newEnv(t, Config{SwitchURL: sw.srv.URL, SwitchTLS: sw.trust(), ScanTimeout: 100 * time.Millisecond})
	start := time.Now()
	r := e.do(http.MethodPost, "/sim/v1/scan", ScanRequest{QrCode: testQR})
	wantError(t, "scan", r, http.StatusGatewayTimeout, wire.UpstreamUnavailable)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("scan answered after %v, want about the 100ms scan timeout", d)
	}
	if s := e.sim.Ledger().Scans; len(s) != 1 || s[0].Status != 0 || s[0].Error == "" {
		t.Errorf("ledger scans = %+v, want one unanswered with the timeout's error", s)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestScanNoSwitch(t *testing.T) {
	gone := httptest.NewTLSServer(http.NotFoundHandler())
	gone.Close()
	for _, tc := range []struct {
		name      string
		url       string
		status    int
		errorType string
	}{
		{"unreachable", gone.URL, http.StatusBadGateway, wire.UpstreamUnavailable},
		{"not configured", "", http.StatusBadGateway, wire.RoutingError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{SwitchURL: tc.url})
			r := e.do(http.MethodPost, "/sim/v1/scan", ScanRequest{TranID: testTran})
			wantError(t, "scan", r, tc.status, tc.errorType)
			if r.header.Get("X-Sim-Error") == "" {
				t.Errorf("the sim's own answer has no X-Sim-Error header")
			}
			if s := e.sim.Ledger().Scans; len(s) != 1 || s[0].Status != 0 || s[0].Error == "" {
				t.Errorf("ledger scans = %+v, want one with no status and an error", s)
			}
		})
	}
}
