package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/partners/electrum/electrumsim"
	tlsconfig "github.com/qrswitch/qrswitch/tls"
)

// partnersimShutdown bounds the graceful stop of the simulator's server.
const partnersimShutdown = 10 * time.Second

// runPartnersim runs "qrswitch partnersim": a simulated Electrum partner
// (package electrumsim) on its own TLS listener until ctx ends. args are the
// arguments after "partnersim".
func runPartnersim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("partnersim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9443", "`address` to listen on (HTTPS)")
	certFile := fs.String("cert", "", "TLS certificate `file` (default: a development certificate from the dev CA in --data-dir)")
	keyFile := fs.String("key", "", "TLS key `file` (with --cert)")
	dataDir := fs.String("data-dir", "./var", "`directory` of the development CA (its tls/ sub-directory, shared with qrswitch serve)")
	partnerID := fs.String("partner-id", config.DevPartnerID, "institution `id` the simulator answers and scans as")
	name := fs.String("name", config.DevPartnerName, "institution `name` the simulator answers and scans as")
	username := fs.String("username", config.DevPartnerUsername, "Basic auth `user` the switch must present (empty with an empty --password: no check)")
	password := fs.String("password", config.DevPartnerPassword, "Basic auth `password` the switch must present")
	switchURL := fs.String("switch-url", "https://127.0.0.1:8443", "base `URL` of the switch, for scans")
	scanUsername := fs.String("scan-username", config.DevPartnerScanUsername, "Basic auth `user` presented to the switch on scans")
	scanPassword := fs.String("scan-password", config.DevPartnerScanPassword, "Basic auth `password` presented to the switch on scans")
	switchCA := fs.String("switch-ca", "", "CA `file` trusted for the switch's certificate (default: the dev CA in --data-dir)")
	lateAfter := fs.Duration("late-after", electrumsim.DefaultLateAfter, "how long a late answer (amount ending in 70) and a hang fault wait")
	slowAfter := fs.Duration("slow-after", electrumsim.DefaultSlowAfter, "how long a slow answer (amount ending in 72) waits")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("partnersim: unexpected arguments %v", fs.Args())
	}
	if (*certFile == "") != (*keyFile == "") {
		return errors.New("partnersim: --cert and --key go together")
	}

	tlsDir := filepath.Join(*dataDir, "tls")
	if *certFile == "" || *switchCA == "" {
		ca, err := tlsconfig.OpenDevCA(tlsDir)
		if err != nil {
			return fmt.Errorf("partnersim: %w", err)
		}
		if *switchCA == "" {
			*switchCA = ca.CertFile()
		}
		if *certFile == "" {
			if *certFile, *keyFile, err = ca.Issue(tlsDir, "partnersim", nil); err != nil {
				return fmt.Errorf("partnersim: %w", err)
			}
		}
	}
	errLog := log.New(stderr, "partnersim: ", log.LstdFlags)
	serverTLS, err := tlsconfig.NewServer(tlsconfig.ServerOptions{CertFile: *certFile, KeyFile: *keyFile}, nil)
	if err != nil {
		return fmt.Errorf("partnersim: %w", err)
	}
	clientTLS, err := tlsconfig.NewClient(tlsconfig.ClientOptions{CAFile: *switchCA})
	if err != nil {
		return fmt.Errorf("partnersim: %w", err)
	}

	sim := electrumsim.New(electrumsim.Config{
		PartnerID:    *partnerID,
		PartnerName:  *name,
		Username:     *username,
		Password:     *password,
		LateAfter:    *lateAfter,
		SlowAfter:    *slowAfter,
		SwitchURL:    *switchURL,
		ScanUsername: *scanUsername,
		ScanPassword: *scanPassword,
		SwitchTLS:    clientTLS,
	})
	defer sim.Close()
	srv := &http.Server{
		Handler:           sim.Handler(),
		TLSConfig:         serverTLS.Config(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// A late answer must still be writable when it comes.
		WriteTimeout: max(*lateAfter, *slowAfter) + 30*time.Second,
		IdleTimeout:  2 * time.Minute,
		ErrorLog:     errLog,
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("partnersim: %w", err)
	}
	fmt.Fprintf(stdout, "partnersim: partner %s (%s) listening on https://%s; switch %s; trust %s; behaviour by the amount's last two digits:\n%s",
		*partnerID, *name, ln.Addr(), *switchURL, *switchCA, electrumsim.BehaviourTable())

	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-served:
		return fmt.Errorf("partnersim: %w", err)
	case <-ctx.Done():
	}
	// Held answers (late, slow, hang) end first, so Shutdown does not wait
	// for them.
	sim.Close()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), partnersimShutdown)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("partnersim: shutting down: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("partnersim: %w", err)
	}
	return nil
}
