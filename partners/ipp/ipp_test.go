package ipp_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/ipp"
	"github.com/qrswitch/qrswitch/partners/ipp/ippsim"
	"github.com/qrswitch/qrswitch/partners/ipp/protocol"
	"github.com/qrswitch/qrswitch/partners/railtest"
	"github.com/qrswitch/qrswitch/qr"
	"github.com/qrswitch/qrswitch/store/sqlite"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

const (
	partnerID = "ipp"
	currency  = "840" // USD, 2 decimals
	token     = "auditor-secret"
)

// env is the rail on a real SQLite store behind a TLS server (the switch),
// and the counterpart accountant simulator behind another, each calling
// the other over HTTPS.
type env struct {
	t       *testing.T
	store   *sqlite.Store
	records partners.Records
	host    *railtest.Host
	rail    partners.Rail
	srv     *httptest.Server
	sim     *ippsim.Sim
	simSrv  *httptest.Server
	client  *http.Client
}

type envOpts struct {
	rsa    bool // the switch signs with RSA (else query verification)
	simRSA bool // the simulator signs with RSA
	extra  string
	// production builds the rail outside the development setup.
	production bool
	host       *railtest.Host
	// wrap, when set, is the Host the rail reports to, around e.host.
	wrap func(*railtest.Host) partners.Host
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	e := &env{t: t, host: o.host}
	if e.host == nil {
		e.host = railtest.NewHost()
	}
	mux := http.NewServeMux()
	e.srv = httptest.NewUnstartedServer(mux)
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	e.client = e.srv.Client()
	e.simSrv = httptest.NewUnstartedServer(nil)
	e.simSrv.StartTLS()
	t.Cleanup(e.simSrv.Close)

	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), "sqlite://"+filepath.Join(dir, "ipp.db")+"?synchronous=normal", sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.store = st
	e.records = qrswitch.RailRecords(st, partnerID)
	e.host.Records = e.records

	auditor := "token: " + token
	if o.production {
		sum := sha256.Sum256([]byte(token))
		auditor = "token_sha256: " + hex.EncodeToString(sum[:])
	}
	opts := "currency: \"840\"\nmax_skew: 5m\nauditors: [{name: audit, " + auditor + "}]\n" + o.extra
	if o.rsa {
		key, cert := writeKeyPair(t, dir, time.Now().Add(time.Hour))
		opts += fmt.Sprintf("key_file: %q\ncert_file: %q\n", key, cert)
	}
	var node yaml.Node
	if err := yaml.Unmarshal([]byte(opts), &node); err != nil {
		t.Fatal(err)
	}
	var host partners.Host = e.host
	if o.wrap != nil {
		host = o.wrap(e.host)
	}
	r, err := ipp.New(partners.Config{
		PartnerID: partnerID, Name: "IPP", Options: node.Content[0], Host: host, Records: e.records,
		Transport: e.client.Transport, PublicURL: e.srv.URL, Development: !o.production, Timeout: 10 * time.Second, Logger: zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.rail = r
	for _, rt := range r.(partners.Surface).Routes() {
		if rt.Auth != partners.AuthRail {
			t.Fatalf("route %s %s: auth %d, want AuthRail (IPP verifies)", rt.Method, rt.Path, rt.Auth)
		}
		mux.Handle(rt.Method+" "+rt.Path, rt.Handler)
	}
	simHost := strings.TrimPrefix(e.simSrv.URL, "https://")
	e.sim, err = ippsim.New(ippsim.Config{Brand: simHost + "/buyer", BaseURL: e.simSrv.URL + "/buyer",
		SwitchTLS: e.client.Transport.(*http.Transport).TLSClientConfig, Unit: "USD", RSA: o.simRSA})
	if err != nil {
		t.Fatal(err)
	}
	e.simSrv.Config.Handler = e.sim.Handler()
	t.Cleanup(e.sim.Close)
	return e
}

// writeKeyPair writes an RSA key and its self-signed certificate (made
// here with crypto/x509) as PEM files.
func writeKeyPair(t *testing.T, dir string, notAfter time.Time) (string, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "qrswitch IPP"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kf, cf := filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	os.WriteFile(cf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	return kf, cf
}

// offer offers a new code of amount minor units on the rail and commits
// its records, as the engine does.
func (e *env) offer(amount int64, expires time.Duration) (*partners.OfferRequest, *partners.Offer) {
	e.t.Helper()
	o := &partners.OfferRequest{TranID: wire.NewID(), RetailerID: "shop-1", Amount: &wire.LedgerAmount{Amount: amount, Currency: currency},
		ExpiresAt: time.Now().Add(expires), Now: time.Now()}
	of, err := e.rail.(partners.Offerer).Offer(e.t.Context(), o)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.records.Commit(e.t.Context(), of.Records...); err != nil {
		e.t.Fatal(err)
	}
	return o, of
}

func brandOf(of *partners.Offer) string { return of.Display["ippBrand"] }

// pay has the simulator pay the offer.
func (e *env) pay(of *partners.Offer, amount string) *ippsim.PayResult {
	e.t.Helper()
	res, err := e.sim.Pay(e.t.Context(), ippsim.PayRequest{To: brandOf(of), Relay: of.Reference, Amount: amount, Memo: "groceries"})
	if err != nil {
		e.t.Fatalf("the simulator paying: %v", err)
	}
	return res
}

// send posts raw bytes to the switch's accountant.
func (e *env) send(body string) *protocol.Reply {
	e.t.Helper()
	resp, err := e.client.Post(e.srv.URL+"/ipp/"+partnerID+"/accountant", "application/x-www-form-urlencoded", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep protocol.Reply
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		e.t.Fatalf("the switch's reply: %v", err)
	}
	if rep.HTTPStatus() != resp.StatusCode {
		e.t.Errorf("reply %d came with HTTP %d, want %d", rep.Code, resp.StatusCode, rep.HTTPStatus())
	}
	return &rep
}

var conformance sync.Map // rail → env

func TestPullConformance(t *testing.T) {
	railtest.RunPull(t, railtest.Pull{
		New: func(t *testing.T, host partners.Host, _ partners.Records) partners.Rail {
			e := newEnv(t, envOpts{host: host.(*railtest.Host), rsa: true, simRSA: true})
			conformance.Store(e.rail, e)
			return e.rail
		},
		PayOffer: func(t *testing.T, r partners.Rail, o *partners.OfferRequest, of *partners.Offer, repeat bool) bool {
			v, _ := conformance.Load(r)
			e := v.(*env)
			if repeat {
				last := lastOffer.load(e)
				res, err := e.sim.Send(t.Context(), brandOf(of), last)
				if err != nil {
					t.Fatal(err)
				}
				return res.Reply.Code == protocol.CodeApproved
			}
			res := e.pay(of, qr.FormatMinor(o.Amount.Amount, 2))
			lastOffer.store(e, res.Offer)
			return res.Reply.Code == protocol.CodeApproved
		},
		Currency: currency,
		Amount:   12345,
	})
}

type offers struct {
	mu sync.Mutex
	m  map[*env]string
}

func (o *offers) store(e *env, s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[*env]string{}
	}
	o.m[e] = s
}

func (o *offers) load(e *env) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.m[e]
}

var lastOffer offers

// TestOfferApproved pays a code with both schemes both ways: the switch
// verifies the payer's offer and the payer verifies the switch's decision.
func TestOfferApproved(t *testing.T) {
	for _, tt := range []struct {
		name        string
		rsa, simRSA bool
		scheme      string
	}{
		{"query both ways", false, false, protocol.SchemeQuery},
		{"rsa both ways", true, true, protocol.SchemeRSA},
		{"payer rsa, switch query", false, true, protocol.SchemeQuery},
		{"payer query, switch rsa", true, false, protocol.SchemeRSA},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOpts{rsa: tt.rsa, simRSA: tt.simRSA})
			o, of := e.offer(10000, 5*time.Minute)
			res := e.pay(of, "100.00")
			if res.Reply.Code != protocol.CodeApproved || res.Reply.Status != "Approved As-Is" {
				t.Fatalf("offer answered %+v, want 620 Approved As-Is", res.Reply)
			}
			if !res.DecisionVerified || res.Reply.Scheme != tt.scheme {
				t.Fatalf("the payer verified the switch's decision: %v (%s), scheme %s; want verified with %s", res.DecisionVerified, res.DecisionError, res.Reply.Scheme, tt.scheme)
			}
			p := e.host.WaitPaid(t, 1, 30*time.Second)[0]
			if p.TranID != o.TranID || p.Amount.Amount != 10000 || p.Payer.ID != e.sim.Brand() || p.Reference == "" {
				t.Fatalf("Paid = %+v, want code %s, 10000, payer %s", p, o.TranID, e.sim.Brand())
			}
			rep := e.reports("")
			if len(rep) != 1 || rep[0].State != protocol.StateApproved || rep[0].Evidence == nil || rep[0].VerData == "" {
				t.Fatalf("reports = %+v, want the approved record with its evidence", rep)
			}
		})
	}
}

// reports reads the reports endpoint as an auditor.
func (e *env) reports(query string) []ipp.ReportEntry {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/ipp/"+partnerID+"/reports?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Records []ipp.ReportEntry }
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&out) != nil {
		e.t.Fatalf("reports?%s = %d", query, resp.StatusCode)
	}
	return out.Records
}

// TestReplayedAndForged: a notification sent again is answered the same
// and pays nothing twice; a forged one (another key, changed amount, a
// record its accountant does not know) is refused 804 and pays nothing.
func TestReplayedAndForged(t *testing.T) {
	e := newEnv(t, envOpts{simRSA: true})
	_, of := e.offer(500, 5*time.Minute)
	res := e.pay(of, "5.00")
	for range 2 {
		if again := e.send(res.Offer); again.Code != protocol.CodeApproved || again.VerData != res.Reply.VerData {
			t.Fatalf("replayed offer answered %+v, want the same 620", again)
		}
	}
	if n := len(e.host.PaidReports()); n != 1 {
		t.Fatalf("%d payments after replays, want 1", n)
	}
	_, of2 := e.offer(500, 5*time.Minute)
	n, _ := e.sim.Offer(ippsim.PayRequest{To: brandOf(of2), Relay: of2.Reference, Amount: "5.00"})
	n.Amount = "0.05" // changed after signing
	if rep := e.send(n.Encode()); rep.Code != protocol.CodeVerification {
		t.Fatalf("tampered offer answered %+v, want 804", rep)
	}
	e.sim.SetFaults(ippsim.Faults{WrongVerData: true})
	if rep := e.pay(of2, "5.00").Reply; rep.Code != protocol.CodeVerification {
		t.Fatalf("offer with wrong ver_data answered %+v, want 804", rep)
	}
	if n := len(e.host.PaidReports()); n != 1 {
		t.Fatalf("%d payments after forgeries, want 1", n)
	}
}

// TestCodes drives every code the switch answers a notification with.
func TestCodes(t *testing.T) {
	type tc struct {
		name string
		opts envOpts
		// do returns the reply to check.
		do   func(t *testing.T, e *env) *protocol.Reply
		code protocol.Code
		// paid is how many payments the Host saw.
		paid int
	}
	offerFor := func(e *env, of *partners.Offer, edit func(p *ippsim.PayRequest)) *protocol.Reply {
		p := ippsim.PayRequest{To: brandOf(of), Relay: of.Reference, Amount: "10.00"}
		if edit != nil {
			edit(&p)
		}
		res, err := e.sim.Pay(e.t.Context(), p)
		if err != nil {
			e.t.Fatal(err)
		}
		return res.Reply
	}
	tests := []tc{
		{"620 approved", envOpts{}, func(t *testing.T, e *env) *protocol.Reply {
			_, of := e.offer(1000, time.Minute)
			return offerFor(e, of, nil)
		}, protocol.CodeApproved, 1},
		{"660 amount not the code's", envOpts{}, func(t *testing.T, e *env) *protocol.Reply {
			_, of := e.offer(1000, time.Minute)
			return offerFor(e, of, func(p *ippsim.PayRequest) { p.Amount = "9.99" })
		}, protocol.CodeVoided, 0},
		{"661 blocked", envOpts{extra: "blocked_brands: [BLOCKED]\n"}, nil, protocol.CodeBlocked, 0},
		{"663 code expired", envOpts{}, func(t *testing.T, e *env) *protocol.Reply {
			_, of := e.offer(1000, time.Millisecond)
			time.Sleep(5 * time.Millisecond)
			return offerFor(e, of, nil)
		}, protocol.CodeUnexpected, 0},
		{"663 relay used", envOpts{}, func(t *testing.T, e *env) *protocol.Reply {
			_, of := e.offer(1000, time.Minute)
			offerFor(e, of, nil)
			return offerFor(e, of, func(p *ippsim.PayRequest) { p.Memo = "second" })
		}, protocol.CodeUnexpected, 1},
		{"663 the engine has no payment waiting", envOpts{}, func(t *testing.T, e *env) *protocol.Reply {
			e.host.PaidErr = partners.ErrNotWaiting
			_, of := e.offer(1000, time.Minute)
			return offerFor(e, of, nil)
		}, protocol.CodeUnexpected, 0},
		{"800 malformed", envOpts{}, func(t *testing.T, e *env) *protocol.Reply {
			rep := e.send("ipp_version=0.1&ipp_code=600")
			if !strings.Contains(rep.Message, "ipp_status") {
				t.Errorf("800 message %q does not name ipp_status", rep.Message)
			}
			return rep
		}, protocol.CodeBadRequest, 0},
		{"801 unknown relay", envOpts{}, func(t *testing.T, e *env) *protocol.Reply {
			_, of := e.offer(1000, time.Minute)
			return offerFor(e, of, func(p *ippsim.PayRequest) { p.Relay = "nosuchrelay" })
		}, protocol.CodeInvalidRelay, 0},
		{"801 before any fetch: unknown relay from a brand nobody serves", envOpts{}, func(t *testing.T, e *env) *protocol.Reply {
			_, of := e.offer(1000, time.Minute)
			n, _ := e.sim.Offer(ippsim.PayRequest{To: brandOf(of), Relay: "nosuchrelay", Amount: "10.00"})
			n.From = "127.0.0.1:1/nobody" // a fetch of its page would answer 702
			return e.send(n.Encode())
		}, protocol.CodeInvalidRelay, 0},
		{"801 no relay", envOpts{}, func(t *testing.T, e *env) *protocol.Reply {
			_, of := e.offer(1000, time.Minute)
			return offerFor(e, of, func(p *ippsim.PayRequest) { p.Relay = "" })
		}, protocol.CodeInvalidRelay, 0},
		{"801 not our brand", envOpts{}, func(t *testing.T, e *env) *protocol.Reply {
			_, of := e.offer(1000, time.Minute)
			n, _ := e.sim.Offer(ippsim.PayRequest{To: "elsewhere.example", Relay: of.Reference, Amount: "10.00"})
			return e.send(n.Encode())
		}, protocol.CodeInvalidRelay, 0},
		{"802 relay of another brand", envOpts{}, func(t *testing.T, e *env) *protocol.Reply {
			_, of := e.offer(1000, time.Minute)
			return offerFor(e, of, func(p *ippsim.PayRequest) { p.To = strings.Replace(p.To, "/shop-1", "/shop-2", 1) })
		}, protocol.CodeInvalidCredentials, 0},
		{"804 record unknown at the payer's accountant", envOpts{}, func(t *testing.T, e *env) *protocol.Reply {
			_, of := e.offer(1000, time.Minute)
			e.sim.SetFaults(ippsim.Faults{Forget: true})
			return offerFor(e, of, nil)
		}, protocol.CodeVerification, 0},
		{"804 stale xtime", envOpts{simRSA: true}, func(t *testing.T, e *env) *protocol.Reply {
			_, of := e.offer(1000, time.Minute)
			return offerFor(e, of, func(p *ippsim.PayRequest) { p.XTime = time.Now().Add(-time.Hour).Unix() })
		}, protocol.CodeVerification, 0},
		{"812 unit", envOpts{}, func(t *testing.T, e *env) *protocol.Reply {
			_, of := e.offer(1000, time.Minute)
			return offerFor(e, of, func(p *ippsim.PayRequest) { p.Unit = "EUR" })
		}, protocol.CodeConflictUnits, 0},
		{"900 the store fails", envOpts{}, func(t *testing.T, e *env) *protocol.Reply {
			e.host.PaidErr = errors.New("database is locked")
			_, of := e.offer(1000, time.Minute)
			return offerFor(e, of, nil)
		}, protocol.CodeServerError, 0},
		{"900 the payer's accountant unreachable", envOpts{}, func(t *testing.T, e *env) *protocol.Reply {
			_, of := e.offer(1000, time.Minute)
			n, _ := e.sim.Offer(ippsim.PayRequest{To: brandOf(of), Relay: of.Reference, Amount: "10.00"})
			e.simSrv.Config.Handler = pageOnly(e, `{"accountants":["https://127.0.0.1:1/acct"]}`)
			return e.send(n.Encode())
		}, protocol.CodeServerError, 0},
		{"901 unsupported scheme", envOpts{}, func(t *testing.T, e *env) *protocol.Reply {
			_, of := e.offer(1000, time.Minute)
			n, _ := e.sim.Offer(ippsim.PayRequest{To: brandOf(of), Relay: of.Reference, Amount: "10.00"})
			n.Scheme = "https://example.com/pgp.html"
			return e.send(n.Encode())
		}, protocol.CodeSchemeUnsupported, 0},
		{"930 reversal offer to a payee", envOpts{}, func(t *testing.T, e *env) *protocol.Reply {
			_, of := e.offer(1000, time.Minute)
			n, _ := e.sim.Offer(ippsim.PayRequest{To: brandOf(of), Relay: of.Reference, Amount: "10.00"})
			n.Amount, n.RefXTime, n.RefAmount = "-10.00", n.XTime, "10.00"
			e.sim.SetFaults(ippsim.Faults{})
			return e.send(signAgain(t, e, n))
		}, protocol.CodeUserNotAuth, 0},
		{"701 payer's manifest invalid", envOpts{}, func(t *testing.T, e *env) *protocol.Reply {
			_, of := e.offer(1000, time.Minute)
			n, _ := e.sim.Offer(ippsim.PayRequest{To: brandOf(of), Relay: of.Reference, Amount: "10.00"})
			e.simSrv.Config.Handler = pageOnly(e, `{"ipp_version":"0.1"}`)
			return e.send(n.Encode())
		}, protocol.CodeManifestNotFound, 0},
		{"702 payer's page declares nothing", envOpts{}, func(t *testing.T, e *env) *protocol.Reply {
			_, of := e.offer(1000, time.Minute)
			n, _ := e.sim.Offer(ippsim.PayRequest{To: brandOf(of), Relay: of.Reference, Amount: "10.00"})
			e.simSrv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("<html></html>")) })
			return e.send(n.Encode())
		}, protocol.CodeManifestURL, 0},
		{"703 rsa without the payer's keyCert", envOpts{}, func(t *testing.T, e *env) *protocol.Reply {
			_, of := e.offer(1000, time.Minute)
			n, _ := e.sim.Offer(ippsim.PayRequest{To: brandOf(of), Relay: of.Reference, Amount: "10.00"})
			key, _ := rsa.GenerateKey(rand.Reader, 1024)
			protocol.Signer{Key: key}.Sign(n)
			return e.send(n.Encode())
		}, protocol.CodeSchemeDependency, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.code == protocol.CodeBlocked {
				e := newEnv(t, envOpts{})
				e2 := newEnv(t, envOpts{extra: "blocked_brands: [\"" + e.sim.Brand() + "\"]\n"})
				e2.sim = e.sim // e's simulator, blocked by e2's rail, knows e2's brand
				_, of := e2.offer(1000, time.Minute)
				res, err := e.sim.Pay(t.Context(), ippsim.PayRequest{To: brandOf(of), Relay: of.Reference, Amount: "10.00"})
				if err != nil || res.Reply.Code != protocol.CodeBlocked {
					t.Fatalf("offer from a blocked brand = %+v, %v; want 661", res, err)
				}
				return
			}
			e := newEnv(t, tt.opts)
			rep := tt.do(t, e)
			if rep.Code != tt.code || rep.Status != tt.code.Status() {
				t.Fatalf("reply = %+v, want %d %q", rep, tt.code, tt.code.Status())
			}
			if tt.code.Error() && rep.Message == "" {
				t.Errorf("error %d without a message", rep.Code)
			}
			if n := len(e.host.PaidReports()); n != tt.paid {
				t.Fatalf("%d payments reported, want %d", n, tt.paid)
			}
		})
	}
}

// pageOnly serves the simulator's page and the given manifest.
func pageOnly(e *env, manifest string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/manifest.json") {
			w.Write([]byte(manifest))
			return
		}
		fmt.Fprintf(w, `<meta name="ipp_manifest" content="%s/buyer/manifest.json">`, e.simSrv.URL)
	})
}

// signAgain signs an edited offer as the simulator's.
func signAgain(t *testing.T, e *env, n *protocol.Notification) string {
	t.Helper()
	if err := e.sim.Sign(n); err != nil {
		t.Fatal(err)
	}
	return n.Encode()
}

// paidAdvice pays a new code of 100.00 and returns the reversal advice
// the engine would give the rail for it.
func (e *env) paidAdvice() (*partners.Advice, *ippsim.PayResult) {
	e.t.Helper()
	_, of := e.offer(10000, 5*time.Minute)
	res := e.pay(of, "100.00")
	if res.Reply.Code != protocol.CodeApproved {
		e.t.Fatalf("paying: %+v", res.Reply)
	}
	ps := e.host.WaitPaid(e.t, 1, 30*time.Second)
	return &partners.Advice{Kind: partners.KindReversal, ID: wire.NewID(), Attempt: 1, Paid: ps[len(ps)-1]}, res
}

func (e *env) refund(a *partners.Advice) *partners.Answer {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), 5*time.Second)
	defer cancel()
	return e.rail.(partners.Refunder).Refund(ctx, a)
}

// TestReversalOffer: a POS reversal of a paid code is the switch's
// reversal offer to the payer's accountant, verified there against the
// switch's brand; the payer's approval is verified in turn, and both
// records reach the reports.
func TestReversalOffer(t *testing.T) {
	for _, tt := range []struct {
		name        string
		rsa, simRSA bool
	}{{"query both ways", false, false}, {"rsa both ways", true, true}} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOpts{rsa: tt.rsa, simRSA: tt.simRSA})
			adv, paid := e.paidAdvice()
			a := e.refund(adv)
			if a.Outcome != outcome.Successful || a.Code != "IPP 620" {
				t.Fatalf("Refund = %s %q (%v), want successful IPP 620", a.Outcome, a.Code, a.Err)
			}
			got := e.sim.Received()
			if len(got) != 1 {
				t.Fatalf("the payer received %d notifications, want 1", len(got))
			}
			rev, err := protocol.ParseNotification([]byte(got[0].Body))
			orig, _ := protocol.ParseNotification([]byte(paid.Offer))
			if err != nil || rev.Amount != "-100.00" || rev.RefAmount != "100.00" || rev.RefXTime != orig.XTime || rev.From != orig.From || rev.To != orig.To {
				t.Fatalf("reversal offer = %+v, %v; want -100.00 with ref_xtime %d and ref_amount 100.00", rev, err, orig.XTime)
			}
			if again := e.refund(adv); again.Outcome != outcome.Successful || len(e.sim.Received()) != 1 {
				t.Fatalf("a repeated reversal = %s after %d notifications, want successful without sending again", again.Outcome, len(e.sim.Received()))
			}
			if rep := e.reports(""); len(rep) != 2 {
				t.Fatalf("reports hold %d records, want the payment and its reversal", len(rep))
			}
		})
	}
}

// TestReversalRetried: while the payer's accountant is down, slow or
// answers a recoverable error, the reversal stays unknown (the
// store-and-forward queue repeats it) with the same record each time;
// once it is up, the reversal is approved. A final error fails it.
func TestReversalRetried(t *testing.T) {
	e := newEnv(t, envOpts{simRSA: true})
	adv, _ := e.paidAdvice()
	for _, f := range []ippsim.Faults{{Down: true}, {Code: protocol.CodeServerError}, {Code: protocol.CodeManifestNotFound}, {Delay: 10 * time.Second}} {
		e.sim.SetFaults(f)
		if a := e.refund(adv); a.Outcome != outcome.Unknown {
			t.Fatalf("Refund with the payer %+v = %s %q, want unknown (repeated)", f, a.Outcome, a.Code)
		}
	}
	e.sim.SetFaults(ippsim.Faults{})
	if a := e.refund(adv); a.Outcome != outcome.Successful {
		t.Fatalf("Refund with the payer up = %s %q %v, want successful", a.Outcome, a.Code, a.Err)
	}
	bodies := map[string]bool{}
	for _, r := range e.sim.Received() {
		bodies[r.Body] = true
	}
	if len(bodies) != 1 {
		t.Fatalf("the payer received %d different reversal records, want one record repeated", len(bodies))
	}

	e2 := newEnv(t, envOpts{})
	adv2, _ := e2.paidAdvice()
	e2.sim.SetFaults(ippsim.Faults{Code: protocol.CodeInsufficientFunds})
	if a := e2.refund(adv2); a.Outcome != outcome.Failed || a.Code != "IPP 907" || a.Err == nil {
		t.Fatalf("Refund answered 907 = %s %q %v, want failed with the cause for support", a.Outcome, a.Code, a.Err)
	}
}

// TestDecisionsOnReversal: a pending reversal decided later by the payer's
// notification; a reset is not acceptable (806); a decision on a voided
// reversal conflicts (809).
func TestDecisionsOnReversal(t *testing.T) {
	e := newEnv(t, envOpts{rsa: true, simRSA: true})
	adv, _ := e.paidAdvice()
	e.sim.SetFaults(ippsim.Faults{Code: protocol.CodePending})
	if a := e.refund(adv); a.Outcome != outcome.Unknown || a.Code != "IPP 610" {
		t.Fatalf("Refund answered 610 = %s %q, want unknown", a.Outcome, a.Code)
	}
	offer := e.sim.Received()[0].Body
	res, err := e.sim.Decide(t.Context(), offer, protocol.CodeReset)
	if err != nil || res.Reply.Code != protocol.CodeResetRefused {
		t.Fatalf("a reset of the reversal = %+v, %v; want 806", res, err)
	}
	res, err = e.sim.Decide(t.Context(), offer, protocol.CodeApproved)
	if err != nil || res.Reply.Code != protocol.CodeApproved {
		t.Fatalf("the payer's later approval = %+v, %v; want 620 recorded", res, err)
	}
	n := len(e.sim.Received())
	if a := e.refund(adv); a.Outcome != outcome.Successful || len(e.sim.Received()) != n {
		t.Fatalf("Refund after the approval = %s, want successful without sending", a.Outcome)
	}
	res, err = e.sim.Decide(t.Context(), offer, protocol.CodeVoided)
	if err != nil || res.Reply.Code != protocol.CodeConflictStatus {
		t.Fatalf("voiding an approved reversal = %+v, %v; want 809", res, err)
	}

	e2 := newEnv(t, envOpts{})
	adv2, _ := e2.paidAdvice()
	e2.sim.SetFaults(ippsim.Faults{Code: protocol.CodeVoided})
	if a := e2.refund(adv2); a.Outcome != outcome.Failed || a.Code != "IPP 660" {
		t.Fatalf("Refund answered 660 = %s %q, want failed", a.Outcome, a.Code)
	}
	e2.sim.SetFaults(ippsim.Faults{Code: protocol.CodeReset})
	adv3, _ := e2.paidAdvice()
	if a := e2.refund(adv3); a.Outcome != outcome.Failed || a.Code != "IPP 640" {
		t.Fatalf("Refund answered 640 = %s %q, want failed (the reset is not acceptable)", a.Outcome, a.Code)
	}
}

// TestSwitchAnswersQueries: the switch's brand page and manifest are
// discoverable, and its accountant answers verification queries about its
// own records only.
func TestSwitchAnswersQueries(t *testing.T) {
	e := newEnv(t, envOpts{})
	_, of := e.offer(1000, time.Minute)
	dir := &protocol.Directory{Client: e.client}
	m, err := dir.Manifest(t.Context(), brandOf(of))
	if err != nil || len(m.Accountants) != 1 || len(m.KeyCert) != 0 || !m.Speaks(protocol.SchemeQuery) {
		t.Fatalf("the switch brand's manifest = %+v, %v; want its accountant and query verification", m, err)
	}
	res := e.pay(of, "10.00")
	d, _ := res.Reply.Decision()
	for _, tt := range []struct {
		q    string
		want int
	}{{d.SHA1(), 200}, {strings.Repeat("a", 40), 404}, {"short", 400}} {
		resp, err := e.client.Get(m.Accountants[0] + "?ver_query=" + tt.q)
		if err != nil {
			t.Fatal(err)
		}
		var q protocol.QueryReply
		json.NewDecoder(resp.Body).Decode(&q)
		resp.Body.Close()
		if resp.StatusCode != tt.want || (tt.want == 200 && (q.Code != protocol.CodeApproved || q.Record != d.Canonical())) {
			t.Errorf("query %s = %d %+v, want %d", tt.q, resp.StatusCode, q, tt.want)
		}
	}
}

func TestReports(t *testing.T) {
	e := newEnv(t, envOpts{})
	_, of := e.offer(1000, time.Minute)
	e.pay(of, "10.00")
	_, of2 := e.offer(1000, time.Minute)
	e.pay(of2, "9.00") // voided: not reportable
	resp, err := e.client.Get(e.srv.URL + "/ipp/" + partnerID + "/reports")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("reports without a token = %d, want 401", resp.StatusCode)
	}
	now := time.Now().Unix()
	for _, tt := range []struct {
		q    string
		want int
	}{
		{"", 1}, {"status=approved", 1}, {"status=reset", 0},
		{"brand=" + e.sim.Brand(), 1}, {"brand=other.example", 0},
		{fmt.Sprintf("since=%d", now-60), 1}, {fmt.Sprintf("until=%d", now-60), 0},
	} {
		if got := e.reports(tt.q); len(got) != tt.want {
			t.Errorf("reports?%s = %d records, want %d", tt.q, len(got), tt.want)
		}
	}
}

func TestOptionsRefused(t *testing.T) {
	dir := t.TempDir()
	key, cert := writeKeyPair(t, dir, time.Now().Add(time.Hour))
	_, otherCert := writeKeyPair(t, t.TempDir(), time.Now().Add(time.Hour))
	for _, tt := range []struct {
		name, opts string
		dev        bool
		public     string
	}{
		{"unknown key", "currency: \"840\"\ncurrancy: x\n", true, ""},
		{"no currency", "brand_scheme: https\n", true, ""},
		{"http brands in production", "currency: \"840\"\nbrand_scheme: http\n", false, ""},
		{"key without certificate", fmt.Sprintf("currency: \"840\"\nkey_file: %q\n", key), true, ""},
		{"certificate of another key", fmt.Sprintf("currency: \"840\"\nkey_file: %q\ncert_file: %q\n", key, otherCert), true, ""},
		{"plaintext auditor token in production", "currency: \"840\"\nauditors: [{name: a, token: x}]\n", false, ""},
		{"blocked not a brand", "currency: \"840\"\nblocked_brands: [\"https://x\"]\n", true, ""},
		{"public URL too long for the QR template", "currency: \"840\"\n", true, "https://" + strings.Repeat("a", 40) + ".example"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var node yaml.Node
			yaml.Unmarshal([]byte(tt.opts), &node)
			pub := tt.public
			if pub == "" {
				pub = "https://127.0.0.1:8443"
			}
			if _, err := ipp.New(partners.Config{PartnerID: partnerID, Options: node.Content[0], PublicURL: pub, Development: tt.dev}); err == nil {
				t.Fatalf("New(%s) took it, want refused", tt.opts)
			}
		})
	}
	var node yaml.Node
	yaml.Unmarshal([]byte(fmt.Sprintf("currency: \"840\"\nkey_file: %q\ncert_file: %q\n", key, cert)), &node)
	if _, err := ipp.New(partners.Config{PartnerID: partnerID, Options: node.Content[0], PublicURL: "https://127.0.0.1:8443"}); err != nil {
		t.Fatalf("New(key pair) = %v", err)
	}
}

// lateHost is an engine whose payment request arrives late: Paid answers
// ErrNoRequestYet until ready (or ErrNotWaiting once ended).
type lateHost struct {
	*railtest.Host
	ready, ended atomic.Bool
}

func (h *lateHost) Paid(ctx context.Context, p *partners.Paid) error {
	switch {
	case h.ended.Load():
		return partners.ErrNotWaiting
	case !h.ready.Load():
		return partners.ErrNoRequestYet
	}
	return h.Host.Paid(ctx, p)
}

// TestPendingThenNotified: an offer that comes before the POS's payment
// request is answered 610; once the request is there the payment is
// approved and the decision notified to the payer's accountant (repeated
// while it is down); an offer whose payment ended meanwhile is notified
// voided (663).
func TestPendingThenNotified(t *testing.T) {
	for _, tt := range []struct {
		name string
		end  bool
		want protocol.Code
	}{{"approved", false, protocol.CodeApproved}, {"ended", true, protocol.CodeUnexpected}} {
		t.Run(tt.name, func(t *testing.T) {
			late := &lateHost{}
			e := newEnv(t, envOpts{extra: "pending_interval: 20ms\n", wrap: func(h *railtest.Host) partners.Host { late.Host = h; return late }})
			_, of := e.offer(1000, time.Minute)
			res := e.pay(of, "10.00")
			if res.Reply.Code != protocol.CodePending {
				t.Fatalf("early offer answered %+v, want 610", res.Reply)
			}
			e.sim.SetFaults(ippsim.Faults{Down: true})
			if err := e.rail.(partners.Starter).Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { e.rail.(partners.Starter).Close() })
			if tt.end {
				late.ended.Store(true)
			} else {
				late.ready.Store(true)
			}
			// The first notification meets the accountant down; it is
			// repeated once it is up.
			waitReceived(t, e, 1)
			e.sim.SetFaults(ippsim.Faults{})
			var got *protocol.Notification
			for got == nil {
				for _, r := range e.sim.Received() {
					if r.Reply != nil && r.Reply.Code == tt.want {
						got, _ = protocol.ParseNotification([]byte(r.Body))
					}
				}
				if got == nil {
					waitReceived(t, e, len(e.sim.Received())+1)
				}
			}
			if got.Code != tt.want || got.Relay != of.Reference {
				t.Fatalf("decision notified = %+v, want %d for relay %s", got, tt.want, of.Reference)
			}
			if n := len(e.host.PaidReports()); n != map[bool]int{false: 1, true: 0}[tt.end] {
				t.Fatalf("%d payments reported, want %v", n, !tt.end)
			}
			if again := e.send(res.Offer); again.Code != tt.want {
				t.Fatalf("the offer repeated after the decision = %d, want %d", again.Code, tt.want)
			}
		})
	}
}

// waitReceived waits until the simulator received n notifications (a
// backstop of 30 s; the test decides on the notifications).
func waitReceived(t *testing.T, e *env, n int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for len(e.sim.Received()) < n {
		select {
		case <-e.sim.Changed():
		case <-deadline:
			t.Fatalf("the payer's accountant received %d notifications, want %d", len(e.sim.Received()), n)
		}
	}
}

// TestReversalAnswers: every code the payer's accountant may answer a
// reversal offer with, and what the advice comes to: final decisions and
// the notifier's and verifier's refusals are final, manifest trouble and
// the catch-all 900 are repeated.
func TestReversalAnswers(t *testing.T) {
	e := newEnv(t, envOpts{simRSA: true})
	for _, tt := range []struct {
		code protocol.Code
		want outcome.Outcome
	}{
		{protocol.CodeApproved, outcome.Successful},
		{protocol.CodePending, outcome.Unknown},
		{601, outcome.Unknown}, // "to be specified"
		{protocol.CodeReset, outcome.Failed},
		{protocol.CodeVoided, outcome.Failed},
		{protocol.CodeBlocked, outcome.Failed},
		{protocol.CodeAdvisory, outcome.Failed},
		{protocol.CodeUnexpected, outcome.Failed},
		{protocol.CodeManifestNotFound, outcome.Unknown},
		{protocol.CodeManifestURL, outcome.Unknown},
		{protocol.CodeSchemeDependency, outcome.Unknown},
		{protocol.CodeBadRequest, outcome.Failed},
		{protocol.CodeInvalidRelay, outcome.Failed},
		{protocol.CodeInvalidCredentials, outcome.Failed},
		{protocol.CodeVerification, outcome.Failed},
		{protocol.CodeResetRefused, outcome.Failed},
		{protocol.CodeConflictStatus, outcome.Failed},
		{protocol.CodeConflictUnits, outcome.Failed},
		{protocol.CodeServerError, outcome.Unknown},
		{protocol.CodeSchemeUnsupported, outcome.Failed},
		{protocol.CodeInsufficientFunds, outcome.Failed},
		{protocol.CodeAccountNotAuth, outcome.Failed},
		{protocol.CodeUserNotAuth, outcome.Failed},
	} {
		t.Run(tt.code.String(), func(t *testing.T) {
			e.t = t
			e.sim.SetFaults(ippsim.Faults{})
			adv, _ := e.paidAdvice()
			if tt.code != protocol.CodeApproved {
				e.sim.SetFaults(ippsim.Faults{Code: tt.code})
			}
			a := e.refund(adv)
			if a.Outcome != tt.want || a.Code != tt.code.String() {
				t.Fatalf("Refund answered %d = %s %q (%v), want %s", tt.code, a.Outcome, a.Code, a.Err, tt.want)
			}
			if a.Outcome == outcome.Failed && a.Err == nil {
				t.Errorf("Refund answered %d failed without a cause for support", tt.code)
			}
		})
	}
}

// TestDecisionNotifiedOnce: two sweeps (two replicas on one store) that
// take up the same due notification of a decision at once send it once:
// the attempt is claimed in a versioned commit before it is sent.
func TestDecisionNotifiedOnce(t *testing.T) {
	late := &lateHost{}
	// Due for a decision a millisecond after the 610 (no sweeper runs:
	// the test's sweeps are the only ones).
	e := newEnv(t, envOpts{extra: "pending_interval: 1ms\n", wrap: func(h *railtest.Host) partners.Host { late.Host = h; return late }})
	_, of := e.offer(1000, time.Minute)
	if res := e.pay(of, "10.00"); res.Reply.Code != protocol.CodePending {
		t.Fatalf("early offer answered %+v, want 610", res.Reply)
	}
	sweeper := e.rail.(interface{ Sweep(context.Context) error })
	// The first notification of the approval meets the payer's accountant
	// down: it is due again after a backoff of 2 s.
	late.ready.Store(true)
	e.sim.SetFaults(ippsim.Faults{Down: true})
	for len(e.host.PaidReports()) == 0 { // due a millisecond after the 610
		if err := sweeper.Sweep(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2500 * time.Millisecond) // past the backoff (a later wake only makes it more due)
	// Up again, answering slowly, so that two sends would overlap.
	e.sim.SetFaults(ippsim.Faults{Delay: 300 * time.Millisecond})
	before := len(e.sim.Received())
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if err := sweeper.Sweep(t.Context()); err != nil {
				t.Errorf("sweep: %v", err)
			}
		})
	}
	wg.Wait()
	var decisions int
	for _, r := range e.sim.Received()[before:] {
		if n, _ := protocol.ParseNotification([]byte(r.Body)); n != nil && n.Relay == of.Reference && n.Code == protocol.CodeApproved {
			decisions++
		}
	}
	if decisions != 1 {
		t.Fatalf("the payer's accountant received %d decisions for relay %s after it came back, want 1", decisions, of.Reference)
	}
}

// TestPrivateBrandsRefused: outside the development setup and without
// private_brands the switch fetches no
// brand's page on a loopback or private address (a notification names the
// brand whose URLs the switch fetches), so an offer from such a brand is
// refused before anything is paid.
func TestPrivateBrandsRefused(t *testing.T) {
	e := newEnv(t, envOpts{production: true})
	_, of := e.offer(1000, time.Minute)
	res := e.pay(of, "10.00")
	if res.Reply.Code < 700 || res.Reply.Code >= 800 || !strings.Contains(res.Reply.Message, "private address") {
		t.Fatalf("offer from a brand on loopback = %+v, want a 7xx manifest error naming the private address", res.Reply)
	}
	if n := len(e.host.PaidReports()); n != 0 {
		t.Fatalf("%d payments reported, want none", n)
	}
}
