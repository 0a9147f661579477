package load

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/server"
	"github.com/qrswitch/qrswitch/partners/electrum/electrumsim"
)

func TestHistogramPercentiles(t *testing.T) {
	h := newHistogram()
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	l := h.summary()
	near := func(got, want float64) bool { return got >= want*0.99 && got <= want*1.01 }
	if l.Count != 1000 || !near(l.P50, 500) || !near(l.P90, 900) || !near(l.P99, 990) || !near(l.P999, 999) || !near(l.Max, 1000) || !near(l.Mean, 500.5) {
		t.Fatalf("summary of 1..1000 ms = %+v", l)
	}
	h = newHistogram()
	h.record(0)
	h.record(10 * time.Minute) // beyond the range: clamped, not lost
	if l := h.summary(); l.Count != 2 || l.Max < 299_000 {
		t.Fatalf("out-of-range values = %+v, want both counted", l)
	}
}

// stack is a switch and its partner simulator on loopback, as scripts/bench
// starts them, but in one process: the switch's test harness.
type stack struct {
	opts Options
	sim  *electrumsim.Sim
}

func startStack(t *testing.T) *stack {
	t.Helper()
	h := server.NewHarness(t, func(c *config.Config, o *server.Options) {
		c.SAF.InitialInterval, c.SAF.MaxInterval = config.Duration(20*time.Millisecond), config.Duration(100*time.Millisecond)
		c.ScanWait, c.QRTTL = config.Duration(20*time.Second), config.Duration(5*time.Minute)
		for i := range c.Partners {
			c.Partners[i].Timeout = config.Duration(10 * time.Second)
		}
		o.SAFPoll = 20 * time.Millisecond
	})
	return &stack{sim: h.Sim, opts: Options{
		SwitchURL: h.Base, SimURL: h.SimURL, AdminURL: "http://" + h.Srv.AdminAddr(), TLS: h.Trust(),
		Retailers: []Retailer{{Username: server.ShopUser, Password: server.ShopPass, InstitutionID: "1234"},
			{Username: server.Shop2User, Password: server.Shop2Pass, InstitutionID: "5678"}},
		PartnerUsername: "switch", PartnerPassword: "switch-secret",
		Concurrency: 4, Connections: 2, Duration: 1500 * time.Millisecond, Warmup: 200 * time.Millisecond,
	}}
}

// TestRunCountsWhatHappened runs a short mixed run and checks the report
// against the simulator's ledger: what the tool counts is what the partner
// saw.
func TestRunCountsWhatHappened(t *testing.T) {
	st := startStack(t)
	o := st.opts
	o.VoidShare, o.DeclineShare, o.Baseline = 0.2, 0.2, true
	var progress strings.Builder
	o.Progress = &progress
	rep, err := Run(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ErrorCount != 0 || len(rep.Errors) != 0 {
		t.Fatalf("errors: %v", rep.Errors)
	}
	if rep.Flows == 0 || rep.Flows != rep.Approved+rep.Declined+rep.Voided {
		t.Fatalf("flows %d != approved %d + declined %d + voided %d", rep.Flows, rep.Approved, rep.Declined, rep.Voided)
	}
	if rep.Declined == 0 || rep.Voided == 0 {
		t.Fatalf("a 20/20 mix gave %d declines and %d voids", rep.Declined, rep.Voided)
	}
	steps := rep.Steps
	if steps[StepFlow].Count != rep.Flows || steps[StepConfirm].Count != rep.Approved || steps[StepReverse].Count != rep.Voided {
		t.Fatalf("step counts %+v do not match flows %d, approved %d, voided %d", steps, rep.Flows, rep.Approved, rep.Voided)
	}
	if steps[StepPay].Count < rep.Flows || steps[StepCreateQR].Count < rep.Flows {
		t.Fatalf("fewer pay/createQrCode samples than flows: %+v", steps)
	}
	for name, l := range steps {
		if l.Count > 0 && !(l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max && l.P50 > 0) {
			t.Errorf("%s percentiles out of order: %+v", name, l)
		}
	}
	if rep.SwitchAdded == nil || rep.SwitchAdded.Count != rep.Approved+rep.Voided+rep.Declined || rep.SwitchAdded.P50 > steps[StepPay].P99 {
		t.Errorf("switch-added latency %+v, want one sample per payment and below the pay step's", rep.SwitchAdded)
	}
	// Counted from the tool's request to the app, it starts earlier: it
	// is never the smaller figure at any percentile.
	if a, ft := rep.SwitchAdded, rep.SwitchAddedFromTool; ft == nil || ft.Count != a.Count || ft.P50 < a.P50 || ft.Max < a.Max {
		t.Errorf("switch-added from the tool %+v, want as many samples as switchAdded %+v, none of them smaller", ft, a)
	}
	if wantRate := float64(rep.Flows) / rep.Measured.Seconds(); rep.FlowsPerSec != wantRate {
		t.Errorf("flows/s = %f, want %f", rep.FlowsPerSec, wantRate)
	}
	if rep.Baseline == nil || rep.Baseline.Flows == 0 || rep.Ratio == nil || *rep.Ratio <= 0 {
		t.Fatalf("baseline = %+v ratio %v", rep.Baseline, rep.Ratio)
	}
	if !strings.Contains(progress.String(), "flows measuring") {
		t.Errorf("no progress lines: %q", progress.String())
	}
	// Every measured flow is in the partner's ledger, plus the warm-up's and
	// the baseline's payments.
	ledger := st.sim.Ledger()
	if got := int64(ledger.Totals.Payments); got < rep.Flows+rep.Baseline.Flows {
		t.Errorf("partner saw %d payments, the tool counted %d flows and %d direct", got, rep.Flows, rep.Baseline.Flows)
	}
	var text strings.Builder
	rep.WriteText(&text)
	for _, want := range []string{"flows/s", "p99.9", "switchAdded", "direct path"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
}

func TestRecoveryAndHold(t *testing.T) {
	st := startStack(t)
	rep, err := Recovery(t.Context(), st.opts, 20, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Recovery
	if r.Advices != 20 || r.AllFinal <= 0 || r.AllFinal < r.FirstFinal || r.DrainRate <= 0 || r.Deliveries < 20 {
		t.Fatalf("recovery report = %+v", r)
	}
	if got := st.sim.Totals().Captured; got < 20 {
		t.Fatalf("partner captured %d payments, want 20", got)
	}
	if len(st.sim.Faults()) != 0 {
		t.Fatal("recovery left a fault set on the simulator")
	}

	o := st.opts
	o.HTTP2 = true
	rep, err = Hold(t.Context(), o, 30, 0)
	if err != nil {
		t.Fatal(err)
	}
	if h := rep.Hold; h.Requests != 30 || h.Held < 30 || h.RSSBytes <= 0 || rep.ErrorCount != 0 {
		t.Fatalf("hold report = %+v, errors %v", h, rep.Errors)
	}
}

func TestOptionsChecked(t *testing.T) {
	for _, o := range []Options{
		{},
		{Retailers: []Retailer{{Username: "a"}}, VoidShare: 0.7, DeclineShare: 0.7},
		{Retailers: []Retailer{{Username: "a"}}, SwitchURL: "::"},
	} {
		if _, err := Run(t.Context(), o); err == nil {
			t.Errorf("Run(%+v) succeeded, want an error", o)
		}
	}
}

// TestProcessCPU reads this process's CPU time from /proc and leaves out a
// process that does not exist.
func TestProcessCPU(t *testing.T) {
	self := os.Getpid()
	before := processCPU(map[string]int{"self": self, "gone": 1 << 30})
	if _, ok := before["gone"]; ok {
		t.Fatalf("a process that does not exist was read: %v", before)
	}
	// Burn CPU until the kernel's tick counter moves (10 ms units).
	for processCPU(map[string]int{"self": self})["self"] <= before["self"] {
		x := 0
		for i := range 1_000_000 {
			x += i
		}
		_ = x
	}
	if after := processCPU(map[string]int{"self": self})["self"]; after <= before["self"] || after > before["self"]+60 {
		t.Fatalf("CPU seconds went from %v to %v", before["self"], after)
	}
}
