package server

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

const promtoolHint = "the alert rules are checked with promtool: install it with `apt-get install prometheus` (scripts/test does it)"

// promtool runs promtool in deploy/prometheus and fails the test on a
// non-zero exit, or when promtool is missing: alert tests never skip.
func promtool(t *testing.T, args ...string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found in PATH: %s", promtoolHint)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = filepath.Join("..", "..", "..", "..", "deploy", "prometheus")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestAlertRules checks deploy/prometheus/alerts.yml with promtool and runs
// its unit tests (alerts_test.yml): every alert fires when it should and
// stays quiet when it should not.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	promtool(t, "check", "rules", "alerts.yml")
	promtool(t, "test", "rules", "alerts_test.yml")
}

// definedSeries returns the names of every series the server's registry
// defines (collectors describe them even before they have a sample), with
// a histogram's _bucket, _count and _sum.
func definedSeries(t *testing.T, m *metrics) map[string]bool {
	t.Helper()
	ch := make(chan *prometheus.Desc, 256)
	go func() { m.reg.Describe(ch); close(ch) }()
	name := regexp.MustCompile(`fqName: "([^"]+)"`)
	out := map[string]bool{}
	for d := range ch {
		if m := name.FindStringSubmatch(d.String()); m != nil {
			for _, suffix := range []string{"", "_bucket", "_count", "_sum"} {
				out[m[1]+suffix] = true
			}
		}
	}
	return out
}

// TestAlertsAndDashboardUseRealSeries: every qrswitch_ series the alert
// rules, their tests and the Grafana dashboard name is one the switch
// defines, so a renamed metric cannot silently blind an alert or a panel.
func TestAlertsAndDashboardUseRealSeries(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	defined := definedSeries(t, h.Srv.metrics)
	if !defined["qrswitch_partner_outcomes_total"] || !defined["qrswitch_saf_dead_letters"] {
		t.Fatalf("the registry describes too little: %v", defined)
	}
	used := regexp.MustCompile(`\bqrswitch_[a-z_]+\b`)
	for _, file := range []string{"../../../../deploy/prometheus/alerts.yml", "../../../../deploy/prometheus/alerts_test.yml", "../../../../deploy/grafana/qrswitch.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		names := used.FindAllString(string(b), -1)
		if len(names) == 0 {
			t.Errorf("%s names no qrswitch series", file)
		}
		for _, n := range names {
			if strings.HasSuffix(n, "_") {
				continue // a family named in prose, "qrswitch_saf_*"
			}
			if !defined[n] {
				t.Errorf("%s uses %s, which the switch does not define", file, n)
			}
		}
	}
	var dash struct {
		Title  string
		Panels []struct {
			ID      int
			Type    string
			Title   string
			Targets []struct{ Expr string }
		}
	}
	b, _ := os.ReadFile("../../../../deploy/grafana/qrswitch.json")
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("the Grafana dashboard is not JSON: %v", err)
	}
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type != "row" && (len(p.Targets) == 0 || p.Targets[0].Expr == "") {
			t.Errorf("panel %q has no query", p.Title)
		}
	}
}
