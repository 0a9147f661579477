package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners/electrum/electrumsim"
	qrswitch "github.com/qrswitch/qrswitch/switch"
	tlsconfig "github.com/qrswitch/qrswitch/tls"
)

// harness is a whole switch on loopback over real TLS, with the Electrum
// partner simulator behind it on its own TLS server, and an embedded store
// in a temporary directory.
type harness struct {
	t      testing.TB
	cfg    *config.Config
	srv    *Server
	sim    *electrumsim.Sim
	simURL string
	base   string
	client *http.Client
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// Test credentials.
const (
	shopUser  = "shop-1"
	shopPass  = "shop-1-password"
	shop2User = "shop-2"
	shop2Pass = "shop-2-password"
	scanUser  = "wallet-a"
	scanPass  = "wallet-a-password"
	scan2User = "wallet-b"
	scan2Pass = "wallet-b-password"
	supUser   = "alice"
	supPass   = "alice-password"
	viewUser  = "victor"
	viewPass  = "victor-password"
)

type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

// startSim starts a real TLS server for the simulator and returns its base
// URL, the file of the CA that signed its certificate, and a function that
// creates the simulator behind it once the switch's URL is known.
func startSim(t testing.TB, dir string, lateAfter time.Duration) (url, caFile string, makeSim func(switchURL string, switchTLS *tls.Config) *electrumsim.Sim) {
	t.Helper()
	eph, err := tlsconfig.NewEphemeral("127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(dir, "sim-ca.pem")
	if err := os.WriteFile(caFile, eph.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	var handler atomic.Pointer[http.Handler]
	notYet := http.NotFoundHandler()
	handler.Store(&notYet)
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*handler.Load()).ServeHTTP(w, r)
	}))
	ts.TLS = eph.Server
	ts.StartTLS()
	t.Cleanup(ts.Close)
	makeSim = func(switchURL string, switchTLS *tls.Config) *electrumsim.Sim {
		s := electrumsim.New(electrumsim.Config{
			PartnerID: "wallet-a", PartnerName: "Wallet A",
			Username: "switch", Password: "switch-secret",
			LateAfter: lateAfter, SlowAfter: 300 * time.Millisecond,
			SwitchURL: switchURL, ScanUsername: scanUser, ScanPassword: scanPass,
			SwitchTLS: switchTLS,
		})
		sh := s.Handler()
		handler.Store(&sh)
		t.Cleanup(s.Close)
		return s
	}
	return ts.URL, caFile, makeSim
}

// testConfig is a development-env configuration (plaintext passwords allowed)
// with short timers, on free ports, in dir.
func testConfig(dir, simURL, simCA string) *config.Config {
	cfg := &config.Config{
		Env:            config.EnvDevelopment,
		Listen:         "127.0.0.1:0",
		AdminListen:    "127.0.0.1:0",
		DataDir:        dir,
		Store:          config.Store{URL: "sqlite://" + filepath.Join(dir, "qrswitch.db")},
		ScanWait:       config.Duration(2 * time.Second),
		EarlyScanGrace: config.OptDuration{Duration: config.Duration(time.Second), Set: true},
		QRTTL:          config.Duration(time.Minute),
		SAF: config.SAF{
			InitialInterval: config.Duration(50 * time.Millisecond),
			MaxInterval:     config.Duration(200 * time.Millisecond),
			GiveUpAfter:     config.Duration(time.Hour),
			Workers:         8,
		},
		Retailers: []config.Retailer{
			{ID: "shop-1", Username: shopUser, Password: shopPass, InstitutionID: "1234"},
			{ID: "shop-2", Username: shop2User, Password: shop2Pass, InstitutionID: "5678"},
		},
		Partners: []config.Partner{
			{ID: "wallet-a", Name: "Wallet A", Rail: "electrum", BaseURL: simURL, Username: "switch", Password: "switch-secret",
				CAFile: simCA, Timeout: config.Duration(time.Second), ScanUsername: scanUser, ScanPassword: scanPass},
			{ID: "wallet-b", Name: "Wallet B", Rail: "electrum", BaseURL: simURL, Username: "switch", Password: "switch-secret",
				CAFile: simCA, Timeout: config.Duration(time.Second), ScanUsername: scan2User, ScanPassword: scan2Pass},
		},
		Support: []config.SupportUser{
			{Username: supUser, Password: supPass, Role: config.RoleOperator},
			{Username: viewUser, Password: viewPass, Role: config.RoleViewer},
		},
	}
	cfg.ApplyDefaults()
	return cfg
}

type harnessOption func(*config.Config, *Options)

func newHarness(t testing.TB, opts ...harnessOption) *harness {
	t.Helper()
	dir := t.TempDir()
	simURL, simCA, makeSim := startSim(t, dir, 1500*time.Millisecond)
	cfg := testConfig(dir, simURL, simCA)
	o := Options{LateWindow: 2 * time.Second, SAFPoll: 50 * time.Millisecond, DrainTimeout: 5 * time.Second}
	for _, opt := range opts {
		opt(cfg, &o)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test configuration invalid: %v", err)
	}
	h := &harness{t: t, cfg: cfg, simURL: simURL, logs: newSyncBuffer()}
	h.start(o)
	h.sim = makeSim(h.base, h.client.Transport.(*http.Transport).TLSClientConfig)
	return h
}

// start runs a server on the harness's configuration.
func (h *harness) start(o Options) {
	h.t.Helper()
	log := zerolog.New(h.logs).With().Timestamp().Logger()
	srv, err := New(context.Background(), h.cfg, log, o)
	if err != nil {
		h.t.Fatalf("server.New: %v", err)
	}
	h.srv = srv
	h.base = "https://" + srv.Addr()
	switchTLS, err := tlsconfig.NewClient(tlsconfig.ClientOptions{CAFile: srv.DevCAFile()})
	if err != nil {
		h.t.Fatal(err)
	}
	h.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: switchTLS, MaxIdleConnsPerHost: 64}}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- srv.Run(ctx) }()
	h.t.Cleanup(h.stop)
}

// stop shuts the server down gracefully and waits for it.
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("server.Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		h.t.Error("server did not stop within 20 s")
	}
}

// response is an HTTP answer read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) detail(t *testing.T) wire.ErrorDetail {
	t.Helper()
	var d wire.ErrorDetail
	if err := json.Unmarshal(r.body, &d); err != nil {
		t.Fatalf("answer %d is not an ErrorDetail: %v: %s", r.status, err, r.body)
	}
	if d.ID == "" || d.ErrorType == "" || d.ErrorMessage == "" {
		t.Fatalf("ErrorDetail lacks id, errorType or errorMessage: %s", r.body)
	}
	if n := len([]rune(d.ErrorMessage)); n > wire.MaxErrorMessage {
		t.Fatalf("errorMessage is %d characters, the interface allows %d: %q", n, wire.MaxErrorMessage, d.ErrorMessage)
	}
	return d
}

func (h *harness) do(t testing.TB, method, path, user, pass string, body any) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, h.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (h *harness) post(t testing.TB, path, user, pass string, body any) response {
	t.Helper()
	return h.do(t, http.MethodPost, path, user, pass, body)
}

// --- messages --------------------------------------------------------------

func now() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000Z") }

func originator(institution string) *wire.Originator {
	return &wire.Originator{
		Institution: wire.Institution{ID: institution, Name: "Shop"},
		TerminalID:  "T0000001",
		Merchant: wire.Merchant{
			MerchantType: "5411", MerchantID: "M00000000000001",
			MerchantName: wire.MerchantName{Name: "Corner Shop", City: "Cape Town", Region: "WC", Country: "ZA"},
		},
	}
}

func qrRequest(institution string) *wire.CreateQrCodeRequest {
	return &wire.CreateQrCodeRequest{
		ID: wire.NewID(), Time: now(), Originator: originator(institution),
		Client: &wire.Institution{ID: "pos-vendor", Name: "POS Vendor"},
	}
}

func payRequest(institution, tranID string, amount int64) *wire.PaymentRequest {
	return &wire.PaymentRequest{
		Transaction: wire.Transaction{
			ID: wire.NewID(), Time: now(), Originator: originator(institution),
			Client: &wire.Institution{ID: "pos-vendor", Name: "POS Vendor"},
			Rrn:    fmt.Sprintf("%012d", time.Now().UnixNano()%1e12),
		},
		Amounts: &wire.Amounts{RequestAmount: &wire.LedgerAmount{Amount: amount, Currency: "710"}},
		TranID:  tranID,
	}
}

func confirmation(requestID string) *wire.PaymentConfirmation {
	return &wire.PaymentConfirmation{BasicAdvice: wire.BasicAdvice{ID: wire.NewID(), RequestID: requestID, Time: now()}}
}

func reversal(requestID, reason string) *wire.PaymentReversal {
	return &wire.PaymentReversal{BasicAdvice: wire.BasicAdvice{ID: wire.NewID(), RequestID: requestID, Time: now()}, ReversalReason: reason}
}

// --- flows -------------------------------------------------------------------

// createQR issues a QR code for shop-1 and returns its tranId and payload.
func (h *harness) createQR(t testing.TB) (tranID, payload string) {
	t.Helper()
	r := h.post(t, "/qr/v1/qrCodes", shopUser, shopPass, qrRequest("1234"))
	if r.status != 201 {
		t.Fatalf("createQrCode = %d %s, want 201", r.status, r.body)
	}
	var resp wire.CreateQrCodeResponse
	if err := json.Unmarshal(r.body, &resp); err != nil {
		t.Fatal(err)
	}
	return resp.TranID, resp.QrCode
}

// payAsync sends a payment request and delivers its answer on the channel.
func (h *harness) payAsync(req *wire.PaymentRequest) <-chan response {
	ch := make(chan response, 1)
	go func() {
		enc, _ := json.Marshal(req)
		hreq, _ := http.NewRequest(http.MethodPost, h.base+"/qr/v1/payments", bytes.NewReader(enc))
		hreq.SetBasicAuth(shopUser, shopPass)
		resp, err := h.client.Do(hreq)
		if err != nil {
			ch <- response{status: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		ch <- response{status: resp.StatusCode, header: resp.Header, body: b}
	}()
	return ch
}

// waitState waits until the payment with the key is in one of the states.
func (h *harness) waitState(t testing.TB, key string, want ...string) *qrswitch.Payment {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		if p := h.payment(t, key); p != nil {
			last = string(p.State)
			for _, w := range want {
				if last == w {
					return p
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("payment %s is %q after 10 s, want one of %v", key, last, want)
	return nil
}

// payment reads a payment from the store, or through the support API when
// the switch runs in another process; nil when there is none yet.
func (h *harness) payment(t testing.TB, key string) *qrswitch.Payment {
	if h.srv != nil {
		p, err := h.srv.Store().Payment(context.Background(), key)
		if err != nil {
			return nil
		}
		return p
	}
	_, id, _ := strings.Cut(key, "/")
	r := h.do(t, http.MethodGet, "/support/v1/transactions/"+id, supUser, supPass, nil)
	var out struct{ Results []qrswitch.Story }
	if r.status != 200 || json.Unmarshal(r.body, &out) != nil || len(out.Results) == 0 {
		return nil
	}
	return out.Results[0].Payment
}

// scan has the simulator's customer app scan payload.
func (h *harness) scan(t testing.TB, payload string) *electrumsim.ScanResult {
	t.Helper()
	res, err := h.sim.Scan(context.Background(), electrumsim.ScanRequest{QrCode: payload, PartnerPaymentToken: "tok-secret-123456"})
	if err != nil {
		t.Fatalf("sim scan: %v", err)
	}
	if res.Err != nil {
		t.Fatalf("sim scan: %v", res.Err)
	}
	return res
}

// approvedPayment runs a payment to approval and returns its request.
func (h *harness) approvedPayment(t testing.TB, amount int64) *wire.PaymentRequest {
	t.Helper()
	tranID, payload := h.createQR(t)
	req := payRequest("1234", tranID, amount)
	answer := h.payAsync(req)
	h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "AWAITING_SCAN")
	if res := h.scan(t, payload); res.Status != 202 {
		t.Fatalf("scan = %d %s, want 202", res.Status, res.Body)
	}
	if r := <-answer; r.status != 201 {
		t.Fatalf("pay = %d %s, want 201", r.status, r.body)
	}
	return req
}

// scanAsync has the customer app scan payload in the background; the
// channel gets nil when the scan could not be sent.
func (h *harness) scanAsync(payload string) <-chan *electrumsim.ScanResult {
	ch := make(chan *electrumsim.ScanResult, 1)
	go func() {
		res, err := h.sim.Scan(context.Background(), electrumsim.ScanRequest{QrCode: payload})
		if err != nil || res.Err != nil {
			res = nil
		}
		ch <- res
	}()
	return ch
}

// ledgerAdvice returns the simulator's ledger entry of an advice id.
func (h *harness) ledgerAdvice(id string) (electrumsim.AdviceEntry, bool) {
	for _, a := range h.sim.Ledger().Advices {
		if a.ID == id {
			return a, true
		}
	}
	return electrumsim.AdviceEntry{}, false
}

func (h *harness) ledgerPayment(id string) (electrumsim.PaymentEntry, bool) {
	for _, p := range h.sim.Ledger().Payments {
		if p.ID == id {
			return p, true
		}
	}
	return electrumsim.PaymentEntry{}, false
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within 10 s", what)
}

func (h *harness) story(t testing.TB, key string) qrswitch.Story {
	t.Helper()
	r := h.do(t, http.MethodGet, "/support/v1/transactions/"+key, supUser, supPass, nil)
	if r.status != 200 {
		t.Fatalf("support lookup %s = %d %s", key, r.status, r.body)
	}
	var out struct{ Results []qrswitch.Story }
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Results) != 1 {
		t.Fatalf("support lookup %s gave %d stories, want 1", key, len(out.Results))
	}
	return out.Results[0]
}
