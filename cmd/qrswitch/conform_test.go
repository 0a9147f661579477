package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/conform"
	"github.com/qrswitch/qrswitch/partners/electrum/electrumsim"
	tlsconfig "github.com/qrswitch/qrswitch/tls"
)

// TestConformCommand runs "qrswitch conform" against the partner simulator
// on a TLS server, its customer app scanning the kit's codes: a careful
// partner passes; one that answers a repeated advice as a duplicate fails,
// and the command says which cases.
func TestConformCommand(t *testing.T) {
	dir := t.TempDir()
	// The kit's certificate comes from the development CA in --data-dir;
	// the simulator's customer app trusts that CA, as a vendor's app must.
	ca, err := tlsconfig.OpenDevCA(filepath.Join(dir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	appTLS, err := tlsconfig.NewClient(tlsconfig.ClientOptions{CAFile: ca.CertFile()})
	if err != nil {
		t.Fatal(err)
	}
	partnerTLS, err := tlsconfig.NewEphemeral()
	if err != nil {
		t.Fatal(err)
	}
	partnerCA := filepath.Join(dir, "partner-ca.pem")
	if err := os.WriteFile(partnerCA, partnerTLS.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	// The kit listens where the simulator's app is told to send scans.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	sim := electrumsim.New(electrumsim.Config{
		PartnerID: "wallet-a", Username: "switch", Password: "switch-secret",
		SwitchURL: "https://" + listen, SwitchTLS: appTLS, ScanUsername: "wallet-a", ScanPassword: "scan-secret",
	})
	srv := httptest.NewUnstartedServer(sim.Handler())
	srv.TLS = partnerTLS.Server
	srv.StartTLS()
	defer srv.Close()
	defer sim.Close()

	conformRun := func(t *testing.T, report string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		var stdout, stderr bytes.Buffer
		err := run(ctx, []string{"conform",
			"--partner-url", srv.URL, "--username", "switch", "--password", "switch-secret", "--ca", partnerCA,
			"--listen", listen, "--data-dir", dir,
			"--partner-id", "wallet-a", "--scan-username", "wallet-a", "--scan-password", "scan-secret",
			"--scan-by", srv.URL + "/sim/v1/scan", "--scan-wait", "1m", "--report", report,
		}, nil, nil, &stdout, &stderr)
		return stdout.String() + stderr.String(), err
	}
	readReport := func(t *testing.T, file string) *conform.Report {
		t.Helper()
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var rep conform.Report
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatalf("report %s: %v", file, err)
		}
		return &rep
	}

	t.Run("a careful partner passes", func(t *testing.T) {
		file := filepath.Join(dir, "pass.json")
		out, err := conformRun(t, file)
		if err != nil {
			t.Fatalf("conform = %v\n%s", err, out)
		}
		rep := readReport(t, file)
		if rep.Failed != 0 || rep.Passed != len(rep.Cases) || rep.Partner != srv.URL {
			t.Fatalf("report: partner %s, %d passed, %d failed of %d", rep.Partner, rep.Passed, rep.Failed, len(rep.Cases))
		}
		if !strings.Contains(out, "PASSED") || !strings.Contains(out, "signed by the development CA") {
			t.Errorf("output:\n%s", out)
		}
	})
	t.Run("a repeated advice answered as a duplicate fails", func(t *testing.T) {
		if err := sim.SetQuirk(electrumsim.QuirkRepeatIsDuplicate, true); err != nil {
			t.Fatal(err)
		}
		defer sim.SetQuirk(electrumsim.QuirkRepeatIsDuplicate, false)
		file := filepath.Join(dir, "fail.json")
		out, err := conformRun(t, file)
		if err == nil || !strings.Contains(err.Error(), "2 of 16 cases failed: confirm-repeated, reverse-repeated") {
			t.Fatalf("conform = %v, want it to fail naming confirm-repeated and reverse-repeated\n%s", err, out)
		}
		rep := readReport(t, file)
		if c := rep.Case("confirm-repeated"); c == nil || c.Result != conform.Fail || len(c.Exchanges) != 1 || c.Exchanges[0].Status != 400 {
			t.Fatalf("case confirm-repeated in the report = %+v, want failed with the 400 it got", c)
		}
	})
}

func TestConformFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "--partner-url is required"},
		{[]string{"--partner-url", "https://p.test", "--cert", "c.pem"}, "--cert and --key go together"},
		{[]string{"--partner-url", "https://p.test", "--scan-username", "u"}, "--scan-username and --scan-password go together"},
		{[]string{"--partner-url", "https://p.test", "extra"}, "unexpected arguments"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append([]string{"conform"}, tt.args...), nil, nil, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("conform %v = %v, want an error saying %q", tt.args, err, tt.want)
		}
	}
	if got := certHosts("0.0.0.0:9444"); len(got) != 3 {
		t.Errorf("certHosts(0.0.0.0:9444) = %v, want the loopback names only", got)
	}
	if got := certHosts("wallet-lab.example:9444"); got[len(got)-1] != "wallet-lab.example" {
		t.Errorf("certHosts(wallet-lab.example:9444) = %v, want the host added", got)
	}
}
