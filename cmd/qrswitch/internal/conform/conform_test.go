package conform

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/partners/electrum/electrumsim"
	tlsconfig "github.com/qrswitch/qrswitch/tls"
)

const (
	simUser  = "switch"
	simPass  = "switch-secret"
	scanUser = "wallet-a"
	scanPass = "wallet-a-scan"
)

// bench is a partner simulator on a real TLS server, and the kit's own
// listener and certificate, the simulator's customer app sending its scans
// there.
type bench struct {
	sim  *electrumsim.Sim
	opts Options
}

// newBench starts the simulator as c configures it (its switch, the kit,
// filled in) and prepares the kit's options to run against it.
func newBench(t *testing.T, c electrumsim.Config) *bench {
	t.Helper()
	partnerTLS, err := tlsconfig.NewEphemeral()
	if err != nil {
		t.Fatal(err)
	}
	kitTLS, err := tlsconfig.NewEphemeral()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c.SwitchURL = "https://" + ln.Addr().String()
	c.SwitchTLS = kitTLS.Client
	if c.PartnerID == "" {
		c.PartnerID = "wallet-a"
	}
	sim := electrumsim.New(c)
	srv := httptest.NewUnstartedServer(sim.Handler())
	srv.TLS = partnerTLS.Server
	srv.StartTLS()
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close)
	return &bench{sim: sim, opts: Options{
		PartnerURL: srv.URL, Username: simUser, Password: simPass, PartnerTLS: partnerTLS.Client,
		Listener: ln, ServerTLS: kitTLS.Server,
		ScanUsername: scanUser, ScanPassword: scanPass, PartnerID: "wallet-a",
		ScanBy:   srv.URL + "/sim/v1/scan",
		ScanWait: 30 * time.Second, // a backstop: the simulator scans at once
		Timeout:  30 * time.Second,
	}}
}

// simConfig is a careful partner with the test's credentials.
func simConfig() electrumsim.Config {
	return electrumsim.Config{Username: simUser, Password: simPass, ScanUsername: scanUser, ScanPassword: scanPass}
}

func (b *bench) run(t *testing.T) (*Report, string) {
	t.Helper()
	var out bytes.Buffer
	b.opts.Out = &out
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Run(ctx, b.opts)
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	rep.WriteText(&out)
	return rep, out.String()
}

func TestPassesAgainstTheSimulator(t *testing.T) {
	b := newBench(t, simConfig())
	rep, out := b.run(t)
	if !rep.OK() || rep.Skipped != 0 || rep.Passed != len(caseTitles) {
		t.Fatalf("report: %d passed, %d failed (%v), %d skipped; want all %d passed\n%s",
			rep.Passed, rep.Failed, rep.FailedCases(), rep.Skipped, len(caseTitles), out)
	}
	for _, want := range []string{"payload: 000201", "POST https://" + b.opts.Listener.Addr().String() + "/qr/v1/scans", "PASSED"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The kit left the partner's books as a switch would: the first
	// payment captured, the second released, nothing else reserved.
	l := b.sim.Ledger()
	states := map[string]int{}
	for _, p := range l.Payments {
		states[string(p.State)]++
	}
	if states[string(electrumsim.StateCaptured)] != 1 || states[string(electrumsim.StateReleased)] != 1 || states[string(electrumsim.StateReserved)] != 0 {
		t.Errorf("partner's payments by state = %v, want one captured, one released, none reserved", states)
	}
	if len(l.Scans) != 2 {
		t.Errorf("the simulator sent %d scans, want 2", len(l.Scans))
	}
	// Every message is in the report, secrets masked.
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(js, []byte(`"partnerPaymentToken":"conform-`)) {
		t.Error("the report shows a payment token in clear")
	}
	var back Report
	if err := json.Unmarshal(js, &back); err != nil || len(back.Cases) != len(rep.Cases) {
		t.Fatalf("the JSON report does not read back: %v", err)
	}
	for _, c := range back.Cases {
		if c.ID != "answer-times" && len(c.Exchanges) == 0 {
			t.Errorf("case %s has no exchanges in the report", c.ID)
		}
	}
	if c := back.Case("pay"); c == nil || c.Exchanges[0].Status != 201 || !json.Valid(c.Exchanges[0].Answer) {
		t.Errorf("case pay in the report = %+v, want its 201 answer as JSON", c)
	}
}

// TestFailsNamingTheCase runs the kit against a simulator that misbehaves
// as a vendor's implementation might, and checks that exactly the cases
// that should fail do.
func TestFailsNamingTheCase(t *testing.T) {
	for _, tt := range []struct {
		name    string
		config  func(*electrumsim.Config, *Options)
		set     func(*testing.T, *electrumsim.Sim)
		failing []string
	}{
		{
			name: "advices answered 503",
			set: func(t *testing.T, s *electrumsim.Sim) {
				mustSet(t, s.SetFault(electrumsim.Fault{Operation: electrumsim.OpAdvice, Fault: electrumsim.Fault503}))
			},
			failing: []string{"confirm", "reverse-unknown", "reverse"},
		},
		{
			name: "a repeated advice answered as a duplicate",
			set: func(t *testing.T, s *electrumsim.Sim) {
				mustSet(t, s.SetQuirk(electrumsim.QuirkRepeatIsDuplicate, true))
			},
			failing: []string{"confirm-repeated", "reverse-repeated"},
		},
		{
			name: "payments answered 500",
			set: func(t *testing.T, s *electrumsim.Sim) {
				mustSet(t, s.SetFault(electrumsim.Fault{Operation: electrumsim.OpPay, Fault: electrumsim.Fault500}))
			},
			failing: []string{"pay", "pay-2"},
		},
		{
			name:    "no credentials checked",
			config:  func(c *electrumsim.Config, _ *Options) { c.Username, c.Password = "", "" },
			failing: []string{"wrong-credentials"},
		},
		{
			name:    "scans with the wrong credentials",
			config:  func(c *electrumsim.Config, _ *Options) { c.ScanPassword = "not-the-one" },
			failing: []string{"scan", "scan-2"},
		},
		{
			name:    "scans as another partner",
			config:  func(_ *electrumsim.Config, o *Options) { o.PartnerID = "wallet-z" },
			failing: []string{"scan", "scan-2"},
		},
		{
			name: "a confirmation never answered",
			config: func(c *electrumsim.Config, o *Options) {
				c.LateAfter = 10 * time.Minute // held until the kit gives up
				o.Timeout = 5 * time.Second
			},
			set: func(t *testing.T, s *electrumsim.Sim) {
				mustSet(t, s.SetFault(electrumsim.Fault{Operation: electrumsim.OpConfirm, Fault: electrumsim.FaultHang, Count: 1}))
			},
			failing: []string{"confirm", "answer-times"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := simConfig()
			var o Options
			if tt.config != nil {
				tt.config(&c, &o)
			}
			b := newBench(t, c)
			if o.PartnerID != "" {
				b.opts.PartnerID = o.PartnerID
			}
			if o.Timeout != 0 {
				b.opts.Timeout = o.Timeout
			}
			if tt.set != nil {
				tt.set(t, b.sim)
			}
			rep, out := b.run(t)
			if got := rep.FailedCases(); !slices.Equal(got, tt.failing) {
				t.Fatalf("failed cases = %v, want %v\n%s", got, tt.failing, out)
			}
			if !strings.Contains(out, "FAILED: "+strings.Join(tt.failing, ", ")) {
				t.Errorf("the text report does not end naming the failed cases:\n%s", out)
			}
			for _, id := range tt.failing {
				if c := rep.Case(id); len(c.Problems) == 0 {
					t.Errorf("case %s failed without saying why", id)
				}
			}
		})
	}
}

func mustSet(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestRunRefusesOptions(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	eph, err := tlsconfig.NewEphemeral()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []Options{
		{PartnerURL: "https://partner.test"},
		{PartnerURL: "ftp://partner.test", Listener: ln, ServerTLS: eph.Server},
		{PartnerURL: "https://partner.test", Listener: ln, ServerTLS: eph.Server, Amount: -5},
	} {
		if _, err := Run(context.Background(), o); err == nil {
			t.Errorf("Run(%+v) = nil error, want the options refused", o)
		}
	}
}

// TestScanDesk sends notifications to the kit's notifyScan by hand: what
// the kit answers, and what it makes of them.
func TestScanDesk(t *testing.T) {
	doc := load(t)
	d := newDesk(doc, Options{ScanURL: "https://kit.test", ScanUsername: scanUser, ScanPassword: scanPass, PartnerID: "wallet-a", Now: time.Now})
	srv := httptest.NewServer(d)
	defer srv.Close()
	const tran = "f82d7f64feea4f2ab24da94aaf5c2941"
	note := func(tranID, partner string) string {
		return `{"id":"4f1c3a6e-2b1d-4c8e-9a7f-0e5d6c7b8a91","time":"2026-03-02T09:00:00.000Z","partner":{"id":"` + partner +
			`","name":"Wallet A"},"tranId":"` + tranID + `"}`
	}
	for _, tt := range []struct {
		name        string
		method      string
		path        string
		body        string
		user, pass  string
		waiting     bool
		status      int
		problem     string // "" for a valid scan
		notifiesWho bool   // the waiting code gets it
	}{
		{"valid", "POST", "/qr/v1/scans", note(tran, "wallet-a"), scanUser, scanPass, true, 202, "", true},
		{"no credentials", "POST", "/qr/v1/scans", note(tran, "wallet-a"), "", "", true, 401, "no HTTP Basic", true},
		{"wrong password", "POST", "/qr/v1/scans", note(tran, "wallet-a"), scanUser, "nope", true, 401, "credentials", true},
		{"another code", "POST", "/qr/v1/scans", note("00000000000000000000000000000000", "wallet-a"), scanUser, scanPass, true, 400, "is not the code's", true},
		{"another partner", "POST", "/qr/v1/scans", note(tran, "wallet-b"), scanUser, scanPass, true, 400, "partner.id", true},
		{"malformed", "POST", "/qr/v1/scans", `{"id":`, scanUser, scanPass, true, 400, "malformed", true},
		{"not a UUID", "POST", "/qr/v1/scans", strings.Replace(note(tran, "wallet-a"), "4f1c3a6e-", "", 1), scanUser, scanPass, true, 400, "UUID", true},
		{"nothing waiting", "POST", "/qr/v1/scans", note(tran, "wallet-a"), scanUser, scanPass, false, 400, "", false},
		{"other path", "POST", "/qr/v1/payments", note(tran, "wallet-a"), scanUser, scanPass, false, 404, "", false},
		{"other method", "GET", "/qr/v1/scans", "", scanUser, scanPass, false, 405, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got <-chan *scanned
			if tt.waiting {
				got = d.expect(tran)
				defer d.done()
			}
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if tt.user != "" {
				req.SetBasicAuth(tt.user, tt.pass)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("%s %s = %d, want %d", tt.method, tt.path, resp.StatusCode, tt.status)
			}
			if !tt.notifiesWho {
				return
			}
			s := <-got
			switch {
			case tt.problem == "" && len(s.problems) != 0:
				t.Errorf("problems = %v, want none", s.problems)
			case tt.problem != "" && !strings.Contains(strings.Join(s.problems, "; "), tt.problem):
				t.Errorf("problems = %v, want one about %q", s.problems, tt.problem)
			}
			if s.exchange.Status != tt.status || s.exchange.Direction != "in" {
				t.Errorf("exchange = %+v, want an inbound %d", s.exchange, tt.status)
			}
		})
	}
	if n := len(d.strays()); n != 1 {
		t.Errorf("stray scans = %d, want the one that came while nothing waited", n)
	}
}
