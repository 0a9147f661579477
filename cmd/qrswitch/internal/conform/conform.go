// Package conform is "qrswitch conform", a conformance kit for partner
// vendors, in the spirit of Mojaloop's testing toolkit: pointed at a
// partner's implementation of the partner side of Electrum's QR Payment
// Service Interface, it plays the switch. It serves the interface's
// notifyScan (POST /qr/v1/scans) on its own HTTPS listener, shows a QR code
// for the vendor's app to scan and checks the scan notification, then runs
// the interface's scenarios against the partner's base URL — a payment
// approved, confirmed, the confirmation repeated, a payment id reused, a
// reversal of an unknown payment, a reversal before any confirmation and
// the confirmation after it, malformed messages, wrong credentials — and
// times every answer against the interface's 60 s timeout.
//
// Every answer is checked against the interface: its status among those
// the operation declares and the one the scenario expects, its body decoded
// and validated as the switch's electrum rail does (package wire) and
// against the schemas of the switch's OpenAPI document, which the partner
// side shares (package contract). The result is a Report: pass or fail per
// case, with every message exchanged, secrets masked.
package conform

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/qrswitch/qrswitch/internal/openapi/contract"
	"github.com/qrswitch/qrswitch/internal/wire"
)

// Defaults of Options.
const (
	// DefaultTimeout is the interface's timeout for every call.
	DefaultTimeout = 60 * time.Second
	// DefaultScanWait is how long a person has to scan each code.
	DefaultScanWait = 5 * time.Minute
	// DefaultAmount is the amount of the kit's payments, in minor units
	// (R10.00; the partner simulator approves amounts ending in 00).
	DefaultAmount = 1000
	// DefaultCurrency is the ISO 4217 numeric code of the kit's payments
	// (ZAR).
	DefaultCurrency = "710"
)

// Options configure a run. PartnerURL, Listener and ServerTLS are required.
type Options struct {
	// PartnerURL is the partner's base URL: the kit calls
	// {PartnerURL}/qr/v1/payments, …/confirmations and …/reversals.
	PartnerURL string
	// Username and Password are the Basic credentials the kit presents to
	// the partner, as the switch would.
	Username, Password string
	// PartnerTLS is the TLS configuration for calling the partner (its
	// trust roots). Nil: the system roots.
	PartnerTLS *tls.Config

	// Listener is where the kit serves notifyScan, with ServerTLS (whose
	// certificate the vendor's app must trust).
	Listener  net.Listener
	ServerTLS *tls.Config
	// ScanURL is the base URL the vendor's app reaches the kit at, as shown
	// to the person scanning. Default: https:// and the listener's address.
	ScanURL string
	// ScanUsername and ScanPassword are the credentials the vendor's app
	// must present on scans. Empty: any Basic credentials are taken (the
	// interface requires some).
	ScanUsername, ScanPassword string
	// PartnerID, when set, is the institution id scans must name as
	// partner.id.
	PartnerID string
	// ScanBy, when set, is the URL of a partner simulator's customer app
	// (electrumsim's POST /sim/v1/scan): the kit asks it to scan each code
	// instead of waiting for a person. It is called with PartnerTLS.
	ScanBy string
	// ScanWait bounds the wait for each scan. Default DefaultScanWait.
	ScanWait time.Duration

	// Timeout bounds each call to the partner. Default DefaultTimeout, the
	// interface's.
	Timeout time.Duration
	// Amount (minor units) and Currency (ISO 4217 numeric) of the kit's
	// payments. Defaults DefaultAmount and DefaultCurrency.
	Amount   int64
	Currency string

	// Out shows the QR codes to scan and the progress. Nil: nothing shown.
	Out io.Writer
	// QRFile, when set, is a file the kit writes each code's PNG image to,
	// for a screen that shows images better than a terminal.
	QRFile string
	// Now is the clock of messages and the report. Default time.Now.
	Now func() time.Time
}

// kit is one run.
type kit struct {
	o       Options
	base    string
	doc     *contract.Document
	client  *http.Client
	scanner *http.Client
	desk    *desk
	report  *Report
}

// ErrOptions is the error of options Run cannot work with.
var ErrOptions = errors.New("conform: invalid options")

// Run runs every case against the partner and returns the report; it
// fails only when it cannot run at all (options, the listener). It stops
// early, with the cases not run marked skipped, when ctx ends. The listener
// is closed when Run returns.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Listener == nil || o.ServerTLS == nil {
		return nil, fmt.Errorf("%w: a listener and its TLS configuration are required", ErrOptions)
	}
	defer o.Listener.Close()
	u, err := url.Parse(o.PartnerURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%w: partner URL %q is not an http(s) URL", ErrOptions, o.PartnerURL)
	}
	if o.Amount == 0 {
		o.Amount = DefaultAmount
	}
	if o.Amount < 0 {
		return nil, fmt.Errorf("%w: amount %d is negative", ErrOptions, o.Amount)
	}
	if o.Currency == "" {
		o.Currency = DefaultCurrency
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ScanWait <= 0 {
		o.ScanWait = DefaultScanWait
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	o.Out = &lockedWriter{w: o.Out} // the scan listener's log writes there too
	if o.ScanURL == "" {
		o.ScanURL = "https://" + o.Listener.Addr().String()
	}
	o.ScanURL = strings.TrimRight(o.ScanURL, "/")
	doc, err := contract.Load()
	if err != nil {
		return nil, err
	}
	k := &kit{
		o:    o,
		base: strings.TrimRight(o.PartnerURL, "/"),
		doc:  doc,
		report: &Report{
			Partner: o.PartnerURL, Started: o.Now().UTC(), TimeoutMS: o.Timeout.Milliseconds(),
		},
	}
	k.client = newClient(o.PartnerTLS, o.Timeout)
	k.scanner = newClient(o.PartnerTLS, o.Timeout)
	k.desk = newDesk(doc, o)

	srv := &http.Server{
		Handler:           k.desk,
		TLSConfig:         o.ServerTLS,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// A vendor's app that does not trust the kit's certificate shows
		// up here first (a failed TLS handshake): say so where the person
		// looks.
		ErrorLog: log.New(o.Out, "conform: scan listener: ", 0),
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(o.Listener, "", "") }()

	k.runCases(ctx)

	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutCtx)
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return nil, fmt.Errorf("conform: serving scans on %s: %w", o.Listener.Addr(), err)
	}
	k.report.Stray = k.desk.strays()
	k.report.Finished = o.Now().UTC()
	k.report.count()
	return k.report, nil
}

// newClient is the kit's HTTP client: the interface's timeout, no
// redirects (a partner that redirects a payment is misconfigured).
func newClient(tlsConf *tls.Config, timeout time.Duration) *http.Client {
	var c *tls.Config
	if tlsConf != nil {
		c = tlsConf.Clone()
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       c,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: timeout,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// now is the kit's clock as the interface writes times.
func (k *kit) now() string { return k.o.Now().UTC().Format("2006-01-02T15:04:05.000Z") }

// newTranID returns a fresh tranId, as the switch makes them: a UUID's 32
// hexadecimal digits.
func newTranID() string { return strings.ReplaceAll(wire.NewID(), "-", "") }

// lockedWriter serialises writes from the run and the scan listener.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
