package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
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
	tlsconfig "github.com/qrswitch/qrswitch/tls"
)

// The one test harness for a whole switch, shared by this package's tests,
// the load tool's and the binary's: a real switch process's wiring on
// loopback over real TLS, an embedded store in a temporary directory, and
// the Electrum partner simulator on its own TLS server.

// Harness is a whole switch on loopback over real TLS, with the Electrum
// partner simulator behind it on its own TLS server, and an embedded store
// in a temporary directory.
type Harness struct {
	T   testing.TB
	Cfg *config.Config
	Srv *Server
	// Sim is the Electrum simulator of partners wallet-a and wallet-b, at
	// SimURL, its certificate signed by the CA in SimCAFile.
	Sim       *electrumsim.Sim
	SimURL    string
	SimCAFile string
	// Base is the switch's HTTPS URL; Client trusts it.
	Base   string
	Client *http.Client
	// Logs holds the switch's log lines.
	Logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// Trust returns a TLS client configuration trusting both the switch and
// the simulator.
func (h *Harness) Trust() *tls.Config {
	c := h.Client.Transport.(*http.Transport).TLSClientConfig.Clone()
	pem, err := os.ReadFile(h.SimCAFile)
	if err != nil {
		h.T.Fatal(err)
	}
	c.RootCAs = c.RootCAs.Clone()
	c.RootCAs.AppendCertsFromPEM(pem)
	return c
}

// Test credentials.
const (
	ShopUser  = "shop-1"
	ShopPass  = "shop-1-password"
	Shop2User = "shop-2"
	Shop2Pass = "shop-2-password"
	ScanUser  = "wallet-a"
	ScanPass  = "wallet-a-password"
	Scan2User = "wallet-b"
	Scan2Pass = "wallet-b-password"
	SupUser   = "alice"
	SupPass   = "alice-password"
	ViewUser  = "victor"
	ViewPass  = "victor-password"
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
			SwitchURL: switchURL, ScanUsername: ScanUser, ScanPassword: ScanPass,
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
// on free ports, in dir, with short timers where a test waits them out
// and long ones where a test must beat them.
func testConfig(dir, simURL, simCA string) *config.Config {
	cfg := &config.Config{
		Env:         config.EnvDevelopment,
		Listen:      "127.0.0.1:0",
		AdminListen: "127.0.0.1:0",
		DataDir:     dir,
		Store:       config.Store{URL: "sqlite://" + filepath.Join(dir, "qrswitch.db")},
		// Long: a test scans well within it however loaded the machine;
		// tests of a missing scan set a short one (noScanWait).
		ScanWait:       config.Duration(20 * time.Second),
		EarlyScanGrace: config.OptDuration{Duration: config.Duration(time.Second), Set: true},
		QRTTL:          config.Duration(time.Minute),
		SAF: config.SAF{
			InitialInterval: config.Duration(50 * time.Millisecond),
			MaxInterval:     config.Duration(200 * time.Millisecond),
			GiveUpAfter:     config.Duration(time.Hour),
			Workers:         8,
		},
		Retailers: []config.Retailer{
			{ID: "shop-1", Username: ShopUser, Password: ShopPass, InstitutionID: "1234"},
			{ID: "shop-2", Username: Shop2User, Password: Shop2Pass, InstitutionID: "5678"},
		},
		Partners: []config.Partner{
			{ID: "wallet-a", Name: "Wallet A", Rail: "electrum", BaseURL: simURL, Username: "switch", Password: "switch-secret",
				CAFile: simCA, Timeout: config.Duration(time.Second), ScanUsername: ScanUser, ScanPassword: ScanPass},
			{ID: "wallet-b", Name: "Wallet B", Rail: "electrum", BaseURL: simURL, Username: "switch", Password: "switch-secret",
				CAFile: simCA, Timeout: config.Duration(time.Second), ScanUsername: Scan2User, ScanPassword: Scan2Pass},
		},
		Support: []config.SupportUser{
			{Username: SupUser, Password: SupPass, Role: config.RoleOperator},
			{Username: ViewUser, Password: ViewPass, Role: config.RoleViewer},
		},
	}
	cfg.ApplyDefaults()
	return cfg
}

// HarnessOption changes the configuration or the options of a Harness's
// switch before it starts.
type HarnessOption func(*config.Config, *Options)

// NewHarness starts a switch and its simulator for one test, with short
// timers where tests wait them out (partners' timeout 1 s, late window 2 s)
// and a long scan wait (20 s, see noScanWait); the test's Cleanup stops
// them.
func NewHarness(t testing.TB, opts ...HarnessOption) *Harness {
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
	h := &Harness{T: t, Cfg: cfg, SimURL: simURL, SimCAFile: simCA, Logs: newSyncBuffer()}
	h.start(o)
	h.Sim = makeSim(h.Base, h.Client.Transport.(*http.Transport).TLSClientConfig)
	return h
}

// start runs a server on the harness's configuration.
func (h *Harness) start(o Options) {
	h.T.Helper()
	if err := h.tryStart(o); err != nil {
		h.T.Fatalf("server.New: %v", err)
	}
}

// tryStart is start, returning New's error.
func (h *Harness) tryStart(o Options) error {
	h.T.Helper()
	log := zerolog.New(h.Logs).With().Timestamp().Logger()
	srv, err := New(context.Background(), h.Cfg, log, o)
	if err != nil {
		return err
	}
	h.Srv = srv
	h.Base = "https://" + srv.Addr()
	switchTLS, err := tlsconfig.NewClient(tlsconfig.ClientOptions{CAFile: srv.DevCAFile()})
	if err != nil {
		h.T.Fatal(err)
	}
	h.Client = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{TLSClientConfig: switchTLS, MaxIdleConnsPerHost: 64}}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- srv.Run(ctx) }()
	h.T.Cleanup(h.stop)
	return nil
}

// stop shuts the server down gracefully and waits for it.
func (h *Harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.T.Errorf("server.Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		h.T.Error("server did not stop within 20 s")
	}
}

// Response is an HTTP answer read whole.
type Response struct {
	status int
	header http.Header
	body   []byte
}

func (r Response) detail(t *testing.T) wire.ErrorDetail {
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

// Do sends a request to path on the switch (or to a whole URL) and reads
// the answer.
func (h *Harness) Do(t testing.TB, method, path, user, pass string, body any) Response {
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
	url, client := h.Base+path, h.client(t)
	if strings.HasPrefix(path, "https://") || strings.HasPrefix(path, "http://") {
		url = path // another server of the setup, a simulator say
		if !strings.HasPrefix(path, h.Base+"/") {
			client = h.Client // not the switch's: its document says nothing of it
		}
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return Response{status: resp.StatusCode, header: resp.Header, body: b}
}

// checkExchanges, when set, wraps the transport of every exchange Do
// makes: this package's tests set it (contract_test.go) so that each request
// and answer is checked against the switch's OpenAPI document.
var checkExchanges func(t testing.TB, next http.RoundTripper) http.RoundTripper

// client is h.Client, its exchanges checked when checkExchanges is set
// and there is a test to fail.
func (h *Harness) client(t testing.TB) *http.Client {
	if checkExchanges == nil || t == nil {
		return h.Client
	}
	c := *h.Client
	if c.Transport == nil {
		c.Transport = http.DefaultTransport
	}
	c.Transport = checkExchanges(t, c.Transport)
	return &c
}

func (h *Harness) Post(t testing.TB, path, user, pass string, body any) Response {
	t.Helper()
	return h.Do(t, http.MethodPost, path, user, pass, body)
}
