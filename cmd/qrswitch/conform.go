package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/conform"
	tlsconfig "github.com/qrswitch/qrswitch/tls"
)

// runConform runs "qrswitch conform": the conformance kit for partner
// vendors (package conform) against one partner, until every case ran or
// ctx ends. It fails when a case failed. args are the arguments after
// "conform".
func runConform(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("conform", flag.ContinueOnError)
	fs.SetOutput(stderr)
	partnerURL := fs.String("partner-url", "", "base `URL` of the partner's implementation (required): the kit calls {URL}/qr/v1/payments, …/confirmations, …/reversals")
	username := fs.String("username", "", "Basic auth `user` the kit presents to the partner, as the switch would")
	password := fs.String("password", "", "Basic auth `password` the kit presents to the partner")
	caFile := fs.String("ca", "", "CA `file` trusted for the partner's certificate (default: the system roots)")
	listen := fs.String("listen", "127.0.0.1:9444", "`address` where the kit serves POST /qr/v1/scans (HTTPS) for the partner's app")
	scanURL := fs.String("scan-url", "", "base `URL` the partner's app reaches the kit at, as shown (default: https:// and --listen)")
	certFile := fs.String("cert", "", "TLS certificate `file` of the kit's listener (default: one from the development CA in --data-dir)")
	keyFile := fs.String("key", "", "TLS key `file` (with --cert)")
	dataDir := fs.String("data-dir", "./var", "`directory` of the development CA (its tls/ sub-directory, shared with qrswitch serve and partnersim)")
	partnerID := fs.String("partner-id", "", "institution `id` the partner's scans must name as partner.id (default: any)")
	scanUsername := fs.String("scan-username", "", "Basic auth `user` the partner's app must present on scans (default: any)")
	scanPassword := fs.String("scan-password", "", "Basic auth `password` the partner's app must present on scans")
	scanBy := fs.String("scan-by", "", "`URL` of a simulator's customer app (partnersim's POST /sim/v1/scan) to scan each code, instead of a person")
	scanWait := fs.Duration("scan-wait", conform.DefaultScanWait, "how long to wait for each scan")
	timeout := fs.Duration("timeout", conform.DefaultTimeout, "how long each answer may take (the interface's timeout)")
	amount := fs.Int64("amount", conform.DefaultAmount, "amount of the kit's payments, in minor units (1000 is R10.00)")
	currency := fs.String("currency", conform.DefaultCurrency, "ISO 4217 numeric `code` of the kit's payments")
	reportFile := fs.String("report", "", "`file` to write the report to as JSON")
	qrFile := fs.String("qr-png", "", "`file` to write each QR code to as a PNG image, besides the terminal")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("conform: unexpected arguments %v", fs.Args())
	}
	if *partnerURL == "" {
		fs.Usage()
		return errors.New("conform: --partner-url is required")
	}
	if (*certFile == "") != (*keyFile == "") {
		return errors.New("conform: --cert and --key go together")
	}
	if (*scanUsername == "") != (*scanPassword == "") {
		return errors.New("conform: --scan-username and --scan-password go together")
	}

	caNote := ""
	if *certFile == "" {
		tlsDir := filepath.Join(*dataDir, "tls")
		ca, err := tlsconfig.OpenDevCA(tlsDir)
		if err != nil {
			return fmt.Errorf("conform: %w", err)
		}
		if *certFile, *keyFile, err = ca.Issue(tlsDir, "conform", certHosts(*listen)); err != nil {
			return fmt.Errorf("conform: %w", err)
		}
		caNote = " (its certificate is signed by the development CA " + ca.CertFile() + ": the app must trust it)"
	}
	serverTLS, err := tlsconfig.NewServer(tlsconfig.ServerOptions{CertFile: *certFile, KeyFile: *keyFile}, nil)
	if err != nil {
		return fmt.Errorf("conform: %w", err)
	}
	var partnerTLS *tls.Config
	if *caFile != "" {
		if partnerTLS, err = tlsconfig.NewClient(tlsconfig.ClientOptions{CAFile: *caFile}); err != nil {
			return fmt.Errorf("conform: %w", err)
		}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("conform: listening on %s: %w", *listen, err)
	}
	fmt.Fprintf(stdout, "qrswitch conform: playing the switch for %s; scans to https://%s/qr/v1/scans%s\n",
		*partnerURL, ln.Addr(), caNote)

	rep, err := conform.Run(ctx, conform.Options{
		PartnerURL: *partnerURL, Username: *username, Password: *password, PartnerTLS: partnerTLS,
		Listener: ln, ServerTLS: serverTLS.Config(), ScanURL: *scanURL,
		ScanUsername: *scanUsername, ScanPassword: *scanPassword, PartnerID: *partnerID,
		ScanBy: *scanBy, ScanWait: *scanWait, Timeout: *timeout,
		Amount: *amount, Currency: *currency, Out: stdout, QRFile: *qrFile,
	})
	if err != nil {
		return err
	}
	rep.WriteText(stdout)
	if *reportFile != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return fmt.Errorf("conform: encoding the report: %w", err)
		}
		if err := os.WriteFile(*reportFile, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("conform: writing the report: %w", err)
		}
	}
	if !rep.OK() {
		return fmt.Errorf("conform: %d of %d cases failed: %s", rep.Failed, len(rep.Cases), strings.Join(rep.FailedCases(), ", "))
	}
	return nil
}

// certHosts are the names the development certificate of the kit covers:
// the loopback names, and the host of the listen address when it is one.
func certHosts(listen string) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	host, _, err := net.SplitHostPort(listen)
	if err != nil || host == "" {
		return hosts
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return hosts
	}
	for _, h := range hosts {
		if h == host {
			return hosts
		}
	}
	return append(hosts, host)
}
